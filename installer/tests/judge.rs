//! `canaryctl judge` and the fleet check of `promote --prometheus`, against a
//! stand-in Prometheus that answers every range query with canned series
//! (one step a minute, summed over all pods), so each verdict is known.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use canary_core::metrics::{DURATION, ERRORS, REQUESTS};
use common::{call, promote_to_50, run, wasmplugin};
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const WP: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/default/wasmplugins/canary";

/// One version's traffic: `per_step` requests a minute on each of its pods
/// for an hour, one error in `error_every`, one request in `slow_every`
/// above 10 ms. Each pod is scraped from minute `start` (fresh, its counters
/// at 0) to minute `end`, after which its series ends (the pod is gone).
#[derive(Clone, Copy)]
struct Traffic {
    per_step: f64,
    error_every: f64,
    slow_every: f64,
    pods: &'static [(usize, usize)],
}

const STEPS: usize = 60;
const ONE_POD: &[(usize, usize)] = &[(0, STEPS)];

/// A `query_range` answer with one series per `(labels, points)`, a point
/// being `(minute, value)`.
fn matrix(series: Vec<(Value, Vec<(usize, f64)>)>) -> Value {
    let result: Vec<Value> = series
        .into_iter()
        .map(|(labels, points)| {
            let values: Vec<Value> = points
                .iter()
                .map(|(i, v)| json!([1_700_000_000 + 60 * *i as i64, v.to_string()]))
                .collect();
            json!({"metric": labels, "values": values})
        })
        .collect();
    json!({"status": "success", "data": {"resultType": "matrix", "result": result}})
}

