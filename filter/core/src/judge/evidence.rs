//! Arithmetic shared by the sequential tests: mixing likelihood ratios, the
//! rejection threshold an e-value must reach, and Robbins' normal mixture.
//!
//! Every test in [`crate::judge`] is an *e-process*: a running product of
//! per-tick factors whose expectation under the null hypothesis is at most 1.
//! Ville's inequality then bounds the chance that it *ever* reaches `1/alpha`,
//! however often it is looked at, so checking every tick costs nothing.

use super::logexp::{exp, ln};

/// One alternative of a discrete mixture: its parameter and prior weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Component {
    pub value: f64,
    pub weight: f64,
}

/// `ln(1/alpha)`: the log e-value a test must reach to reject at `confidence`.
/// A confidence outside (0, 1) is clamped so the threshold stays finite.
pub fn log_threshold(confidence: f64) -> f64 {
    let alpha = (1.0 - confidence).clamp(1e-12, 1.0 - 1e-12);
    -ln(alpha)
}

/// `ln(sum_j w_j * exp(l_j))`: the log of a weighted mixture of likelihood
/// ratios kept in log space. Components that are `-inf` (ruled out) add
/// nothing; all of them ruled out gives `-inf`.
pub fn log_mixture(components: &[Component], logs: &[f64]) -> f64 {
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top == f64::NEG_INFINITY || top.is_nan() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = components
        .iter()
        .zip(logs)
        .map(|(c, l)| c.weight * exp(l - top))
        .sum();
    top + ln(sum)
}

/// `count * ln(factor)` without the `0 * -inf = NaN` trap: an outcome that
/// did not happen contributes nothing, whatever its factor.
pub fn log_term(count: u64, factor: f64) -> f64 {
    if count == 0 {
        0.0
    } else {
        count as f64 * ln(factor)
    }
}

/// Standard normal CDF (Abramowitz-Stegun 7.1.26, absolute error below
/// 1.5e-7): a few operations instead of a special-functions crate.
pub fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * exp(-z * z);
    if x >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// `ln E` of Robbins' one-sided normal mixture: for a process `s` that
/// behaves like a Brownian motion with variance `info` and drift at most 0,
///
/// ```text
/// E = 2 sqrt(v0 / (info + v0)) exp(s^2 / (2 (info + v0))) Phi(s / sqrt(info + v0))
/// ```
///
/// (the likelihood ratio mixed over positive drifts with a half-normal of
/// precision `v0`) is a supermartingale, so it ever reaches `1/alpha` with
/// probability at most `alpha`. It grows with `s`; below 0 it is reported
/// at `s = 0`, which is below 1 and so decides nothing either way.
pub fn log_normal_mixture(s: f64, info: f64, v0: f64) -> f64 {
    let t = info + v0;
    let pos = s.max(0.0);
    std::f64::consts::LN_2 + 0.5 * ln(v0 / t) + pos * pos / (2.0 * t) + ln(phi(pos / t.sqrt()))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn the_threshold_at_99_percent_is_ln_100() {
        assert!((log_threshold(0.99) - 100f64.ln()).abs() < 1e-9);
        assert!(log_threshold(1.0).is_finite() && log_threshold(-3.0).is_finite());
    }

    #[test]
    fn a_mixture_weighs_its_components_and_ignores_ruled_out_ones() {
        let c = [
            Component {
                value: 1.0,
                weight: 0.25,
            },
            Component {
                value: 2.0,
                weight: 0.75,
            },
        ];
        let m = log_mixture(&c, &[8f64.ln(), f64::NEG_INFINITY]);
        assert!((m - 2f64.ln()).abs() < 1e-12, "{m}");
        assert_eq!(log_mixture(&c, &[f64::NEG_INFINITY; 2]), f64::NEG_INFINITY);
        let big = log_mixture(&c, &[1_000.0, 1_000.0]);
        assert!((big - 1_000.0).abs() < 1e-9, "no overflow: {big}");
    }

    #[test]
    fn an_outcome_that_did_not_happen_adds_nothing() {
        assert_eq!(log_term(0, 0.0), 0.0);
        assert_eq!(log_term(1, 0.0), f64::NEG_INFINITY);
        assert!((log_term(3, 2.0) - 3.0 * 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn phi_matches_known_values() {
        for (x, p) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746),
            (-2.326_347_874, 0.01),
            (3.0, 0.998_650_102),
        ] {
            assert!((phi(x) - p).abs() < 2e-7, "phi({x}) = {}", phi(x));
        }
    }

    #[test]
    fn the_one_sided_mixture_crosses_later_than_a_one_shot_test_and_grows_with_the_score() {
        let info: f64 = 1e4;
        // A one-shot 99 % test rejects at s = 2.33 sqrt(info); the mixture needs more.
        let one_shot = 2.326 * info.sqrt();
        assert!(log_normal_mixture(one_shot, info, 100.0) < log_threshold(0.99));
        assert!(log_normal_mixture(2.0 * one_shot, info, 100.0) > log_threshold(0.99));
        assert!(log_normal_mixture(-50.0, info, 100.0) == log_normal_mixture(0.0, info, 100.0));
        assert!(log_normal_mixture(0.0, info, 100.0) < 0.0);
    }
}
