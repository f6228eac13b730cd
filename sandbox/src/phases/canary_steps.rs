//! Phase 2, the workshop module's Exercises 3-4: the canary grows
//! 10 -> 50 -> 100 %, once as per-request weights and once as the filter's
//! sticky cohort, counting the users who see both versions.

use std::collections::BTreeSet;

use canary_e2e::traffic::Population;
use canary_e2e::Route;
use serde_json::{json, Value};

use super::Stage;
use crate::mesh::cohort_routes;
use crate::records::{flipped, share, version};
use crate::results::{Results, StepResult};

fn sticky_config(percent: u32) -> Value {
    json!({"sticky": {"percent": percent, "salt": "sandbox"}})
}

pub(super) async fn play(stage: &Stage<'_>, r: &mut Results) -> Result<(), String> {
    let o = stage.o;
    stage.say(
        "\n== 2. Canary 10 -> 50 -> 100 % (Exercises 3-4): per-request weights vs the sticky cohort",
    );
    let sticky = stage
        .mesh
        .productpage(
            &sticky_config(0),
            cohort_routes(&["canary"], "v2", &[("v1", 100)]),
        )
        .await;
    let mut previous_canary: BTreeSet<usize> = BTreeSet::new();
    // Few users, several requests each, so flips can show.
    let few = Population::regular((o.rate * o.phase_secs / 2.0 / 4.0).max(10.0) as usize);
    for p in [10u32, 50, 100] {
        let weighted = stage
            .mesh
            .productpage(
                &json!({}),
                vec![Route::weighted(&[("v1", 100 - p), ("v2", p)])],
            )
            .await;
        let w = stage.users(&weighted, &few, o.phase_secs / 2.0).await;
        sticky.update_filter(&sticky_config(p).to_string()).await?;
        let s = stage
            .recorded_users(
                &sticky,
                (&format!("sticky {p}%"), &format!("2 sticky {p} %")),
                &few,
                o.phase_secs / 2.0,
                r,
            )
            .await;
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
        stage.say(&format!(
            "  {p:>3} %: weights put {:.0} % on v2, {} of {} users flipped; sticky put {:.0} % on v2, {} flipped, {} left the canary",
            step.weighted_share * 100.0, step.weighted_flipped, step.users, step.sticky_share * 100.0, step.sticky_flipped, step.sticky_left
        ));
        previous_canary = canary;
        r.steps.push(step);
    }
    Ok(())
}
