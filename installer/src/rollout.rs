//! The workshop module's rollout steps (0 -> 10 -> 50 -> 100 %) and where each step
//! mode keeps the current one: the filter's sticky percentage, or the
//! VirtualService's default-route weights.

use serde_json::{json, Value};

use crate::error::{Error, Result};

pub const STEPS: [u32; 4] = [0, 10, 50, 100];

/// How a step reaches users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StepMode {
    /// The filter's sticky percentage: a user stays on one version.
    Sticky,
    /// VirtualService weights per request, as the workshop module's Exercise 4 does.
    Weights,
}

/// The step a pluginConfig is at in sticky mode: its sticky percent.
pub fn sticky_step(config: &Value) -> f64 {
    config
        .pointer("/sticky/percent")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// The step a VirtualService is at in weights mode: the weight of the
/// `canary` subset on its default (last, match-less) route; 0 without one.
pub fn weighted_step(vs: Option<&Value>, canary: &str) -> f64 {
    let Some(routes) = vs
        .and_then(|v| v.pointer("/spec/http"))
        .and_then(Value::as_array)
    else {
        return 0.0;
    };
    routes
        .iter()
        .rev()
        .find(|r| r.get("match").is_none())
        .and_then(|r| r["route"].as_array())
        .and_then(|dests| {
            dests
                .iter()
                .find(|d| d.pointer("/destination/subset").and_then(Value::as_str) == Some(canary))
        })
        .and_then(|d| d["weight"].as_f64())
        .unwrap_or(0.0)
}

pub fn next_step(current: f64) -> Option<u32> {
    STEPS.iter().copied().find(|s| f64::from(*s) > current)
}

/// Checks that `to` is one of the configured [`STEPS`] (no live state needed).
pub fn check_step(to: u32) -> Result<u32> {
    if STEPS.contains(&to) {
        Ok(to)
    } else {
        Err(Error::Usage(format!(
            "--to {to} is not a rollout step (one of {})",
            STEPS.map(|s| s.to_string()).join(", ")
        )))
    }
}

/// Checks a rollback target: a configured step, below the current one
/// (going up is `promote`, which asks the gate). 0 is always allowed.
pub fn rollback_target(current: f64, to: u32) -> Result<u32> {
    check_step(to)?;
    if to != 0 && f64::from(to) >= current {
        return Err(Error::Usage(format!(
            "rollback only goes down: the rollout is at {current} % and --to {to} is not below it (use promote, which checks the gate, to go up)"
        )));
    }
    Ok(to)
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
        assert_eq!(sticky_step(&c), 10.0);
        assert_eq!(apply_step(&mut c, 100, StepMode::Sticky).unwrap(), (0, 100));
    }

    #[test]
    fn a_weighted_step_leaves_the_sticky_percent_at_zero() {
        let mut c = json!({"sticky": {"percent": 30, "salt": "s"}});
        assert_eq!(apply_step(&mut c, 50, StepMode::Weights).unwrap(), (50, 50));
        assert_eq!(c["sticky"], json!({"percent": 0, "salt": "s"}));
    }

    #[test]
    fn the_weighted_step_is_the_canary_weight_of_the_default_route() {
        let vs = json!({"spec": {"http": [
            {"name": "cohorts", "match": [{}], "route": [{"destination": {"subset": "v2"}}]},
            {"name": "default", "route": [
                {"destination": {"subset": "v1"}, "weight": 50},
                {"destination": {"subset": "v2"}, "weight": 50}]}]}});
        assert_eq!(weighted_step(Some(&vs), "v2"), 50.0);
        assert_eq!(weighted_step(Some(&vs), "v3"), 0.0);
        assert_eq!(weighted_step(None, "v2"), 0.0);
    }

    #[test]
    fn rollback_only_goes_down_to_a_configured_step() {
        assert_eq!(rollback_target(50.0, 10).unwrap(), 10);
        assert_eq!(rollback_target(10.0, 0).unwrap(), 0);
        assert_eq!(rollback_target(0.0, 0).unwrap(), 0);
        assert!(rollback_target(10.0, 100).is_err());
        assert!(rollback_target(10.0, 10).is_err());
        assert!(rollback_target(50.0, 37).is_err());
    }

    #[test]
    fn a_non_object_config_is_refused() {
        assert!(apply_step(&mut json!([1]), 10, StepMode::Sticky).is_err());
        assert!(apply_step(&mut json!({"sticky": 3}), 10, StepMode::Sticky).is_err());
    }
}
