//! The Prometheus path of `stats` and `promote`, end to end: a real Prometheus
//! (Debian's package) scrapes a real Envoy running the filter with gates.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use canary_e2e::services::Prometheus;
use canary_e2e::traffic::{steady, Population};
use canary_e2e::{Behaviour, Envoy, FilterSpec, Sidecar, Upstream};
use common::{call, run, wasmplugin};
use serde_json::{json, Value};

const WP: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/default/wasmplugins/canary";
const APPLY: &str = "?&force=true&fieldManager=canaryctl-rollout&fieldValidation=Strict";

fn plugin_config() -> Value {
    json!({
        "sticky": {"percent": 10, "salt": "prom-e2e"},
        "gates": {
            "canaryVersion": "v2", "tick": "200ms", "bucket": "1s", "minSamples": 20,
            "promotion": [{"atPercent": 10, "maxErrorPercent": 1, "maxP99": "100ms", "holdFor": "1s", "window": "5s"}],
            "rollback": [{"http5xxPercentAbove": 1, "window": "5s"}],
            "burnRate": {"windows": [{"long": "60s", "short": "5s", "factor": 14.4}]}
        }
    })
}

struct Setup {
    envoy: Envoy,
    prom: Prometheus,
    sent: usize,
    _ups: (Upstream, Upstream),
}

/// Envoy with the filter, traffic for 3 s (internal users keep the canary busy), Prometheus scraping it.
async fn setup(v2: Behaviour) -> Setup {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start_with("v2", v2).await;
    let s = Sidecar::outbound(
        FilterSpec::Canary(plugin_config().to_string()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    let envoy = Envoy::start(&s).await;
    let prom = Prometheus::start(&[envoy.admin]).await;
    let pop = Population {
        users: 300,
        internal_every: 3,
        beta_every: 0,
    };
    let sent = steady(&envoy.client(), &pop, 100.0, Duration::from_secs(3), 0)
        .await
        .len();
    // Let the gate tick and Prometheus scrape the final counters twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    Setup {
        envoy,
        prom,
        sent,
        _ups: (v1, v2),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stats_reads_requests_errors_p99_and_gates_from_prometheus() {
    let s = setup(Behaviour::default()).await;
    let out = run(
        &[
            "stats",
            "-o",
            "json",
            "--prometheus",
            &s.prom.url(),
            "--window",
            "1m",
        ],
        vec![],
    )
    .await
    .unwrap();
    let rows: Vec<Value> = match serde_json::from_str::<Value>(&out).unwrap() {
        Value::Array(a) => a,
        one => vec![one],
    };
    let total: f64 = rows.iter().map(|r| r["requests"].as_f64().unwrap()).sum();
    // increase() extrapolates at the window's edges: close to, not exactly, the traffic sent.
    assert!(
        (total - s.sent as f64).abs() <= s.sent as f64 * 0.2,
        "{total} vs {} sent: {rows:#?}",
        s.sent
    );
    let v2 = rows
        .iter()
        .find(|r| r["version"] == "v2" && r["cohort"] == "internal")
        .expect("v2 internal row");
    assert_eq!(v2["gate"], "pass");
    assert_eq!(v2["errors"], 0.0);
    assert!(v2["p99_ms"].as_f64().unwrap() > 0.0);
    // The scrape says the same as Envoy itself.
    let envoy_total = s.envoy.stats().await.sum("canary_requests_total", &[]);
    assert_eq!(envoy_total, s.sent as f64);
    let table = run(
        &["stats", "--prometheus", &s.prom.url(), "--window", "1m"],
        vec![],
    )
    .await
    .unwrap();
    assert!(table.starts_with("VERSION    COHORT"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promote_advances_on_a_passing_gate_and_refuses_a_failing_one() {
    let healthy = setup(Behaviour::default()).await;
    let out = run(
        &["promote", "--prometheus", &healthy.prom.url()],
        vec![
            call("GET", WP, 200, wasmplugin("canary", plugin_config())),
            call("PATCH", &format!("{WP}{APPLY}"), 200, wasmplugin("canary", json!({})))
                .body(|b| assert_eq!(b["spec"]["pluginConfig"]["sticky"]["percent"], 50)),
            call(
                "PATCH",
                &format!("/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews-canary{APPLY}"),
                200,
                json!({"metadata": {"name": "reviews-canary"}}),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "promoted v2 from 10 % to 50 %\n");

    let broken = setup(Behaviour {
        status: 503,
        ..Default::default()
    })
    .await;
    let err = run(
        &["promote", "--prometheus", &broken.prom.url()],
        vec![call("GET", WP, 200, wasmplugin("canary", plugin_config()))],
    )
    .await
    .unwrap_err();
    assert_eq!(err, "promotion refused: the gate for v2 at step 10 % reads rollback, not pass (re-run with --force to promote anyway)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_prometheus_is_one_clear_error() {
    let port = canary_e2e::services::free_port();
    let err = run(
        &["stats", "--prometheus", &format!("http://127.0.0.1:{port}")],
        vec![],
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with(&format!("Prometheus http://127.0.0.1:{port}: cannot connect: check --prometheus and that Prometheus is running: ")),
        "{err}"
    );
}
