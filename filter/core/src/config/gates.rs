//! The `gates` section of pluginConfig. Every number defaults to the workshop module's
//! Exercise 8; every duration is configurable so tests can run in seconds.

use super::cohorts::{Cohort, Cohorts, CANARY, STABLE};
use super::duration::{label_ms, parse_ms};
use super::error::{is_label_safe, ConfigError, Quoted};
use super::judgment::Judgment;
use super::raw_gates::{RawBurnPair, RawGates, RawPromotion, RawTrigger};
use crate::decimal::short;

/// A promotion gate for one rollout step.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// The step (sticky percent, in basis points) this gate applies from.
    pub at_bp: u32,
    /// Error ratio must stay strictly below this (a fraction).
    pub max_error_ratio: f64,
    /// P99 must stay strictly below this.
    pub max_p99_us: f64,
    /// 5xx responses allowed in the window (`max5xx: 0` = "zero 5xx").
    pub max_5xx: Option<u32>,
    /// How long the gate must hold continuously before it reads `pass`.
    pub hold_ms: u64,
    pub window_ms: u64,
}

/// What a rollback trigger watches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// Error ratio strictly above (a fraction).
    ErrorRatioAbove(f64),
    /// P99 strictly above (microseconds).
    P99Above(f64),
    /// Share of 5xx responses strictly above (a fraction).
    Status5xxRatioAbove(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub condition: Condition,
    pub window_ms: u64,
    /// How long the condition must hold continuously; 0 fires at once.
    pub for_ms: u64,
    /// The trigger in words, e.g. `rollback[0] (error ratio > 0.2 % over 1m)`,
    /// for the judge's reasons.
    pub label: String,
}

/// SRE-workbook multi-window burn-rate alert: both windows must burn faster
/// than `factor` times the error budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnPair {
    pub long_ms: u64,
    pub short_ms: u64,
    pub factor: f64,
    pub long_label: String,
    pub short_label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gates {
    /// The version the canary cohorts route to; its rollback withdraws them.
    pub canary_version: Option<String>,
    pub tick_ms: u64,
    pub bucket_ms: u64,
    pub min_samples: u32,
    /// Error budget: 1 - availability objective.
    pub budget: f64,
    pub objective_p99_us: f64,
    pub promotion: Vec<Promotion>,
    pub triggers: Vec<Trigger>,
    pub burn: Vec<BurnPair>,
    pub burn_rollback: bool,
    /// Cohorts stopped when the canary is withdrawn (see [`Gates::resolve_withdraw`]).
    pub withdraw: Vec<Cohort>,
    pub withdraw_names: Vec<String>,
    /// Buckets in the fine ring (covers every trigger and promotion window).
    pub fine_len: usize,
    /// Width and length of the counts-only ring for burn-rate windows.
    pub burn_width_ms: u64,
    pub burn_len: usize,
    /// Windows exported as gauges, with their labels, shortest first.
    pub windows: Vec<(String, u64)>,
    /// The canary judged against a baseline; off unless configured.
    pub judgment: Option<Judgment>,
}

fn dur(field: &str, s: &Option<String>, default_ms: u64) -> Result<u64, ConfigError> {
    match s {
        None => Ok(default_ms),
        Some(s) => parse_ms(s).map_err(|m| invalid(field, m)),
    }
}

fn invalid(field: impl Into<String>, m: impl Into<String>) -> ConfigError {
    ConfigError::invalid(field, m)
}

fn percent(field: &str, p: f64) -> Result<f64, ConfigError> {
    if !p.is_finite() || !(0.0..=100.0).contains(&p) {
        return Err(invalid(field, format!("{} is outside 0-100", short(p))));
    }
    Ok(p / 100.0)
}

/// Most buckets in the fine ring; each is ~170 bytes per version in shared data.
const MAX_FINE_BUCKETS: u64 = 120;
/// The burn ring's length: 6 h at one-minute resolution.
const BURN_BUCKETS: u64 = 360;

impl TryFrom<RawGates> for Gates {
    type Error = ConfigError;

