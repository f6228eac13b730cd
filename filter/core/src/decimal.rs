//! Decimal text for `f64` in log lines and config errors, by integer
//! arithmetic. Rust's own float formatting (shortest round-trip and exact
//! modes, big-number tables) is about a tenth of the wasm module; these
//! messages need a few fixed decimals at most.

/// `x` rounded to `places` decimals, always written with them: `fixed(0.25, 3)`
/// is `0.250`. Magnitudes of 10^15 and more are written as `<digits>e<exp>`.
pub fn fixed(x: f64, places: u32) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    let sign = if x.is_sign_negative() && x != 0.0 {
        "-"
    } else {
        ""
    };
    let x = x.abs();
    if x.is_infinite() {
        return format!("{sign}inf");
    }
    if x >= 1e15 {
        let mut mantissa = x;
        let mut exp = 0;
        while mantissa >= 10.0 {
            mantissa /= 10.0;
            exp += 1;
        }
        return format!("{sign}{}e{exp}", fixed(mantissa, places));
    }
    let scale = 10u64.pow(places.min(6));
    // Below 10^15 × 10^6 < 2^64: the cast cannot saturate.
    let n = (x * scale as f64).round() as u64;
    let (int, frac) = (n / scale, n % scale);
    if places == 0 {
        return format!("{sign}{int}");
    }
    let width = places.min(6) as usize;
    format!("{sign}{int}.{frac:0width$}")
}

/// `x` with at most six decimals and no trailing zeros: `120`, `100.5`, `0.05`.
pub fn short(x: f64) -> String {
    let s = fixed(x, 6);
    match s.split_once('.') {
        Some((int, frac)) if !s.contains('e') => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            }
        }
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn fixed_decimals_round_like_format() {
        for (x, places) in [
            (0.25, 3),
            (99.9996, 3),
            (0.05, 1),
            (1234.5678, 1),
            (7.0, 0),
            (-2.5, 2),
        ] {
            assert_eq!(
                fixed(x, places),
                format!("{x:.*}", places as usize),
                "{x} {places}"
            );
        }
        assert_eq!(fixed(f64::INFINITY, 1), "inf");
        assert_eq!(fixed(f64::NAN, 1), "NaN");
        assert_eq!(fixed(-0.0, 1), "0.0");
        assert_eq!(fixed(2.5e300, 1), "2.5e300");
    }

    #[test]
    fn short_drops_trailing_zeros() {
        for (x, text) in [
            (120.0, "120"),
            (100.5, "100.5"),
            (0.05, "0.05"),
            (-1.0, "-1"),
            (33.333, "33.333"),
            (14.4, "14.4"),
        ] {
            assert_eq!(short(x), text);
        }
    }
}
