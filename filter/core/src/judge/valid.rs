//! Which settings the judge accepts, so the config layer can reject the rest
//! with one line naming the field (`errors.margin: must be finite and at
//! least 0`). The tests themselves never panic on odd values, but a NaN
//! margin would silently keep every verdict `inconclusive`.

use super::pair::JudgeConfig;
use super::ratio::RatioConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The setting, as `test.field`, e.g. `tail.quantile`.
    pub field: &'static str,
    pub reason: &'static str,
}

fn check(ok: bool, field: &'static str, reason: &'static str) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid { field, reason })
    }
}

const CONFIDENCE: &str = "must be above 0.5 and below 1";
const MARGIN: &str = "must be finite and at least 0";
const FLOOR: &str = "must be at least 0 and below 0.5";

/// `names` are the field names of confidence, margin, not-worse margin and floor.
fn ratio(c: &RatioConfig, names: [&'static str; 4]) -> Result<(), Invalid> {
    let margin = |m: f64| m.is_finite() && m >= 0.0;
    check(
        c.confidence > 0.5 && c.confidence < 1.0,
        names[0],
        CONFIDENCE,
    )?;
    check(margin(c.margin), names[1], MARGIN)?;
    check(margin(c.not_worse_margin), names[2], MARGIN)?;
    check((0.0..0.5).contains(&c.floor), names[3], FLOOR)
}

impl JudgeConfig {
    /// The first setting out of range, if any.
    pub fn validate(&self) -> Result<(), Invalid> {
        ratio(
            &self.errors,
            [
                "errors.confidence",
                "errors.margin",
                "errors.notWorseMargin",
                "errors.floor",
            ],
        )?;
        let s = &self.shift;
        check(
            s.confidence > 0.5 && s.confidence < 1.0,
            "shift.confidence",
            CONFIDENCE,
        )?;
        check(
            (0.0..0.5).contains(&s.min_effect),
            "shift.minEffect",
            "must be at least 0 and below 0.5",
        )?;
        check(s.min_samples >= 1, "shift.minSamples", "must be at least 1")?;
        let t = &self.tail;
        ratio(
            &t.ratio,
            [
                "tail.confidence",
                "tail.margin",
                "tail.notWorseMargin",
                "tail.floor",
            ],
        )?;
        check(
            t.quantile > 0.5 && t.quantile < 1.0,
            "tail.quantile",
            "must be above 0.5 and below 1",
        )?;
        check(
            t.min_baseline >= 100,
            "tail.minBaseline",
            "must be at least 100 requests",
        )
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(JudgeConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_setting_out_of_range_is_named_in_one_line() {
        let mut c = JudgeConfig::default();
        c.errors.margin = f64::NAN;
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "errors.margin: must be finite and at least 0"
        );
        let mut c = JudgeConfig::default();
        c.tail.quantile = 1.0;
        assert_eq!(c.validate().unwrap_err().field, "tail.quantile");
        let mut c = JudgeConfig::default();
        c.shift.confidence = 0.3;
        assert_eq!(c.validate().unwrap_err().field, "shift.confidence");
        let mut c = JudgeConfig::default();
        c.errors.floor = 0.5;
        assert_eq!(c.validate().unwrap_err().field, "errors.floor");
    }
}
