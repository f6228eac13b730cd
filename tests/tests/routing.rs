//! Cohort routing in a real Envoy: the workshop module's Exercises 4 and 5 with the
//! filter computing the cohort header that routes match on.

use canary_e2e::{Client, Envoy, FilterSpec, Req, Sidecar, Upstream};

struct Mesh {
    envoy: Envoy,
    v1: Upstream,
    v2: Upstream,
}

async fn mesh(plugin_config: &str, weights: &[(&str, u32)]) -> Mesh {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let sidecar = Sidecar::outbound(
        FilterSpec::Canary(plugin_config.into()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        weights,
    );
    Mesh {
        envoy: Envoy::start(&sidecar).await,
        v1,
        v2,
    }
}

async fn version_of(c: &Client, req: Req) -> String {
    let r = c.send(&req).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.upstream().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exercise_5_internal_and_beta_reach_v2_and_everyone_else_v1() {
    let m = mesh("", &[("v1", 100), ("v2", 0)]).await;
    let c = m.envoy.client();
    for _ in 0..20 {
        assert_eq!(
            version_of(&c, Req::get("/").header("user-type", "internal")).await,
            "v2"
        );
        assert_eq!(
            version_of(&c, Req::get("/").header("beta-user", "true")).await,
            "v2"
        );
        assert_eq!(version_of(&c, Req::get("/")).await, "v1");
        assert_eq!(
            version_of(&c, Req::get("/").header("user-type", "external")).await,
            "v1"
        );
    }
    // The upstream sees the cohort the filter computed.
    let r = c.send(&Req::get("/").header("beta-user", "true")).await;
    assert_eq!(r.header("x-canary-cohort"), Some("beta"));
    assert_eq!(m.v2.last_headers().unwrap()["x-canary-cohort"], "beta");
    assert_eq!(m.v1.requests(), 40);
    assert_eq!(m.v2.requests(), 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exercise_4_weights_still_split_the_stable_cohort() {
    let m = mesh("", &[("v1", 90), ("v2", 10)]).await;
    let c = m.envoy.client();
    let mut v2 = 0;
    for _ in 0..1000 {
        if version_of(&c, Req::get("/")).await == "v2" {
            v2 += 1;
        }
    }
    // Binomial(1000, 0.1): 100 ± 3 sigma (28).
    assert!(
        (60..=140).contains(&v2),
        "{v2} of 1000 went to v2 at weight 10"
    );
    assert_eq!(m.v1.requests() + m.v2.requests(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sent_cohort_header_never_reaches_v2() {
    let m = mesh("", &[("v1", 100), ("v2", 0)]).await;
    let c = m.envoy.client();
    for spoof in ["internal", "beta", "canary", "stable"] {
        let r = c
            .send(&Req::get("/").header("x-canary-cohort", spoof))
            .await;
        assert_eq!(r.upstream(), Some("v1"), "spoofed {spoof}");
        assert_eq!(r.header("x-canary-cohort"), Some("stable"));
    }
    assert_eq!(m.v2.requests(), 0);
}
