//! Phase 1, the workshop module's Exercise 2: a release without a canary,
//! where every user meets v2 at once.

use canary_e2e::Route;
use serde_json::json;

use super::Stage;
use crate::records::share;
use crate::results::{Exposure, Results};

pub(super) async fn play(stage: &Stage<'_>, r: &mut Results) {
    stage.say("\n== 1. All-or-nothing release (Exercise 2): every user hits v2 at once");
    let envoy = stage
        .mesh
        .productpage(&json!({}), vec![Route::weighted(&[("v2", 100)])])
        .await;
    let records = stage
        .recorded_users(
            &envoy,
            ("all-at-once", "1 all-or-nothing"),
            &stage.regular,
            stage.o.phase_secs / 2.0,
            r,
        )
        .await;
    r.all_at_once_on_v2 = share(&records, "v2");
    let e = Exposure::of(&records);
    stage.say(&format!(
        "  exposure: {:.0} % of requests and all {} users on v2 from the first second",
        r.all_at_once_on_v2 * 100.0,
        e.users
    ));
    r.all_at_once = Some(e);
}
