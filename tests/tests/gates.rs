//! SLO gates in a real Envoy with short windows: pass, rollback with automatic
//! withdrawal of the canary cohort, the latency trigger, too little traffic,
//! and exact counts combined across two worker VMs.

use std::time::{Duration, SystemTime};

use canary_e2e::traffic::{log_time, steady, Kind, Population};
use canary_e2e::{Behaviour, Client, Envoy, FilterSpec, Req, Sidecar, Stats, Upstream};

const TICK_MS: u64 = 200;

/// These tests measure in ticks: run them one at a time, so two cores are not
/// shared by five Envoys and their traffic while a tick is being timed.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(percent: u32) -> String {
    format!(
        r#"{{
  "sticky": {{"percent": {percent}, "salt": "gates-e2e"}},
  "gates": {{
    "canaryVersion": "v2", "tick": "{TICK_MS}ms", "bucket": "1s", "minSamples": 20,
    "promotion": [{{"atPercent": 10, "maxErrorPercent": 1, "maxP99": "100ms", "max5xx": 0, "holdFor": "2s", "window": "5s"}}],
    "rollback": [
      {{"errorPercentAbove": 5, "window": "5s", "for": "1s"}},
      {{"p99Above": "200ms", "window": "5s", "for": "1s"}},
      {{"http5xxPercentAbove": 1, "window": "5s"}}
    ],
    "burnRate": {{"windows": [{{"long": "60s", "short": "5s", "factor": 14.4}}]}}
  }}
}}"#
    )
}

struct Mesh {
    envoy: Envoy,
    v1: Upstream,
    v2: Upstream,
}

