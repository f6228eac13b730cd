//! `canaryctl stats`: requests, error ratio, P99 and gate state per version ×
//! cohort, from the sidecars' own `/stats/prometheus` (cumulative since each
//! proxy started) or from a Prometheus server (over a window). Metric and
//! label names come from `canary_core`, so they cannot drift from what the
//! filter exports.

use std::collections::BTreeMap;

use canary_core::gates::engine::STATE as GATE_STATE;
use canary_core::gates::GateState;
use canary_core::metrics::{DURATION, ERRORS, REQUESTS, TAG_COHORT, TAG_VERSION};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::Http;
use crate::promtext::Stats;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    pub version: String,
    pub cohort: String,
    pub requests: f64,
    pub errors: f64,
    pub p99_ms: Option<f64>,
    #[serde(serialize_with = "gate_label")]
    pub gate: Option<GateState>,
}

fn gate_label<S: serde::Serializer>(
    g: &Option<GateState>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match g {
        Some(g) => s.serialize_str(g.label()),
        None => s.serialize_none(),
    }
}

impl Row {
    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }
}

/// The gauge's value as a state (it carries the enum's discriminant).
fn gate_of(v: f64) -> GateState {
    GateState::from_u8(v.round().clamp(0.0, 255.0) as u8)
}

/// How alarming a state is: with several proxies the worst one speaks for
/// the version, so one sidecar in rollback is enough to stop a promotion.
fn severity(g: GateState) -> u8 {
    match g {
        GateState::Rollback => 3,
        GateState::Unknown => 2,
        GateState::Hold => 1,
        GateState::Pass => 0,
    }
}

fn worst(a: GateState, b: GateState) -> GateState {
    if severity(b) > severity(a) {
        b
    } else {
        a
    }
}

/// Gate state per version from scraped gauges, worst across proxies.
fn gates(stats: &[Stats]) -> BTreeMap<String, GateState> {
    let mut out: BTreeMap<String, GateState> = BTreeMap::new();
    for s in stats {
        for x in s.matching(GATE_STATE, &[]) {
            let Some(v) = x.labels.get(TAG_VERSION) else {
                continue;
            };
            let g = gate_of(x.value);
            out.entry(v.clone())
                .and_modify(|e| *e = worst(*e, g))
                .or_insert(g);
        }
    }
    out
}

/// Rows from sidecar scrapes (summed over pods).
pub fn rows_from_scrapes(scrapes: &[Stats]) -> Vec<Row> {
    let bucket = format!("{DURATION}_bucket");
    let mut acc: BTreeMap<(String, String), (f64, f64, Stats)> = BTreeMap::new();
    for s in scrapes {
        for x in &s.samples {
            let (Some(v), Some(c)) = (x.labels.get(TAG_VERSION), x.labels.get(TAG_COHORT)) else {
                continue;
            };
            let e = acc
                .entry((v.clone(), c.clone()))
                .or_insert_with(|| (0.0, 0.0, Stats::default()));
            match x.name.as_str() {
                n if n == REQUESTS => e.0 += x.value,
                n if n == ERRORS => e.1 += x.value,
                n if n == bucket => e.2.samples.push(x.clone()),
                _ => {}
            }
        }
    }
    let gates = gates(scrapes);
    acc.into_iter()
        .map(|((version, cohort), (requests, errors, hist))| Row {
            p99_ms: hist
                .quantile_bucket(DURATION, &[], 0.99)
                .map(|us| us / 1000.0),
            gate: gates.get(&version).copied(),
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
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let fail = |message: String, source: Option<reqwest::Error>| Error::Prometheus {
        url: base.to_string(),
        message,
        source,
    };
    let sent = http
        .client
        .get(&url)
        .query(&[("query", promql)])
        .send()
        .await;
    let body = match sent {
        Ok(r) => r.bytes().await,
        Err(e) => Err(e),
    };
    let body = body.map_err(|e| {
        if e.is_timeout() {
            Error::PrometheusTimeout {
                url: base.to_string(),
                after: http.timeout,
            }
        } else if e.is_connect() {
            fail(
                "cannot connect: check --prometheus and that Prometheus is running".into(),
                Some(e.without_url()),
            )
        } else {
            fail("cannot query".into(), Some(e.without_url()))
        }
    })?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| fail(format!("the answer is not Prometheus' JSON: {e}"), None))?;
    if v["status"] != "success" {
        return Err(fail(
            format!(
                "{} for `{promql}`",
                v["error"].as_str().unwrap_or("query failed")
            ),
            None,
        ));
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
    let by = format!("{TAG_VERSION}, {TAG_COHORT}");
    [
        format!("sum by ({by}) (increase({REQUESTS}[{window}]))"),
        format!("sum by ({by}) (increase({ERRORS}[{window}]))"),
        format!("histogram_quantile(0.99, sum by ({by}, le) (rate({DURATION}_bucket[{window}])))"),
        format!("max by ({TAG_VERSION}) ({GATE_STATE})"),
    ]
}

/// Rows from a Prometheus server over `window`.
pub async fn rows_from_prometheus(http: &Http, base: &str, window: &str) -> Result<Vec<Row>> {
    let [rq, eq, pq, gq] = queries(window);
    let key = |l: &BTreeMap<String, String>| -> Option<(String, String)> {
        Some((l.get(TAG_VERSION)?.clone(), l.get(TAG_COHORT)?.clone()))
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
    let gates: BTreeMap<String, GateState> = query(http, base, &gq)
        .await?
        .into_iter()
        .filter_map(|(l, v)| Some((l.get(TAG_VERSION)?.clone(), gate_of(v))))
        .collect();
    let mut out: Vec<Row> = rows.into_values().collect();
    for r in out.iter_mut() {
        r.gate = gates.get(&r.version).copied();
    }
    Ok(out)
}

/// The gate state of `version` from Prometheus (the highest gauge value
/// across proxies: rollback is the highest).
pub async fn gate_from_prometheus(
    http: &Http,
    base: &str,
    version: &str,
) -> Result<Option<GateState>> {
    let q = format!("max by ({TAG_VERSION}) ({GATE_STATE}{{{TAG_VERSION}=\"{version}\"}})");
    Ok(query(http, base, &q)
        .await?
        .first()
        .map(|(_, v)| gate_of(*v)))
}

/// The gate state of `version` from sidecar scrapes (worst across pods).
pub fn gate_from_scrapes(scrapes: &[Stats], version: &str) -> Option<GateState> {
    gates(scrapes).get(version).copied()
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
            r.gate.map_or("-", GateState::label),
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
        assert_eq!(rows[0].gate, Some(GateState::Rollback));
        assert_eq!(gate_from_scrapes(&[a], "v2"), Some(GateState::Pass));
        assert!(table(&rows).contains("5.000%"));
    }

    #[test]
    fn an_unknown_gate_outranks_pass_and_hold() {
        assert_eq!(
            worst(GateState::Pass, GateState::Unknown),
            GateState::Unknown
        );
        assert_eq!(worst(GateState::Hold, GateState::Pass), GateState::Hold);
        assert_eq!(
            worst(GateState::Rollback, GateState::Unknown),
            GateState::Rollback
        );
    }
}
