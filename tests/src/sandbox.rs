//! The local sandbox behind `make demo`: the module's Exercises 1-8 played on
//! real Envoy processes, with the numbers measured.
//!
//! Topology, all on loopback:
//! - `reviews` v1, v2 and v3 (two replicas, broken as in Exercise 6), each an
//!   upstream server behind its own Envoy with the filter in SERVER mode, which
//!   stamps `x-canary-version`;
//! - a `productpage` sidecar: Envoy with the filter in CLIENT mode and routes
//!   like the module's VirtualService/DestinationRule (subsets, weights, cohort
//!   matches, outlier detection, retries and timeouts of Exercise 7), started
//!   afresh for each phase since its routes change;
//! - a user population (stable ids, some internal, some beta) sending at a
//!   steady rate through a trusted frontend address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{Client, Req};
use crate::envoy::Envoy;
use crate::sidecar::{FilterSpec, Route, Sidecar};
use crate::traffic::{log_time, Kind, Population, Record};
use crate::upstream::{Behaviour, Upstream};

/// The frontend the trusted traffic comes from; everything else is "outside".
pub const FRONTEND: &str = "127.0.0.2";
pub const TICK_MS: u64 = 200;

/// The module's Exercise 8 business inputs.
#[derive(Debug, Clone, Copy)]
pub struct Business {
    /// Customer impact of one bad deployment before (all users, 2 h rollback).
    pub outage_cost: f64,
    pub rollback_before_s: f64,
    /// "Average rollback time: 30 seconds" once a human acts on mesh metrics.
    pub rollback_manual_s: f64,
    pub bad_deploys_before: f64,
    pub bad_deploys_after: f64,
}

