//! The shapes of the `gates` section (SLO gates and the judgment against a
//! baseline) and how each is read from JSON, split from `raw.rs` so that each
//! file holds one part of `pluginConfig`. Unknown fields are refused; the typed
//! values come from the `TryFrom` conversions in `gates.rs` and `judgment.rs`.

use super::error::ConfigError;
use super::json::Field;

#[derive(Debug, Default)]
pub(crate) struct RawGates {
    pub canary_version: Option<String>,
    pub tick: Option<String>,
    pub bucket: Option<String>,
    pub min_samples: Option<u32>,
    pub objectives: Option<RawObjectives>,
    pub promotion: Option<Vec<RawPromotion>>,
    pub rollback: Option<Vec<RawTrigger>>,
    pub burn_rate: Option<RawBurn>,
    pub withdraw: Option<Vec<String>>,
    pub judgment: Option<RawJudgment>,
}

/// `gates.judgment`: the canary judged against a baseline. Field names
/// match the judge's own (`errors.margin`), so its range errors name them.
#[derive(Debug, Default)]
pub(crate) struct RawJudgment {
    pub baseline_version: Option<String>,
    pub baseline_failing: Option<RawBaselineFailing>,
    pub errors: Option<RawRatio>,
    pub shift: Option<RawShift>,
    pub tail: Option<RawTail>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum RawBaselineFailing {
    Hold,
    Withdraw,
}

#[derive(Debug, Default)]
pub(crate) struct RawRatio {
    pub confidence: Option<f64>,
    pub margin: Option<f64>,
    pub not_worse_margin: Option<f64>,
    pub floor: Option<f64>,
}

#[derive(Debug, Default)]
pub(crate) struct RawShift {
    pub confidence: Option<f64>,
    pub min_effect: Option<f64>,
    pub min_samples: Option<u32>,
}

/// The tail test: a ratio test (its four fields) plus where the tail starts.
#[derive(Debug, Default)]
pub(crate) struct RawTail {
    pub ratio: RawRatio,
    pub quantile: Option<f64>,
    pub min_baseline: Option<u32>,
}

#[derive(Debug, Default)]
pub(crate) struct RawObjectives {
    pub availability_percent: Option<f64>,
    pub latency_p99: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawPromotion {
    pub at_percent: f64,
    pub max_error_percent: Option<f64>,
    pub max_p99: Option<String>,
    pub max_5xx: Option<u32>,
    pub objectives: Option<bool>,
    pub hold_for: Option<String>,
    pub window: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawTrigger {
    pub error_percent_above: Option<f64>,
    pub p99_above: Option<String>,
    pub http_5xx_percent_above: Option<f64>,
    pub window: Option<String>,
    pub for_: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawBurn {
    pub windows: Option<Vec<RawBurnPair>>,
    pub rollback: Option<bool>,
}

#[derive(Debug, Default)]
pub(crate) struct RawBurnPair {
    pub long: String,
    pub short: String,
    pub factor: f64,
}

impl RawGates {
    pub(super) fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawGates::default();
        let known = &[
            "canaryVersion",
            "tick",
            "bucket",
            "minSamples",
            "objectives",
            "promotion",
            "rollback",
            "burnRate",
            "withdraw",
            "judgment",
        ];
        f.fields(known, &[], |name, f| {
            match name {
                "canaryVersion" => raw.canary_version = Some(f.string()?),
                "tick" => raw.tick = Some(f.string()?),
                "bucket" => raw.bucket = Some(f.string()?),
                "minSamples" => raw.min_samples = Some(f.u32()?),
                "objectives" => {
                    let mut o = RawObjectives::default();
                    f.fields(&["availabilityPercent", "latencyP99"], &[], |name, f| {
                        match name {
                            "availabilityPercent" => o.availability_percent = Some(f.f64()?),
                            "latencyP99" => o.latency_p99 = Some(f.string()?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    raw.objectives = Some(o);
                }
                "promotion" => raw.promotion = Some(f.list(RawPromotion::read)?),
                "rollback" => raw.rollback = Some(f.list(RawTrigger::read)?),
                "burnRate" => {
                    let mut b = RawBurn::default();
                    f.fields(&["windows", "rollback"], &[], |name, f| {
                        match name {
                            "windows" => b.windows = Some(f.list(RawBurnPair::read)?),
                            "rollback" => b.rollback = Some(f.bool()?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    raw.burn_rate = Some(b);
                }
                "withdraw" => raw.withdraw = Some(f.strings()?),
                "judgment" => raw.judgment = Some(RawJudgment::read(f)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawJudgment {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawJudgment::default();
        let known = &[
            "baselineVersion",
            "baselineFailing",
            "errors",
            "shift",
            "tail",
        ];
        f.fields(known, &[], |name, f| {
            match name {
                "baselineVersion" => raw.baseline_version = Some(f.string()?),
                "baselineFailing" => {
                    raw.baseline_failing = Some(f.variant(&[
                        ("hold", RawBaselineFailing::Hold),
                        ("withdraw", RawBaselineFailing::Withdraw),
                    ])?)
                }
                "errors" => {
                    let mut r = RawRatio::default();
                    f.fields(RawRatio::KNOWN, &[], |name, f| r.field(name, f))?;
                    raw.errors = Some(r);
                }
                "shift" => {
                    let mut s = RawShift::default();
                    let known = &["confidence", "minEffect", "minSamples"];
                    f.fields(known, &[], |name, f| {
                        match name {
                            "confidence" => s.confidence = Some(f.f64()?),
                            "minEffect" => s.min_effect = Some(f.f64()?),
                            "minSamples" => s.min_samples = Some(f.u32()?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    raw.shift = Some(s);
                }
                "tail" => {
                    let mut t = RawTail::default();
                    let known = &[
                        "confidence",
                        "margin",
                        "notWorseMargin",
                        "floor",
                        "quantile",
                        "minBaseline",
                    ];
                    f.fields(known, &[], |name, f| {
                        match name {
                            "quantile" => t.quantile = Some(f.f64()?),
                            "minBaseline" => t.min_baseline = Some(f.u32()?),
                            _ => return t.ratio.field(name, f),
                        }
                        Ok(true)
                    })?;
                    raw.tail = Some(t);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawRatio {
    const KNOWN: &'static [&'static str] = &["confidence", "margin", "notWorseMargin", "floor"];

    /// One field of a ratio test; `false` for a name it does not know, so
    /// the tail test can read its own fields around these.
    fn field(&mut self, name: &str, f: Field) -> Result<bool, ConfigError> {
        match name {
            "confidence" => self.confidence = Some(f.f64()?),
            "margin" => self.margin = Some(f.f64()?),
            "notWorseMargin" => self.not_worse_margin = Some(f.f64()?),
            "floor" => self.floor = Some(f.f64()?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl RawPromotion {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawPromotion::default();
        let known = &[
            "atPercent",
            "maxErrorPercent",
            "maxP99",
            "max5xx",
            "objectives",
            "holdFor",
            "window",
        ];
        f.fields(known, &["atPercent"], |name, f| {
            match name {
                "atPercent" => raw.at_percent = f.f64()?,
                "maxErrorPercent" => raw.max_error_percent = Some(f.f64()?),
                "maxP99" => raw.max_p99 = Some(f.string()?),
                "max5xx" => raw.max_5xx = Some(f.u32()?),
                "objectives" => raw.objectives = Some(f.bool()?),
                "holdFor" => raw.hold_for = Some(f.string()?),
                "window" => raw.window = Some(f.string()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawTrigger {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawTrigger::default();
        let known = &[
            "errorPercentAbove",
            "p99Above",
            "http5xxPercentAbove",
            "window",
            "for",
        ];
        f.fields(known, &[], |name, f| {
            match name {
                "errorPercentAbove" => raw.error_percent_above = Some(f.f64()?),
                "p99Above" => raw.p99_above = Some(f.string()?),
                "http5xxPercentAbove" => raw.http_5xx_percent_above = Some(f.f64()?),
                "window" => raw.window = Some(f.string()?),
                "for" => raw.for_ = Some(f.string()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawBurnPair {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawBurnPair::default();
        let all = &["long", "short", "factor"];
        f.fields(all, all, |name, f| {
            match name {
                "long" => raw.long = f.string()?,
                "short" => raw.short = f.string()?,
                "factor" => raw.factor = f.f64()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}
