//! SLO metrics in a real Envoy: every counter equals the traffic sent, with
//! real Prometheus labels, and outcomes are classified at end of stream.

use std::time::Duration;

use canary_e2e::{Behaviour, Client, Envoy, FilterSpec, Req, Sidecar, Stats, Upstream};

const REQ: &str = "canary_requests_total";
const ERR: &str = "canary_errors_total";
const DUR: &str = "canary_request_duration_microseconds";

/// The productpage sidecar for `reviews` v1/v2 with `plugin_config`, stable weights.
fn reviews(plugin_config: &str, v1: &Upstream, v2: &Upstream) -> Sidecar {
    Sidecar::outbound(
        FilterSpec::Canary(plugin_config.into()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    )
}

async fn stats_after(envoy: &Envoy, expected_requests: f64) -> Stats {
    // The filter counts at the stream's end, after the response is sent, and
    // histograms are merged at the next stats flush: wait for both.
    envoy
        .stats_once_they_hold(Duration::from_secs(2), |s| {
            s.sum(REQ, &[]) >= expected_requests
                && s.sum(&format!("{DUR}_count"), &[]) >= expected_requests
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_equals_the_traffic_sent_with_labels() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let cfg = r#"{"sticky": {"percent": 50}}"#;
    let sidecar = reviews(cfg, &v1, &v2);
    let envoy = Envoy::start(&sidecar).await;
    let c = envoy.client();

    // 30 internal (v2), 20 beta of which 5 get a 503 from v2, 40 plain (v1)
    // with 4 answered 404, and sticky users split by the filter.
    for _ in 0..30 {
        c.send(&Req::get("/").header("user-type", "internal")).await;
    }
    for i in 0..20 {
        let mut r = Req::get("/").header("beta-user", "true");
        if i % 4 == 0 {
            r = r.header("x-test-status", "503");
        }
        c.send(&r).await;
    }
    for i in 0..40 {
        let mut r = Req::get("/");
        if i % 10 == 0 {
            r = r.header("x-test-status", "404");
        }
        c.send(&r).await;
    }
    let mut canary = 0.0;
    for i in 0..100 {
        let r = c
            .send(&Req::get("/").header("x-user-id", format!("u{i}")))
            .await;
        if r.header("x-canary-cohort") == Some("canary") {
            canary += 1.0;
            assert_eq!(r.upstream(), Some("v2"));
        }
    }

    let s = stats_after(&envoy, 190.0).await;
    let n = |version: &str, cohort: &str, class: &str| {
        s.sum(
            REQ,
            &[
                ("canary_version", version),
                ("canary_cohort", cohort),
                ("canary_code_class", class),
            ],
        )
    };
    assert_eq!(n("v2", "internal", "2xx"), 30.0);
    assert_eq!(n("v2", "beta", "2xx"), 15.0);
    assert_eq!(n("v2", "beta", "5xx"), 5.0);
    assert_eq!(n("v1", "stable", "2xx"), 36.0 + (100.0 - canary));
    assert_eq!(n("v1", "stable", "4xx"), 4.0);
    assert_eq!(n("v2", "canary", "2xx"), canary);
    assert_eq!(s.sum(REQ, &[]), 190.0);
    assert_eq!(
        s.sum(
            ERR,
            &[
                ("canary_version", "v2"),
                ("canary_cohort", "beta"),
                ("canary_error_kind", "5xx")
            ]
        ),
        5.0
    );
    assert_eq!(s.sum(ERR, &[]), 5.0);
    // One histogram series per version x cohort, counting every request.
    assert_eq!(s.sum(&format!("{DUR}_count"), &[]), 190.0);
    assert_eq!(
        s.sum(
            &format!("{DUR}_count"),
            &[("canary_version", "v2"), ("canary_cohort", "internal")]
        ),
        30.0
    );
    // Microsecond buckets from the shipped stats config: a loopback request
    // finishes under 100 ms, and the first bucket is 100 us.
    let p50 = s
        .quantile_bucket(DUR, &[("canary_version", "v1")], 0.5)
        .unwrap();
    assert!(p50 <= 100_000.0, "median bucket {p50} us");
    assert!(s
        .matching(&format!("{DUR}_bucket"), &[("le", "100")])
        .next()
        .is_some());
    // Labels are real: no tag syntax leaks into names.
    assert!(
        s.samples.iter().all(|x| !x.name.contains("=.=")),
        "tag left in a name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_headers_are_stamped_on_responses() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start_with(
        "v2",
        Behaviour {
            delay: Duration::from_millis(30),
            ..Default::default()
        },
    )
    .await;
    // `server-timing` is opt-in; the other two are on by default.
    let timed = r#"{"responseHeaders": {"serverTiming": true}}"#;
    let sidecar = reviews(timed, &v1, &v2);
    let envoy = Envoy::start(&sidecar).await;
    let r = envoy
        .client()
        .send(&Req::get("/").header("beta-user", "true"))
        .await;
    assert_eq!(r.header("x-canary-version"), Some("v2"));
    assert_eq!(r.header("x-canary-cohort"), Some("beta"));
    let timing = r.header("server-timing").unwrap();
    let ms: f64 = timing
        .strip_prefix("upstream;dur=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((30.0..5000.0).contains(&ms), "{timing}");

    // Without `serverTiming`, no timing leaves the proxy.
    let off = r#"{"responseHeaders": {"version": false, "cohort": "x-cohort"}}"#;
    let sidecar = reviews(off, &v1, &v2);
    let envoy = Envoy::start(&sidecar).await;
    let r = envoy.client().get("/").await;
    assert_eq!(r.header("x-canary-version"), None);
    assert_eq!(r.header("server-timing"), None);
    assert_eq!(r.header("x-cohort"), Some("stable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_errors_in_trailers_resets_timeouts_and_local_replies_are_errors() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let mut sidecar = reviews("", &v1, &v2);
    sidecar.http2_upstream = true;
    sidecar.route_timeout_ms = 300;
    let envoy = Envoy::start(&sidecar).await;
    let c = Client::http2(envoy.listener);

    let ok = c
        .send(&Req::get("/").header("x-test-grpc-status", "0"))
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.trailers.as_ref().unwrap()["grpc-status"], "0");
    let unavailable = c
        .send(&Req::get("/").header("x-test-grpc-status", "14"))
        .await;
    assert_eq!(unavailable.status, 200);
    assert_eq!(unavailable.trailers.as_ref().unwrap()["grpc-status"], "14");
    let trailers_only = c
        .send(&Req::get("/").header("x-test-grpc-trailers-only", "13"))
        .await;
    assert_eq!(
        (trailers_only.status, trailers_only.header("grpc-status")),
        (200, Some("13"))
    );
    let reset = c.send(&Req::get("/").header("x-test-reset", "1")).await;
    assert_eq!(reset.status, 503);
    let slow = c
        .send(&Req::get("/").header("x-test-delay-ms", "2000"))
        .await;
    assert_eq!(slow.status, 504);
    // The upstream answers 503 itself: an upstream 5xx, not a local reply.
    c.send(&Req::get("/").header("x-test-status", "503")).await;

    // v2's endpoint gone: Envoy answers 503 itself (connection failure → reset).
    drop(v2);
    let r = c.send(&Req::get("/").header("user-type", "internal")).await;
    assert_eq!(r.status, 503);

    let s = stats_after(&envoy, 7.0).await;
    let e = |kind: &str| s.sum(ERR, &[("canary_error_kind", kind)]);
    assert_eq!(
        e("grpc"),
        2.0,
        "{:?}",
        s.matching(ERR, &[]).collect::<Vec<_>>()
    );
    assert_eq!(e("reset"), 2.0);
    assert_eq!(e("timeout"), 1.0);
    assert_eq!(e("5xx"), 1.0);
    assert_eq!(s.sum(ERR, &[]), 6.0);
    assert_eq!(s.sum(REQ, &[]), 7.0);
    assert_eq!(s.sum(REQ, &[("canary_code_class", "2xx")]), 3.0);
    assert_eq!(
        s.sum(
            ERR,
            &[("canary_version", "v2"), ("canary_cohort", "internal")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_reply_without_an_upstream_counts_as_local() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let mut sidecar = reviews("", &v1, &v2);
    // A circuit breaker that admits nothing: Envoy answers 503 (overflow) itself.
    sidecar.cluster_extra = serde_json::json!({"circuit_breakers": {"thresholds": [{"max_requests": 0, "max_pending_requests": 0, "max_connections": 0}]}});
    let envoy = Envoy::start(&sidecar).await;
    let r = envoy.client().get("/").await;
    assert_eq!(r.status, 503);
    let s = stats_after(&envoy, 1.0).await;
    assert_eq!(
        s.sum(
            ERR,
            &[("canary_error_kind", "local"), ("canary_version", "v1")]
        ),
        1.0,
        "{:?}",
        s.matching(ERR, &[]).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_mode_reports_the_pods_own_version_label() {
    let app = Upstream::start("v2").await;
    let sidecar = Sidecar::inbound(FilterSpec::Canary(String::new()), app.addr, "v2");
    let envoy = Envoy::start(&sidecar).await;
    let r = envoy
        .client()
        .send(&Req::get("/").header("beta-user", "true"))
        .await;
    assert_eq!(r.header("x-canary-version"), Some("v2"));
    assert_eq!(r.header("x-canary-cohort"), Some("beta"));
    let s = stats_after(&envoy, 1.0).await;
    assert_eq!(
        s.sum(REQ, &[("canary_version", "v2"), ("canary_cohort", "beta")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_off_after_its_headers_counts_as_a_reset() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let sidecar = reviews("", &v1, &v2);
    let envoy = Envoy::start(&sidecar).await;
    let c = envoy.client();
    // The status line is already out when the upstream dies: the client sees
    // 200 and then a broken body.
    let cut = c
        .try_send(&Req::get("/").header("x-test-reset-after-headers", "1"))
        .await;
    assert!(
        cut.is_err(),
        "the client should see a truncated body: {cut:?}"
    );
    // A normal request still counts as fine.
    assert_eq!(c.get("/").await.status, 200);
    let s = stats_after(&envoy, 2.0).await;
    assert_eq!(
        s.sum(ERR, &[("canary_error_kind", "reset")]),
        1.0,
        "{:?}",
        s.matching(ERR, &[]).collect::<Vec<_>>()
    );
    assert_eq!(s.sum(ERR, &[]), 1.0);
    assert_eq!(s.sum(REQ, &[("canary_code_class", "2xx")]), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_held_for_the_tick_survive_an_update_that_stops_the_tick() {
    // Counter bumps wait in the VM for the next tick. Gates tick once a
    // minute here, so none comes during the test; the update turns metrics
    // and gates off and stops the tick: the bumps must land all the same.
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let slow = r#"{"gates": {"canaryVersion": "v2", "tick": "1m", "bucket": "1m"}}"#;
    let mut sidecar = reviews(slow, &v1, &v2);
    sidecar.filter = FilterSpec::CanaryEcds(slow.into());
    let envoy = Envoy::start(&sidecar).await;
    let c = envoy.client();
    for _ in 0..25 {
        assert_eq!(c.send(&Req::get("/")).await.status, 200);
    }
    envoy
        .update_filter(r#"{"metrics": {"enabled": false}}"#)
        .await
        .unwrap();
    // Well past the old tick: nothing is still on its way.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(envoy.stats().await.sum(REQ, &[]), 25.0);
}
