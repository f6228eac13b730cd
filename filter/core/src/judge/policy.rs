//! Turning verdicts and absolute limits into one decision for the canary.
//!
//! Withdraw when the canary is significantly worse than the baseline, or when
//! it breaks an absolute limit the baseline keeps. When both break a limit,
//! the cause is probably shared (a dependency, the network): withdrawing the
//! canary would block a good release and fix nothing, so the decision is
//! `hold` with the reason "baseline failing too" (configurable). Promotion
//! needs `not-worse` on every metric.

use std::fmt;

use super::verdict::{Metric, Verdict};

/// What to do when the canary and the baseline both break a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BaselineFailing {
    #[default]
    Hold,
    Withdraw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyConfig {
    pub baseline_failing: BaselineFailing,
}

/// One absolute limit (an error-ratio or P99 trigger), as the gates judged it
/// for each version over the same window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<'a> {
    /// How the limit reads in a reason, e.g. "error ratio > 0.2 % over 1m".
    pub name: &'a str,
    pub canary_breaks: bool,
    pub baseline_breaks: bool,
}

/// Why the decision is what it is; prints as words, allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    Worse(Metric),
    LimitBroken(&'a str),
    BaselineFailingToo(&'a str),
    Inconclusive(Metric),
    AllNotWorse,
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Worse(m) => write!(f, "canary significantly worse than baseline: {m}"),
            Reason::LimitBroken(l) => write!(f, "canary breaks {l}, baseline does not"),
            Reason::BaselineFailingToo(l) => write!(f, "baseline failing too: both break {l}"),
            Reason::Inconclusive(m) => write!(f, "{m} not yet shown not worse"),
            Reason::AllNotWorse => f.write_str("not worse than baseline on every metric"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Withdraw the canary cohorts.
    Withdraw(Reason<'a>),
    /// Neither promote nor withdraw.
    Hold(Reason<'a>),
    /// Keep going: some metric is still inconclusive.
    Wait(Reason<'a>),
    /// The judge does not stand in the way of promotion.
    Promote(Reason<'a>),
}

impl<'a> Decision<'a> {
    pub fn reason(&self) -> Reason<'a> {
        match self {
            Decision::Withdraw(r)
            | Decision::Hold(r)
            | Decision::Wait(r)
            | Decision::Promote(r) => *r,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Decision::Withdraw(_) => "withdraw",
            Decision::Hold(_) => "hold",
            Decision::Wait(_) => "wait",
            Decision::Promote(_) => "promote",
        }
    }
}

/// The decision for the canary, in this order: any metric `worse`; a limit
/// only the canary breaks; a limit both break; a metric not yet `not-worse`;
/// else promotion.
pub fn decide<'a>(
    cfg: &PolicyConfig,
    verdicts: &[(Metric, Verdict)],
    limits: &[Limit<'a>],
) -> Decision<'a> {
    if let Some((m, _)) = verdicts.iter().find(|(_, v)| *v == Verdict::Worse) {
        return Decision::Withdraw(Reason::Worse(*m));
    }
    if let Some(l) = limits
        .iter()
        .find(|l| l.canary_breaks && !l.baseline_breaks)
    {
        return Decision::Withdraw(Reason::LimitBroken(l.name));
    }
    if let Some(l) = limits.iter().find(|l| l.canary_breaks && l.baseline_breaks) {
        let r = Reason::BaselineFailingToo(l.name);
        return match cfg.baseline_failing {
            BaselineFailing::Hold => Decision::Hold(r),
            BaselineFailing::Withdraw => Decision::Withdraw(r),
        };
    }
    if let Some((m, _)) = verdicts.iter().find(|(_, v)| *v != Verdict::NotWorse) {
        return Decision::Wait(Reason::Inconclusive(*m));
    }
    Decision::Promote(Reason::AllNotWorse)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    const ALL_OK: [(Metric, Verdict); 3] = [
        (Metric::Errors, Verdict::NotWorse),
        (Metric::LatencyShift, Verdict::NotWorse),
        (Metric::LatencyTail, Verdict::NotWorse),
    ];

    fn limit(canary: bool, baseline: bool) -> Limit<'static> {
        Limit {
            name: "error ratio > 0.2 % over 1m",
            canary_breaks: canary,
            baseline_breaks: baseline,
        }
    }

    #[test]
    fn a_worse_metric_withdraws_even_when_the_baseline_fails_too() {
        let mut v = ALL_OK;
        v[2].1 = Verdict::Worse;
        let d = decide(&PolicyConfig::default(), &v, &[limit(true, true)]);
        assert_eq!(d, Decision::Withdraw(Reason::Worse(Metric::LatencyTail)));
        assert_eq!(
            d.reason().to_string(),
            "canary significantly worse than baseline: latency-tail"
        );
    }

    #[test]
    fn a_limit_only_the_canary_breaks_withdraws() {
        let d = decide(
            &PolicyConfig::default(),
            &ALL_OK,
            &[limit(false, true), limit(true, false)],
        );
        assert_eq!(d.label(), "withdraw");
        assert_eq!(
            d.reason().to_string(),
            "canary breaks error ratio > 0.2 % over 1m, baseline does not"
        );
    }

    #[test]
    fn a_limit_both_break_holds_with_its_reason_or_withdraws_if_configured() {
        let d = decide(&PolicyConfig::default(), &ALL_OK, &[limit(true, true)]);
        assert_eq!(d.label(), "hold");
        assert!(d.reason().to_string().starts_with("baseline failing too"));
        let strict = PolicyConfig {
            baseline_failing: BaselineFailing::Withdraw,
        };
        assert_eq!(
            decide(&strict, &ALL_OK, &[limit(true, true)]).label(),
            "withdraw"
        );
    }

    #[test]
    fn promotion_needs_not_worse_on_every_metric() {
        let cfg = PolicyConfig::default();
        assert_eq!(
            decide(&cfg, &ALL_OK, &[limit(false, true)]).label(),
            "promote"
        );
        let mut v = ALL_OK;
        v[1].1 = Verdict::Inconclusive;
        assert_eq!(
            decide(&cfg, &v, &[]),
            Decision::Wait(Reason::Inconclusive(Metric::LatencyShift))
        );
    }
}
