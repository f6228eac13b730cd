//! Input at the size limits Envoy lets through: a header value near Envoy's
//! 60 KiB header limit, a hundred cookies, and HTTP/2 cookie crumbs. The filter
//! either serves them correctly or Envoy refuses them (431) before it runs;
//! none fails in the filter, and a normal request afterwards is served.

use canary_e2e::{Client, Envoy, FilterSpec, Req, Route, Sidecar, Upstream};

const CONFIG: &str = r#"{
  "cohorts": [
    {"name": "internal", "match": [{"header": "user-type", "exact": "internal"}]},
    {"name": "beta", "match": [{"cookie": "beta", "exact": "1"}]}
  ]
}"#;

struct Mesh {
    envoy: Envoy,
    _v1: Upstream,
    _v2: Upstream,
}

async fn mesh() -> Mesh {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let mut s = Sidecar::outbound(
        FilterSpec::Canary(CONFIG.into()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100)],
    );
    s.routes.insert(0, Route::cohort("beta", "v2"));
    s.routes.insert(0, Route::cohort("internal", "v2"));
    Mesh {
        envoy: Envoy::start(&s).await,
        _v1: v1,
        _v2: v2,
    }
}

/// The answer's status, 0 when the connection was refused or reset.
async fn status(c: &Client, r: &Req) -> u16 {
    c.try_send(r).await.map_or(0, |r| r.status)
}

async fn still_serving(m: &Mesh, after: &str) {
    let r = m.envoy.client().get("/").await;
    assert_eq!(r.status, 200, "a normal request after {after} failed");
    assert_eq!(r.header("x-canary-cohort"), Some("stable"), "after {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_kilobyte_value_is_read_by_the_filter_or_refused_by_envoy() {
    let m = mesh().await;
    let c = m.envoy.client();
    let big = "x".repeat(60_000);
    // Below Envoy's 60 KiB limit: the filter reads all of it and matches nothing.
    let r = c.send(&Req::get("/").header("user-type", &big)).await;
    assert_eq!((r.status, r.upstream()), (200, Some("v1")));
    assert_eq!(r.header("x-canary-cohort"), Some("stable"));
    let r = c
        .send(&Req::get("/").header("cookie", format!("big={big}; beta=1")))
        .await;
    assert_eq!(
        (r.status, r.upstream()),
        (200, Some("v2")),
        "a cookie after a 60 KB one"
    );
    still_serving(&m, "60 KB values").await;
    // Over the limit: Envoy answers 431 before the filter runs.
    let over = "x".repeat(62_000);
    assert_eq!(
        status(&c, &Req::get("/").header("user-type", &over)).await,
        431
    );
    still_serving(&m, "a value over the limit").await;
    let log = m.envoy.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_cookies_are_all_read_and_a_hundred_cookie_lines_are_refused() {
    let m = mesh().await;
    let c = m.envoy.client();
    let mut jar: Vec<String> = (0..99).map(|i| format!("c{i}=v{i}")).collect();
    jar.push("beta=1".into());
    let r = c
        .send(&Req::get("/").header("cookie", jar.join("; ")))
        .await;
    assert_eq!(
        r.upstream(),
        Some("v2"),
        "the hundredth cookie was not read"
    );
    still_serving(&m, "a hundred cookies").await;
    // A hundred `Cookie:` lines plus Host exceed Envoy's 100 headers: 431.
    let lines = jar
        .iter()
        .fold(Req::get("/"), |r, kv| r.header("cookie", kv.as_bytes()));
    assert_eq!(status(&c, &lines).await, 431);
    still_serving(&m, "a hundred cookie lines").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cookie_crumbs_reach_the_filter_joined() {
    let m = mesh().await;
    let c = Client::http2(m.envoy.listener);
    // Over HTTP/2 each cookie travels as its own header field (a crumb);
    // Envoy joins them, so the last crumb counts like the first.
    let crumbs = (0..20)
        .fold(Req::get("/"), |r, i| {
            r.header("cookie", format!("c{i}=v{i}"))
        })
        .header("cookie", "beta=1");
    let r = c.send(&crumbs).await;
    assert_eq!((r.status, r.upstream()), (200, Some("v2")));
    assert_eq!(r.header("x-canary-cohort"), Some("beta"));
    let r = c.send(&Req::get("/").header("cookie", "beta=0")).await;
    assert_eq!(r.upstream(), Some("v1"));
}
