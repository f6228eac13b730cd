//! The version label cap on a real Envoy holds for the proxy, not per VM or
//! per configuration: through many ECDS updates, each naming a new version,
//! with two workers serving, the stats never carry more than 16 version labels
//! plus `other`, and every request is counted under one of them.

use std::collections::BTreeSet;
use std::time::Duration;

use canary_core::labels::MAX_VERSIONS;
use canary_e2e::client::raw_http1;
use canary_e2e::{Envoy, FilterSpec, Sidecar, Stats, Upstream};

/// A SERVER-mode config whose own version is `version`, gates on.
fn config(version: &str) -> String {
    format!(
        r#"{{"version": {{"value": "{version}"}},
            "gates": {{"canaryVersion": "v2", "tick": "200ms"}}}}"#
    )
}

fn version_labels(s: &Stats) -> BTreeSet<String> {
    s.samples
        .iter()
        .filter(|x| x.name.starts_with("canary_"))
        .filter_map(|x| x.labels.get("canary_version").cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecds_updates_naming_new_versions_never_raise_the_label_count_past_the_cap() {
    let app = Upstream::start("app").await;
    let mut sidecar = Sidecar::inbound(FilterSpec::CanaryEcds(config("v0")), app.addr, "v0");
    sidecar.concurrency = 2;
    let envoy = Envoy::start(&sidecar).await;
    const UPDATES: usize = 24;
    const PER_UPDATE: usize = 6;
    for n in 0..UPDATES {
        if n > 0 {
            envoy
                .update_filter(&config(&format!("v{n}")))
                .await
                .unwrap();
        }
        // New connections, so both workers' VMs meet the version.
        for _ in 0..PER_UPDATE {
            let r = raw_http1(envoy.listener, None, &[]).await.unwrap();
            assert_eq!(r.status, 200);
        }
    }
    let sent = (UPDATES * PER_UPDATE) as f64;
    let s = envoy
        .stats_once_they_hold(Duration::from_secs(2), |s| {
            s.sum("canary_requests_total", &[]) >= sent
        })
        .await;
    // Two workers really served, so two VMs had the chance to admit labels.
    let workers = envoy
        .admin_get("/stats?filter=worker_..downstream_cx_total")
        .await;
    let served = workers
        .lines()
        .filter(|l| l.contains("listener.127.0.0.1_") && !l.ends_with(": 0"))
        .count();
    assert_eq!(served, 2, "{workers}");

    assert_eq!(s.sum("canary_requests_total", &[]), sent);
    let labels = version_labels(&s);
    assert_eq!(labels.len(), MAX_VERSIONS + 1, "{labels:?}");
    assert!(labels.contains("other"));
    // The first 16 versions met keep their names; every later one is `other`.
    for n in 0..MAX_VERSIONS {
        assert!(labels.contains(&format!("v{n}")), "v{n} in {labels:?}");
    }
    let other = s.sum("canary_requests_total", &[("canary_version", "other")]);
    assert_eq!(other, ((UPDATES - MAX_VERSIONS) * PER_UPDATE) as f64);
}
