//! The `gates.judgment` section: which version the canary is judged against,
//! the settings of the judge's three tests, and what to do when the baseline
//! fails too. Present means on; every setting defaults to the judge's own
//! ([`JudgeConfig::default`]), and its ranges are the judge's
//! ([`JudgeConfig::validate`]), so the two cannot disagree.

use super::error::{is_label_safe, ConfigError, Quoted};
use super::raw_gates::{RawBaselineFailing, RawJudgment, RawRatio};
use crate::judge::ratio::RatioConfig;
use crate::judge::{BaselineFailing, JudgeConfig, PolicyConfig};

#[derive(Debug, Clone, PartialEq)]
pub struct Judgment {
    /// The stable version; `None` picks the busiest version other than the
    /// canary (see `gates::judging`).
    pub baseline_version: Option<String>,
    pub judge: JudgeConfig,
    pub policy: PolicyConfig,
}

const FIELD: &str = "gates.judgment";

fn ratio(raw: Option<RawRatio>, defaults: RatioConfig) -> RatioConfig {
    let r = raw.unwrap_or_default();
    RatioConfig {
        confidence: r.confidence.unwrap_or(defaults.confidence),
        margin: r.margin.unwrap_or(defaults.margin),
        not_worse_margin: r.not_worse_margin.unwrap_or(defaults.not_worse_margin),
        floor: r.floor.unwrap_or(defaults.floor),
    }
}

impl TryFrom<RawJudgment> for Judgment {
    type Error = ConfigError;

    fn try_from(raw: RawJudgment) -> Result<Judgment, ConfigError> {
        if let Some(v) = &raw.baseline_version {
            if !is_label_safe(v) {
                return Err(ConfigError::invalid(
                    format!("{FIELD}.baselineVersion"),
                    format!("{} is not a version label", Quoted(v)),
                ));
            }
        }
        let d = JudgeConfig::default();
        let mut judge = JudgeConfig {
            errors: ratio(raw.errors, d.errors),
            ..d
        };
        if let Some(s) = raw.shift {
            judge.shift.confidence = s.confidence.unwrap_or(d.shift.confidence);
            judge.shift.min_effect = s.min_effect.unwrap_or(d.shift.min_effect);
            judge.shift.min_samples = s.min_samples.map_or(d.shift.min_samples, u64::from);
        }
        if let Some(t) = raw.tail {
            judge.tail.ratio = ratio(Some(t.ratio), d.tail.ratio);
            judge.tail.quantile = t.quantile.unwrap_or(d.tail.quantile);
            judge.tail.min_baseline = t.min_baseline.map_or(d.tail.min_baseline, u64::from);
        }
        judge
            .validate()
            .map_err(|e| ConfigError::invalid(format!("{FIELD}.{}", e.field), e.reason))?;
        let baseline_failing = match raw.baseline_failing {
            None | Some(RawBaselineFailing::Hold) => BaselineFailing::Hold,
            Some(RawBaselineFailing::Withdraw) => BaselineFailing::Withdraw,
        };
        Ok(Judgment {
            baseline_version: raw.baseline_version,
            judge,
            policy: PolicyConfig { baseline_failing },
        })
    }
}
