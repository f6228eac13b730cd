//! `ln` and `exp` for the judge's e-values, written here rather than taken
//! from `f64::ln` and `f64::exp`. On wasm32-wasip1 those two call wasi-libc's
//! `log` and `exp`, whose lookup tables alone put 6.4 KB of data into the
//! module (and 1 KB of code) for the handful of calls in [`super::evidence`].
//! These agree with them to about 1e-15 relative, which the tests check: far
//! finer than the statistics need.
//!
//! Both reduce the argument by powers of two and sum a short series on what
//! is left: `ln(m) = 2 atanh((m - 1) / (m + 1))` for `m` in [0.7, 1.42], and
//! Taylor's series of `exp(r)` for `|r| <= ln(2) / 2`.

/// `ln 2` split in two: `k * LN2_HI` is exact for every exponent `k` a double
/// has, so the reduction loses nothing (the split fdlibm uses).
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;

/// Natural logarithm: `NaN` below 0, `-inf` at 0, `inf` at `inf`.
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let (mut bits, mut k) = (x.to_bits(), 0i32);
    if bits >> 52 == 0 {
        // Subnormal: scale by 2^54 into the normal range first.
        bits = (x * f64::from_bits(0x4350_0000_0000_0000)).to_bits();
        k = -54;
    }
    k += ((bits >> 52) & 0x7ff) as i32 - 1023;
    // The mantissa as a number in [1, 2), then folded to [0.707, 1.414].
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        k += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // |s| <= 0.172, so s^2 <= 0.0295: 12 odd terms reach below 1e-18.
    let mut term = s;
    let mut sum = s;
    let mut n = 1.0;
    for _ in 0..12 {
        term *= s2;
        n += 2.0;
        sum += term / n;
    }
    let k = f64::from(k);
    k * LN2_HI + (k * LN2_LO + 2.0 * sum)
}

/// `e^x`: `inf` above 709.78, 0 below -745.13, `NaN` for `NaN`.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.782_712_893_384 {
        return f64::INFINITY;
    }
    if x < -745.133_219_101_941_2 {
        return 0.0;
    }
    let k = (x * std::f64::consts::LOG2_E).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // |r| <= 0.347: 18 Taylor terms leave an error below 1e-24.
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..18 {
        term *= r / f64::from(n);
        sum += term;
    }
    times_power_of_two(sum, k as i32)
}

/// `v * 2^k` for `k` in [-1076, 1024], in steps a double's exponent can hold.
fn times_power_of_two(mut v: f64, mut k: i32) -> f64 {
    if k > 1023 {
        v *= f64::from_bits(0x7fe0_0000_0000_0000); // 2^1023
        k -= 1023;
    }
    if k < -1022 {
        v *= f64::MIN_POSITIVE; // 2^-1022
        k += 1022;
        if k < -1022 {
            v *= f64::MIN_POSITIVE;
            k += 1022;
        }
    }
    v * f64::from_bits(((k + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn close(got: f64, want: f64, tol: f64) -> bool {
        got == want || (got - want).abs() <= tol * want.abs().max(f64::MIN_POSITIVE)
    }

    /// Doubles spread over every binade, plus the awkward ones near 1.
    fn samples() -> Vec<f64> {
        let mut xs = vec![
            1.0,
            1.0 + 1e-12,
            1.0 - 1e-12,
            0.5,
            2.0,
            1e-310,
            5e-324,
            f64::MAX,
        ];
        let mut x = 1e-300_f64;
        while x < 1e300 {
            xs.push(x);
            x *= 1.618_033_988_749_895;
        }
        for i in 0..2_000 {
            xs.push(0.5 + f64::from(i) / 1_000.0);
        }
        xs
    }

    #[test]
    fn ln_agrees_with_the_standard_library_across_every_binade() {
        for x in samples() {
            let (got, want) = (ln(x), x.ln());
            // Near 1 the result is near 0: compare absolutely there.
            assert!(
                close(got, want, 2e-15) || (got - want).abs() < 1e-17,
                "ln({x:e}) = {got:e}, std {want:e}"
            );
        }
    }

    #[test]
    fn exp_agrees_with_the_standard_library_over_its_whole_range() {
        let mut x = -745.0;
        while x < 709.7 {
            let (got, want) = (exp(x), x.exp());
            assert!(close(got, want, 4e-15), "exp({x}) = {got:e}, std {want:e}");
            x += 0.0137;
        }
        for x in [0.0, 1e-300, -1e-300, 1e-9, -1e-9, 0.5, -0.5, 700.0, -700.0] {
            assert!(close(exp(x), x.exp(), 4e-15), "exp({x})");
        }
    }

    #[test]
    fn the_edges_behave_as_the_standard_library_does() {
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        assert!(ln(-1.0).is_nan() && ln(f64::NAN).is_nan());
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(-746.0), 0.0);
        assert!(exp(f64::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(ln(1.0), 0.0);
    }
}
