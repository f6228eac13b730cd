//! Phases 7 and 8: the canary judged against the stable baseline seen over
//! the same ticks (`gates.judgment`, docs/judgment.md).
//!
//! - 7, a subtle regression: v2 at 0.15 % errors against v1 at 0.01 %, under
//!   the absolute 0.2 % rollback trigger; the relative verdict withdraws it.
//! - 8, a shared incident: both at 5 % errors (a shared dependency failing);
//!   the gate reads `hold`, "baseline failing too", and withdraws nothing.
//!
//! As in `tests/tests/judgment.rs`: internal users go to the canary, everyone
//! else to stable, half and half, and the client picks each request's error
//! (`x-test-status`) from its place in its version's sequence, so each
//! version's error ratio is exact. A rare error needs many requests to show,
//! so these phases send closed-loop traffic as fast as the sidecars answer,
//! until the outcome shows, and a little longer for the timeline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canary_e2e::{Envoy, Req, Stats};
use serde_json::{json, Value};

use super::Stage;
use crate::mesh::{cohort_routes, frontend, FRONTEND};
use crate::options::TICK_MS;
use crate::recorder::{gate_name, judge_name};
use crate::results::{JudgedResult, Results};

/// The e2e test's gate: absolute triggers at 0.2 % errors and a 200 ms P99,
/// and the judge, its errors test with the defaults. The sandbox's two
/// reviews Envoys answer the same requests a fraction of a millisecond apart
/// on a loaded machine, which the latency tests can prove at these rates and
/// the one-Envoy e2e test never sees; here they look for larger effects
/// (a shift of 0.15 instead of 0.05, a tail 3x the baseline's instead of 1.5x),
/// so these phases show the errors test.
fn config() -> Value {
    json!({
        "trust": {"sourceCidrs": [format!("{FRONTEND}/32")]},
        "sticky": {"percent": 0, "salt": "sandbox-judged"},
        "gates": {"canaryVersion": "v2", "tick": format!("{TICK_MS}ms"), "bucket": "1s", "minSamples": 20,
                  "promotion": [{"atPercent": 0, "maxErrorPercent": 10, "maxP99": "1s", "holdFor": "1s", "window": "5s"}],
                  "rollback": [{"errorPercentAbove": 0.2, "window": "5s", "for": "1s"},
                               {"p99Above": "200ms", "window": "5s", "for": "1s"}],
                  "judgment": {"shift": {"minEffect": 0.15}, "tail": {"margin": 2.0}}}
    })
}

/// Concurrent connections of the closed-loop traffic.
const CONNECTIONS: u64 = 16;

/// Counts per version, canary first: requests and failed requests sent.
#[derive(Default)]
struct Sent {
    requests: [AtomicU64; 2],
    errors: [AtomicU64; 2],
}

/// Request `k` of its version: a user, internal on the canary; one in
/// `error_every` fails. Both versions answer after 1 ms, so the latency tests
/// see two alike versions (v2's own delay would be a real shift).
fn request(canary: bool, k: u64, error_every: u64) -> (Req, bool) {
    let mut r = Req::get("/reviews")
        .header("x-user-id", format!("user-{}", k % 997))
        .header("x-test-delay-ms", "1");
    if canary {
        r = r.header("user-type", "internal");
    }
    let fails = k % error_every == error_every / 2;
    if fails {
        r = r.header("x-test-status", "503");
    }
    (r, fails)
}

/// What [`drive`] saw: when `done` first held, and how many requests had
/// been sent by then.
struct Driven {
    done_at: Option<(f64, u64)>,
    seconds: f64,
}

