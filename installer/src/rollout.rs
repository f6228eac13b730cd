//! The module's rollout steps (0 -> 10 -> 50 -> 100 %) applied to the filter's
//! pluginConfig and the VirtualService weights.

use serde_json::{json, Value};

use crate::error::{Error, Result};

pub const STEPS: [u32; 4] = [0, 10, 50, 100];

/// How a step reaches users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StepMode {
    /// The filter's sticky percentage: a user stays on one version.
    Sticky,
    /// VirtualService weights per request, as the module's Exercise 4 does.
    Weights,
}

/// The step a pluginConfig is at: its sticky percent (whole numbers).
pub fn current_step(config: &Value) -> f64 {
    config
        .pointer("/sticky/percent")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

pub fn next_step(current: f64) -> Option<u32> {
    STEPS.iter().copied().find(|s| f64::from(*s) > current)
}

/// Sets `step` in the pluginConfig and returns the default-route weights
/// (stable, canary) that go with it.
pub fn apply_step(config: &mut Value, step: u32, mode: StepMode) -> Result<(u32, u32)> {
    if step > 100 {
        return Err(Error::Usage(format!("step {step} is outside 0-100")));
    }
    let percent = match mode {
        StepMode::Sticky => step,
        StepMode::Weights => 0,
    };
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::Usage("the live pluginConfig is not a JSON object".into()))?;
    let sticky = obj.entry("sticky").or_insert_with(|| json!({}));
    let sticky = sticky
        .as_object_mut()
        .ok_or_else(|| Error::Usage("pluginConfig.sticky is not an object".into()))?;
    sticky.insert("percent".into(), json!(percent));
    Ok(match mode {
        // Sticky: everyone else stays on stable until the last step.
        StepMode::Sticky if step >= 100 => (0, 100),
        StepMode::Sticky => (100, 0),
        StepMode::Weights => (100 - step, step),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_advance_through_the_module_sequence() {
        assert_eq!(next_step(0.0), Some(10));
        assert_eq!(next_step(10.0), Some(50));
        assert_eq!(next_step(25.0), Some(50));
        assert_eq!(next_step(50.0), Some(100));
        assert_eq!(next_step(100.0), None);
    }

    #[test]
    fn a_sticky_step_sets_the_percent_and_keeps_weights_on_stable() {
        let mut c = json!({"cohorts": []});
        assert_eq!(apply_step(&mut c, 10, StepMode::Sticky).unwrap(), (100, 0));
        assert_eq!(c["sticky"]["percent"], 10);
        assert_eq!(current_step(&c), 10.0);
        assert_eq!(apply_step(&mut c, 100, StepMode::Sticky).unwrap(), (0, 100));
    }

    #[test]
    fn a_weighted_step_leaves_the_sticky_percent_at_zero() {
        let mut c = json!({"sticky": {"percent": 30, "salt": "s"}});
        assert_eq!(apply_step(&mut c, 50, StepMode::Weights).unwrap(), (50, 50));
        assert_eq!(c["sticky"], json!({"percent": 0, "salt": "s"}));
    }

    #[test]
    fn a_non_object_config_is_refused() {
        assert!(apply_step(&mut json!([1]), 10, StepMode::Sticky).is_err());
        assert!(apply_step(&mut json!({"sticky": 3}), 10, StepMode::Sticky).is_err());
    }
}
