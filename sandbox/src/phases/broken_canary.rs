//! Phase 4, the workshop module's Exercise 6: a broken v3 at 20 %, met once
//! by outlier detection alone (per-request 20 %) and once by the filter's gate
//! (sticky 20 %, withdrawn automatically): first with the absolute gates
//! alone, acting once `minSamples` requests are in a window, then with the
//! judge's sequential decision against the baseline (v2) on top.

use std::time::Duration;

use canary_e2e::traffic::log_time;
use canary_e2e::Route;
use serde_json::json;

use super::Stage;
use crate::mesh::cohort_routes;
use crate::options::TICK_MS;
use crate::records::version;
use crate::results::{Exposure, Results};

pub(super) async fn play(stage: &Stage<'_>, r: &mut Results) {
    stage.say(
        "\n== 4. Broken v3 at 20 % (Exercise 6): outlier detection alone vs the filter's gate",
    );
    let outlier = outlier_detection_alone(stage, r).await;
    let (gated, withdrawn) = filter_gate(stage, r, false).await;
    let (judged, judge_withdrew) = filter_gate(stage, r, true).await;
    for (name, e) in [
        ("outlier detection alone", &outlier),
        ("gate, minSamples 20", &gated),
        ("gate, sequential judge", &judged),
    ] {
        stage.say(&format!(
            "  {name:<24}: {} of {} requests failed, {} of {} users saw an error ({:.1} %){}",
            e.errors,
            e.requests,
            e.users_with_error,
            e.users,
            e.blast_radius() * 100.0,
            e.time_to_withdrawal_ms.map_or(String::new(), |t| format!(
                ", withdrawn {t} ms after the first error"
            ))
        ));
    }
    r.outlier_only = Some(outlier);
    r.gated = Some(gated);
    r.v3_withdrawn = withdrawn;
    r.judged_gate = Some(judged);
    r.v3_withdrawn_by_judge = judge_withdrew;
}

/// v3 on a per-request 20 % with only the productpage sidecar's outlier
/// detection and retries to protect users.
async fn outlier_detection_alone(stage: &Stage<'_>, r: &mut Results) -> Exposure {
    let envoy = stage
        .mesh
        .productpage(&json!({}), vec![Route::weighted(&[("v2", 80), ("v3", 20)])])
        .await;
    let records = stage
        .recorded_users(
            &envoy,
            ("outlier only", "4a outlier detection only"),
            &stage.regular,
            stage.o.phase_secs,
            r,
        )
        .await;
    Exposure::of(&records)
}

/// v3 as a sticky 20 % canary under a gate whose rollback triggers withdraw
/// the cohort, and with `judged` the judge against v2 too; measures how soon
/// after the first error that happened. Returns whether it was withdrawn.
async fn filter_gate(stage: &Stage<'_>, r: &mut Results, judged: bool) -> (Exposure, bool) {
    let mut cfg = json!({
        "sticky": {"percent": 20, "salt": "sandbox-v3"},
        "gates": {"canaryVersion": "v3", "tick": format!("{TICK_MS}ms"), "bucket": "1s", "minSamples": 20,
                  "promotion": [{"atPercent": 20, "objectives": true, "holdFor": "5s", "window": "5s"}],
                  "rollback": [{"http5xxPercentAbove": 1, "window": "5s"}, {"errorPercentAbove": 5, "window": "5s", "for": "1s"}]}
    });
    if judged {
        cfg["gates"]["judgment"] = json!({});
    }
    let (phase, timeline) = if judged {
        ("judge", "4c filter gate, sequential judge")
    } else {
        ("gate", "4b filter gate, minSamples 20")
    };
    let envoy = stage
        .mesh
        .productpage(
            &cfg,
            cohort_routes(&["internal", "canary"], "v3", &[("v2", 100)]),
        )
        .await;
    let records = stage
        .recorded_users(
            &envoy,
            (phase, timeline),
            &stage.regular,
            stage.o.phase_secs,
            r,
        )
        .await;
    let mut gated = Exposure::of(&records);
    let fired = envoy
        .log()
        .lines()
        .find(|l| l.contains("canary gate v3: ") && l.contains("-> rollback"))
        .and_then(log_time);
    let first_error = records.iter().find(|r| r.status >= 500).map(|r| r.sent);
    if let (Some(f), Some(e)) = (fired, first_error) {
        gated.time_to_withdrawal_ms = Some(f.duration_since(e).map_or(0, |d| d.as_millis() as u64));
        // Two ticks after the trigger, every worker has withdrawn the cohort.
        gated.canary_requests_after_trigger = Some(
            records
                .iter()
                .filter(|r| {
                    r.sent > f + Duration::from_millis(2 * TICK_MS) && version(r) == Some("v3")
                })
                .count(),
        );
    }
    let withdrawn = envoy.stats().await.sum("canary_gate_withdrawn", &[]) > 0.0;
    (gated, withdrawn)
}
