//! Driving the rollout: `set`, `promote` and `rollback`. They change only
//! `spec.pluginConfig` of the WasmPlugin and the VirtualService, under the
//! rollout field manager. The current step is read from what the step mode
//! drives: the sticky percent, or the VirtualService weights.

use canary_core::gates::GateState;
use serde_json::{json, Value};

use crate::cli::args::{PromoteArgs, RollbackArgs, RouteArgs, SetArgs};
use crate::cli::inspect::gate_of;
use crate::cli::output::print;
use crate::cli::route_spec;
use crate::error::{Error, Result};
use crate::input::read_value;
use crate::kubeops::{Kind, Kube, ROLLOUT_MANAGER};
use crate::pluginconfig;
use crate::rollout::{
    apply_step, check_step, next_step, rollback_target, sticky_step, weighted_step, StepMode,
};

async fn live_config(kube: &Kube, name: &str) -> Result<Value> {
    let obj = kube.get_existing(Kind::WasmPlugin, name).await?;
    Ok(obj
        .data
        .pointer("/spec/pluginConfig")
        .cloned()
        .unwrap_or_else(|| json!({})))
}

/// The step the rollout is at, read where `route.step_mode` keeps it.
async fn current_step(kube: &Kube, route: &RouteArgs, config: &Value) -> Result<f64> {
    Ok(match route.step_mode {
        StepMode::Sticky => sticky_step(config),
        StepMode::Weights => {
            let vs = kube
                .get(Kind::VirtualService, &route.virtual_service)
                .await?;
            weighted_step(vs.as_ref().map(|o| &o.data), &route.canary)
        }
    })
}

fn plugin_config_patch(ns: &str, name: &str, config: &Value) -> Value {
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"pluginConfig": config},
    })
}

/// "updated" or, under a dry run, "would be updated (dry run…)".
fn done(kube: &Kube, did: &str, would: &str) -> String {
    if kube.dry_run.is_dry() {
        format!("{would}{}", kube.dry_run.note())
    } else {
        did.to_string()
    }
}

pub async fn set(a: &SetArgs, kube: &Kube) -> Result<String> {
    let mut config = match &a.config {
        Some(p) => read_value(p, None)?,
        None => live_config(kube, &a.name.name).await?,
    };
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::Usage("the pluginConfig is not a JSON object".into()))?;
    if a.percent.is_some() || a.salt.is_some() {
        let sticky = obj.entry("sticky").or_insert_with(|| json!({}));
        if let Some(s) = sticky.as_object_mut() {
            if let Some(p) = a.percent {
                s.insert("percent".into(), json!(p));
            }
            if let Some(salt) = &a.salt {
                s.insert("salt".into(), json!(salt));
            }
        }
    }
    if let Some(p) = &a.cohorts {
        obj.insert("cohorts".into(), read_value(p, None)?);
    }
    if let Some(p) = &a.gates {
        obj.insert("gates".into(), read_value(p, None)?);
    }
    pluginconfig::validate(&config)?;
    let patch = plugin_config_patch(&kube.namespace, &a.name.name, &config);
    kube.apply(
        Kind::WasmPlugin,
        &a.name.name,
        &patch,
        ROLLOUT_MANAGER,
        true,
    )
    .await?;
    let what = format!("pluginConfig of {}/{}", kube.namespace, a.name.name);
    print(a.change.output.output, &[patch], || {
        format!(
            "{}\n",
            done(
                kube,
                &format!("{what} updated"),
                &format!("{what} would be updated")
            )
        )
    })
}

/// Sets the filter's step and the VirtualService weights together; returns
/// the two objects sent (or, for a client dry run, that would be sent).
async fn step_to(
    kube: &Kube,
    name: &str,
    route: &RouteArgs,
    mut config: Value,
    step: u32,
) -> Result<(Value, Value)> {
    let weights = apply_step(&mut config, step, route.step_mode)?;
    let cfg = pluginconfig::validate(&config)?;
    let vs = route_spec(&kube.namespace, route, &cfg.cohort_header, weights).render();
    let patch = plugin_config_patch(&kube.namespace, name, &config);
    kube.apply(Kind::WasmPlugin, name, &patch, ROLLOUT_MANAGER, true)
        .await?;
    kube.apply(
        Kind::VirtualService,
        &route.virtual_service,
        &vs,
        ROLLOUT_MANAGER,
        true,
    )
    .await?;
    Ok((patch, vs))
}

pub async fn promote(a: &PromoteArgs, kube: &Kube, http: &crate::http::Http) -> Result<String> {
    let live = live_config(kube, &a.name.name).await?;
    let current = current_step(kube, &a.route, &live).await?;
    let next = next_step(current)
        .ok_or_else(|| Error::Usage(format!("already at {current} %: nothing to promote")))?;
    let gate = gate_of(&a.source, &a.route.canary, kube, http).await?;
    let mut note = String::new();
    if gate != Some(GateState::Pass) {
        let why = match gate {
            None => format!(
                "no gate state for {} (are gates enabled and is traffic flowing?)",
                a.route.canary
            ),
            Some(g) => format!(
                "the gate for {} at step {current} % reads {}, not {}",
                a.route.canary,
                g.label(),
                GateState::Pass.label()
            ),
        };
        if !a.force {
            return Err(Error::PromotionRefused(why));
        }
        note = format!("forced past: {why}\n");
    }
    let (cfg, vs) = step_to(kube, &a.name.name, &a.route, live, next).await?;
    let moved = format!("{} from {current} % to {next} %", a.route.canary);
    print(a.change.output.output, &[cfg, vs], || {
        format!(
            "{note}{}\n",
            done(
                kube,
                &format!("promoted {moved}"),
                &format!("would promote {moved}")
            )
        )
    })
}

pub async fn rollback(a: &RollbackArgs, kube: &Kube) -> Result<String> {
    check_step(a.to)?;
    let live = live_config(kube, &a.name.name).await?;
    let current = current_step(kube, &a.route, &live).await?;
    let to = rollback_target(current, a.to)?;
    let (cfg, vs) = step_to(kube, &a.name.name, &a.route, live, to).await?;
    print(a.change.output.output, &[cfg, vs], || {
        format!(
            "{}\n",
            done(
                kube,
                &format!("rolled back from {current} % to step {to} %"),
                &format!("would roll back from {current} % to step {to} %")
            )
        )
    })
}
