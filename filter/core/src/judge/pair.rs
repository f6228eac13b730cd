//! The state kept for one canary/baseline pair between ticks, and the tick
//! that turns each version's new requests into three verdicts.

use super::codec::{Codec, Reader, Writer};
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

    fn get_mut(&mut self, m: Metric) -> &mut MetricVerdict {
        match m {
            Metric::Errors => &mut self.errors,
            Metric::LatencyShift => &mut self.shift,
            Metric::LatencyTail => &mut self.tail,
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

    /// Bytes [`Self::encode`] writes: 1,019 for 36 buckets.
    pub const ENCODED_LEN: usize = 8 * (RatioTest::WORDS + TailTest::WORDS + 2 * B) + 3;

    fn codec(&mut self, c: &mut impl Codec) -> Option<()> {
        self.errors.codec(c)?;
        self.tail.codec(c)?;
        c.u64s(&mut self.canary_latency)?;
        c.u64s(&mut self.baseline_latency)
    }

    /// Appends the state to `out`: [`Self::ENCODED_LEN`] bytes, the `worse`
    /// flags one byte each at the end.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut copy = *self;
        let _ = copy.codec(&mut Writer(out));
        out.extend(self.worse.map(u8::from));
    }

    /// The state at the start of `bytes` and the bytes after it; `None` when
    /// `bytes` is too short.
    pub fn decode(bytes: &[u8]) -> Option<(Judge<B>, &[u8])> {
        let mut j = Judge::default();
        let mut r = Reader(bytes);
        j.codec(&mut r)?;
        let (flags, rest) = r.0.split_first_chunk::<3>()?;
        j.worse = flags.map(|f| f != 0);
        Some((j, rest))
    }

    /// The verdicts of the data so far, `worse` kept once reached.
    pub fn verdicts(&mut self, cfg: &JudgeConfig) -> Verdicts {
        let mut v = Verdicts {
            errors: self.errors.verdict(&cfg.errors),
            shift: shift_verdict(&cfg.shift, &self.canary_latency, &self.baseline_latency),
            tail: self.tail.verdict(&cfg.tail),
        };
        for (latched, m) in self.worse.iter_mut().zip(Metric::ALL) {
            let mv = v.get_mut(m);
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

    fn busy() -> Judge<4> {
        let cfg = JudgeConfig {
            tail: TailConfig {
                min_baseline: 100,
                ..TailConfig::default()
            },
            ..JudgeConfig::default()
        };
        let mut j: Judge<4> = Judge::default();
        for i in 0..30u64 {
            j.tick(
                &cfg,
                Tick {
                    requests: 10,
                    errors: i % 3,
                    latency: &[2, 3, 4, 1],
                },
                Tick {
                    requests: 90,
                    errors: 1,
                    latency: &[40, 30, 19, 1],
                },
            );
        }
        j
    }

    #[test]
    fn a_state_survives_a_round_trip_through_bytes() {
        let j = busy();
        assert!(j.tail.edge.is_some() && j.worse.iter().any(|w| *w));
        let mut bytes = vec![7];
        j.encode(&mut bytes);
        assert_eq!(bytes.len(), 1 + Judge::<4>::ENCODED_LEN);
        bytes.push(9);
        let (back, rest) = Judge::<4>::decode(&bytes[1..]).unwrap();
        assert_eq!(back, j);
        assert_eq!(rest, &[9]);
        assert_eq!(Judge::<36>::ENCODED_LEN, 1_019);
    }

    #[test]
    fn a_short_input_decodes_to_nothing() {
        let mut bytes = Vec::new();
        busy().encode(&mut bytes);
        for n in [0, 8, bytes.len() - 1] {
            assert!(Judge::<4>::decode(&bytes[..n]).is_none(), "{n} bytes");
        }
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
