//! Phase 6: cohorts from verified identity. Beta testers are named by a JWT
//! group that productpage's inbound sidecar verifies (`jwt_authn`); the
//! cohort crosses to productpage's outbound sidecar in signed baggage, which
//! the app forwards. Spoofed headers and forged baggage reach nothing.

use canary_e2e::jwt::{now, Issuer};
use canary_e2e::relay::Relay;
use canary_e2e::{Envoy, FilterSpec, Req, Sidecar};
use serde_json::json;

use super::Stage;
use crate::mesh::cohort_routes;
use crate::results::{IdentityResult, Results};

/// The HMAC key both of productpage's filters hold (a lab value).
const KEY: &str = "sandbox baggage key, 32 bytes or more";
/// Every how many users is a beta tester.
const BETA_EVERY: usize = 10;
/// How many spoofed requests of each kind the outsider sends.
const SPOOFED: usize = 30;

pub(super) async fn play(stage: &Stage<'_>, r: &mut Results) {
    stage.say("\n== 6. Verified identity: beta testers by JWT group; spoofed headers and forged baggage from outside");
    let issuer = Issuer::new();
    let rules =
        json!([{"name": "beta", "match": [{"claim": "groups", "contains": "beta-testers"}]}]);
    let outbound_cfg = json!({"cohorts": rules, "version": {"direction": "client"},
                              "identity": {"baggage": {"key": KEY}}});
    let outbound = stage
        .mesh
        .productpage(
            &outbound_cfg,
            cohort_routes(&["beta"], "v2", &[("v1", 100)]),
        )
        .await;
    let app = Relay::start().await;
    app.call(outbound.listener);
    let inbound_cfg = json!({"cohorts": rules, "version": {"direction": "server"},
                             "identity": {"baggage": {"keyEnv": "CANARY_BAGGAGE_KEY"}}});
    let mut s = Sidecar::inbound(FilterSpec::Canary(inbound_cfg.to_string()), app.addr, "v1");
    s.before_filters = vec![issuer.filter()];
    s.vm_env = vec![("CANARY_BAGGAGE_KEY".into(), KEY.into())];
    let inbound = Envoy::start(&s).await;
    let users = inbound.client();

    let on_v2 = |reply: &canary_e2e::Reply| reply.upstream() == Some("reviews-v2");
    let (mut beta, mut beta_v2, mut others, mut others_v1) = (0, 0, 0, 0);
    for user in 0..stage.o.users {
        let is_beta = user % BETA_EVERY == 0;
        let groups = if is_beta { "beta-testers" } else { "customers" };
        let token = issuer.token(json!({"sub": format!("user-{user}"), "groups": [groups]}));
        let reply = users
            .send(&Req::get("/productpage").header("authorization", format!("Bearer {token}")))
            .await;
        if is_beta {
            beta += 1;
            beta_v2 += usize::from(on_v2(&reply));
        } else {
            others += 1;
            others_v1 += usize::from(reply.upstream() == Some("reviews-v1"));
        }
    }

    let forged_baggage = format!("canary-cohort=beta.{}", "0".repeat(64));
    let customer = issuer.token(json!({"sub": "outsider", "groups": ["customers"]}));
    let mut expired = json!({"sub": "user-0", "groups": ["beta-testers"]});
    expired["exp"] = json!(now() - 30);
    let expired = issuer.token(expired);
    let mut res = IdentityResult {
        beta_on_v2: share(beta_v2, beta),
        others_on_v1: share(others_v1, others),
        spoofed: 3 * SPOOFED,
        ..Default::default()
    };
    for _ in 0..SPOOFED {
        let headers = Req::get("/productpage")
            .header("user-type", "internal")
            .header("beta-user", "true")
            .header("groups", "beta-testers")
            .header("x-canary-cohort", "beta");
        let baggage = Req::get("/productpage")
            .header("authorization", format!("Bearer {customer}"))
            .header("baggage", &forged_baggage);
        // Straight at the outbound sidecar, as an app forwarding a forgery.
        let direct = Req::get("/reviews")
            .header("baggage", &forged_baggage)
            .header("x-request-id", "forged-1");
        for reply in [
            users.send(&headers).await,
            users.send(&baggage).await,
            outbound.client().send(&direct).await,
        ] {
            res.spoofed_on_v2 += usize::from(on_v2(&reply));
        }
        let refused = users
            .send(&Req::get("/productpage").header("authorization", format!("Bearer {expired}")))
            .await;
        res.expired += 1;
        res.expired_refused += usize::from(refused.status == 401);
    }
    stage.say(&format!(
        "  beta testers on v2 {:.0} %, everyone else on v1 {:.0} %; spoofed headers and forged baggage: {} of {} reached v2; expired tokens refused {} of {}",
        res.beta_on_v2 * 100.0, res.others_on_v1 * 100.0, res.spoofed_on_v2, res.spoofed, res.expired_refused, res.expired
    ));
    r.identity = Some(res);
}

fn share(n: usize, of: usize) -> f64 {
    n as f64 / of.max(1) as f64
}
