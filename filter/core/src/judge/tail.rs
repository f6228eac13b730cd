//! Did the canary's tail grow? The share of canary requests slower than the
//! baseline's P99, against the baseline's own share above that point.
//!
//! A shift test compares centres; a canary whose latency becomes far more
//! variable around the same median passes it (Kayenta#780). Counting the
//! requests above the baseline's P99 catches that: 1 % of baseline requests
//! are there, and a wider canary puts several times more.
//!
//! # The test
//!
//! Once the baseline has [`TailConfig::min_baseline`] requests, the bucket
//! holding its `quantile` is fixed as the *edge*; from the next tick on,
//! every request in a bucket above the edge is an *exceedance*, and the
//! exceedance ratios of canary and baseline go through the same sequential
//! two-sample test as errors ([`super::ratio`]), with their own margin.
//!
//! Two choices keep the guarantee exact:
//! - The edge is a bucket bound, so the baseline's share above it is at most
//!   1 % and rarely exactly 1 %. Comparing with the baseline's measured share
//!   above the same edge, instead of a nominal 1 %, removes that bias and
//!   the noise of the P99 estimate.
//! - The edge is chosen from data the test never scores (everything before
//!   it was fixed), and never moves: a threshold picked from the scored data,
//!   or one that follows it, would break the supermartingale property.

use super::codec::Codec;
use super::ratio::{RatioConfig, RatioTest, Tally};
use super::verdict::MetricVerdict;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailConfig {
    /// Confidence, margin and floor of the exceedance-ratio test.
    pub ratio: RatioConfig,
    /// The baseline quantile whose bucket becomes the edge.
    pub quantile: f64,
    /// Baseline requests needed before the edge is fixed.
    pub min_baseline: u64,
}

impl Default for TailConfig {
    /// P99, fixed after 500 baseline requests; `worse` when the canary's
    /// share above it is confidently over 1.5 times the baseline's,
    /// `not-worse` when confidently under twice.
    fn default() -> Self {
        TailConfig {
            ratio: RatioConfig {
                confidence: 0.99,
                margin: 0.5,
                not_worse_margin: 1.0,
                floor: 0.0,
            },
            quantile: 0.99,
            min_baseline: 500,
        }
    }
}

/// The bucket holding quantile `q` of `hist`; `None` when it is empty.
pub fn quantile_bucket(hist: &[u64], q: f64) -> Option<usize> {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0);
    let mut seen = 0u64;
    for (i, c) in hist.iter().enumerate() {
        seen += c;
        if seen as f64 >= rank {
            return Some(i);
        }
    }
    hist.len().checked_sub(1)
}

/// Requests and requests above `edge` in one histogram.
fn exceedances(hist: &[u64], edge: usize) -> Tally {
    let total = hist.iter().sum();
    let above = hist.iter().skip(edge + 1).sum();
    Tally::new(total, above)
}

/// What the tail test keeps between ticks: the edge and the ratio test's
/// state (232 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TailTest {
    /// The baseline's quantile bucket, fixed once.
    pub edge: Option<usize>,
    pub test: RatioTest,
}

impl TailTest {
    /// `baseline_total` is the baseline's histogram so far (this tick
    /// included); the deltas are this tick's new requests.
    pub fn update(
        &mut self,
        cfg: &TailConfig,
        baseline_total: &[u64],
        canary_delta: &[u64],
        baseline_delta: &[u64],
    ) {
        match self.edge {
            Some(edge) => self.test.update(
                &cfg.ratio,
                exceedances(canary_delta, edge),
                exceedances(baseline_delta, edge),
            ),
            None => {
                if baseline_total.iter().sum::<u64>() >= cfg.min_baseline {
                    self.edge = quantile_bucket(baseline_total, cfg.quantile);
                }
            }
        }
    }

    pub fn verdict(&self, cfg: &TailConfig) -> MetricVerdict {
        self.test.verdict(&cfg.ratio)
    }

    /// 64-bit words [`Self::codec`] reads or writes.
    pub(crate) const WORDS: usize = 1 + RatioTest::WORDS;

    /// The state's fields, in encoding order; no edge is `u64::MAX`.
    pub(crate) fn codec(&mut self, c: &mut impl Codec) -> Option<()> {
        let mut edge = self.edge.map_or(u64::MAX, |e| e as u64);
        c.u64(&mut edge)?;
        self.edge = usize::try_from(edge).ok().filter(|_| edge != u64::MAX);
        self.test.codec(c)
    }

    /// The edge as a latency, given the histogram's bucket upper bounds;
    /// `None` before it is fixed or when it is the overflow bucket.
    pub fn edge_bound<T: Copy>(&self, bounds: &[T]) -> Option<T> {
        self.edge.and_then(|e| bounds.get(e).copied())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::judge::verdict::Verdict;

    #[test]
    fn the_quantile_bucket_is_where_the_cumulative_count_reaches_the_rank() {
        assert_eq!(quantile_bucket(&[0, 0], 0.99), None);
        assert_eq!(quantile_bucket(&[98, 1, 1], 0.99), Some(1));
        assert_eq!(quantile_bucket(&[99, 0, 1], 0.99), Some(0));
        assert_eq!(quantile_bucket(&[5], 1.0), Some(0));
    }

    #[test]
    fn the_edge_is_fixed_once_and_the_tick_that_fixed_it_is_not_scored() {
        let cfg = TailConfig::default();
        let mut t = TailTest::default();
        let tick = [480, 10, 0];
        t.update(&cfg, &tick, &[0, 0, 50], &tick);
        assert_eq!(t.edge, None, "fewer than 500 baseline requests");
        let total = [960, 20, 0];
        t.update(&cfg, &total, &[0, 0, 50], &tick);
        assert_eq!(t.edge, Some(1));
        assert_eq!(t.test.canary.requests, 0);
        let later = [2_000, 20, 1_000];
        t.update(&cfg, &later, &[0, 0, 50], &tick);
        assert_eq!(t.edge, Some(1), "never moves");
        assert_eq!(t.test.canary, Tally::new(50, 50));
        assert_eq!(t.edge_bound(&[10u64, 20]), Some(20));
    }

    #[test]
    fn a_canary_with_a_wider_tail_is_worse_and_one_alike_is_not() {
        let cfg = TailConfig::default();
        let mut wide = TailTest::default();
        let mut alike = TailTest::default();
        let mut total = [0u64; 3];
        for _ in 0..200 {
            let base = [90, 9, 1];
            for (t, b) in total.iter_mut().zip(base) {
                *t += b;
            }
            wide.update(&cfg, &total, &[8, 1, 1], &base);
            alike.update(&cfg, &total, &[9, 1, 0], &base);
        }
        assert_eq!(wide.verdict(&cfg).verdict, Verdict::Worse);
        assert_ne!(alike.verdict(&cfg).verdict, Verdict::Worse);
    }
}
