//! The sticky per-user canary in a real Envoy, changed live through ECDS the
//! way a WasmPlugin update reaches a sidecar.

use canary_e2e::{Envoy, FilterSpec, Req, Sidecar, Upstream};

fn config(percent: u32) -> String {
    format!(r#"{{"sticky": {{"percent": {percent}, "salt": "reviews-rollout"}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_users_keep_their_version_and_stay_in_when_the_percent_grows() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let sidecar = Sidecar::outbound(
        FilterSpec::CanaryEcds(config(10)),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    let envoy = Envoy::start(&sidecar).await;
    let c = envoy.client();

    // One user, 200 requests: always the same version.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let r = c.send(&Req::get("/").header("x-user-id", "user-7")).await;
        seen.insert(r.upstream().unwrap().to_string());
    }
    assert_eq!(seen.len(), 1, "user-7 saw {seen:?}");

    // 2,000 users at 10 %: within 3 points.
    let mut canary_at_10 = vec![];
    for i in 0..2000 {
        let id = format!("user-{i}");
        let r = c.send(&Req::get("/").header("x-user-id", &id)).await;
        let on_v2 = r.upstream() == Some("v2");
        assert_eq!(
            on_v2,
            r.header("x-canary-cohort") == Some("canary"),
            "{id}: {r:?}"
        );
        if on_v2 {
            canary_at_10.push(id);
        }
    }
    let share = canary_at_10.len() as f64 / 20.0;
    assert!(
        (7.0..=13.0).contains(&share),
        "canary share {share} % at 10 %"
    );

    // Raise to 50 % live: everyone who was in stays in, the share follows.
    envoy.update_filter(&config(50)).await.unwrap();
    let mut at_50 = 0;
    for i in 0..2000 {
        let id = format!("user-{i}");
        let r = c.send(&Req::get("/").header("x-user-id", &id)).await;
        if r.upstream() == Some("v2") {
            at_50 += 1;
        } else {
            assert!(
                !canary_at_10.contains(&id),
                "{id} left the canary when it grew to 50 %"
            );
        }
    }
    let share = at_50 as f64 / 20.0;
    assert!(
        (47.0..=53.0).contains(&share),
        "canary share {share} % at 50 %"
    );

    // Users without a key stay on stable by default.
    for _ in 0..50 {
        assert_eq!(c.get("/").await.upstream(), Some("v1"));
    }
}
