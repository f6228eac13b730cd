//! Repeated request header lines on a real Envoy, sent byte for byte over
//! HTTP/1.1: a cookie counts on whichever `Cookie:` line it comes, a rule
//! header whose lines disagree matches nothing, and an untrusted caller loses
//! every line of a routing header.

use canary_e2e::client::raw_http1;
use canary_e2e::{Envoy, FilterSpec, Sidecar, Upstream};

async fn reviews(plugin_config: &str) -> (Envoy, Upstream, Upstream) {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let sidecar = Sidecar::outbound(
        FilterSpec::Canary(plugin_config.into()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100)],
    );
    (Envoy::start(&sidecar).await, v1, v2)
}

/// The cohort the filter chose and the version that answered.
async fn send(envoy: &Envoy, source: Option<&str>, lines: &[&str]) -> (String, String) {
    let r = raw_http1(envoy.listener, source.map(|s| s.parse().unwrap()), lines)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{lines:?}: {r:?}");
    (
        r.header("x-canary-cohort").unwrap_or_default().to_string(),
        r.upstream().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_counts_on_any_cookie_line() {
    let (envoy, _v1, _v2) = reviews(
        r#"{"cohorts": [{"name": "beta", "match": [{"cookie": "beta", "exact": "1"}]}],
            "sticky": {"percent": 100, "userKey": {"cookie": "uid"}}}"#,
    )
    .await;
    // The rule's cookie on the second line.
    let beta = send(&envoy, None, &["cookie: a=1; b=2", "cookie: beta=1"]).await;
    assert_eq!(beta, ("beta".into(), "v2".into()));
    // The user key on the third line: keyed (100 % canary), not keyless (stable).
    let keyed = send(
        &envoy,
        None,
        &["cookie: a=1", "cookie: b=2", "cookie: uid=42"],
    )
    .await;
    assert_eq!(keyed, ("canary".into(), "v2".into()));
    // Neither anywhere: a keyless user stays on stable.
    let none = send(&envoy, None, &["cookie: a=1", "cookie: b=2"]).await;
    assert_eq!(none, ("stable".into(), "v1".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_header_whose_lines_disagree_matches_nothing() {
    let (envoy, _v1, v2) = reviews("{}").await;
    // A proxy in front appended its value after the client's.
    let spoof = send(
        &envoy,
        None,
        &["user-type: internal", "user-type: external"],
    )
    .await;
    assert_eq!(spoof, ("stable".into(), "v1".into()));
    let spoof = send(&envoy, None, &["beta-user: true", "beta-user: false"]).await;
    assert_eq!(spoof, ("stable".into(), "v1".into()));
    assert_eq!(v2.requests(), 0);
    // Lines that agree count (Envoy joins them with ",", which this checks).
    let same = send(
        &envoy,
        None,
        &["user-type: internal", "user-type: internal"],
    )
    .await;
    assert_eq!(same, ("internal".into(), "v2".into()));
    let one = send(&envoy, None, &["user-type: internal"]).await;
    assert_eq!(one, ("internal".into(), "v2".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_caller_loses_every_line_of_a_routing_header() {
    let (envoy, v1, v2) = reviews(r#"{"trust": {"sourceCidrs": ["127.0.0.2/32"]}}"#).await;
    let lines = [
        "user-type: internal",
        "user-type: internal",
        "beta-user: true",
        "beta-user: true",
        "x-canary-cohort: internal",
        "x-canary-cohort: beta",
    ];
    let r = send(&envoy, Some("127.0.0.1"), &lines).await;
    assert_eq!(r, ("stable".into(), "v1".into()));
    let seen = v1.last_headers().unwrap();
    assert_eq!(seen.get_all("user-type").iter().count(), 0, "{seen:?}");
    assert_eq!(seen.get_all("beta-user").iter().count(), 0, "{seen:?}");
    let cohort: Vec<_> = seen.get_all("x-canary-cohort").iter().collect();
    assert_eq!(cohort, ["stable"], "{seen:?}");
    // The same lines from the trusted address keep both lines and count.
    let r = send(&envoy, Some("127.0.0.2"), &lines).await;
    assert_eq!(r, ("internal".into(), "v2".into()));
    let seen = v2.last_headers().unwrap();
    assert_eq!(seen.get_all("user-type").iter().count(), 2, "{seen:?}");
    let cohort: Vec<_> = seen.get_all("x-canary-cohort").iter().collect();
    assert_eq!(cohort, ["internal"], "{seen:?}");
}
