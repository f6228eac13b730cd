//! What a test says about one metric, and the evidence behind it, in a form
//! gauges and log lines can carry.

use std::fmt;

/// The three answers of a sequential test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Not enough evidence either way yet.
    #[default]
    Inconclusive = 0,
    /// Confidently no worse than the baseline beyond the margin.
    NotWorse = 1,
    /// Confidently worse than the baseline beyond the margin.
    Worse = 2,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotWorse => "not-worse",
            Verdict::Worse => "worse",
        }
    }

    /// `worse` when its evidence reached the threshold, else `not-worse` when
    /// that evidence did, else `inconclusive`.
    pub fn from_evidence(log_e_worse: f64, log_e_not_worse: f64, threshold: f64) -> Verdict {
        if log_e_worse >= threshold {
            Verdict::Worse
        } else if log_e_not_worse >= threshold {
            Verdict::NotWorse
        } else {
            Verdict::Inconclusive
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The metrics the canary is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Errors,
    LatencyShift,
    LatencyTail,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Errors, Metric::LatencyShift, Metric::LatencyTail];

    pub fn label(self) -> &'static str {
        match self {
            Metric::Errors => "errors",
            Metric::LatencyShift => "latency-shift",
            Metric::LatencyTail => "latency-tail",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A verdict with the evidence and samples it rests on.
///
/// Evidence is a log e-value for each direction: `ln(1/alpha)` (4.6 at 99 %)
/// is the threshold for both, so gauges of different tests read alike.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetricVerdict {
    pub verdict: Verdict,
    pub log_e_worse: f64,
    pub log_e_not_worse: f64,
    pub threshold: f64,
    pub canary_samples: u64,
    pub baseline_samples: u64,
    /// What the test estimates for each version: event ratios for the ratio
    /// tests; for the latency shift, the chance that a canary request is
    /// slower than a baseline one (canary) against 0.5 (baseline).
    pub canary_estimate: f64,
    pub baseline_estimate: f64,
}

impl fmt::Display for MetricVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (evidence worse {:.1}, not-worse {:.1}, threshold {:.1}; canary {:.4} over {} samples, baseline {:.4} over {})",
            self.verdict,
            self.log_e_worse,
            self.log_e_not_worse,
            self.threshold,
            self.canary_estimate,
            self.canary_samples,
            self.baseline_estimate,
            self.baseline_samples
        )
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn worse_evidence_wins_over_not_worse_evidence() {
        assert_eq!(Verdict::from_evidence(5.0, 9.0, 4.6), Verdict::Worse);
        assert_eq!(Verdict::from_evidence(1.0, 4.6, 4.6), Verdict::NotWorse);
        assert_eq!(Verdict::from_evidence(4.5, 4.5, 4.6), Verdict::Inconclusive);
        assert_eq!(
            Verdict::from_evidence(f64::NAN, f64::NAN, 4.6),
            Verdict::Inconclusive
        );
    }

    #[test]
    fn a_verdict_prints_its_evidence_and_samples() {
        let v = MetricVerdict {
            verdict: Verdict::Worse,
            log_e_worse: 5.0,
            threshold: 4.6,
            canary_samples: 10,
            ..MetricVerdict::default()
        };
        let s = v.to_string();
        assert!(s.starts_with("worse (evidence worse 5.0"), "{s}");
        assert!(s.contains("over 10 samples"), "{s}");
    }
}