impl Default for Business {
    fn default() -> Self {
        Business {
            outage_cost: 50_000.0,
            rollback_before_s: 7_200.0,
            rollback_manual_s: 30.0,
            bad_deploys_before: 2.0,
            bad_deploys_after: 1.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Which phases to play, 1-5.
    pub steps: Vec<u8>,
    /// Requests per second of the user population.
    pub rate: f64,
    pub users: usize,
    /// Seconds per (sub-)phase.
    pub phase_secs: f64,
    /// Print progress every second.
    pub live: bool,
    pub v2_delay_ms: u64,
    /// v3's failing share, per mille (1000 = broken, as in Exercise 6).
    pub v3_error_permille: u32,
    pub business: Business,
}

impl Options {
    /// About two minutes on a laptop.
    pub fn demo() -> Options {
        Options {
            steps: vec![1, 2, 3, 4, 5],
            rate: 150.0,
            users: 300,
            phase_secs: 6.0,
            live: true,
            v2_delay_ms: 2,
            v3_error_permille: 1000,
            business: Business::default(),
        }
    }

    /// The same scenario, shortened for `make test`.
    pub fn short() -> Options {
        Options {
            rate: 120.0,
            users: 120,
            phase_secs: 3.0,
            live: false,
            ..Options::demo()
        }
    }
}

/// Per-version counters read from the productpage sidecar at one instant.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sample {
    pub t_ms: u64,
    pub requests: BTreeMap<String, f64>,
    /// Requests per "version/cohort", for the live view.
    pub by_cohort: BTreeMap<String, f64>,
    pub errors: BTreeMap<String, f64>,
    pub gates: BTreeMap<String, f64>,
    pub withdrawn: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Exposure {
    pub requests: usize,
    pub errors: usize,
    pub users: usize,
    pub users_with_error: usize,
    /// Milliseconds from the first error to the withdrawal (gate runs only).
    pub time_to_withdrawal_ms: Option<u64>,
    /// Sticky-canary requests that still reached the bad version after the trigger.
    pub canary_requests_after_trigger: Option<usize>,
}

impl Exposure {
    pub fn blast_radius(&self) -> f64 {
        if self.users == 0 {
            0.0
        } else {
            self.users_with_error as f64 / self.users as f64
        }
    }

    fn from(records: &[Record]) -> Exposure {
        let users: BTreeSet<usize> = records.iter().map(|r| r.user).collect();
        let hit: BTreeSet<usize> = records
            .iter()
            .filter(|r| r.status >= 500 || r.status == 0)
            .map(|r| r.user)
            .collect();
        Exposure {
            requests: records.len(),
            errors: records
                .iter()
                .filter(|r| r.status >= 500 || r.status == 0)
                .count(),
            users: users.len(),
            users_with_error: hit.len(),
            time_to_withdrawal_ms: None,
            canary_requests_after_trigger: None,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StepResult {
    pub percent: u32,
    pub users: usize,
    pub weighted_share: f64,
    pub weighted_flipped: usize,
    pub sticky_share: f64,
    pub sticky_flipped: usize,
    /// Sticky users on the canary at the previous step who left it at this one.
    pub sticky_left: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CohortResult {
    pub internal_on_v2: f64,
    pub beta_on_v2: f64,
    pub regular_on_v1: f64,
    pub spoofed: usize,
    pub spoofed_on_v2: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PromotionStep {
    pub percent: u32,
    pub seconds_to_pass: Option<f64>,
    pub state: String,
}

impl PromotionStep {
    /// How the step ended, in words.
    pub fn outcome(&self) -> String {
        match self.seconds_to_pass {
            _ if self.percent >= 100 => "full rollout".to_string(),
            Some(t) => format!("pass after {t:.1} s"),
            None => format!("stuck at {}", self.state),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BusinessView {
    pub before_per_deploy: f64,
    pub before_per_month: f64,
    pub manual_per_deploy: f64,
    pub manual_per_month: f64,
    pub gate_per_deploy: f64,
    pub gate_per_month: f64,
    pub saved_per_month: f64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub all_at_once: Option<Exposure>,
    pub all_at_once_on_v2: f64,
    pub steps: Vec<StepResult>,
    pub cohorts: Option<CohortResult>,
    pub outlier_only: Option<Exposure>,
    pub gated: Option<Exposure>,
    pub v3_withdrawn: bool,
    pub promotion: Vec<PromotionStep>,
    pub business: Option<BusinessView>,
    pub timelines: Vec<(String, Vec<Sample>)>,
    pub rate: f64,
    pub users: usize,
    pub seconds: f64,
}

/// reviews v1, v2 and v3 behind their own SERVER-mode sidecars.
pub struct Mesh {
    pub replicas: Vec<(String, Upstream, Envoy)>,
}

impl Mesh {
    pub async fn start(o: &Options) -> Mesh {
        let mut replicas = vec![];
        let specs = [
            (
                "v1",
                Behaviour {
                    delay: Duration::from_millis(1),
                    ..Default::default()
                },
            ),
            (
                "v2",
                Behaviour {
                    delay: Duration::from_millis(o.v2_delay_ms),
                    ..Default::default()
                },
            ),
            (
                "v3",
                Behaviour {
                    error_permille: o.v3_error_permille,
                    ..Default::default()
                },
            ),
            (
                "v3",
                Behaviour {
                    error_permille: o.v3_error_permille,
                    ..Default::default()
                },
            ),
        ];
        for (version, b) in specs {
            let app = Upstream::start_with(&format!("reviews-{version}"), b).await;
            let cfg = json!({"version": {"direction": "server"}, "trust": {"sourceCidrs": ["127.0.0.1/32"]}});
            let sidecar = Sidecar::inbound(FilterSpec::Canary(cfg.to_string()), app.addr, version);
            let envoy = Envoy::start(&sidecar).await;
            replicas.push((version.to_string(), app, envoy));
        }
        Mesh { replicas }
    }

    fn endpoints(&self) -> Vec<(&str, SocketAddr)> {
        self.replicas
            .iter()
            .map(|(v, _, e)| (v.as_str(), e.listener))
            .collect()
    }

    /// The productpage sidecar with Exercise 6-7 policies and these routes.
    pub async fn productpage(&self, plugin: &Value, routes: Vec<Route>) -> Envoy {
        let mut s = Sidecar::outbound(
            FilterSpec::CanaryEcds(plugin.to_string()),
            &self.endpoints(),
            &[("v1", 100)],
        );
        s.routes = routes;
        s.concurrency = 2;
        s.route_timeout_ms = 5_000;
        // Exercise 6/7: outlier detection (interval scaled from 30 s to 1 s) and
        // retries on connection failures (503 answers are not retried, as in Istio).
        s.cluster_extra = json!({
            "outlier_detection": {"consecutive_5xx": 3, "interval": "1s", "base_ejection_time": "30s", "max_ejection_percent": 50},
            "circuit_breakers": {"thresholds": [{"max_connections": 1000, "max_pending_requests": 1000}]}
        });
        s.route_extra = json!({"retry_policy": {"retry_on": "connect-failure,refused-stream,reset", "num_retries": 3, "per_try_timeout": "2s"}});
        Envoy::start(&s).await
    }
}

fn cohort_routes(cohorts: &[&str], subset: &str, default: &[(&str, u32)]) -> Vec<Route> {
    let mut r: Vec<Route> = cohorts.iter().map(|c| Route::cohort(c, subset)).collect();
    r.push(Route::weighted(default));
    r
}

fn frontend(envoy: &Envoy) -> Client {
    Client::from_source(envoy.listener, FRONTEND.parse::<IpAddr>().unwrap())
}

/// The version that answered (stamped by its SERVER-mode sidecar).
fn version(r: &Record) -> Option<&str> {
    r.upstream
        .as_deref()
        .and_then(|u| u.strip_prefix("reviews-"))
}

fn share(records: &[Record], v: &str) -> f64 {
    if records.is_empty() {
        return 0.0;
    }
    records.iter().filter(|r| version(r) == Some(v)).count() as f64 / records.len() as f64
}

fn flipped(records: &[Record]) -> usize {
    let mut seen: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for r in records {
        if let Some(v) = version(r) {
            seen.entry(r.user).or_default().insert(v.to_string());
        }
    }
    seen.values().filter(|s| s.len() > 1).count()
}

/// Polls the productpage sidecar while a phase runs: the timeline for the
/// report, and a progress line per second when `live`.
struct Recorder {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Recorder {
    fn start(envoy: &Envoy, phase: &str, live: bool) -> Recorder {
        let admin = envoy.admin;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let phase = phase.to_string();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let client = Client::new(admin);
            let mut out: Vec<Sample> = vec![];
            let mut last_print = 0u64;
            while !flag.load(Ordering::SeqCst) {
                if let Ok(r) = client.try_send(&Req::get("/stats/prometheus")).await {
                    let s = crate::Stats::parse(&String::from_utf8_lossy(&r.body));
                    let mut sample = Sample {
                        t_ms: t0.elapsed().as_millis() as u64,
                        ..Default::default()
                    };
                    for x in s.matching("canary_requests_total", &[]) {
                        let v = &x.labels["canary_version"];
                        *sample.requests.entry(v.clone()).or_default() += x.value;
                        let key = format!("{v}/{}", x.labels["canary_cohort"]);
                        *sample.by_cohort.entry(key).or_default() += x.value;
                    }
                    for x in s.matching("canary_errors_total", &[]) {
                        *sample
                            .errors
                            .entry(x.labels["canary_version"].clone())
                            .or_default() += x.value;
                    }
                    for x in s.matching("canary_gate_state", &[]) {
                        sample
                            .gates
                            .insert(x.labels["canary_version"].clone(), x.value);
                    }
                    sample.withdrawn = s.sum("canary_gate_withdrawn", &[]) > 0.0;
                    if live && sample.t_ms >= last_print + 1000 {
                        last_print = sample.t_ms;
                        println!("{}", progress(&phase, out.last(), &sample, &s));
                    }
                    out.push(sample);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            out
        });
        Recorder { stop, task }
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or_default()
    }
}

/// A gate gauge's value as its state's name.
fn gate_name(v: f64) -> &'static str {
    canary_core::gates::GateState::from_u8(v as u8).label()
}

fn progress(phase: &str, prev: Option<&Sample>, now: &Sample, stats: &crate::Stats) -> String {
    let mut line = format!("  [{phase} {:>4.1}s]", now.t_ms as f64 / 1000.0);
    let dt = prev.map_or(1.0, |p| ((now.t_ms - p.t_ms) as f64 / 1000.0).max(0.1));
    for (v, n) in &now.requests {
        let before = prev.and_then(|p| p.requests.get(v)).copied().unwrap_or(0.0);
        let e_now = now.errors.get(v).copied().unwrap_or(0.0);
        let e_before = prev.and_then(|p| p.errors.get(v)).copied().unwrap_or(0.0);
        let rps = (n - before) / dt;
        let er = if n - before > 0.0 {
            (e_now - e_before) / (n - before) * 100.0
        } else {
            0.0
        };
        let p99 = stats
            .matching(
                "canary_gate_p99_microseconds",
                &[("canary_version", v.as_str())],
            )
            .map(|x| x.value)
            .fold(None::<f64>, |a, b| Some(a.map_or(b, |a| a.min(b))));
        let gate = now.gates.get(v).map_or("-", |g| gate_name(*g));
        // Requests/s of each cohort on this version.
        let cohorts: Vec<String> = now
            .by_cohort
            .iter()
            .filter_map(|(k, n)| {
                let (kv, cohort) = k.split_once('/')?;
                let before = prev
                    .and_then(|p| p.by_cohort.get(k))
                    .copied()
                    .unwrap_or(0.0);
                (kv == v && n - before > 0.0).then(|| format!("{cohort} {:.0}", (n - before) / dt))
            })
            .collect();
        line.push_str(&format!(
            "  {v}: {rps:>4.0} rps ({}) {er:>5.1}% err p99 {} gate {gate}",
            cohorts.join(", "),
            p99.map_or("-".to_string(), |p| format!("{:.1}ms", p / 1000.0))
        ));
    }
    if now.withdrawn {
        line.push_str("  [canary withdrawn]");
    }
    line
}

/// Traffic from the population through the frontend, recorded by the harness.
async fn users(envoy: &Envoy, pop: &Population, o: &Options, secs: f64) -> Vec<Record> {
    crate::traffic::steady(
        &frontend(envoy),
        pop,
        o.rate,
        Duration::from_secs_f64(secs),
        0,
    )
    .await
}

fn say(o: &Options, text: &str) {
    if o.live {
        println!("{text}");
    }
}

/// Plays the selected phases and returns what was measured.
pub async fn run(o: &Options) -> Report {
    let started = Instant::now();
    let mesh = Mesh::start(o).await;
    let pop = Population {
        users: o.users,
        internal_every: 25,
        beta_every: 10,
    };
    let regular = Population::regular(o.users);
    let mut report = Report {
        rate: o.rate,
        users: o.users,
        ..Default::default()
    };

    if o.steps.contains(&1) {
        say(
            o,
            "\n== 1. All-or-nothing release (Exercise 2): every user hits v2 at once",
        );
        let envoy = mesh
            .productpage(&json!({}), vec![Route::weighted(&[("v2", 100)])])
            .await;
        let rec = Recorder::start(&envoy, "all-at-once", o.live);
        let records = users(&envoy, &regular, o, o.phase_secs / 2.0).await;
        report
            .timelines
            .push(("1 all-or-nothing".into(), rec.finish().await));
        report.all_at_once_on_v2 = share(&records, "v2");
        let e = Exposure::from(&records);
        say(
            o,
            &format!(
                "  exposure: {:.0} % of requests and all {} users on v2 from the first second",
                report.all_at_once_on_v2 * 100.0,
                e.users
            ),
        );
        report.all_at_once = Some(e);
    }

    if o.steps.contains(&2) {
        say(o, "\n== 2. Canary 10 -> 50 -> 100 % (Exercises 3-4): per-request weights vs the sticky cohort");
        let sticky_cfg = |p: u32| json!({"sticky": {"percent": p, "salt": "sandbox"}});
        let sticky = mesh
            .productpage(
                &sticky_cfg(0),
                cohort_routes(&["canary"], "v2", &[("v1", 100)]),
            )
            .await;
        let mut previous_canary: BTreeSet<usize> = BTreeSet::new();
        // Few users, several requests each, so flips can show.
        let few = Population::regular((o.rate * o.phase_secs / 2.0 / 4.0).max(10.0) as usize);
        for p in [10u32, 50, 100] {
            let weighted = mesh
                .productpage(
                    &json!({}),
                    vec![Route::weighted(&[("v1", 100 - p), ("v2", p)])],
                )
                .await;
            let w = users(&weighted, &few, o, o.phase_secs / 2.0).await;
            sticky
                .update_filter(&sticky_cfg(p).to_string())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let rec = Recorder::start(&sticky, &format!("sticky {p}%"), o.live);
            let s = users(&sticky, &few, o, o.phase_secs / 2.0).await;
            report
                .timelines
                .push((format!("2 sticky {p} %"), rec.finish().await));
            let canary: BTreeSet<usize> = s
                .iter()
                .filter(|r| version(r) == Some("v2"))
                .map(|r| r.user)
                .collect();
            let step = StepResult {
                percent: p,
                users: few.users,
                weighted_share: share(&w, "v2"),
                weighted_flipped: flipped(&w),
                sticky_share: share(&s, "v2"),
                sticky_flipped: flipped(&s),
                sticky_left: previous_canary.difference(&canary).count(),
            };
            say(o, &format!(
                "  {p:>3} %: weights put {:.0} % on v2, {} of {} users flipped; sticky put {:.0} % on v2, {} flipped, {} left the canary",
                step.weighted_share * 100.0, step.weighted_flipped, step.users, step.sticky_share * 100.0, step.sticky_flipped, step.sticky_left
            ));
            previous_canary = canary;
            report.steps.push(step);
        }
    }

    if o.steps.contains(&3) {
        say(
            o,
            "\n== 3. Internal and beta users first (Exercise 5); a spoofed header from outside",
        );
        let cfg = json!({"trust": {"sourceCidrs": [format!("{FRONTEND}/32")]}});
        let envoy = mesh
            .productpage(
                &cfg,
                cohort_routes(&["internal", "beta"], "v2", &[("v1", 100)]),
            )
            .await;
        let rec = Recorder::start(&envoy, "cohorts", o.live);
        let records = users(&envoy, &pop, o, o.phase_secs / 2.0).await;
        let outsider = Client::from_source(envoy.listener, "127.0.0.1".parse::<IpAddr>().unwrap());
        let mut spoofed_on_v2 = 0;
        let spoofed = 50;
        for i in 0..spoofed {
            let req = if i % 2 == 0 {
                Req::get("/reviews").header("user-type", "internal")
            } else {
                Req::get("/reviews")
                    .header("x-canary-cohort", "internal")
                    .header("beta-user", "true")
            };
            if outsider.send(&req).await.upstream() == Some("reviews-v2") {
                spoofed_on_v2 += 1;
            }
        }
        report
            .timelines
            .push(("3 cohorts".into(), rec.finish().await));
        let on = |k: Kind, v: &str| {
            let rs: Vec<&Record> = records.iter().filter(|r| r.kind == k).collect();
            rs.iter().filter(|r| version(r) == Some(v)).count() as f64 / rs.len().max(1) as f64
        };
        let c = CohortResult {
            internal_on_v2: on(Kind::Internal, "v2"),
            beta_on_v2: on(Kind::Beta, "v2"),
            regular_on_v1: on(Kind::Regular, "v1"),
            spoofed,
            spoofed_on_v2,
        };
        say(o, &format!(
            "  internal on v2 {:.0} %, beta on v2 {:.0} %, everyone else on v1 {:.0} %; spoofed from outside: {} of {} reached v2",
            c.internal_on_v2 * 100.0, c.beta_on_v2 * 100.0, c.regular_on_v1 * 100.0, c.spoofed_on_v2, c.spoofed
        ));
        report.cohorts = Some(c);
    }

    if o.steps.contains(&4) {
        say(
            o,
            "\n== 4. Broken v3 at 20 % (Exercise 6): outlier detection alone vs the filter's gate",
        );
        let envoy = mesh
            .productpage(&json!({}), vec![Route::weighted(&[("v2", 80), ("v3", 20)])])
            .await;
        let rec = Recorder::start(&envoy, "outlier only", o.live);
        let records = users(&envoy, &regular, o, o.phase_secs).await;
        report
            .timelines
            .push(("4a outlier detection only".into(), rec.finish().await));
        let outlier = Exposure::from(&records);

        let cfg = json!({
            "sticky": {"percent": 20, "salt": "sandbox-v3"},
            "gates": {"canaryVersion": "v3", "tick": format!("{TICK_MS}ms"), "bucket": "1s", "minSamples": 20,
                      "promotion": [{"atPercent": 20, "objectives": true, "holdFor": "5s", "window": "5s"}],
                      "rollback": [{"http5xxPercentAbove": 1, "window": "5s"}, {"errorPercentAbove": 5, "window": "5s", "for": "1s"}]}
        });
        let envoy = mesh
            .productpage(
                &cfg,
                cohort_routes(&["internal", "canary"], "v3", &[("v2", 100)]),
            )
            .await;
        let rec = Recorder::start(&envoy, "gate", o.live);
        let records = users(&envoy, &regular, o, o.phase_secs).await;
        report
            .timelines
            .push(("4b filter gate".into(), rec.finish().await));
        let mut gated = Exposure::from(&records);
        let fired = envoy
            .log()
            .lines()
            .find(|l| l.contains("canary gate v3: ") && l.contains("-> rollback"))
            .and_then(log_time);
        let first_error = records.iter().find(|r| r.status >= 500).map(|r| r.sent);
        if let (Some(f), Some(e)) = (fired, first_error) {
            gated.time_to_withdrawal_ms =
                Some(f.duration_since(e).map_or(0, |d| d.as_millis() as u64));
            gated.canary_requests_after_trigger = Some(
                records
                    .iter()
                    .filter(|r| {
                        r.sent > f + Duration::from_millis(2 * TICK_MS) && version(r) == Some("v3")
                    })
                    .count(),
            );
        }
        report.v3_withdrawn = envoy.stats().await.sum("canary_gate_withdrawn", &[]) > 0.0;
        for (name, e) in [
            ("outlier detection alone", &outlier),
            ("filter gate", &gated),
        ] {
            say(o, &format!(
                "  {name:<24}: {} of {} requests failed, {} of {} users saw an error ({:.1} %){}",
                e.errors, e.requests, e.users_with_error, e.users, e.blast_radius() * 100.0,
                e.time_to_withdrawal_ms.map_or(String::new(), |t| format!(", withdrawn {t} ms after the first error"))
            ));
        }
        report.outlier_only = Some(outlier);
        report.gated = Some(gated);
    }

    if o.steps.contains(&5) {
        say(o, "\n== 5. SLO-gated promotion (Exercise 8): a step advances only when the gate reads pass");
        let cfg = |p: u32| {
            json!({
                "sticky": {"percent": p, "salt": "sandbox-v2"},
                "gates": {"canaryVersion": "v2", "tick": format!("{TICK_MS}ms"), "bucket": "1s", "minSamples": 20,
                          "promotion": [
                              {"atPercent": 10, "maxErrorPercent": 0.05, "maxP99": "50ms", "max5xx": 0, "holdFor": "2s", "window": "4s"},
                              {"atPercent": 50, "objectives": true, "holdFor": "2s", "window": "4s"}
                          ],
                          "rollback": [{"http5xxPercentAbove": 1, "window": "4s"}]}
            })
        };
        let envoy = mesh
            .productpage(
                &cfg(10),
                cohort_routes(&["internal", "beta", "canary"], "v2", &[("v1", 100)]),
            )
            .await;
        let rec = Recorder::start(&envoy, "promotion", o.live);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let client = frontend(&envoy);
        let (pop2, rate) = (pop.clone(), o.rate);
        let traffic = tokio::spawn(async move {
            let mut first = 0;
            while !flag.load(Ordering::SeqCst) {
                crate::traffic::steady(&client, &pop2, rate, Duration::from_millis(500), first)
                    .await;
                first += (rate / 2.0) as usize;
            }
        });
        for (i, p) in [10u32, 50, 100].into_iter().enumerate() {
            if i > 0 {
                envoy
                    .update_filter(&cfg(p).to_string())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                // Let a tick run under the new step, so the gauge no longer shows the last step's pass.
                tokio::time::sleep(Duration::from_millis(3 * TICK_MS)).await;
            }
            let t = Instant::now();
            let mut state = "unknown".to_string();
            let mut passed = None;
            while t.elapsed() < Duration::from_secs_f64(o.phase_secs * 3.0) {
                let s = envoy.stats().await;
                let g = s
                    .matching("canary_gate_state", &[("canary_version", "v2")])
                    .next()
                    .map_or(0.0, |x| x.value);
                state = gate_name(g).to_string();
                if state == "pass" || p == 100 {
                    passed = Some(t.elapsed().as_secs_f64());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            say(
                o,
                &match passed {
                    Some(secs) if p < 100 => {
                        format!("  step {p:>3} %: gate read pass after {secs:.1} s: promote")
                    }
                    Some(_) => format!("  step {p:>3} %: full rollout"),
                    None => format!("  step {p:>3} %: gate still {state}: not promoted"),
                },
            );
            report.promotion.push(PromotionStep {
                percent: p,
                seconds_to_pass: passed,
                state: state.clone(),
            });
            if passed.is_none() {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        let _ = traffic.await;
        report
            .timelines
            .push(("5 gated promotion".into(), rec.finish().await));
    }

    report.business = business(o, &report);
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Exercise 8's money, from the measured blast radius and time to rollback.
/// Cost scales with the share of users hurt and how long they were hurt,
/// calibrated on the module's "before" ($50,000 for everyone for 2 hours).
fn business(o: &Options, r: &Report) -> Option<BusinessView> {
    let b = &o.business;
    let gated = r.gated.as_ref()?;
    let outlier = r.outlier_only.as_ref()?;
    let full_second = b.outage_cost / b.rollback_before_s;
    let gate_secs =
        gated.time_to_withdrawal_ms.unwrap_or(0) as f64 / 1000.0 + 2.0 * TICK_MS as f64 / 1000.0;
    let manual = full_second * outlier.blast_radius() * b.rollback_manual_s;
    let gate = full_second * gated.blast_radius() * gate_secs;
    let before_month = b.outage_cost * b.bad_deploys_before;
    Some(BusinessView {
        before_per_deploy: b.outage_cost,
        before_per_month: before_month,
        manual_per_deploy: manual,
        manual_per_month: manual * b.bad_deploys_after,
        gate_per_deploy: gate,
        gate_per_month: gate * b.bad_deploys_after,
        saved_per_month: before_month - gate * b.bad_deploys_after,
    })
}

/// The summary table printed at the end.
pub fn summary(r: &Report, o: &Options) -> String {
    let mut s = format!(
        "\n== Summary ({:.0} s, {} users, {} req/s)\n",
        r.seconds, r.users, r.rate
    );
    if let Some(e) = &r.all_at_once {
        s.push_str(&format!(
            "  all-or-nothing        : {:.0} % of {} users exposed to v2 at once\n",
            r.all_at_once_on_v2 * 100.0,
            e.users
        ));
    }
    for st in &r.steps {
        s.push_str(&format!(
            "  step {:>3} %            : weights flipped {:>3} users, sticky flipped {} (left canary: {})\n",
            st.percent, st.weighted_flipped, st.sticky_flipped, st.sticky_left
        ));
    }
    if let Some(c) = &r.cohorts {
        s.push_str(&format!(
            "  spoofed header        : {} of {} reached v2\n",
            c.spoofed_on_v2, c.spoofed
        ));
    }
    if let (Some(a), Some(g)) = (&r.outlier_only, &r.gated) {
        s.push_str(&format!(
            "  broken v3, outliers   : {} errors, {:.1} % of users hit\n",
            a.errors,
            a.blast_radius() * 100.0
        ));
        s.push_str(&format!(
            "  broken v3, gate       : {} errors, {:.1} % of users hit, withdrawn {} (after {} ms)\n",
            g.errors,
            g.blast_radius() * 100.0,
            if r.v3_withdrawn { "yes" } else { "NO" },
            g.time_to_withdrawal_ms.map_or("-".into(), |t| t.to_string())
        ));
    }
    for p in &r.promotion {
        s.push_str(&format!(
            "  promotion {:>3} %       : {}\n",
            p.percent,
            p.outcome()
        ));
    }
    if let Some(b) = &r.business {
        s.push_str(&format!(
            "  business (Exercise 8) : per bad deploy ${:.0} before, ${:.2} with outlier detection + {} s manual rollback, ${:.2} with the gate; ${:.0}/month saved\n",
            b.before_per_deploy, b.manual_per_deploy, o.business.rollback_manual_s, b.gate_per_deploy, b.saved_per_month
        ));
    }
    s
}