    /// Everything but `withdraw`, whose names need the cohorts.
    fn try_from(raw: RawGates) -> Result<Gates, ConfigError> {
        let f = |name: &str| format!("gates.{name}");
        if let Some(v) = &raw.canary_version {
            if !is_label_safe(v) {
                return Err(invalid(
                    f("canaryVersion"),
                    format!("{} is not a version label", Quoted(v)),
                ));
            }
        }
        let tick_ms = dur(&f("tick"), &raw.tick, 1_000)?;
        if !(100..=60_000).contains(&tick_ms) {
            return Err(invalid(f("tick"), "must be between 100ms and 1m"));
        }
        let bucket_ms = dur(&f("bucket"), &raw.bucket, 10_000)?;
        if bucket_ms < tick_ms {
            return Err(invalid(f("bucket"), "must be at least one tick"));
        }
        let min_samples = raw.min_samples.unwrap_or(100).max(1);

        let obj = raw.objectives.unwrap_or_default();
        let availability = obj.availability_percent.unwrap_or(99.9);
        if !availability.is_finite() || !(0.0..100.0).contains(&availability) || availability <= 0.0
        {
            return Err(invalid(
                f("objectives.availabilityPercent"),
                format!("{} must be above 0 and below 100", short(availability)),
            ));
        }
        let budget = 1.0 - availability / 100.0;
        let objective_p99_us =
            dur(&f("objectives.latencyP99"), &obj.latency_p99, 100)? as f64 * 1_000.0;

        let default_promotion = || {
            vec![
                RawPromotion {
                    at_percent: 10.0,
                    max_error_percent: Some(0.05),
                    max_p99: Some("50ms".into()),
                    max_5xx: Some(0),
                    hold_for: Some("15m".into()),
                    ..RawPromotion::default()
                },
                RawPromotion {
                    at_percent: 50.0,
                    objectives: Some(true),
                    hold_for: Some("30m".into()),
                    ..RawPromotion::default()
                },
            ]
        };
        let mut promotion = vec![];
        for (i, p) in raw
            .promotion
            .unwrap_or_else(default_promotion)
            .into_iter()
            .enumerate()
        {
            let pf = |n: &str| f(&format!("promotion[{i}].{n}"));
            let at = percent(&pf("atPercent"), p.at_percent)?;
            let objectives = p.objectives.unwrap_or(false);
            if objectives && (p.max_error_percent.is_some() || p.max_p99.is_some()) {
                return Err(invalid(pf("objectives"), "`objectives: true` takes its limits from gates.objectives; drop maxErrorPercent/maxP99"));
            }
            let max_error_ratio = match p.max_error_percent {
                Some(e) => percent(&pf("maxErrorPercent"), e)?,
                None => budget,
            };
            let max_p99_us = match &p.max_p99 {
                Some(_) => dur(&pf("maxP99"), &p.max_p99, 0)? as f64 * 1_000.0,
                None => objective_p99_us,
            };
            let window_ms = dur(&pf("window"), &p.window, 300_000)?;
            let hold_ms = dur(&pf("holdFor"), &p.hold_for, 0)?;
            let at_bp = (at * 10_000.0).round() as u32;
            if promotion.iter().any(|q: &Promotion| q.at_bp == at_bp) {
                return Err(invalid(pf("atPercent"), "two gates for the same step"));
            }
            // Kept in step order as it is built.
            let at = promotion.partition_point(|q| q.at_bp < at_bp);
            promotion.insert(
                at,
                Promotion {
                    at_bp,
                    max_error_ratio,
                    max_p99_us,
                    max_5xx: p.max_5xx,
                    hold_ms,
                    window_ms,
                },
            );
        }

        let default_triggers = || {
            vec![
                RawTrigger {
                    error_percent_above: Some(0.2),
                    for_: Some("5m".into()),
                    ..RawTrigger::default()
                },
                RawTrigger {
                    p99_above: Some("200ms".into()),
                    for_: Some("3m".into()),
                    ..RawTrigger::default()
                },
                RawTrigger {
                    http_5xx_percent_above: Some(1.0),
                    ..RawTrigger::default()
                },
                // A canary that fails outright without a 5xx status (resets,
                // gRPC errors) stops within a few failures too, at any share.
                RawTrigger {
                    error_percent_above: Some(5.0),
                    ..RawTrigger::default()
                },
            ]
        };
        let mut triggers = vec![];
        for (i, t) in raw
            .rollback
            .unwrap_or_else(default_triggers)
            .into_iter()
            .enumerate()
        {
            let tf = |n: &str| f(&format!("rollback[{i}]{n}"));
            let condition = match (
                t.error_percent_above,
                &t.p99_above,
                t.http_5xx_percent_above,
            ) {
                (Some(e), None, None) => {
                    Condition::ErrorRatioAbove(percent(&tf(".errorPercentAbove"), e)?)
                }
                (None, Some(_), None) => {
                    Condition::P99Above(dur(&tf(".p99Above"), &t.p99_above, 0)? as f64 * 1_000.0)
                }
                (None, None, Some(e)) => {
                    Condition::Status5xxRatioAbove(percent(&tf(".http5xxPercentAbove"), e)?)
                }
                _ => return Err(invalid(
                    tf(""),
                    "set exactly one of `errorPercentAbove`, `p99Above` or `http5xxPercentAbove`",
                )),
            };
            let window_ms = dur(&tf(".window"), &t.window, 60_000)?;
            let for_ms = dur(&tf(".for"), &t.for_, 0)?;
            let what = match condition {
                Condition::ErrorRatioAbove(x) => format!("error ratio > {} %", short(x * 100.0)),
                Condition::P99Above(x) => format!("P99 > {}", label_ms((x / 1_000.0) as u64)),
                Condition::Status5xxRatioAbove(x) => format!("5xx ratio > {} %", short(x * 100.0)),
            };
            triggers.push(Trigger {
                condition,
                window_ms,
                for_ms,
                label: format!("rollback[{i}] ({what} over {})", label_ms(window_ms)),
            });
        }

        let burn_raw = raw.burn_rate.unwrap_or_default();
        let pairs = burn_raw.windows.unwrap_or_else(|| {
            vec![
                RawBurnPair {
                    long: "1h".into(),
                    short: "5m".into(),
                    factor: 14.4,
                },
                RawBurnPair {
                    long: "6h".into(),
                    short: "30m".into(),
                    factor: 6.0,
                },
            ]
        });
        let mut burn = vec![];
        for (i, p) in pairs.into_iter().enumerate() {
            let bf = |n: &str| f(&format!("burnRate.windows[{i}].{n}"));
            let long_ms = parse_ms(&p.long).map_err(|m| invalid(bf("long"), m))?;
            let short_ms = parse_ms(&p.short).map_err(|m| invalid(bf("short"), m))?;
            if short_ms == 0 || short_ms >= long_ms {
                return Err(invalid(
                    bf("short"),
                    "must be shorter than `long` and above 0",
                ));
            }
            if !p.factor.is_finite() || p.factor <= 0.0 {
                return Err(invalid(
                    bf("factor"),
                    format!("{} must be above 0", short(p.factor)),
                ));
            }
            burn.push(BurnPair {
                long_ms,
                short_ms,
                factor: p.factor,
                long_label: label_ms(long_ms),
                short_label: label_ms(short_ms),
            });
        }

        let withdraw_names = raw.withdraw.unwrap_or_else(|| vec![CANARY.to_string()]);

        let judgment = match raw.judgment {
            None => None,
            Some(j) => {
                let Some(canary) = &raw.canary_version else {
                    return Err(invalid(
                        f("judgment"),
                        "judging the canary needs gates.canaryVersion",
                    ));
                };
                let j = Judgment::try_from(j)?;
                if j.baseline_version.as_ref() == Some(canary) {
                    return Err(invalid(
                        f("judgment.baselineVersion"),
                        "must differ from gates.canaryVersion",
                    ));
                }
                Some(j)
            }
        };

        let fine_window = promotion
            .iter()
            .map(|p| p.window_ms)
            .chain(triggers.iter().map(|t| t.window_ms))
            .max()
            .unwrap_or(bucket_ms);
        let fine_len = fine_window.div_ceil(bucket_ms);
        if fine_len > MAX_FINE_BUCKETS {
            return Err(invalid(
                f("bucket"),
                format!("windows up to {} need {fine_len} buckets of {}; at most {MAX_FINE_BUCKETS} (use a wider bucket)", label_ms(fine_window), label_ms(bucket_ms)),
            ));
        }
        let longest = burn.iter().map(|b| b.long_ms).max().unwrap_or(bucket_ms);
        let burn_width_ms = longest
            .div_ceil(BURN_BUCKETS)
            .max(bucket_ms)
            .div_ceil(bucket_ms)
            * bucket_ms;
        let burn_len = longest.div_ceil(burn_width_ms) as usize;

        // Shortest first, each once.
        let mut windows: Vec<u64> = Vec::new();
        for w in promotion
            .iter()
            .map(|p| p.window_ms)
            .chain(triggers.iter().map(|t| t.window_ms))
            .chain(burn.iter().flat_map(|b| [b.short_ms, b.long_ms]))
        {
            if let Err(at) = windows.binary_search(&w) {
                windows.insert(at, w);
            }
        }

        Ok(Gates {
            canary_version: raw.canary_version,
            tick_ms,
            bucket_ms,
            min_samples,
            budget,
            objective_p99_us,
            promotion,
            triggers,
            burn,
            burn_rollback: burn_raw.rollback.unwrap_or(true),
            withdraw: vec![],
            withdraw_names,
            fine_len: fine_len as usize,
            burn_width_ms,
            burn_len,
            windows: windows.into_iter().map(|w| (label_ms(w), w)).collect(),
            judgment,
        })
    }
}

