//! Is the canary slower than the baseline? A Mann-Whitney U test computed
//! from the two latency histograms, with a confidence-sequence boundary so it
//! may be looked at every tick.
//!
//! # The statistic
//!
//! Both histograms share their buckets, so every canary request in bucket `i`
//! is slower than every baseline request in a lower bucket and tied with the
//! baseline requests in bucket `i` (ties count one half, which is what
//! midranks give). With `a_i`, `b_i` the bucket counts and `B_<i` the baseline
//! requests below bucket `i`:
//!
//! ```text
//! U = sum_i a_i (B_<i + b_i / 2)        A = U / (m n)
//! Var0(A) = ((N + 1) - sum_i (t_i^3 - t_i) / (N (N - 1))) / (12 m n)
//! ```
//!
//! `A` is the chance that a canary request is slower than a baseline request
//! (0.5 when they are alike), `m`, `n` the request counts, `N = m + n`, and
//! `t_i = a_i + b_i` the ties in bucket `i` (the usual tie correction).
//!
//! # The effect-size floor
//!
//! `worse` tests the null `A <= 0.5 + min_effect`, not `A <= 0.5`: a shift too
//! small to matter never counts, however much traffic proves it. `not-worse`
//! tests the null `A >= 0.5 + min_effect` the other way. The default floor
//! 0.05 is about a +10 % median for a log-normal latency with log-sd 0.5.
//!
//! # Sequential safety
//!
//! With information `I = 1 / Var0(A)`, the score `S = (A - 0.5 - min_effect) I`
//! behaves, as requests accumulate, like a Brownian motion in `I` (the
//! invariance principle for two-sample U-statistics). Robbins' normal
//! mixture over its drift, one-sided (a half-normal over positive drifts),
//! gives the e-value
//!
//! ```text
//! E = 2 sqrt(v0 / (I + v0)) exp(S^2 / (2 (I + v0))) Phi(S / sqrt(I + v0))
//! ```
//!
//! which crosses `1/alpha` with probability at most `alpha` over all time
//! under the null (an *asymptotic confidence sequence*: the guarantee holds in
//! the limit and is checked by the A/A simulations; [`ShiftConfig::min_samples`]
//! keeps the first looks out of the small-sample regime). Alpha spending was
//! the alternative; it needs the number of looks in advance, which a rollout
//! does not have. `v0` ([`V0`]) tunes the boundary to be tightest for effects
//! around `1/sqrt(v0)` = 0.1.

use super::evidence::{log_normal_mixture, log_threshold};
use super::verdict::{MetricVerdict, Verdict};

/// Precision of the normal mixture over drifts (effects near 0.1 matter most).
pub const V0: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftConfig {
    pub confidence: f64,
    /// Smallest `A - 0.5` that counts as a shift.
    pub min_effect: f64,
    /// Requests each version needs before any verdict.
    pub min_samples: u64,
}

impl Default for ShiftConfig {
    fn default() -> Self {
        ShiftConfig {
            confidence: 0.99,
            min_effect: 0.05,
            min_samples: 50,
        }
    }
}

/// The Mann-Whitney statistic of two histograms with shared buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// Canary-over-baseline pairs, ties counting one half.
    pub u: f64,
    pub canary: u64,
    pub baseline: u64,
    /// `U / (m n)`: the chance a canary request is slower than a baseline one.
    pub effect: f64,
    /// Variance of `effect` when both come from one distribution, tie-corrected.
    pub variance: f64,
}

/// `None` when either histogram is empty. Extra buckets in the longer slice
/// are ignored.
pub fn mann_whitney(canary: &[u64], baseline: &[u64]) -> Option<MannWhitney> {
    let mut below = 0f64;
    let mut u = 0f64;
    let mut ties = 0f64;
    let (mut m, mut n) = (0u64, 0u64);
    for (a, b) in canary.iter().zip(baseline) {
        let (af, bf) = (*a as f64, *b as f64);
        u += af * (below + bf / 2.0);
        below += bf;
        let t = af + bf;
        ties += t * t * t - t;
        m = m.saturating_add(*a);
        n = n.saturating_add(*b);
    }
    if m == 0 || n == 0 {
        return None;
    }
    let (mf, nf) = (m as f64, n as f64);
    let big = mf + nf;
    let variance = ((big + 1.0) - ties / (big * (big - 1.0))) / (12.0 * mf * nf);
    Some(MannWhitney {
        u,
        canary: m,
        baseline: n,
        effect: u / (mf * nf),
        variance: variance.max(0.0),
    })
}

