//! Cohorts from verified identity on a real Envoy: `jwt_authn` verifies an
//! HS256 token the test signs, the filter reads its claims, and the decision
//! crosses a service hop in signed baggage.

use canary_core::hash;
use canary_e2e::jwt::Issuer;
use canary_e2e::relay::Relay;
use canary_e2e::{Envoy, FilterSpec, Req, Route, Sidecar, Upstream};
use serde_json::json;

const KEY: &str = "e2e baggage key, 32 bytes or more";

const RULES: &str = r#""cohorts": [
    {"name": "beta", "match": [{"claim": "groups", "contains": "beta-testers"}]},
    {"name": "internal", "match": [{"claim": "user_type", "exact": "internal"}]},
    {"name": "gold", "match": [{"claim": "tenant.tier", "exact": "gold"}]}]"#;

/// A gateway-like Envoy: `jwt_authn`, then the filter, routing on the cohort.
async fn gateway(issuer: &Issuer, plugin_config: &str, v1: &Upstream, v2: &Upstream) -> Envoy {
    let mut s = Sidecar::outbound(
        FilterSpec::Canary(plugin_config.to_string()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    s.routes.insert(0, Route::cohort("gold", "v2"));
    s.before_filters = vec![issuer.filter()];
    Envoy::start(&s).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_claims_choose_the_cohort_and_bad_tokens_are_refused_untagged() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let issuer = Issuer::new();
    let envoy = gateway(&issuer, &format!("{{{RULES}}}"), &v1, &v2).await;
    let c = envoy.client();

    let cases = [
        (
            json!({"sub": "u1", "groups": ["staff", "beta-testers"]}),
            "beta",
            "v2",
        ),
        (
            json!({"sub": "u2", "user_type": "internal"}),
            "internal",
            "v2",
        ),
        (
            json!({"sub": "u3", "tenant": {"tier": "gold"}}),
            "gold",
            "v2",
        ),
        (
            json!({"sub": "u4", "groups": ["staff"], "tenant": {"tier": "silver"}}),
            "stable",
            "v1",
        ),
    ];
    for (claims, cohort, version) in cases {
        let token = issuer.token(claims.clone());
        let r = c
            .send(&Req::get("/").header("authorization", bearer(&token)))
            .await;
        assert_eq!(r.status, 200, "{claims}: {r:?}");
        assert_eq!(r.header("x-canary-cohort"), Some(cohort), "{claims}");
        assert_eq!(r.upstream(), Some(version), "{claims}");
        let seen = if version == "v2" { &v2 } else { &v1 };
        assert_eq!(seen.last_headers().unwrap()["x-canary-cohort"], cohort);
    }

    // Refused by jwt_authn before the filter: never reaches an upstream.
    let before = v1.requests() + v2.requests();
    let beta = json!({"sub": "u1", "groups": ["beta-testers"]});
    let mut expired = beta.clone();
    expired["exp"] = json!(canary_e2e::jwt::now() - 30);
    let forged = Issuer::new().token(beta.clone());
    let mut tampered = issuer.token(json!({"sub": "u9", "groups": ["staff"]}));
    tampered.push('x');
    for (what, token) in [
        ("expired", issuer.token(expired)),
        ("another key", forged),
        ("tampered", tampered),
    ] {
        let r = c
            .send(&Req::get("/").header("authorization", bearer(&token)))
            .await;
        assert_eq!(r.status, 401, "{what}: {r:?}");
        assert_ne!(r.header("x-canary-cohort"), Some("beta"), "{what}");
    }
    assert_eq!(
        v1.requests() + v2.requests(),
        before,
        "a refused token reached an upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_forged_headers_change_nothing() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let issuer = Issuer::new();
    let envoy = gateway(&issuer, &format!("{{{RULES}}}"), &v1, &v2).await;
    let c = envoy.client();
    let forged = Req::get("/")
        .header("user-type", "internal")
        .header("user_type", "internal")
        .header("beta-user", "true")
        .header("groups", "beta-testers")
        .header("x-canary-cohort", "beta")
        .header("tenant.tier", "gold");
    for _ in 0..20 {
        let r = c.send(&forged).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-canary-cohort"), Some("stable"));
        assert_eq!(r.upstream(), Some("v1"));
    }
    // A verified token without the claim, plus the same forged headers.
    let token = issuer.token(json!({"sub": "u5", "groups": ["staff"]}));
    let r = c
        .send(&forged.clone().header("authorization", bearer(&token)))
        .await;
    assert_eq!(r.header("x-canary-cohort"), Some("stable"));
    assert_eq!(v2.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sticky_bucket_follows_the_token_subject_not_a_header() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let issuer = Issuer::new();
    let cfg = r#"{"cohorts": [], "sticky": {"percent": 30, "salt": "reviews", "userKey": {"claim": "sub"}}}"#;
    let envoy = gateway(&issuer, cfg, &v1, &v2).await;
    let c = envoy.client();
    let mut on_canary = 0;
    for i in 0..150 {
        let sub = format!("person-{i}");
        let want = hash::bucket(b"reviews", sub.as_bytes()) < 3000;
        on_canary += usize::from(want);
        let token = issuer.token(json!({"sub": sub}));
        // The header a client could choose changes nothing.
        for spoof in ["person-0", "someone-else"] {
            let r = c
                .send(
                    &Req::get("/")
                        .header("authorization", bearer(&token))
                        .header("x-user-id", spoof),
                )
                .await;
            assert_eq!(r.upstream() == Some("v2"), want, "{sub} ({spoof}): {r:?}");
        }
    }
    assert!(
        (25..=65).contains(&on_canary),
        "{on_canary} of 150 on the canary"
    );
    // No token: no key, so stable (missingKey defaults to stable).
    let r = c.send(&Req::get("/").header("x-user-id", "person-1")).await;
    assert_eq!(r.header("x-canary-cohort"), Some("stable"));
}

/// productpage: an inbound sidecar (SERVER, `jwt_authn`, signs the cohort
/// into baggage) in front of an app that copies `baggage` onto its call to
/// reviews through its outbound sidecar (CLIENT, verifies, routes).
struct Hop {
    _v1: Upstream,
    v2: Upstream,
    _relay: Relay,
    inbound: Envoy,
    outbound: Envoy,
}

async fn hop(issuer: &Issuer) -> Hop {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let relay = Relay::start().await;
    let server_cfg = format!(
        r#"{{{RULES}, "version": {{"direction": "SERVER"}},
            "identity": {{"baggage": {{"keyEnv": "CANARY_BAGGAGE_KEY"}}}}}}"#
    );
    let mut inbound = Sidecar::inbound(FilterSpec::Canary(server_cfg), relay.addr, "v1");
    inbound.before_filters = vec![issuer.filter()];
    inbound.vm_env = vec![("CANARY_BAGGAGE_KEY".into(), KEY.into())];
    let client_cfg = format!(
        r#"{{{RULES}, "version": {{"direction": "CLIENT"}}, "identity": {{"baggage": {{"key": "{KEY}"}}}}}}"#
    );
    let mut outbound = Sidecar::outbound(
        FilterSpec::Canary(client_cfg),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    outbound.routes.insert(0, Route::cohort("gold", "v2"));
    let (inbound, outbound) = (Envoy::start(&inbound).await, Envoy::start(&outbound).await);
    relay.call(outbound.listener);
    Hop {
        _v1: v1,
        v2,
        _relay: relay,
        inbound,
        outbound,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cohort_decided_inbound_routes_the_outbound_call() {
    let issuer = Issuer::new();
    let h = hop(&issuer).await;
    let c = h.inbound.client();
    let beta = issuer.token(json!({"sub": "b1", "groups": ["beta-testers"]}));
    let plain = issuer.token(json!({"sub": "s1", "groups": ["staff"]}));
    for _ in 0..10 {
        let r = c
            .send(&Req::get("/productpage").header("authorization", bearer(&beta)))
            .await;
        assert_eq!(r.upstream(), Some("v2"), "beta user: {r:?}");
        let baggage = h.v2.last_headers().unwrap()["baggage"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(baggage.starts_with("canary-cohort=beta."), "{baggage}");

        let r = c
            .send(&Req::get("/productpage").header("authorization", bearer(&plain)))
            .await;
        assert_eq!(r.upstream(), Some("v1"), "stable user: {r:?}");
        let r = c.send(&Req::get("/productpage")).await;
        assert_eq!(r.upstream(), Some("v1"), "no token: {r:?}");
    }
    // Unrelated baggage from the caller travels on untouched.
    let r = c
        .send(
            &Req::get("/productpage")
                .header("authorization", bearer(&beta))
                .header("baggage", "userId=alice, tenant=t1"),
        )
        .await;
    assert_eq!(r.upstream(), Some("v2"));
    let baggage = h.v2.last_headers().unwrap()["baggage"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        baggage.starts_with("userId=alice,tenant=t1,canary-cohort=beta."),
        "{baggage}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_baggage_reaches_v1() {
    let issuer = Issuer::new();
    let h = hop(&issuer).await;
    let fake_tag = "0".repeat(64);
    let forged = format!("canary-cohort=beta.{fake_tag}");
    // From outside, through the inbound sidecar: replaced by a signed stable.
    let r = h
        .inbound
        .client()
        .send(&Req::get("/productpage").header("baggage", &forged))
        .await;
    assert_eq!(r.upstream(), Some("v1"), "{r:?}");
    // Straight to the outbound sidecar (a compromised or careless app).
    let o = h.outbound.client();
    for baggage in [
        forged.as_str(),
        "canary-cohort=beta",
        "canary-cohort=gold.zz",
    ] {
        let r = o
            .send(
                &Req::get("/reviews")
                    .header("baggage", baggage)
                    .header("x-request-id", "r-1"),
            )
            .await;
        assert_eq!(r.upstream(), Some("v1"), "{baggage}: {r:?}");
        assert_eq!(r.header("x-canary-cohort"), Some("stable"));
    }
    // A genuine tag replayed on a request with another id is worthless.
    let key = canary_core::identity::Key::new(KEY.as_bytes()).unwrap();
    let value = String::from_utf8(key.sign("beta", b"r-1")).unwrap();
    let genuine = format!("canary-cohort={value}");
    let ok = o
        .send(
            &Req::get("/reviews")
                .header("baggage", &genuine)
                .header("x-request-id", "r-1"),
        )
        .await;
    assert_eq!(
        ok.upstream(),
        Some("v2"),
        "the genuine tag for its own request"
    );
    let replayed = o
        .send(
            &Req::get("/reviews")
                .header("baggage", &genuine)
                .header("x-request-id", "r-2"),
        )
        .await;
    assert_eq!(replayed.upstream(), Some("v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_config_whose_key_variable_is_unset_is_refused() {
    let upstream = Upstream::start("v1").await;
    let cfg = r#"{"version": {"direction": "SERVER"}, "identity": {"baggage": {"keyEnv": "CANARY_NO_SUCH_KEY"}}}"#;
    let s = Sidecar::inbound(FilterSpec::Canary(cfg.into()), upstream.addr, "v1");
    match Envoy::try_start(&s).await {
        Ok(envoy) => {
            let r = envoy.client().get("/").await;
            assert_ne!(r.status, 200, "served without a key: {r:?}");
            assert!(
                envoy.log().contains("CANARY_NO_SUCH_KEY is not set"),
                "{}",
                envoy.log()
            );
        }
        Err(log) => assert!(log.contains("CANARY_NO_SUCH_KEY is not set"), "{log}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_rule_picks_the_cohort_of_an_mtls_peer() {
    use canary_e2e::certs::Pki;
    use canary_e2e::client::TlsClient;
    use canary_e2e::sidecar::Tls;
    const QA_BOT: &str = "spiffe://cluster.local/ns/qa/sa/qa-bot";
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let cfg = format!(
        r#"{{"cohorts": [{{"name": "internal", "match": [{{"principal": "{QA_BOT}"}}]}}]}}"#
    );
    let mut s = Sidecar::outbound(
        FilterSpec::Canary(cfg),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    let pki = Pki::new();
    let server = pki.leaf(None);
    s.tls = Some(Tls {
        cert_pem: server.cert_pem,
        key_pem: server.key_pem,
        client_ca_pem: pki.ca_pem.clone(),
    });
    let envoy = Envoy::start(&s).await;
    let bot = pki.leaf(Some(QA_BOT));
    let qa = TlsClient::new(envoy.listener, &pki.ca_pem, &bot.cert_pem, &bot.key_pem);
    let other = pki.leaf(Some("spiffe://cluster.local/ns/qa/sa/qa-bot-2"));
    let someone = TlsClient::new(envoy.listener, &pki.ca_pem, &other.cert_pem, &other.key_pem);
    let r = qa.send(&Req::get("/")).await;
    assert_eq!(
        (r.header("x-canary-cohort"), r.upstream()),
        (Some("internal"), Some("v2"))
    );
    let r = someone
        .send(&Req::get("/").header("x-canary-cohort", "internal"))
        .await;
    assert_eq!(
        (r.header("x-canary-cohort"), r.upstream()),
        (Some("stable"), Some("v1"))
    );
}
