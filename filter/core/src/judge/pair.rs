//! The state kept for one canary/baseline pair between ticks, and the tick
//! that turns each version's new requests into three verdicts.

use super::ratio::{RatioConfig, RatioTest, Tally};
use super::shift::{shift_verdict, ShiftConfig};
use super::tail::{TailConfig, TailTest};
use super::verdict::{Metric, MetricVerdict, Verdict};

/// Settings of the three tests.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JudgeConfig {
    pub errors: RatioConfig,
    pub shift: ShiftConfig,
    pub tail: TailConfig,
}

/// One version's new requests since the last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick<'a> {
    pub requests: u64,
    pub errors: u64,
    /// Latency histogram counts; both versions use the same buckets.
    pub latency: &'a [u64],
}

/// The three verdicts of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Verdicts {
    pub errors: MetricVerdict,
    pub shift: MetricVerdict,
    pub tail: MetricVerdict,
}

impl Verdicts {
    pub fn get(&self, m: Metric) -> &MetricVerdict {
        match m {
            Metric::Errors => &self.errors,
            Metric::LatencyShift => &self.shift,
            Metric::LatencyTail => &self.tail,
        }
    }

    /// Each metric with its verdict, in [`Metric::ALL`] order.
    pub fn by_metric(&self) -> [(Metric, Verdict); 3] {
        Metric::ALL.map(|m| (m, self.get(m).verdict))
    }
}

/// Everything the judge remembers about a pair since the rollout step began:
/// `B` is the number of latency buckets. A `worse` verdict is final for the
/// step: the guarantee bounds the chance of *ever* reaching it, so forgetting
/// it later would only hide a decision already made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judge<const B: usize> {
    pub errors: RatioTest,
    pub tail: TailTest,
    pub canary_latency: [u64; B],
    pub baseline_latency: [u64; B],
    pub worse: [bool; 3],
}

impl<const B: usize> Default for Judge<B> {
    fn default() -> Self {
        Judge {
            errors: RatioTest::default(),
            tail: TailTest::default(),
            canary_latency: [0; B],
            baseline_latency: [0; B],
            worse: [false; 3],
        }
    }
}

fn accumulate(total: &mut [u64], delta: &[u64]) {
    for (t, d) in total.iter_mut().zip(delta) {
        *t = t.saturating_add(*d);
    }
}

impl<const B: usize> Judge<B> {
    /// Adds one tick of both versions and judges. No allocation.
    pub fn tick(&mut self, cfg: &JudgeConfig, canary: Tick<'_>, baseline: Tick<'_>) -> Verdicts {
        self.errors.update(
            &cfg.errors,
            Tally::new(canary.requests, canary.errors),
            Tally::new(baseline.requests, baseline.errors),
        );
        accumulate(&mut self.canary_latency, canary.latency);
        accumulate(&mut self.baseline_latency, baseline.latency);
        self.tail.update(
            &cfg.tail,
            &self.baseline_latency,
            canary.latency,
            baseline.latency,
        );
        self.verdicts(cfg)
    }

    /// The verdicts of the data so far, `worse` kept once reached.
    pub fn verdicts(&mut self, cfg: &JudgeConfig) -> Verdicts {
        let mut v = Verdicts {
            errors: self.errors.verdict(&cfg.errors),
            shift: shift_verdict(&cfg.shift, &self.canary_latency, &self.baseline_latency),
            tail: self.tail.verdict(&cfg.tail),
        };
        for (latched, m) in self.worse.iter_mut().zip(Metric::ALL) {
            let mv = match m {
                Metric::Errors => &mut v.errors,
                Metric::LatencyShift => &mut v.shift,
                Metric::LatencyTail => &mut v.tail,
            };
            *latched |= mv.verdict == Verdict::Worse;
            if *latched {
                mv.verdict = Verdict::Worse;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn worse_is_kept_once_reached() {
        let cfg = JudgeConfig::default();
        let mut j: Judge<2> = Judge::default();
        let broken = Tick {
            requests: 10,
            errors: 10,
            latency: &[10, 0],
        };
        let fine = Tick {
            requests: 90,
            errors: 0,
            latency: &[90, 0],
        };
        assert_eq!(j.tick(&cfg, broken, fine).errors.verdict, Verdict::Worse);
        let healed = Tick {
            requests: 100_000,
            errors: 0,
            latency: &[100_000, 0],
        };
        for _ in 0..10 {
            j.tick(&cfg, healed, healed);
        }
        assert!(
            j.errors.log_e_worse(&cfg.errors) < 4.6,
            "the evidence decayed"
        );
        assert_eq!(j.verdicts(&cfg).errors.verdict, Verdict::Worse);
    }

    #[test]
    fn the_state_of_a_pair_fits_in_about_a_kilobyte() {
        // Two 36-bucket histograms are most of it; shared data carries it per version.
        assert!(std::mem::size_of::<Judge<36>>() <= 1_032);
    }

    #[test]
    fn verdicts_are_listed_by_metric() {
        let v = Verdicts {
            shift: MetricVerdict {
                verdict: Verdict::NotWorse,
                ..MetricVerdict::default()
            },
            ..Verdicts::default()
        };
        assert_eq!(
            v.by_metric(),
            [
                (Metric::Errors, Verdict::Inconclusive),
                (Metric::LatencyShift, Verdict::NotWorse),
                (Metric::LatencyTail, Verdict::Inconclusive),
            ]
        );
    }
}
