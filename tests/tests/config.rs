//! Strict config in a real Envoy: a bad pluginConfig is refused with the field
//! named, and a bad live update loses nothing — the old config keeps serving.

use canary_e2e::{Envoy, FilterSpec, Req, Sidecar, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_at_start_with_the_field_named() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let cases = [
        (
            r#"{"sticky": {"percent": 120}}"#,
            "pluginConfig field `sticky.percent`: 120 is outside 0-100",
        ),
        (
            r#"{"cohort": []}"#,
            "pluginConfig field `cohort`: unknown field `cohort`",
        ),
        (
            r#"{"cohorts": [{"name": "beta", "match": [{"header": "a", "present": true}]}, {"name": "beta", "match": [{"header": "b", "present": true}]}]}"#,
            "pluginConfig field `cohorts[1].name`: duplicate cohort \"beta\"",
        ),
        (
            r#"{"sticky": {"percent": "ten"}}"#,
            "pluginConfig field `sticky.percent`: invalid type",
        ),
    ];
    for (cfg, expected) in cases {
        let sidecar = Sidecar::outbound(
            FilterSpec::Canary(cfg.into()),
            &[("v1", v1.addr), ("v2", v2.addr)],
            &[("v1", 100)],
        );
        let log = match Envoy::try_start(&sidecar).await {
            Ok(_) => panic!("Envoy accepted {cfg}"),
            Err(log) => log,
        };
        assert!(
            log.contains(expected),
            "no `{expected}` in the log for {cfg}:\n{log}"
        );
        assert!(!log.contains("panicked"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_live_update_keeps_the_previous_config_serving() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let good = r#"{"cohorts": [{"name": "qa", "match": [{"header": "x-qa", "exact": "1"}]}]}"#;
    let sidecar = Sidecar::outbound(
        FilterSpec::CanaryEcds(good.into()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100)],
    );
    let mut sidecar = sidecar;
    sidecar
        .routes
        .insert(0, canary_e2e::Route::cohort("qa", "v2"));
    let envoy = Envoy::start(&sidecar).await;
    let c = envoy.client();
    assert_eq!(
        c.send(&Req::get("/").header("x-qa", "1")).await.upstream(),
        Some("v2")
    );

    let log = envoy
        .update_filter(r#"{"sticky": {"percent": -5}}"#)
        .await
        .unwrap_err();
    assert!(
        log.contains("pluginConfig field `sticky.percent`: -5 is outside 0-100"),
        "{log}"
    );
    for _ in 0..20 {
        let r = c.send(&Req::get("/").header("x-qa", "1")).await;
        assert_eq!((r.status, r.upstream()), (200, Some("v2")));
    }
    assert_eq!(c.get("/").await.upstream(), Some("v1"));
}