/// What Prometheus would answer to `promql` about a version with `t`: one
/// series per pod (and `le`), or, for a `sum`, their sum at each minute
/// some pod is scraped.
fn answer(promql: &str, t: Traffic) -> Value {
    // Cumulative (requests, errors, under 10 ms) of one pod, minute by minute.
    let pod = |(start, end): (usize, usize)| -> Vec<(usize, [f64; 3])> {
        (start..=end)
            .map(|i| {
                let r = (i - start) as f64 * t.per_step;
                let e = (r / t.error_every).floor();
                (i, [r, e, r - (r / t.slow_every).floor()])
            })
            .collect()
    };
    // (labels, points) per pod and reading: 0 requests, 1 errors, 2 under 10 ms.
    let per_pod = |what: usize, extra: Value| -> Vec<(Value, Vec<(usize, f64)>)> {
        t.pods
            .iter()
            .enumerate()
            .map(|(n, p)| {
                let mut labels = json!({"pod": format!("reviews-{n}")});
                if let (Some(l), Some(e)) = (labels.as_object_mut(), extra.as_object()) {
                    l.extend(e.clone());
                }
                (
                    labels,
                    pod(*p).into_iter().map(|(i, v)| (i, v[what])).collect(),
                )
            })
            .collect()
    };
    let series = if promql.contains(&format!("{DURATION}_bucket")) {
        let mut s = per_pod(2, json!({"le": "10000"}));
        s.extend(per_pod(0, json!({"le": "100000"})));
        s.extend(per_pod(0, json!({"le": "+Inf"})));
        s
    } else if promql.contains(ERRORS) {
        per_pod(1, json!({}))
    } else if promql.contains(REQUESTS) {
        per_pod(0, json!({}))
    } else {
        // The gate's instant query: pass (1) for every version.
        return json!({"status": "success", "data": {"resultType": "vector",
               "result": [{"metric": {"canary_version": "v2"}, "value": [1_700_003_600, "1"]}]}});
    };
    if !promql.starts_with("sum") {
        return matrix(series);
    }
    // The sum over pods by `le` (or of everything), at each minute.
    let mut sums: std::collections::BTreeMap<String, std::collections::BTreeMap<usize, f64>> =
        Default::default();
    for (labels, points) in series {
        let le = labels["le"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_default();
        for (i, v) in points {
            *sums.entry(le.clone()).or_default().entry(i).or_default() += v;
        }
    }
    matrix(
        sums.into_iter()
            .map(|(le, points)| {
                let labels = if le.is_empty() {
                    json!({})
                } else {
                    json!({ "le": le })
                };
                (labels, points.into_iter().collect())
            })
            .collect(),
    )
}

/// The query parameter of a request URI, percent-decoded ('+' is a space).
fn promql(uri: &hyper::Uri) -> String {
    let raw = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("query="))
        .unwrap_or_default();
    let bytes = raw.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A stand-in Prometheus: v1 (the baseline) and v2 (the canary) send `v1`
/// and `v2`; every query is answered from them.
async fn prometheus(v1: Traffic, v2: Traffic) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: Request<hyper::body::Incoming>| async move {
                        let q = promql(req.uri());
                        let t = if q.contains(r#"canary_version="v2""#) {
                            v2
                        } else {
                            v1
                        };
                        let body = serde_json::to_vec(&answer(&q, t)).unwrap();
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// 10,000 requests a minute on the baseline, 0.01 % errors, 1 % slow.
const BASELINE: Traffic = Traffic {
    per_step: 10_000.0,
    error_every: 10_000.0,
    slow_every: 100.0,
    pods: ONE_POD,
};

/// The canary at a fifth of the traffic and 0.15 % errors: under a 0.2 %
/// rollback trigger, 15 times the baseline's.
const SUBTLE: Traffic = Traffic {
    per_step: 2_000.0,
    error_every: 667.0,
    ..BASELINE
};

/// A baseline at 1 % errors, and a canary at a fifth of its traffic that
/// behaves the same: an hour of it shows the canary not worse on every
/// metric (at 0.01 % errors, an hour is too few errors to show it).
const BASELINE_1PC: Traffic = Traffic {
    error_every: 100.0,
    ..BASELINE
};
const SAME: Traffic = Traffic {
    per_step: 2_000.0,
    ..BASELINE_1PC
};

fn plugin_config() -> Value {
    json!({
        "sticky": {"percent": 10, "salt": "judge"},
        "gates": {"canaryVersion": "v2", "judgment": {}}
    })
}

#[tokio::test]
async fn judge_withdraws_a_subtle_regression_over_the_fleet() {
    let prom = prometheus(BASELINE, SUBTLE).await;
    let out = run(
        &["judge", "--prometheus", &format!("http://{prom}")],
        vec![],
    )
    .await
    .unwrap();
    assert!(out.starts_with("v2 against v1\nMETRIC"), "{out}");
    assert!(out.contains("\nerrors         worse"), "{out}");
    assert!(
        out.ends_with("decision: withdraw (canary significantly worse than baseline: errors)\n"),
        "{out}"
    );
}

#[tokio::test]
async fn judge_prints_not_worse_verdicts_and_promote_as_json() {
    let prom = prometheus(BASELINE_1PC, SAME).await;
    let out = run(
        &[
            "judge",
            "--prometheus",
            &format!("http://{prom}"),
            "-o",
            "json",
        ],
        vec![],
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "promote", "{v:#}");
    assert_eq!(
        (v["canary"].as_str(), v["baseline"].as_str()),
        (Some("v2"), Some("v1"))
    );
    let metrics = v["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 3);
    for m in metrics {
        assert_eq!(m["verdict"], "not-worse", "{m:#}");
    }
    // Every request of the hour, summed over the steps.
    assert_eq!(metrics[0]["metric"], "errors");
    assert_eq!(metrics[0]["canary_samples"], 2_000 * STEPS as u64);
    assert_eq!(metrics[0]["baseline_samples"], 10_000 * STEPS as u64);
}

#[tokio::test]
async fn judge_takes_the_baseline_and_settings_from_a_config_file() {
    let prom = prometheus(BASELINE, SUBTLE).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    // A margin of 20x: the canary's 15x is not worse by it.
    let config = json!({"gates": {"canaryVersion": "v2",
        "judgment": {"baselineVersion": "v0", "errors": {"margin": 20}}}});
    std::fs::write(&path, config.to_string()).unwrap();
    let out = run(
        &[
            "judge",
            "--prometheus",
            &format!("http://{prom}"),
            "--config",
            path.to_str().unwrap(),
            "-o",
            "json",
        ],
        vec![],
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["baseline"], "v0");
    assert_ne!(v["metrics"][0]["verdict"], "worse", "{v:#}");
}

#[tokio::test]
async fn promote_refuses_unless_the_fleet_judge_reads_promote() {
    let prom = prometheus(BASELINE, SUBTLE).await;
    let err = run(
        &["promote", "--prometheus", &format!("http://{prom}")],
        vec![call("GET", WP, 200, wasmplugin("canary", plugin_config()))],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        "promotion refused: the fleet judge reads withdraw for v2 against v1, not promote: \
         canary significantly worse than baseline: errors (re-run with --force to promote anyway)"
    );

    let prom = prometheus(BASELINE_1PC, SAME).await;
    let out = run(
        &["promote", "--prometheus", &format!("http://{prom}")],
        promote_to_50(plugin_config()),
    )
    .await
    .unwrap();
    assert_eq!(out, "promoted v2 from 10 % to 50 %\n");
}

#[tokio::test]
async fn a_forced_promote_says_what_the_fleet_judge_read() {
    let prom = prometheus(BASELINE, SUBTLE).await;
    let out = run(
        &[
            "promote",
            "--force",
            "--prometheus",
            &format!("http://{prom}"),
        ],
        promote_to_50(plugin_config()),
    )
    .await
    .unwrap();
    assert!(
        out.starts_with("forced past: the fleet judge reads withdraw for v2 against v1"),
        "{out}"
    );
    assert!(out.ends_with("promoted v2 from 10 % to 50 %\n"), "{out}");
}

#[tokio::test]
async fn a_pod_leaving_or_joining_mid_hour_neither_subtracts_nor_double_counts() {
    // The canary on three pods of 1,000 requests a minute: one for the whole
    // hour, one gone after minute 30, one started at minute 40.
    let canary = Traffic {
        per_step: 1_000.0,
        pods: &[(0, STEPS), (0, 30), (40, STEPS)],
        ..SAME
    };
    let prom = prometheus(BASELINE_1PC, canary).await;
    let out = run(
        &[
            "judge",
            "--prometheus",
            &format!("http://{prom}"),
            "-o",
            "json",
        ],
        vec![],
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    // Each pod's own increase, summed: 60 + 30 + 20 minutes of 1,000.
    assert_eq!(v["metrics"][0]["canary_samples"], 110_000, "{v:#}");
    assert_eq!(v["metrics"][0]["baseline_samples"], 10_000 * STEPS as u64);
    assert_eq!(v["decision"], "promote", "{v:#}");
}
