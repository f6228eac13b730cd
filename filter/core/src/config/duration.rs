//! Durations as operators write them in config: `500ms`, `10s`, `5m`, `1h`, `1h30m`.

use super::error::Quoted;

/// Parses a duration into milliseconds. At least one `<number><unit>` group;
/// units `ms`, `s`, `m`, `h`; numbers are whole.
pub fn parse_ms(s: &str) -> Result<u64, String> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "{} is not a duration like 500ms, 10s, 5m or 1h",
                Quoted(s)
            ));
        }
        // `get`, not `[..]`: the counts end on ASCII bytes, so it never fails,
        // and indexing would bring str slicing's panic message (and the
        // Unicode tables it formats a char with) into the module for nothing.
        let n: u64 = rest
            .get(..digits)
            .unwrap_or_default()
            .parse()
            .map_err(|_| format!("{}: number too large", Quoted(s)))?;
        rest = rest.get(digits..).unwrap_or_default();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor = match rest.get(..unit_len).unwrap_or_default() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(format!("{}: a unit (ms, s, m, h) is missing", Quoted(s))),
            u => {
                return Err(format!(
                    "{}: unknown unit {} (use ms, s, m or h)",
                    Quoted(s),
                    Quoted(u)
                ))
            }
        };
        rest = rest.get(unit_len..).unwrap_or_default();
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{}: too long", Quoted(s)))?;
    }
    Ok(total)
}

/// A label for a duration in milliseconds, as the config would write it.
pub fn label_ms(ms: u64) -> String {
    match ms {
        0 => "0s".to_string(),
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1_000 == 0 => format!("{}s", m / 1_000),
        m => format!("{m}ms"),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn durations_parse_in_the_usual_units() {
        assert_eq!(parse_ms("500ms"), Ok(500));
        assert_eq!(parse_ms("10s"), Ok(10_000));
        assert_eq!(parse_ms("5m"), Ok(300_000));
        assert_eq!(parse_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_ms("0s"), Ok(0));
    }

    #[test]
    fn labels_use_the_largest_whole_unit() {
        assert_eq!(label_ms(0), "0s");
        assert_eq!(label_ms(7_200_000), "2h");
        assert_eq!(label_ms(300_000), "5m");
        assert_eq!(label_ms(90_000), "90s");
        assert_eq!(label_ms(1_500), "1500ms");
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "",
            "5",
            "m",
            "5 m",
            "5d",
            "-5s",
            "1.5s",
            "99999999999999999999h",
            "1h-",
        ] {
            assert!(parse_ms(bad).is_err(), "{bad}");
        }
    }
}
