//! Phase 3, the workshop module's Exercise 5: internal and beta users reach
//! v2 first, and routing headers spoofed from outside the trusted frontend
//! reach nothing.

use canary_e2e::traffic::{Kind, Record};
use canary_e2e::Req;
use serde_json::json;

use super::Stage;
use crate::mesh::{cohort_routes, outsider, FRONTEND};
use crate::records::version;
use crate::results::{CohortResult, Results};

/// How many spoofed requests the outsider sends.
const SPOOFED: usize = 50;

pub(super) async fn play(stage: &Stage<'_>, r: &mut Results) {
    stage.say("\n== 3. Internal and beta users first (Exercise 5); a spoofed header from outside");
    let cfg = json!({"trust": {"sourceCidrs": [format!("{FRONTEND}/32")]}});
    let envoy = stage
        .mesh
        .productpage(
            &cfg,
            cohort_routes(&["internal", "beta"], "v2", &[("v1", 100)]),
        )
        .await;
    let rec = stage.record(&envoy, "cohorts");
    let records = stage
        .users(&envoy, &stage.pop, stage.o.phase_secs / 2.0)
        .await;
    let outside = outsider(&envoy);
    let mut spoofed_on_v2 = 0;
    for i in 0..SPOOFED {
        let req = if i % 2 == 0 {
            Req::get("/reviews").header("user-type", "internal")
        } else {
            Req::get("/reviews")
                .header("x-canary-cohort", "internal")
                .header("beta-user", "true")
        };
        if outside.send(&req).await.upstream() == Some("reviews-v2") {
            spoofed_on_v2 += 1;
        }
    }
    r.timelines.push(("3 cohorts".into(), rec.finish().await));
    let on = |k: Kind, v: &str| {
        let rs: Vec<&Record> = records.iter().filter(|r| r.kind == k).collect();
        rs.iter().filter(|r| version(r) == Some(v)).count() as f64 / rs.len().max(1) as f64
    };
    let c = CohortResult {
        internal_on_v2: on(Kind::Internal, "v2"),
        beta_on_v2: on(Kind::Beta, "v2"),
        regular_on_v1: on(Kind::Regular, "v1"),
        spoofed: SPOOFED,
        spoofed_on_v2,
    };
    stage.say(&format!(
        "  internal on v2 {:.0} %, beta on v2 {:.0} %, everyone else on v1 {:.0} %; spoofed from outside: {} of {} reached v2",
        c.internal_on_v2 * 100.0, c.beta_on_v2 * 100.0, c.regular_on_v1 * 100.0, c.spoofed_on_v2, c.spoofed
    ));
    r.cohorts = Some(c);
}