/// Closed-loop traffic, the canary failing one request in `canary_every`
/// and the baseline one in `baseline_every`, until `done` holds on the stats
/// (then `after` longer) or `limit` passes.
async fn drive(
    envoy: &Envoy,
    (canary_every, baseline_every): (u64, u64),
    done: impl Fn(&Stats) -> bool,
    (limit, after): (f64, f64),
    sent: &Arc<Sent>,
) -> Driven {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for _ in 0..CONNECTIONS {
        let (client, next, stop, sent) =
            (frontend(envoy), next.clone(), stop.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (canary, k) = (i % 2 == 0, i / 2);
                let v = usize::from(!canary);
                let every = if canary { canary_every } else { baseline_every };
                let (req, fails) = request(canary, k, every);
                // A request lost to a loaded machine is no evidence either way.
                if client.try_send(&req).await.is_ok() {
                    sent.requests[v].fetch_add(1, Ordering::Relaxed);
                    sent.errors[v].fetch_add(u64::from(fails), Ordering::Relaxed);
                }
            }
        }));
    }
    let t0 = Instant::now();
    let mut done_at = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t = t0.elapsed().as_secs_f64();
        if done_at.is_none() && done(&envoy.stats().await) {
            let n = sent
                .requests
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .sum();
            done_at = Some((t, n));
        }
        if t > limit || done_at.is_some_and(|(d, _)| t > d + after) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    Driven {
        done_at,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// The judge's or the canary gate's message in one Envoy log line. Envoy's
/// prefix names the plugin once for a root context's line and twice for a
/// stream's (a decision taken on a failed request), so the message is found
/// by its own first words.
fn judged_line(l: &str) -> Option<String> {
    ["canary judge v2 vs v1: ", "canary gate v2: "]
        .iter()
        .find_map(|m| l.find(m))
        .map(|at| l[at..].to_string())
}

fn gauge(s: &Stats, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.matching(name, labels).next().map(|x| x.value)
}

fn withdrawn(s: &Stats) -> bool {
    gauge(s, "canary_gate_withdrawn", &[]) == Some(1.0)
}

/// The gate reads hold and the judge's decision is hold.
fn held(s: &Stats) -> bool {
    let v2 = [("canary_version", "v2")];
    gauge(s, "canary_gate_state", &v2) == Some(2.0)
        && gauge(s, "canary_judge_decision", &v2) == Some(2.0)
}

/// One judged scenario: its own productpage sidecar, traffic until `done`,
/// then what the sidecar and its log say.
async fn scenario(
    stage: &Stage<'_>,
    r: &mut Results,
    (name, timeline): (&str, &str),
    errors_every: (u64, u64),
    done: impl Fn(&Stats) -> bool,
    limits: (f64, f64),
) -> JudgedResult {
    let envoy = stage
        .mesh
        .productpage(
            &config(),
            cohort_routes(&["internal"], "v2", &[("v1", 100)]),
        )
        .await;
    let rec = stage.record(&envoy, name);
    let sent = Arc::new(Sent::default());
    let driven = drive(&envoy, errors_every, done, limits, &sent).await;
    r.timelines.push((timeline.to_string(), rec.finish().await));
    let s = envoy.stats().await;
    let v2 = [("canary_version", "v2")];
    let verdicts = ["errors", "latency-shift", "latency-tail"]
        .into_iter()
        .map(|m| {
            let v = gauge(&s, "canary_judge_verdict", &[v2[0], ("canary_metric", m)]);
            (
                m.to_string(),
                v.map_or("-", |v| judge_name(m, v)).to_string(),
            )
        })
        .collect();
    let log = envoy.log().lines().filter_map(judged_line).collect();
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let is_withdrawn = withdrawn(&s);
    JudgedResult {
        scenario: name.to_string(),
        canary_requests: load(&sent.requests[0]),
        canary_errors: load(&sent.errors[0]),
        baseline_requests: load(&sent.requests[1]),
        baseline_errors: load(&sent.errors[1]),
        seconds: driven.seconds,
        withdrawn_after_s: driven.done_at.filter(|_| is_withdrawn).map(|(t, _)| t),
        requests_to_withdrawal: driven.done_at.filter(|_| is_withdrawn).map(|(_, n)| n),
        verdicts,
        decision: gauge(&s, "canary_judge_decision", &v2)
            .map_or("-", |v| judge_name("decision", v))
            .to_string(),
        gate: gauge(&s, "canary_gate_state", &v2)
            .map_or("-", gate_name)
            .to_string(),
        log,
    }
}

fn say_result(stage: &Stage<'_>, j: &JudgedResult) {
    stage.say(&format!(
        "  v2 {} errors in {} requests, v1 {} in {}; {:.1} s; errors {}, latency-shift {}, latency-tail {}; judge {}, gate {}{}",
        j.canary_errors,
        j.canary_requests,
        j.baseline_errors,
        j.baseline_requests,
        j.seconds,
        j.verdict("errors"),
        j.verdict("latency-shift"),
        j.verdict("latency-tail"),
        j.decision,
        j.gate,
        j.withdrawn_after_s.map_or(String::new(), |t| format!(
            "; withdrawn after {t:.1} s ({} requests)",
            j.requests_to_withdrawal.unwrap_or(0)
        ))
    ));
    for l in &j.log {
        stage.say(&format!("    {l}"));
    }
}

/// Phase 7: 0.15 % against 0.01 %, withdrawn by the relative verdict.
pub(super) async fn subtle_regression(stage: &Stage<'_>, r: &mut Results) {
    stage.say("\n== 7. Subtle regression: v2 at 0.15 % errors against v1 at 0.01 %, under the 0.2 % rollback trigger");
    let limit = stage.o.phase_secs * 15.0;
    let j = scenario(
        stage,
        r,
        ("subtle", "7 subtle regression (judged)"),
        (667, 10_000),
        withdrawn,
        (limit, 1.0),
    )
    .await;
    say_result(stage, &j);
    r.judged.push(j);
}

/// Phase 8: both at 5 %; held with "baseline failing too", not withdrawn.
pub(super) async fn shared_incident(stage: &Stage<'_>, r: &mut Results) {
    stage
        .say("\n== 8. Shared incident: v1 and v2 both at 5 % errors (a shared dependency failing)");
    let j = scenario(
        stage,
        r,
        ("incident", "8 shared incident (judged)"),
        (20, 20),
        held,
        (stage.o.phase_secs * 5.0, stage.o.phase_secs / 2.0),
    )
    .await;
    say_result(stage, &j);
    r.judged.push(j);
}

#[cfg(test)]
mod tests {
    use super::judged_line;

    #[test]
    fn a_judged_line_is_found_behind_either_of_envoys_prefixes() {
        let tick = "[..][warning][wasm] [context.cc:1154] wasm log canary: canary gate v2: hold -> rollback (x)";
        let request = "[..][warning][wasm] [context.cc:1154] wasm log canary canary: canary judge v2 vs v1: wait -> withdraw (y)";
        assert_eq!(
            judged_line(tick).as_deref(),
            Some("canary gate v2: hold -> rollback (x)")
        );
        assert_eq!(
            judged_line(request).as_deref(),
            Some("canary judge v2 vs v1: wait -> withdraw (y)")
        );
        assert_eq!(
            judged_line("wasm log canary: canary gate v1: pass -> hold"),
            None
        );
    }
}