async fn mesh(v2: Behaviour, concurrency: u32, plugin_config: String) -> Mesh {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start_with("v2", v2).await;
    let mut s = Sidecar::outbound(
        FilterSpec::Canary(plugin_config),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    s.concurrency = concurrency;
    Mesh {
        envoy: Envoy::start(&s).await,
        v1,
        v2,
    }
}

fn state(s: &Stats, version: &str) -> Option<f64> {
    s.matching("canary_gate_state", &[("canary_version", version)])
        .next()
        .map(|x| x.value)
}

async fn wait_for_state(envoy: &Envoy, version: &str, want: f64, within: Duration) -> Stats {
    envoy
        .stats_once_they_hold(within, |s| state(s, version) == Some(want))
        .await
}

/// The first log line containing `needle`, with its time.
fn logged(envoy: &Envoy, needle: &str) -> Option<(SystemTime, String)> {
    envoy
        .log()
        .lines()
        .find(|l| l.contains(needle))
        .map(|l| (log_time(l).unwrap(), l.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_healthy_canary_reaches_pass() {
    let _serial = SERIAL.lock().await;
    let m = mesh(Behaviour::default(), 1, config(10)).await;
    let pop = Population::regular(200);
    // Internal users reach v2 too, so the canary has enough samples at 10 %.
    let pop = Population {
        internal_every: 4,
        ..pop
    };
    let records = steady(&m.envoy.client(), &pop, 100.0, Duration::from_secs(4), 0).await;
    assert!(records.iter().all(|r| r.status == 200));
    let s = wait_for_state(&m.envoy, "v2", 1.0, Duration::from_secs(5)).await;
    assert_eq!(
        state(&s, "v2"),
        Some(1.0),
        "{:?}",
        s.matching("canary_gate_state", &[]).collect::<Vec<_>>()
    );
    assert_eq!(state(&s, "v1"), Some(1.0));
    let (_, line) = logged(&m.envoy, "canary gate v2: hold -> pass").expect("pass logged");
    assert!(line.contains("held 2s"), "{line}");
    assert!(s.sum("canary_heartbeat_timestamp_seconds", &[]) > 0.0);
    assert_eq!(s.sum("canary_gate_withdrawn", &[]), 0.0);
    assert!(m.v2.requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_canary_is_rolled_back_and_its_cohort_withdrawn_within_two_ticks() {
    let _serial = SERIAL.lock().await;
    let broken = Behaviour {
        status: 503,
        ..Default::default()
    };
    let m = mesh(broken, 2, config(50)).await;
    let pop = Population {
        users: 400,
        internal_every: 20,
        beta_every: 0,
    };
    let rate = 200.0;
    let records = steady(&m.envoy.client(), &pop, rate, Duration::from_secs(4), 0).await;

    let (fired, line) = logged(&m.envoy, "canary gate v2: ").expect("state change logged");
    assert!(line.contains("-> rollback (5xx ratio"), "{line}");
    let (withdrawn, _) =
        logged(&m.envoy, "withdrawing cohorts [\"canary\"] from v2").expect("withdrawal logged");
    assert!(withdrawn >= fired);

    let first_error = records
        .iter()
        .find(|r| r.status == 503)
        .expect("the canary failed")
        .sent;
    let canary_hits_after = |t: SystemTime| {
        records
            .iter()
            .filter(|r| {
                r.kind == Kind::Regular && r.upstream.as_deref() == Some("v2") && r.sent > t
            })
            .count()
    };
    let after_trigger = canary_hits_after(fired);
    let two_ticks = fired + Duration::from_millis(2 * TICK_MS);
    assert_eq!(
        canary_hits_after(two_ticks),
        0,
        "sticky users still reached v2 two ticks after the trigger"
    );
    let last_hit = records
        .iter()
        .filter(|r| r.kind == Kind::Regular && r.upstream.as_deref() == Some("v2"))
        .map(|r| r.sent)
        .max()
        .unwrap();
    let errors = records.iter().filter(|r| r.status >= 500).count();
    let users_hit: std::collections::BTreeSet<usize> = records
        .iter()
        .filter(|r| r.status >= 500 && r.kind == Kind::Regular)
        .map(|r| r.user)
        .collect();
    eprintln!(
        "measured at {rate} req/s, 2 workers, tick {TICK_MS} ms: first 503 -> rollback {} ms; rollback -> last sticky request on v2 {} ms; \
         {after_trigger} sticky requests reached v2 after the trigger; {errors} 5xx in total, {} regular users saw one",
        fired.duration_since(first_error).unwrap_or_default().as_millis(),
        last_hit.duration_since(fired).map_or(0, |d| d.as_millis()),
        users_hit.len()
    );

    // After the withdrawal: sticky users are on stable and the response says so;
    // internal users still reach the canary.
    let late: Vec<_> = records.iter().filter(|r| r.sent > two_ticks).collect();
    assert!(late
        .iter()
        .filter(|r| r.kind == Kind::Regular)
        .all(|r| r.upstream.as_deref() == Some("v1") && r.cohort.as_deref() == Some("stable")));
    assert!(late
        .iter()
        .filter(|r| r.kind == Kind::Internal)
        .all(|r| r.upstream.as_deref() == Some("v2")));
    let s = m.envoy.stats().await;
    assert_eq!(state(&s, "v2"), Some(3.0));
    assert_eq!(s.sum("canary_gate_withdrawn", &[]), 1.0);

    // No automatic re-entry: v2 heals, users stay out until the config changes.
    m.v2.set(Behaviour::default());
    tokio::time::sleep(Duration::from_millis(6 * TICK_MS)).await;
    let c = m.envoy.client();
    for u in 0..50 {
        let r = c.send(&pop.request(u * 20 + 1)).await;
        assert_eq!(r.upstream(), Some("v1"));
    }
    let _ = m.v1.requests();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_canary_trips_the_latency_trigger() {
    let _serial = SERIAL.lock().await;
    let slow = Behaviour {
        delay: Duration::from_millis(300),
        ..Default::default()
    };
    let m = mesh(slow, 1, config(50)).await;
    let pop = Population::regular(400);
    steady(&m.envoy.client(), &pop, 100.0, Duration::from_secs(3), 0).await;
    let s = wait_for_state(&m.envoy, "v2", 3.0, Duration::from_secs(5)).await;
    assert_eq!(state(&s, "v2"), Some(3.0));
    let (_, line) = logged(&m.envoy, "canary gate v2: hold -> rollback").expect("rollback logged");
    assert!(line.contains("-> rollback (P99"), "{line}");
    assert!(line.contains("> 200.0 ms over 5s for 1s"), "{line}");
    assert!(
        s.sum(
            "canary_gate_p99_microseconds",
            &[("canary_version", "v2"), ("canary_window", "5s")]
        ) > 200_000.0
    );
    // The fast stable version is not blamed.
    assert_eq!(state(&s, "v1"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_with_too_little_traffic_stays_unknown() {
    let _serial = SERIAL.lock().await;
    let m = mesh(Behaviour::default(), 1, config(0)).await;
    let c = m.envoy.client();
    for _ in 0..10 {
        assert_eq!(
            c.send(&Req::get("/").header("user-type", "internal"))
                .await
                .upstream(),
            Some("v2")
        );
    }
    tokio::time::sleep(Duration::from_millis(5 * TICK_MS)).await;
    let s = m.envoy.stats().await;
    assert_eq!(
        state(&s, "v2"),
        Some(0.0),
        "{:?}",
        s.matching("canary_gate_state", &[]).collect::<Vec<_>>()
    );
    assert_eq!(
        s.sum(
            "canary_gate_requests",
            &[("canary_version", "v2"), ("canary_window", "5s")]
        ),
        10.0
    );
    assert_eq!(s.sum("canary_gate_withdrawn", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_worker_vms_combine_to_exactly_the_traffic_sent() {
    let _serial = SERIAL.lock().await;
    let cfg = config(50).replace(r#""window": "5s"}}],"#, r#""window": "60s"}}],"#);
    let m = mesh(Behaviour::default(), 2, cfg).await;
    // Many connections, so both workers accept some.
    let clients: Vec<Client> = (0..8).map(|_| Client::new(m.envoy.listener)).collect();
    let pop = Population::regular(1000);
    let mut tasks = vec![];
    for (i, c) in clients.into_iter().enumerate() {
        let pop = pop.clone();
        tasks.push(tokio::spawn(async move {
            steady(&c, &pop, 50.0, Duration::from_secs(2), i * 100)
                .await
                .len()
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    assert_eq!(sent, 800);
    let workers: Vec<u64> = {
        let text = m
            .envoy
            .admin_get("/stats?filter=worker_.\\.downstream_cx_total")
            .await;
        text.lines()
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect()
    };
    assert!(
        workers.len() == 2 && workers.iter().all(|n| *n > 0),
        "both workers must serve: {workers:?}"
    );
    tokio::time::sleep(Duration::from_millis(3 * TICK_MS)).await;
    let s = m.envoy.stats().await;
    let counted = |v: &str| {
        s.sum(
            "canary_gate_requests",
            &[("canary_version", v), ("canary_window", "1m")],
        )
    };
    assert_eq!(counted("v1") as u64, m.v1.requests());
    assert_eq!(counted("v2") as u64, m.v2.requests());
    assert_eq!(counted("v1") + counted("v2"), 800.0);
}
