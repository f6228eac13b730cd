//! Gate logic under a fake clock: windows, quantiles, burn rates, triggers,
//! promotion, shared state and withdrawal.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::engine::Engine;
use super::eval::{evaluate, GateState, Timers};
use super::shared::{Pair, SharedState};
use super::window::{Counts, Outcome, Ring};
use crate::config::gates::{Condition, Gates};
use crate::config::{Cohort, Config};
use crate::judge::ratio::Above;
use crate::judge::Verdict;
use crate::outcome::ErrorKind;
use crate::testing::{FakeMetrics, FakeStore};

pub(super) fn gates(json: &str) -> Gates {
    let cfg = Config::from_json(format!(r#"{{"gates": {json}}}"#).as_bytes()).unwrap();
    cfg.gates.unwrap()
}

pub(super) fn gate_err(json: &str) -> String {
    Config::from_json(format!(r#"{{"gates": {json}}}"#).as_bytes())
        .unwrap_err()
        .field()
        .to_string()
}

/// Short windows: 1 s buckets, trigger windows 10 s, promotion 10 s.
const FAST: &str = r#"{
  "canaryVersion": "v2", "tick": "1s", "bucket": "1s", "minSamples": 10,
  "promotion": [{"atPercent": 10, "maxErrorPercent": 1, "maxP99": "50ms", "max5xx": 0, "holdFor": "5s", "window": "10s"}],
  "rollback": [
    {"errorPercentAbove": 20, "window": "10s", "for": "3s"},
    {"p99Above": "200ms", "window": "10s", "for": "2s"},
    {"http5xxPercentAbove": 50, "window": "10s"}
  ],
  "burnRate": {"windows": [{"long": "60s", "short": "10s", "factor": 100}], "rollback": false}
}"#;

const OK: Outcome = Outcome {
    error: None,
    status_5xx: false,
    latency_us: 1_000,
};
const ERR5XX: Outcome = Outcome {
    error: Some(ErrorKind::Http5xx),
    status_5xx: true,
    latency_us: 1_000,
};
const GRPC: Outcome = Outcome {
    error: Some(ErrorKind::Grpc),
    status_5xx: false,
    latency_us: 1_000,
};

struct Version {
    fine: Ring,
    burn: Ring<Counts>,
    timers: Timers,
}

impl Version {
    fn new(g: &Gates) -> Self {
        Version {
            fine: Ring::new(g.bucket_ms, g.fine_len),
            burn: Ring::new(g.burn_width_ms, g.burn_len),
            timers: Timers::default(),
        }
    }

    fn add(&mut self, g: &Gates, now_ms: u64, o: Outcome, n: u32) {
        let fb = now_ms / g.bucket_ms;
        for _ in 0..n {
            self.fine.cell_mut(fb).unwrap().record(o);
        }
        let counts = Counts {
            requests: n,
            errors: if o.error.is_some() { n } else { 0 },
        };
        self.burn.add(now_ms / g.burn_width_ms, &counts);
    }

    fn eval(&mut self, g: &Gates, step_bp: u32, now_ms: u64) -> GateState {
        self.fine.advance(now_ms / g.bucket_ms);
        self.burn.advance(now_ms / g.burn_width_ms);
        evaluate(g, step_bp, &self.fine, &self.burn, now_ms, &mut self.timers).state
    }
}

#[test]
fn the_module_numbers_are_the_defaults() {
    let g = gates("{}");
    assert_eq!(g.canary_version, None);
    assert!((g.budget - 0.001).abs() < 1e-12);
    assert_eq!(g.objective_p99_us, 100_000.0);
    assert_eq!(g.promotion.len(), 2);
    let p10 = g.promotion_for(1000);
    assert_eq!(
        (p10.at_bp, p10.max_5xx, p10.hold_ms),
        (1000, Some(0), 15 * 60_000)
    );
    assert!((p10.max_error_ratio - 0.0005).abs() < 1e-12);
    assert_eq!(p10.max_p99_us, 50_000.0);
    let p50 = g.promotion_for(5000);
    assert_eq!((p50.hold_ms, p50.max_p99_us), (30 * 60_000, 100_000.0));
    assert!((p50.max_error_ratio - 0.001).abs() < 1e-12);
    assert_eq!(g.promotion_for(7500).at_bp, 5000);
    assert_eq!(
        g.promotion_for(0).hold_ms,
        0,
        "below every step: objectives"
    );
    assert_eq!(g.triggers[0].condition, Condition::ErrorRatioAbove(0.002));
    assert_eq!(g.triggers[0].for_ms, 5 * 60_000);
    assert_eq!(g.triggers[1].condition, Condition::P99Above(200_000.0));
    assert_eq!(g.triggers[1].for_ms, 3 * 60_000);
    assert_eq!(
        g.triggers[2].condition,
        Condition::Status5xxRatioAbove(0.01)
    );
    assert_eq!(g.triggers[2].for_ms, 0);
    assert_eq!(g.triggers[3].condition, Condition::ErrorRatioAbove(0.05));
    assert_eq!((g.triggers[3].for_ms, g.triggers.len()), (0, 4));
    assert_eq!(
        (g.burn[0].long_ms, g.burn[0].short_ms, g.burn[0].factor),
        (3_600_000, 300_000, 14.4)
    );
    assert_eq!(
        (g.burn[1].long_ms, g.burn[1].short_ms, g.burn[1].factor),
        (21_600_000, 1_800_000, 6.0)
    );
    assert_eq!((g.burn_width_ms, g.burn_len), (60_000, 360));
    assert_eq!((g.bucket_ms, g.fine_len), (10_000, 30));
    assert_eq!(g.withdraw, vec![Cohort::CANARY]);
    let labels: Vec<&str> = g.windows.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["1m", "5m", "30m", "1h", "6h"]);
}

#[test]
fn bad_gate_settings_are_refused_with_their_field() {
    assert_eq!(gate_err(r#"{"tick": "5"}"#), "gates.tick");
    assert_eq!(gate_err(r#"{"tick": "10ms"}"#), "gates.tick");
    assert_eq!(
        gate_err(r#"{"bucket": "100ms", "tick": "1s"}"#),
        "gates.bucket"
    );
    assert_eq!(
        gate_err(r#"{"bucket": "1s"}"#),
        "gates.bucket",
        "5m windows in 1s buckets is too many"
    );
    assert_eq!(
        gate_err(r#"{"objectives": {"availabilityPercent": 100}}"#),
        "gates.objectives.availabilityPercent"
    );
    assert_eq!(
        gate_err(r#"{"promotion": [{"atPercent": 120}]}"#),
        "gates.promotion[0].atPercent"
    );
    assert_eq!(
        gate_err(r#"{"promotion": [{"atPercent": 10}, {"atPercent": 10}]}"#),
        "gates.promotion[1].atPercent"
    );
    assert_eq!(
        gate_err(r#"{"promotion": [{"atPercent": 10, "objectives": true, "maxP99": "5ms"}]}"#),
        "gates.promotion[0].objectives"
    );
    assert_eq!(gate_err(r#"{"rollback": [{}]}"#), "gates.rollback[0]");
    assert_eq!(
        gate_err(r#"{"rollback": [{"errorPercentAbove": 1, "p99Above": "1s"}]}"#),
        "gates.rollback[0]"
    );
    assert_eq!(
        gate_err(r#"{"rollback": [{"p99Above": "fast"}]}"#),
        "gates.rollback[0].p99Above"
    );
    assert_eq!(
        gate_err(r#"{"burnRate": {"windows": [{"long": "5m", "short": "1h", "factor": 2}]}}"#),
        "gates.burnRate.windows[0].short"
    );
    assert_eq!(
        gate_err(r#"{"burnRate": {"windows": [{"long": "1h", "short": "5m", "factor": 0}]}}"#),
        "gates.burnRate.windows[0].factor"
    );
    assert_eq!(gate_err(r#"{"withdraw": ["stable"]}"#), "gates.withdraw[0]");
    assert_eq!(gate_err(r#"{"withdraw": ["gamma"]}"#), "gates.withdraw[0]");
    assert_eq!(
        gate_err(r#"{"canaryVersion": "v 2"}"#),
        "gates.canaryVersion"
    );
    assert_eq!(
        gate_err(r#"{"rollback": [{"errorPercentAbove": 1, "fr": "1s"}]}"#),
        "gates.rollback[0].fr"
    );
    let g = gates(r#"{"withdraw": ["canary", "beta"]}"#);
    assert_eq!(
        g.withdraw.iter().map(|c| c.index()).collect::<Vec<_>>(),
        [1, 3]
    );
}

#[test]
fn an_empty_window_is_unknown_never_pass() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    assert_eq!(v.eval(&g, 1000, 100_000), GateState::Unknown);
}

#[test]
fn the_min_sample_boundary_decides_between_unknown_and_a_verdict() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    v.add(&g, 100_000, OK, 9);
    assert_eq!(
        v.eval(&g, 1000, 100_500),
        GateState::Unknown,
        "9 of 10 samples"
    );
    v.add(&g, 100_600, OK, 1);
    assert_eq!(
        v.eval(&g, 1000, 100_700),
        GateState::Hold,
        "10 samples: gate met, hold time not yet"
    );
    // Below the sample size, even a 100 % error rate fires nothing.
    let mut v = Version::new(&g);
    v.add(&g, 100_000, ERR5XX, 9);
    assert_eq!(v.eval(&g, 1000, 100_500), GateState::Unknown);
}

#[test]
fn a_healthy_version_passes_only_after_the_hold_time() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    let mut states = vec![];
    for s in 0..8u64 {
        let now = 200_000 + s * 1_000;
        v.add(&g, now, OK, 20);
        states.push(v.eval(&g, 1000, now));
    }
    assert_eq!(states[..5], [GateState::Hold; 5]);
    assert_eq!(states[5..], [GateState::Pass; 3]);
}

#[test]
fn exactly_at_a_threshold_neither_fires_nor_passes() {
    // Error ratio exactly 20 % with "> 20 %" as trigger: no rollback; and
    // exactly the promotion limit (1 %) is not below it: hold.
    let g = gates(FAST);
    let mut v = Version::new(&g);
    for s in 0..10u64 {
        let now = 300_000 + s * 1_000;
        v.add(&g, now, OK, 8);
        v.add(&g, now, GRPC, 2);
    }
    assert_eq!(v.eval(&g, 1000, 309_500), GateState::Hold);
    let mut v = Version::new(&g);
    v.add(&g, 300_000, OK, 99);
    v.add(&g, 300_000, GRPC, 1);
    assert_eq!(
        v.eval(&g, 1000, 300_500),
        GateState::Hold,
        "1 % is not below 1 %"
    );
    let mut v = Version::new(&g);
    v.add(&g, 300_000, OK, 101);
    v.add(&g, 300_000, GRPC, 1);
    let st = v.eval(&g, 1000, 300_500);
    assert_eq!(
        st,
        GateState::Hold,
        "0.98 % meets the gate, hold time pending"
    );
    assert!(v.timers.held_since.is_some());
}

#[test]
fn an_error_trigger_fires_only_after_holding_for_its_duration() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    let mut states = vec![];
    for s in 0..5u64 {
        let now = 400_000 + s * 1_000;
        v.add(&g, now, OK, 5);
        v.add(&g, now, GRPC, 5); // 50 % errors, no 5xx
        states.push(v.eval(&g, 1000, now));
    }
    // Holds from t=0: fires once 3 s have passed (t=3).
    assert_eq!(
        states,
        [
            GateState::Hold,
            GateState::Hold,
            GateState::Hold,
            GateState::Rollback,
            GateState::Rollback
        ]
    );
}

#[test]
fn a_trigger_that_stops_holding_starts_its_clock_again() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    v.add(&g, 500_000, GRPC, 10);
    v.add(&g, 500_000, OK, 10);
    assert_ne!(v.eval(&g, 1000, 500_000), GateState::Rollback);
    assert!(v.timers.triggers[0].is_some());
    // Healthy traffic dilutes the window below 20 %.
    v.add(&g, 501_000, OK, 200);
    v.eval(&g, 1000, 501_000);
    assert_eq!(v.timers.triggers[0], None);
}

#[test]
fn the_fast_5xx_trigger_fires_at_once() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    v.add(&g, 600_000, ERR5XX, 6);
    v.add(&g, 600_000, OK, 4);
    assert_eq!(v.eval(&g, 1000, 600_000), GateState::Rollback);
}

#[test]
fn a_slow_version_trips_the_latency_trigger() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    let slow = Outcome {
        latency_us: 300_000,
        ..OK
    };
    let mut states = vec![];
    for s in 0..4u64 {
        let now = 700_000 + s * 1_000;
        v.add(&g, now, slow, 20);
        states.push(v.eval(&g, 1000, now));
    }
    assert_eq!(
        states,
        [
            GateState::Hold,
            GateState::Hold,
            GateState::Rollback,
            GateState::Rollback
        ]
    );
    // Exactly 200 ms is not above 200 ms: the P99 interpolates to the bin's top at most.
    let mut v = Version::new(&g);
    let at = Outcome {
        latency_us: 200_000,
        ..OK
    };
    for s in 0..4u64 {
        v.add(&g, 800_000 + s * 1_000, at, 20);
        assert_ne!(v.eval(&g, 1000, 800_000 + s * 1_000), GateState::Rollback);
    }
}

#[test]
fn windows_roll_over_so_old_errors_stop_counting() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    v.add(&g, 900_000, GRPC, 50);
    v.eval(&g, 1000, 900_000);
    assert!(v.timers.triggers[0].is_some());
    // 11 s later the 10 s window no longer holds them: nothing to decide.
    assert_eq!(v.eval(&g, 1000, 911_000), GateState::Unknown);
    assert_eq!(v.timers.triggers[0], None);
}

#[test]
fn a_clock_jump_back_or_forward_does_not_corrupt_the_windows() {
    let g = gates(FAST);
    let mut v = Version::new(&g);
    v.add(&g, 1_000_000, OK, 20);
    // Back 3 s: counted in its own (older) bucket, still inside the window.
    v.add(&g, 997_000, OK, 20);
    assert_eq!(v.fine.sum(1_000_000, 10_000).requests, 40);
    // Forward an hour: everything old is gone, nothing is misfiled.
    assert_eq!(v.eval(&g, 1000, 4_600_000), GateState::Unknown);
    assert_eq!(v.fine.sum(4_600_000, 10_000).requests, 0);
}

#[test]
fn burn_rates_page_only_when_both_windows_burn() {
    let g = gates(
        r#"{"bucket": "1s", "minSamples": 10, "promotion": [], "rollback": [],
        "burnRate": {"windows": [{"long": "60s", "short": "10s", "factor": 10}]}}"#,
    );
    let mut v = Version::new(&g);
    // 60 s of 0.5 % errors: burn 5x on the long window.
    for s in 0..60u64 {
        v.add(&g, 2_000_000 + s * 1_000, OK, 199);
        v.add(&g, 2_000_000 + s * 1_000, GRPC, 1);
    }
    assert_ne!(v.eval(&g, 0, 2_059_000), GateState::Rollback);
    // A short burst: the short window burns, the long one still under 10x.
    v.add(&g, 2_059_000, GRPC, 30);
    assert_ne!(
        v.eval(&g, 0, 2_059_000),
        GateState::Rollback,
        "short alone does not page"
    );
    // Sustained: both windows over 10x.
    for s in 0..50u64 {
        v.add(&g, 2_060_000 + s * 1_000, GRPC, 3);
        v.add(&g, 2_060_000 + s * 1_000, OK, 17);
    }
    assert_eq!(v.eval(&g, 0, 2_109_000), GateState::Rollback);
}

#[test]
fn shared_state_round_trips_and_rejects_garbage() {
    let g = gates(FAST);
    let mut st = SharedState {
        withdrawn_for: 42,
        config_hash: 9,
        versions: vec![],
        pair: Some(Pair::new("v1")),
        limits: vec![[Above::default(); 2]; 2],
    };
    st.limits[1][0].update(0.01, 10, 3);
    if let Some(p) = st.pair.as_mut() {
        p.last = [Verdict::Worse, Verdict::NotWorse, Verdict::Inconclusive];
        p.judge.canary_latency[3] = 11;
        p.judge.worse[0] = true;
        p.decision = 2;
    }
    let v = st.version_mut(&g, "v2", 16).unwrap();
    v.fine.cell_mut(7).unwrap().record(ERR5XX);
    v.burn.add(
        0,
        &Counts {
            requests: 3,
            errors: 1,
        },
    );
    v.timers = Timers {
        triggers: vec![Some(5), None, Some(9)],
        held_since: Some(1),
    };
    v.state = GateState::Hold;
    let bytes = st.encode();
    assert_eq!(SharedState::decode(&bytes), Some(st));
    assert_eq!(SharedState::decode(b""), None);
    assert_eq!(SharedState::decode(&bytes[..bytes.len() - 1]), None);
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(SharedState::decode(&extra), None);
    let mut huge = bytes[..20].to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(SharedState::decode(&huge), None);
}

pub(super) fn shared(store: &FakeStore) -> SharedState {
    SharedState::decode(&store.data["k"].0).unwrap()
}

#[test]
fn two_vms_combine_their_counts_exactly() {
    let g = gates(FAST);
    let mut store = FakeStore::default();
    let (mut a, mut b) = (Engine::new("k", 7), Engine::new("k", 7));
    a.init(&mut store);
    b.init(&mut store);
    let mut m = FakeMetrics::default();
    for i in 0..300u64 {
        let e = if i % 2 == 0 { &mut a } else { &mut b };
        e.record(&g, "v2", 1_000_000 + i, OK);
    }
    a.tick(&g, 1000, &mut store, &mut m, 1_000_500);
    b.tick(&g, 1000, &mut store, &mut m, 1_000_600);
    assert_eq!(
        shared(&store).versions[0]
            .fine
            .sum(1_000_600, 10_000)
            .requests,
        300
    );
    // A second tick with nothing new adds nothing.
    a.tick(&g, 1000, &mut store, &mut m, 1_000_700);
    assert_eq!(
        shared(&store).versions[0]
            .fine
            .sum(1_000_700, 10_000)
            .requests,
        300
    );
}

#[test]
fn cas_contention_keeps_the_delta_for_the_next_tick() {
    let g = gates(FAST);
    let mut store = FakeStore::default();
    let mut a = Engine::new("k", 7);
    a.init(&mut store);
    let mut m = FakeMetrics::default();
    for _ in 0..10 {
        a.record(&g, "v2", 1_000_000, OK);
    }
    store.fail_next = 8;
    assert!(!a.tick(&g, 1000, &mut store, &mut m, 1_000_100).merged);
    assert_eq!(shared(&store).versions.len(), 0);
    store.fail_next = 3;
    assert!(a.tick(&g, 1000, &mut store, &mut m, 1_000_200).merged);
    assert_eq!(
        shared(&store).versions[0]
            .fine
            .sum(1_000_200, 10_000)
            .requests,
        10
    );
}

#[test]
fn a_rollback_withdraws_the_canary_once_and_never_re_enters() {
    let g = gates(FAST);
    let mut store = FakeStore::default();
    let (mut a, mut b) = (Engine::new("k", 7), Engine::new("k", 7));
    a.init(&mut store);
    b.init(&mut store);
    let mut m = FakeMetrics::default();
    for _ in 0..20 {
        a.record(&g, "v2", 3_000_000, ERR5XX);
    }
    let r = a.tick(&g, 1000, &mut store, &mut m, 3_000_100);
    assert!(a.withdrawn());
    assert_eq!(r.log.len(), 2, "{:?}", r.log);
    assert!(
        r.log[0].starts_with("canary gate v2: unknown -> rollback (5xx ratio 100.000 % > 50.000 %"),
        "{}",
        r.log[0]
    );
    assert!(
        r.log[1].contains("withdrawing cohorts [\"canary\"] from v2"),
        "{}",
        r.log[1]
    );
    // The other VM learns it on its own tick, without logging it again.
    assert!(!b.withdrawn());
    let r = b.tick(&g, 1000, &mut store, &mut m, 3_000_200);
    assert!(b.withdrawn());
    assert!(r.log.is_empty(), "{:?}", r.log);
    // Healthy traffic later: the state recovers, the withdrawal stays.
    for s in 0..30u64 {
        for _ in 0..20 {
            a.record(&g, "v2", 3_020_000 + s * 1_000, OK);
        }
        a.tick(&g, 1000, &mut store, &mut m, 3_020_000 + s * 1_000);
    }
    assert_eq!(a.last[0].1.state, GateState::Pass);
    assert!(a.withdrawn() && shared(&store).withdrawn_for == 7);
    // A new configuration (new rollout step) is not withdrawn.
    let mut c = Engine::new("k", 8);
    c.init(&mut store);
    assert!(!c.withdrawn());
    c.tick(&g, 5000, &mut store, &mut m, 3_060_000);
    assert!(!c.withdrawn());
}

#[test]
fn a_stable_version_rolling_back_withdraws_nothing() {
    let g = gates(FAST);
    let mut store = FakeStore::default();
    let mut a = Engine::new("k", 7);
    a.init(&mut store);
    let mut m = FakeMetrics::default();
    for _ in 0..20 {
        a.record(&g, "v1", 4_000_000, ERR5XX);
    }
    a.tick(&g, 1000, &mut store, &mut m, 4_000_100);
    assert_eq!(a.last[0].1.state, GateState::Rollback);
    assert!(!a.withdrawn());
}

#[test]
fn ticks_export_state_and_windows_but_leave_the_heartbeat_to_liveness() {
    let g = gates(FAST);
    let mut store = FakeStore::default();
    let mut a = Engine::new("k", 7);
    a.init(&mut store);
    let mut m = FakeMetrics::default();
    for _ in 0..10 {
        a.record(&g, "v2", 5_000_000, GRPC);
    }
    a.tick(&g, 1000, &mut store, &mut m, 5_000_500);
    let last = |m: &FakeMetrics, name: &str| m.histogram(name).last().copied();
    // Only VMs that serve traffic beat (liveness.rs), not every ticking VM.
    assert_eq!(last(&m, "canary_heartbeat_timestamp_seconds"), None);
    assert_eq!(
        last(&m, "canary_version=.=v2;.;canary_gate_state"),
        Some(GateState::Hold as u64)
    );
    assert_eq!(
        last(
            &m,
            "canary_version=.=v2;.;canary_window=.=10s;.;canary_gate_requests"
        ),
        Some(10)
    );
    assert_eq!(
        last(
            &m,
            "canary_version=.=v2;.;canary_window=.=10s;.;canary_gate_error_ratio_ppm"
        ),
        Some(1_000_000)
    );
    assert_eq!(
        last(
            &m,
            "canary_version=.=v2;.;canary_window=.=1m;.;canary_gate_burn_rate_milli"
        ),
        Some(1_000_000)
    );
    assert!(last(
        &m,
        "canary_version=.=v2;.;canary_window=.=10s;.;canary_gate_p99_microseconds"
    )
    .is_some());
    assert_eq!(last(&m, "canary_gate_withdrawn"), Some(0));
}

#[test]
fn a_new_configuration_restarts_hold_times_but_keeps_the_data() {
    let g = gates(FAST);
    let mut store = FakeStore::default();
    let mut a = Engine::new("k", 7);
    a.init(&mut store);
    let mut m = FakeMetrics::default();
    for s in 0..8u64 {
        for _ in 0..20 {
            a.record(&g, "v2", 6_000_000 + s * 1_000, OK);
        }
        a.tick(&g, 1000, &mut store, &mut m, 6_000_000 + s * 1_000);
    }
    assert_eq!(a.last[0].1.state, GateState::Pass);
    // The next step: same traffic, new configuration. The gate must hold again.
    let mut b = Engine::new("k", 8);
    b.init(&mut store);
    b.tick(&g, 5000, &mut store, &mut m, 6_008_000);
    assert_eq!(b.last[0].1.state, GateState::Hold);
    assert_eq!(
        shared(&store).versions[0]
            .fine
            .sum(6_008_000, 10_000)
            .requests,
        160
    );
}
