//! Phase 5, the workshop module's Exercise 8: an SLO-gated promotion, where a
//! rollout step advances only when the gate reads `pass`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canary_e2e::{traffic, Envoy};
use serde_json::{json, Value};

use super::Stage;
use crate::mesh::{cohort_routes, frontend};
use crate::options::TICK_MS;
use crate::recorder::gate_name;
use crate::results::{PromotionStep, Results};

/// The rollout at `percent`, gated with Exercise 8's SLOs (windows in seconds).
fn config(percent: u32) -> Value {
    json!({
        "sticky": {"percent": percent, "salt": "sandbox-v2"},
        "gates": {"canaryVersion": "v2", "tick": format!("{TICK_MS}ms"), "bucket": "1s", "minSamples": 20,
                  "promotion": [
                      {"atPercent": 10, "maxErrorPercent": 0.05, "maxP99": "50ms", "max5xx": 0, "holdFor": "2s", "window": "4s"},
                      {"atPercent": 50, "objectives": true, "holdFor": "2s", "window": "4s"}
                  ],
                  "rollback": [{"http5xxPercentAbove": 1, "window": "4s"}]}
    })
}

pub(super) async fn play(stage: &Stage<'_>, r: &mut Results) -> Result<(), String> {
    let o = stage.o;
    stage.say(
        "\n== 5. SLO-gated promotion (Exercise 8): a step advances only when the gate reads pass",
    );
    let envoy = stage
        .mesh
        .productpage(
            &config(10),
            cohort_routes(&["internal", "beta", "canary"], "v2", &[("v1", 100)]),
        )
        .await;
    let rec = stage.record(&envoy, "promotion");
    // Users keep coming for the whole phase, in half-second rounds.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let client = frontend(&envoy);
    let (pop, rate) = (stage.pop.clone(), o.rate);
    let users = tokio::spawn(async move {
        let mut first = 0;
        while !flag.load(Ordering::SeqCst) {
            traffic::steady(&client, &pop, rate, Duration::from_millis(500), first).await;
            first += (rate / 2.0) as usize;
        }
    });
    let promoted = promote(stage, &envoy, r).await;
    stop.store(true, Ordering::SeqCst);
    let _ = users.await;
    r.timelines
        .push(("5 gated promotion".into(), rec.finish().await));
    promoted
}

/// Steps 10 -> 50 -> 100 %, each after the gate read `pass` at the step
/// before; stops at the first step whose gate never passes.
async fn promote(stage: &Stage<'_>, envoy: &Envoy, r: &mut Results) -> Result<(), String> {
    for (i, p) in [10u32, 50, 100].into_iter().enumerate() {
        if i > 0 {
            envoy.update_filter(&config(p).to_string()).await?;
            // Let a tick run under the new step, so the gauge no longer shows the last step's pass.
            tokio::time::sleep(Duration::from_millis(3 * TICK_MS)).await;
        }
        let step = wait_for_pass(envoy, p, stage.o.phase_secs * 3.0).await;
        stage.say(&match step.seconds_to_pass {
            Some(secs) if p < 100 => {
                format!("  step {p:>3} %: gate read pass after {secs:.1} s: promote")
            }
            Some(_) => format!("  step {p:>3} %: full rollout"),
            None => format!("  step {p:>3} %: gate still {}: not promoted", step.state),
        });
        let passed = step.seconds_to_pass.is_some();
        r.promotion.push(step);
        if !passed {
            break;
        }
    }
    Ok(())
}

/// Polls v2's gate gauge at step `percent` for up to `limit_secs`; the full
/// rollout needs no pass.
async fn wait_for_pass(envoy: &Envoy, percent: u32, limit_secs: f64) -> PromotionStep {
    let t = Instant::now();
    let mut state = "unknown".to_string();
    let mut passed = None;
    while t.elapsed() < Duration::from_secs_f64(limit_secs) {
        let s = envoy.stats().await;
        let g = s
            .matching("canary_gate_state", &[("canary_version", "v2")])
            .next()
            .map_or(0.0, |x| x.value);
        state = gate_name(g).to_string();
        if state == "pass" || percent == 100 {
            passed = Some(t.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    PromotionStep {
        percent,
        seconds_to_pass: passed,
        state,
    }
}
