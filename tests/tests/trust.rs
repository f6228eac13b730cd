//! Anti-spoofing in a real Envoy: routing headers count only from trusted
//! source addresses or mTLS peers, and are stripped before the upstream.

use canary_e2e::certs::Pki;
use canary_e2e::client::TlsClient;
use canary_e2e::sidecar::Tls;
use canary_e2e::{Client, Envoy, FilterSpec, Req, Sidecar, Upstream};

const TRUSTED_SOURCE: &str = "127.0.0.2";
const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/productpage";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_headers_from_untrusted_addresses_never_reach_v2() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let cfg = format!(r#"{{"trust": {{"sourceCidrs": ["{TRUSTED_SOURCE}/32"]}}}}"#);
    let sidecar = Sidecar::outbound(
        FilterSpec::Canary(cfg),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    let envoy = Envoy::start(&sidecar).await;

    let outsider = Client::from_source(envoy.listener, "127.0.0.1".parse().unwrap());
    for (h, v) in [("user-type", "internal"), ("beta-user", "true")] {
        for _ in 0..20 {
            let r = outsider
                .send(
                    &Req::get("/")
                        .header(h, v)
                        .header("x-canary-cohort", "internal"),
                )
                .await;
            assert_eq!(r.upstream(), Some("v1"));
            assert_eq!(r.header("x-canary-cohort"), Some("stable"));
        }
        let seen = v1.last_headers().unwrap();
        assert!(seen.get(h).is_none(), "{h} reached the upstream: {seen:?}");
    }
    assert_eq!(v2.requests(), 0);

    let insider = Client::from_source(envoy.listener, TRUSTED_SOURCE.parse().unwrap());
    let r = insider
        .send(&Req::get("/").header("user-type", "internal"))
        .await;
    assert_eq!(r.upstream(), Some("v2"));
    assert_eq!(r.header("x-canary-cohort"), Some("internal"));
    assert_eq!(v2.last_headers().unwrap()["user-type"], "internal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_headers_count_only_from_trusted_mtls_peers() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let pki = Pki::new();
    let server = pki.leaf(None);
    let cfg = format!(r#"{{"trust": {{"peerPrincipals": ["{PRODUCTPAGE}"]}}}}"#);
    let mut sidecar = Sidecar::outbound(
        FilterSpec::Canary(cfg),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    sidecar.tls = Some(Tls {
        cert_pem: server.cert_pem,
        key_pem: server.key_pem,
        client_ca_pem: pki.ca_pem.clone(),
    });
    let envoy = Envoy::start(&sidecar).await;

    let pp = pki.leaf(Some(PRODUCTPAGE));
    let trusted = TlsClient::new(envoy.listener, &pki.ca_pem, &pp.cert_pem, &pp.key_pem);
    let other = pki.leaf(Some("spiffe://cluster.local/ns/default/sa/sleep"));
    let untrusted = TlsClient::new(envoy.listener, &pki.ca_pem, &other.cert_pem, &other.key_pem);
    let anonymous = pki.leaf(None);
    let no_san = TlsClient::new(
        envoy.listener,
        &pki.ca_pem,
        &anonymous.cert_pem,
        &anonymous.key_pem,
    );

    let r = trusted
        .send(&Req::get("/").header("beta-user", "true"))
        .await;
    assert_eq!((r.status, r.upstream()), (200, Some("v2")));
    assert_eq!(r.header("x-canary-cohort"), Some("beta"));
    for c in [&untrusted, &no_san] {
        let r = c.send(&Req::get("/").header("beta-user", "true")).await;
        assert_eq!((r.status, r.upstream()), (200, Some("v1")));
        assert_eq!(r.header("x-canary-cohort"), Some("stable"));
        assert!(v1.last_headers().unwrap().get("beta-user").is_none());
    }
    assert_eq!(v2.requests(), 1);
}
