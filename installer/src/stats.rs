//! `canaryctl stats`: requests, error ratio, P99 and gate state per version ×
//! cohort, from the sidecars' own `/stats/prometheus` (cumulative since each
//! proxy started) or from a Prometheus server (over a window).

use std::collections::BTreeMap;

use canary_core::gates::GateState;
use canary_core::promtext::Stats;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::Http;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub version: String,
    pub cohort: String,
    pub requests: f64,
    pub errors: f64,
    pub p99_ms: Option<f64>,
    pub gate: Option<String>,
}

impl Row {
    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }
}

fn gate_label(v: f64) -> String {
    GateState::from_u8(v.round().clamp(0.0, 255.0) as u8)
        .label()
        .to_string()
}

/// Gate state per version from scraped gauges. With several proxies the worst
/// state wins: one sidecar in rollback is enough to stop a promotion.
fn gates(stats: &[Stats]) -> BTreeMap<String, f64> {
    let severity = |v: f64| match v.round() as i64 {
        3 => 4,
        0 => 3,
        2 => 2,
        _ => 1,
    };
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for s in stats {
        for x in s.matching("canary_gate_state", &[]) {
            let Some(v) = x.labels.get("canary_version") else {
                continue;
            };
            let e = out.entry(v.clone()).or_insert(x.value);
            if severity(x.value) > severity(*e) {
                *e = x.value;
            }
        }
    }
    out
}

/// Rows from sidecar scrapes (summed over pods).
pub fn rows_from_scrapes(scrapes: &[Stats]) -> Vec<Row> {
    let mut acc: BTreeMap<(String, String), (f64, f64, Stats)> = BTreeMap::new();
    for s in scrapes {
        for x in &s.samples {
            let (Some(v), Some(c)) = (
                x.labels.get("canary_version"),
                x.labels.get("canary_cohort"),
            ) else {
                continue;
            };
            let e = acc
                .entry((v.clone(), c.clone()))
                .or_insert_with(|| (0.0, 0.0, Stats::default()));
            match x.name.as_str() {
                "canary_requests_total" => e.0 += x.value,
                "canary_errors_total" => e.1 += x.value,
                "canary_request_duration_microseconds_bucket" => e.2.samples.push(x.clone()),
                _ => {}
            }
        }
    }
    let gates = gates(scrapes);
    acc.into_iter()
        .map(|((version, cohort), (requests, errors, hist))| Row {
            p99_ms: hist
                .quantile_bucket("canary_request_duration_microseconds", &[], 0.99)
                .map(|us| us / 1000.0),
            gate: gates.get(&version).map(|g| gate_label(*g)),
            version,
            cohort,
            requests,
            errors,
        })
        .collect()
}

/// One instant query against a Prometheus server.
pub async fn query(
    http: &Http,
    base: &str,
    promql: &str,
) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
    let url = format!(
        "{}/api/v1/query?query={}",
        base.trim_end_matches('/'),
        urlencoding::encode(promql)
    );
    let err = |m: String| Error::Prometheus {
        url: base.to_string(),
        message: m,
    };
    let r = http.get(&url, &[]).await.map_err(|e| err(e.to_string()))?;
    let v: Value =
        serde_json::from_slice(&r.body).map_err(|e| err(format!("answer {}: {e}", r.status)))?;
    if v["status"] != "success" {
        return Err(err(format!(
            "{} for `{promql}`",
            v["error"].as_str().unwrap_or("query failed")
        )));
    }
    let mut out = vec![];
    for item in v["data"]["result"].as_array().cloned().unwrap_or_default() {
        let labels: BTreeMap<String, String> = item["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let value = item["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        out.push((labels, value));
    }
    Ok(out)
}

/// The PromQL behind `stats --prometheus`, over `window` (e.g. `5m`).
pub fn queries(window: &str) -> [String; 4] {
    [
        format!("sum by (canary_version, canary_cohort) (increase(canary_requests_total[{window}]))"),
        format!("sum by (canary_version, canary_cohort) (increase(canary_errors_total[{window}]))"),
        format!(
            "histogram_quantile(0.99, sum by (canary_version, canary_cohort, le) (rate(canary_request_duration_microseconds_bucket[{window}])))"
        ),
        "max by (canary_version) (canary_gate_state)".to_string(),
    ]
}