/// The latency-shift verdict from the two cumulative histograms.
pub fn shift_verdict(cfg: &ShiftConfig, canary: &[u64], baseline: &[u64]) -> MetricVerdict {
    let threshold = log_threshold(cfg.confidence);
    let Some(mw) = mann_whitney(canary, baseline) else {
        return MetricVerdict {
            threshold,
            baseline_estimate: 0.5,
            canary_estimate: 0.5,
            canary_samples: canary.iter().sum(),
            baseline_samples: baseline.iter().sum(),
            ..MetricVerdict::default()
        };
    };
    // All requests in one bucket: no ordering information at all.
    let (worse, not_worse) = if mw.variance > 0.0 {
        let info = 1.0 / mw.variance;
        let d = mw.effect - 0.5 - cfg.min_effect.max(0.0);
        (
            log_normal_mixture(d * info, info, V0),
            log_normal_mixture(-d * info, info, V0),
        )
    } else {
        (0.0, 0.0)
    };
    let enough = mw.canary >= cfg.min_samples && mw.baseline >= cfg.min_samples;
    MetricVerdict {
        verdict: if enough {
            Verdict::from_evidence(worse, not_worse, threshold)
        } else {
            Verdict::Inconclusive
        },
        log_e_worse: worse,
        log_e_not_worse: not_worse,
        threshold,
        canary_samples: mw.canary,
        baseline_samples: mw.baseline,
        canary_estimate: mw.effect,
        baseline_estimate: 0.5,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// U by brute force over individual requests, midranks for ties.
    fn brute(canary: &[u64], baseline: &[u64]) -> f64 {
        let mut u = 0.0;
        for (i, a) in canary.iter().enumerate() {
            for (j, b) in baseline.iter().enumerate() {
                let w = (*a * *b) as f64;
                u += match i.cmp(&j) {
                    std::cmp::Ordering::Greater => w,
                    std::cmp::Ordering::Equal => w / 2.0,
                    std::cmp::Ordering::Less => 0.0,
                };
            }
        }
        u
    }

    #[test]
    fn u_from_buckets_equals_u_from_every_pair() {
        let c = [3, 0, 5, 7, 1];
        let b = [4, 6, 2, 0, 9];
        let mw = mann_whitney(&c, &b).unwrap();
        assert_eq!(mw.u, brute(&c, &b));
        assert_eq!((mw.canary, mw.baseline), (16, 21));
    }

    #[test]
    fn the_tie_corrected_variance_matches_the_rank_sum_formula() {
        // Rank-sum variance with ties, computed directly from midranks.
        let c = [2u64, 1, 3];
        let b = [1u64, 4, 0];
        let (m, n) = (6.0, 5.0);
        let big: f64 = m + n;
        let mut ranks = vec![];
        let mut start = 0.0;
        for i in 0..3 {
            let t = (c[i] + b[i]) as f64;
            let mid = start + (t + 1.0) / 2.0;
            for _ in 0..(c[i] + b[i]) {
                ranks.push(mid);
            }
            start += t;
        }
        let mean = ranks.iter().sum::<f64>() / big;
        let s2 = ranks.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (big - 1.0);
        let var_u = m * n / big * s2;
        let mw = mann_whitney(&c, &b).unwrap();
        assert!((mw.variance * (m * n).powi(2) - var_u).abs() < 1e-9);
    }

    #[test]
    fn empty_or_single_bucket_data_decides_nothing() {
        let cfg = ShiftConfig::default();
        assert_eq!(mann_whitney(&[0, 0], &[1, 2]), None);
        let v = shift_verdict(&cfg, &[0, 0], &[1, 2]);
        assert_eq!(v.verdict, Verdict::Inconclusive);
        let v = shift_verdict(&cfg, &[0, 1_000], &[0, 1_000]);
        assert_eq!(v.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn a_clear_slowdown_is_worse_and_a_trivial_one_is_not() {
        let cfg = ShiftConfig::default();
        let base = [100, 400, 400, 100, 0];
        let slow = [0, 100, 400, 400, 100];
        assert_eq!(shift_verdict(&cfg, &slow, &base).verdict, Verdict::Worse);
        // A 1 % slowdown proven by ten million requests is still not worse.
        let base = [5_000_000, 5_000_000];
        let tiny = [4_900_000, 5_100_000];
        let v = shift_verdict(&cfg, &tiny, &base);
        assert!((v.canary_estimate - 0.505).abs() < 1e-9);
        assert_eq!(v.verdict, Verdict::NotWorse, "{v}");
    }

    #[test]
    fn a_faster_canary_is_not_worse() {
        let cfg = ShiftConfig::default();
        let base = [0, 100, 400, 400, 100];
        let fast = [100, 400, 400, 100, 0];
        assert_eq!(shift_verdict(&cfg, &fast, &base).verdict, Verdict::NotWorse);
    }

    #[test]
    fn too_few_samples_decide_nothing() {
        let cfg = ShiftConfig {
            min_samples: 2_000,
            ..ShiftConfig::default()
        };
        let base = [100, 400, 400, 100, 0];
        let slow = [0, 100, 400, 400, 100];
        assert_eq!(
            shift_verdict(&cfg, &slow, &base).verdict,
            Verdict::Inconclusive
        );
    }
}
