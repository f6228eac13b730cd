//! Arithmetic shared by the sequential tests: mixing likelihood ratios, the
//! rejection threshold an e-value must reach, and Robbins' boundary.
//!
//! Every test in [`crate::judge`] is an *e-process*: a running product of
//! per-tick factors whose expectation under the null hypothesis is at most 1.
//! Ville's inequality then bounds the chance that it *ever* reaches `1/alpha`,
//! however often it is looked at, so checking every tick costs nothing.

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
    -alpha.ln()
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
        .map(|(c, l)| c.weight * (l - top).exp())
        .sum();
    top + sum.ln()
}

/// `count * ln(factor)` without the `0 * -inf = NaN` trap: an outcome that
/// did not happen contributes nothing, whatever its factor.
pub fn log_term(count: u64, factor: f64) -> f64 {
    if count == 0 {
        0.0
    } else {
        count as f64 * factor.ln()
    }
}

/// Robbins' normal-mixture boundary: a process that behaves like a Brownian
/// motion with variance `info` crosses `sqrt((info + v0) ln((info + v0) /
/// (v0 alpha^2)))` with probability at most `alpha` over all time, when its
/// drift is zero. `v0` is the precision of the Gaussian mixture over drifts:
/// the boundary is tightest for effects near `1/sqrt(v0)`.
pub fn normal_mixture_boundary(info: f64, v0: f64, confidence: f64) -> f64 {
    let t = info + v0;
    (t * ((t / v0).ln() + 2.0 * log_threshold(confidence))).sqrt()
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
    fn the_normal_mixture_boundary_grows_like_the_square_root_of_information() {
        let b1 = normal_mixture_boundary(1e4, 100.0, 0.99);
        let b2 = normal_mixture_boundary(4e4, 100.0, 0.99);
        assert!(b1 > 2.33 * 100.0, "wider than a fixed-n test: {b1}");
        assert!(b2 / b1 > 2.0 && b2 / b1 < 2.3, "{}", b2 / b1);
    }
}