/// Rows from a Prometheus server over `window`.
pub async fn rows_from_prometheus(http: &Http, base: &str, window: &str) -> Result<Vec<Row>> {
    let [rq, eq, pq, gq] = queries(window);
    let key = |l: &BTreeMap<String, String>| -> Option<(String, String)> {
        Some((
            l.get("canary_version")?.clone(),
            l.get("canary_cohort")?.clone(),
        ))
    };
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for (l, v) in query(http, base, &rq).await? {
        if let Some((version, cohort)) = key(&l) {
            rows.insert(
                (version.clone(), cohort.clone()),
                Row {
                    version,
                    cohort,
                    requests: v.round(),
                    errors: 0.0,
                    p99_ms: None,
                    gate: None,
                },
            );
        }
    }
    for (l, v) in query(http, base, &eq).await? {
        if let Some(r) = key(&l).and_then(|k| rows.get_mut(&k)) {
            r.errors = v.round();
        }
    }
    for (l, v) in query(http, base, &pq).await? {
        if let Some(r) = key(&l).and_then(|k| rows.get_mut(&k)) {
            r.p99_ms = v.is_finite().then_some(v / 1000.0);
        }
    }
    let gates: BTreeMap<String, f64> = query(http, base, &gq)
        .await?
        .into_iter()
        .filter_map(|(l, v)| Some((l.get("canary_version")?.clone(), v)))
        .collect();
    let mut out: Vec<Row> = rows.into_values().collect();
    for r in out.iter_mut() {
        r.gate = gates.get(&r.version).map(|g| gate_label(*g));
    }
    Ok(out)
}

/// The gate state of `version` from Prometheus (worst across proxies).
pub async fn gate_from_prometheus(
    http: &Http,
    base: &str,
    version: &str,
) -> Result<Option<String>> {
    let q = format!("max by (canary_version) (canary_gate_state{{canary_version=\"{version}\"}})");
    Ok(query(http, base, &q)
        .await?
        .first()
        .map(|(_, v)| gate_label(*v)))
}

/// The gate state of `version` from sidecar scrapes (worst across pods).
pub fn gate_from_scrapes(scrapes: &[Stats], version: &str) -> Option<String> {
    gates(scrapes).get(version).map(|g| gate_label(*g))
}

pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<10} {:<10} {:>10} {:>8} {:>10} {:>9}\n",
        "VERSION", "COHORT", "REQUESTS", "ERRORS", "P99", "GATE"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<10} {:<10} {:>10} {:>8} {:>10} {:>9}\n",
            r.version,
            r.cohort,
            r.requests,
            r.error_ratio()
                .map_or("-".into(), |e| format!("{:.3}%", e * 100.0)),
            r.p99_ms.map_or("-".into(), |p| format!("{p:.1}ms")),
            r.gate.as_deref().unwrap_or("-"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_from_several_pods_add_up_and_the_worst_gate_wins() {
        let a = Stats::parse(
            "canary_requests_total{canary_version=\"v2\",canary_cohort=\"canary\",canary_code_class=\"2xx\"} 90\n\
             canary_requests_total{canary_version=\"v2\",canary_cohort=\"canary\",canary_code_class=\"5xx\"} 10\n\
             canary_errors_total{canary_version=\"v2\",canary_cohort=\"canary\",canary_error_kind=\"5xx\"} 10\n\
             canary_gate_state{canary_version=\"v2\"} 1\n",
        );
        let b = Stats::parse(
            "canary_requests_total{canary_version=\"v2\",canary_cohort=\"canary\",canary_code_class=\"2xx\"} 100\n\
             canary_gate_state{canary_version=\"v2\"} 3\n",
        );
        let rows = rows_from_scrapes(&[a.clone(), b]);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].requests, rows[0].errors), (200.0, 10.0));
        assert_eq!(rows[0].gate.as_deref(), Some("rollback"));
        assert_eq!(gate_from_scrapes(&[a], "v2").as_deref(), Some("pass"));
        assert!(table(&rows).contains("5.000%"));
    }
}