impl Gates {
    /// Turns `withdraw` names into cohorts; stable cannot be withdrawn.
    pub(crate) fn resolve_withdraw(&mut self, cohorts: &Cohorts) -> Result<(), ConfigError> {
        self.withdraw = Vec::with_capacity(self.withdraw_names.len());
        for (i, name) in self.withdraw_names.iter().enumerate() {
            match cohorts.named(name) {
                Some(c) if c != Cohort::STABLE => self.withdraw.push(c),
                _ => {
                    return Err(invalid(
                        format!("gates.withdraw[{i}]"),
                        if name == STABLE {
                            "stable cannot be withdrawn".to_string()
                        } else {
                            format!("no cohort named {}", Quoted(name))
                        },
                    ))
                }
            }
        }
        Ok(())
    }

    /// The promotion gate for a step: the one for the highest step at or below
    /// it; below every step, the objectives with no hold time.
    pub fn promotion_for(&self, step_bp: u32) -> Promotion {
        self.promotion
            .iter()
            .rev()
            .find(|p| p.at_bp <= step_bp)
            .cloned()
            .unwrap_or(Promotion {
                at_bp: 0,
                max_error_ratio: self.budget,
                max_p99_us: self.objective_p99_us,
                max_5xx: None,
                hold_ms: 0,
                window_ms: self.promotion.first().map_or(300_000, |p| p.window_ms),
            })
    }
}
