//! Looking without touching: `status`, `stats`, `judge`, and the checks
//! behind `promote` (the gate, from the sidecars through the API server's
//! pod proxy or from Prometheus; the fleet judge, from Prometheus).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canary_core::config::judgment::Judgment;
use canary_core::gates::GateState;
use canary_core::judge::{Decision, Metric, Verdicts};
use serde_json::{json, Value};

use crate::cli::args::{GateSource, JudgeArgs, StatsArgs, StatusArgs};
use crate::cli::output::print;
use crate::error::{Error, Result};
use crate::judge::{self, Series};
use crate::kubeops::{Kind, Kube};
use crate::pluginconfig;
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

/// What the fleet judge says about a canary against its baseline.
pub struct Fleet {
    pub canary: String,
    pub baseline: String,
    pub verdicts: Verdicts,
    pub decision: Decision<'static>,
    /// The verdicts and the decision as `judge` prints them.
    pub table: String,
}

impl Fleet {
    fn to_json(&self) -> Value {
        let metrics: Vec<Value> = Metric::ALL
            .iter()
            .map(|m| {
                let v = self.verdicts.get(*m);
                json!({
                    "metric": m.label(),
                    "verdict": v.verdict.label(),
                    "canary_samples": v.canary_samples,
                    "baseline_samples": v.baseline_samples,
                    "evidence_worse": v.log_e_worse,
                    "evidence_not_worse": v.log_e_not_worse,
                    "threshold": v.threshold,
                    "canary_estimate": v.canary_estimate,
                    "baseline_estimate": v.baseline_estimate,
                })
            })
            .collect();
        json!({
            "canary": self.canary,
            "baseline": self.baseline,
            "decision": self.decision.label(),
            "reason": self.decision.reason().to_string(),
            "metrics": metrics,
        })
    }
}

/// One version's range queries, `(end, range, step)` in seconds.
async fn series(
    http: &crate::http::Http,
    url: &str,
    version: &str,
    (end, range, step): (i64, i64, i64),
) -> Result<Series> {
    let q = judge::range_queries(version);
    let answers = [
        stats::query_range(http, url, &q[0], end, range, step).await?,
        stats::query_range(http, url, &q[1], end, range, step).await?,
        stats::query_range(http, url, &q[2], end, range, step).await?,
    ];
    Ok(Series::from_answers(
        &q,
        [&answers[0], &answers[1], &answers[2]],
    )?)
}

/// Judges `canary` against `baseline` over the last `window`, summed over
/// all pods, with `judgment`'s settings (the judge's own when `None`). The
/// step is a 120th of the window, at least 1 s: enough ticks for the
/// sequential tests, few enough points for any Prometheus.
pub async fn fleet(
    http: &crate::http::Http,
    url: &str,
    canary: &str,
    baseline: &str,
    judgment: Option<&Judgment>,
    window: Duration,
) -> Result<Fleet> {
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let range = window.as_secs().max(1) as i64;
    let step = (range / 120).max(1);
    let c = series(http, url, canary, (end, range, step)).await?;
    let b = series(http, url, baseline, (end, range, step)).await?;
    let (cfg, policy) = judgment.map_or_else(Default::default, |j| (j.judge, j.policy));
    let verdicts = judge::judge(&cfg, (canary, &c), (baseline, &b))?;
    let (decision, table) = judge::report(&policy, &verdicts);
    Ok(Fleet {
        canary: canary.to_string(),
        baseline: baseline.to_string(),
        verdicts,
        decision,
        table: format!("{canary} against {baseline}\n{table}"),
    })
}

/// `judge`: needs no cluster, only Prometheus.
pub async fn judge(a: &JudgeArgs, http: &crate::http::Http) -> Result<String> {
    let judgment = match &a.config {
        Some(path) => pluginconfig::validate_file(path, None)?
            .gates
            .and_then(|g| g.judgment),
        None => None,
    };
    let baseline = a
        .baseline
        .clone()
        .or_else(|| judgment.as_ref().and_then(|j| j.baseline_version.clone()))
        .unwrap_or_else(|| "v1".to_string());
    let f = fleet(
        http,
        &a.prometheus,
        &a.canary,
        &baseline,
        judgment.as_ref(),
        a.window,
    )
    .await?;
    print(a.output.output, &[f.to_json()], || f.table.clone())
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
