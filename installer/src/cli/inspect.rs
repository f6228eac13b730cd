//! Looking without touching: `status`, `stats`, and the gate check behind
//! `promote`, from the sidecars (through the API server's pod proxy) or
//! from Prometheus.

use canary_core::gates::GateState;
use serde_json::{json, Value};

use crate::cli::args::{GateSource, StatsArgs, StatusArgs};
use crate::cli::output::print;
use crate::error::{Error, Result};
use crate::kubeops::{Kind, Kube};
use crate::promtext::Stats;
use crate::rollout::sticky_step;
use crate::stats;

async fn scrapes(kube: &Kube, selector: &str) -> Result<Vec<Stats>> {
    let mut out = vec![];
    for pod in kube.pods(selector).await? {
        let Some(name) = pod.metadata.name else {
            continue;
        };
        out.push(Stats::parse(&kube.sidecar_stats(&name).await?));
    }
    Ok(out)
}

/// The gate state of `version`, worst across proxies; `None` when no proxy reports one.
pub async fn gate_of(
    src: &GateSource,
    version: &str,
    kube: &Kube,
    http: &crate::http::Http,
) -> Result<Option<GateState>> {
    match &src.prometheus {
        Some(url) => stats::gate_from_prometheus(http, url, version).await,
        None => Ok(stats::gate_from_scrapes(
            &scrapes(kube, &src.pods).await?,
            version,
        )),
    }
}

/// `stats --prometheus` needs no cluster: `kube` is `None` then.
pub async fn stats(a: &StatsArgs, kube: Option<&Kube>, http: &crate::http::Http) -> Result<String> {
    let rows = match (&a.source.prometheus, kube) {
        (Some(url), _) => stats::rows_from_prometheus(http, url, &a.source.window).await?,
        (None, Some(kube)) => stats::rows_from_scrapes(&scrapes(kube, &a.source.pods).await?),
        (None, None) => {
            return Err(Error::Usage(
                "stats reads the sidecars through the cluster, or Prometheus with --prometheus"
                    .into(),
            ))
        }
    };
    let values: Vec<Value> = rows.iter().map(|r| json!(r)).collect();
    print(a.output.output, &values, || stats::table(&rows))
}

pub async fn status(a: &StatusArgs, kube: &Kube) -> Result<String> {
    let name = &a.name.name;
    let obj = kube.get_existing(Kind::WasmPlugin, name).await?;
    let spec = obj.data.get("spec").cloned().unwrap_or_default();
    let selector: Vec<String> = spec
        .pointer("/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let pods = if selector.is_empty() {
        vec![]
    } else {
        kube.pods(&selector.join(",")).await?
    };
    let pod_rows: Vec<Value> = pods
        .iter()
        .map(|p| {
            let sidecar = p.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| c.name == "istio-proxy")
            });
            json!({
                "name": p.metadata.name,
                "phase": p.status.as_ref().and_then(|s| s.phase.clone()),
                "sidecar": sidecar,
            })
        })
        .collect();
    let v = json!({
        "name": name,
        "namespace": kube.namespace,
        "generation": obj.metadata.generation,
        "url": spec["url"],
        "sha256": spec["sha256"],
        "phase": spec["phase"],
        "failStrategy": spec["failStrategy"],
        "match": spec["match"],
        "step": sticky_step(spec.get("pluginConfig").unwrap_or(&Value::Null)),
        "status": obj.data.get("status").cloned().unwrap_or(Value::Null),
        "selector": selector.join(","),
        "pods": pod_rows,
    });
    print(a.output.output, std::slice::from_ref(&v), || {
        let mut s = format!(
            "WasmPlugin {}/{}  generation {}\n  module  {}\n  sha256  {}\n  phase   {}  failStrategy {}  step {} %\n  pods    {} match {}\n",
            kube.namespace,
            name,
            v["generation"],
            v["url"].as_str().unwrap_or("-"),
            v["sha256"].as_str().unwrap_or("-"),
            v["phase"].as_str().unwrap_or("-"),
            v["failStrategy"].as_str().unwrap_or("-"),
            v["step"],
            pod_rows.len(),
            if selector.is_empty() { "(targetRefs)".to_string() } else { selector.join(",") },
        );
        if !v["status"].is_null() {
            s.push_str(&format!("  status  {}\n", v["status"]));
        }
        for p in &pod_rows {
            s.push_str(&format!(
                "    {}  {}  sidecar {}\n",
                p["name"].as_str().unwrap_or("?"),
                p["phase"].as_str().unwrap_or("?"),
                if p["sidecar"] == true { "yes" } else { "no" }
            ));
        }
        s
    })
}
