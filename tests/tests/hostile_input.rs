//! Client-controlled bytes never reach a panic. Under FAIL_CLOSED (Istio's
//! default) a panic would turn this and every later request into a 503, so
//! each hostile request is followed by a normal one that must succeed.

use canary_e2e::{Envoy, FilterSpec, Req, Sidecar, Upstream};

const CONFIG: &str = r#"{
  "cohorts": [
    {"name": "internal", "match": [{"header": "user-type", "exact": "internal"}]},
    {"name": "beta", "match": [{"header": "beta-user", "prefix": "t"}, {"cookie": "beta", "exact": "1"}]},
    {"name": "qa", "match": [{"query": "canary", "exact": "1"}]}
  ],
  "sticky": {"percent": 50, "userKey": {"cookie": "uid"}, "missingKey": "perRequest"},
  "trust": {"sourceCidrs": ["10.0.0.0/8"], "peerPrincipals": ["spiffe://cluster.local/ns/default/sa/*"]}
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_headers_cookies_and_queries_never_break_the_filter() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let sidecar = Sidecar::outbound(
        FilterSpec::Canary(CONFIG.into()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100)],
    );
    let envoy = Envoy::start(&sidecar).await;
    let c = envoy.client();

    let long = "x".repeat(30_000);
    let many_cookies: String = (0..500).map(|i| format!("c{i}=v{i}; ")).collect();
    let hostile: Vec<Req> = vec![
        Req::get("/").header("user-type", b"\xff\xfe"),
        Req::get("/").header("beta-user", b"t\x80\x81"),
        Req::get("/").header("cookie", b"\xff=\xfe; uid=\x80\x90; beta=\xc3\x28"),
        Req::get("/").header("cookie", b";;;==;=; ; uid"),
        Req::get("/")
            .header("cookie", b"uid=\"")
            .header("cookie", b"beta=1"),
        Req::get("/").header("cookie", many_cookies.as_bytes()),
        Req::get("/")
            .header("x-canary-cohort", b"\xff")
            .header("x-canary-cohort", b"internal"),
        Req::get("/").header("user-type", long.as_bytes()),
        Req::get("/?%%%&&==&canary=%ff%&canary"),
        Req::get("/?canary=%E2%82%AC%zz&canary=1&=&&"),
        Req::get("/%ff%00?\u{20ac}=1"),
        Req::get("/").header("x-request-id", b"\xfe\xff"),
        (0..100).fold(Req::get("/"), |r, _| r.header("beta-user", "true")),
    ];
    for (i, req) in hostile.iter().enumerate() {
        let r = c.try_send(req).await;
        // Envoy itself may refuse some requests (4xx); none may fail in the filter.
        if let Ok(r) = &r {
            assert!(r.status < 500, "hostile request {i} got {}", r.status);
        }
        let ok = c.get("/").await;
        assert_eq!(
            ok.status, 200,
            "a normal request after hostile request {i} failed"
        );
        assert_eq!(
            ok.header("x-canary-cohort")
                .map(|c| c == "stable" || c == "canary"),
            Some(true)
        );
    }
    let log = envoy.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("Function: proxy_on"), "{log}");
}
