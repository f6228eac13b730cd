//! One Envoy per variant, its own upstream included: the sidecar listener
//! routes to Istio-named clusters (`outbound|80|v1|reviews.default.svc.cluster.local`
//! and v2) whose endpoints are further listeners of the same process
//! answering directly, one per subset. The filter thus sees a real upstream
//! cluster name and a real upstream response, and the whole request costs
//! CPU in the one process the bench measures: no upstream server competes
//! for the two cores.

use std::net::{SocketAddr, TcpListener};
use std::path::Path as FsPath;

use serde_json::{json, Value};

use canary_core::Config;

use super::variants::{Filter, HeaderSet, Path, Variant};
use crate::sidecar::{FilterSpec, Sidecar, NOOP_FLOOR_COHORT, NOOP_FLOOR_VERSION, PORT};
use crate::{Envoy, Req};

/// What the upstream listeners (and a direct-response route) answer: a small
/// JSON document like the `reviews` service's.
pub const BODY: &str = r#"{"id":"0","podname":"reviews-bench","reviews":[{"reviewer":"one","text":"Kept me guessing until the last act."},{"reviewer":"two","text":"Solid cast, thin plot, worth an evening."}]}"#;

fn filter_spec(v: &Variant) -> FilterSpec {
    match (&v.filter, &v.module) {
        (Filter::None, _) => FilterSpec::None,
        (Filter::Lua, _) => FilterSpec::Lua,
        (Filter::Noop, _) => FilterSpec::Noop,
        (Filter::Floor(p), _) => FilterSpec::NoopProbe(*p),
        (Filter::Canary(cfg), None) => FilterSpec::Canary(cfg.clone()),
        (Filter::Canary(cfg), Some(wasm)) => FilterSpec::CanaryModule(cfg.clone(), wasm.clone()),
    }
}

/// The subsets and their upstream listeners' addresses.
pub type Upstreams = [(&'static str, SocketAddr); 2];

/// The CPU every variant's Envoy runs on (h2load runs on CPU 1).
pub const ENVOY_CPU: u32 = 0;

/// The sidecar half of a variant: `--concurrency 1`, the module's routes
/// (named cohorts to v2, the rest to v1). [`start`] pins it to [`ENVOY_CPU`].
pub fn sidecar(v: &Variant, up: &Upstreams) -> Sidecar {
    let mut s = Sidecar::outbound(filter_spec(v), up, &[("v1", 100), ("v2", 0)]);
    s.concurrency = 1;
    s
}

fn hcm(stat_prefix: &str, routes: Value, filters: Vec<Value>) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            "route_config": {
                "name": stat_prefix,
                "virtual_hosts": [{"name": stat_prefix, "domains": ["*"], "routes": routes}]
            },
            "http_filters": filters,
        }
    })
}

/// A route answering [`BODY`]; `upstream` names the answering subset in
/// `x-upstream` (the check reads it; a direct response names none).
fn direct_routes(upstream: Option<&str>) -> Value {
    let mut headers = vec![json!({"header": {"key": "content-type", "value": "application/json"}})];
    if let Some(u) = upstream {
        headers.push(json!({"header": {"key": "x-upstream", "value": u}}));
    }
    json!([{
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": BODY}},
        "response_headers_to_add": headers,
    }])
}

/// Turns the rendered sidecar bootstrap into the variant's: the upstream
/// listeners (proxied) or a direct-response route, the workshop's service
/// port in the cluster names, and Envoy's default 5 s stats flush instead of
/// the tests' fast one.
pub fn edit(v: &Variant, up: &Upstreams, bootstrap: &mut Value) {
    // The workshop exposes `reviews` on port 80 (the harness renders
    // Bookinfo's 9080): the filter reads `outbound|80|v1|reviews...`.
    let renamed = bootstrap
        .to_string()
        .replace(&format!("outbound|{PORT}|"), "outbound|80|");
    *bootstrap = serde_json::from_str(&renamed).expect("the bootstrap stays JSON");
    if let Some(o) = bootstrap.as_object_mut() {
        o.remove("stats_flush_interval");
    }
    let listeners = &mut bootstrap["static_resources"]["listeners"];
    let sidecar_hcm = &mut listeners[0]["filter_chains"][0]["filters"][0]["typed_config"];
    match v.path {
        Path::Direct => {
            sidecar_hcm["route_config"]["virtual_hosts"][0]["routes"] = direct_routes(None);
        }
        Path::Proxied => {
            let list = listeners.as_array_mut().expect("rendered listeners");
            for (subset, addr) in up {
                let router = json!({
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                });
                let name = format!("reviews_{subset}");
                list.push(json!({
                    "name": name,
                    "address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}},
                    "filter_chains": [{"filters": [hcm(&name, direct_routes(Some(subset)), vec![router])]}],
                }));
            }
        }
    }
}

/// The variant's complete bootstrap (for `envoy --mode validate`).
pub fn bootstrap(v: &Variant, up: &Upstreams, dir: &FsPath) -> Value {
    let mut b = sidecar(v, up).render(dir);
    edit(v, up, &mut b);
    b
}

/// Loopback ports free right now, for the upstream listeners. Envoy binds
/// them a moment later; `start` retries with other ports if someone took one.
pub fn free_upstreams() -> Upstreams {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = |l: &TcpListener| l.local_addr().expect("bound address");
    [("v1", addr(&a)), ("v2", addr(&b))]
}

/// Starts the variant's Envoy (under callgrind for the instruction meter),
/// pins it to [`ENVOY_CPU`] once it serves, and checks that every header set
/// it will be measured with gets the expected answer. It starts unpinned so
/// that several can start side by side: under callgrind each start is a
/// minute or two of V8 compiling.
pub async fn start(v: &Variant, callgrind: bool) -> Envoy {
    let mut last = String::new();
    for _ in 0..3 {
        let up = free_upstreams();
        let mut s = sidecar(v, &up);
        s.callgrind = callgrind;
        match Envoy::try_start_edited(&s, |b| edit(v, &up, b)).await {
            Ok(envoy) => {
                assert!(
                    up.iter().all(|(_, a)| a.port() != envoy.listener.port()),
                    "the sidecar listener must be the first one"
                );
                pin(&envoy);
                for set in &v.header_sets {
                    if let Err(e) = check(v, &envoy, *set).await {
                        panic!("variant {} ({}): {e}\n{}", v.id, set.id(), envoy.log());
                    }
                }
                return envoy;
            }
            Err(log) => last = log,
        }
    }
    panic!("variant {}: Envoy did not start:\n{last}", v.id)
}

/// Pins every thread of a running Envoy to [`ENVOY_CPU`]. Threads started
/// later inherit it.
fn pin(envoy: &Envoy) {
    let (cpu, pid) = (ENVOY_CPU.to_string(), envoy.pid().to_string());
    if let Err(e) = crate::command::run(
        std::process::Command::new("taskset").args(["-a", "-p", "-c", &cpu, &pid]),
        "taskset (run `make setup`)",
    ) {
        panic!("taskset -a -p -c {cpu} {pid}: {e}");
    }
}

/// The subset a request with `set` must reach: v2 when a cohort rule claims
/// it, else v1; `None` on the direct path (no upstream) and where a sticky
/// percentage decides.
fn expected_upstream(v: &Variant, set: HeaderSet) -> Option<&'static str> {
    let claimed = match &v.filter {
        _ if v.path == Path::Direct => return None,
        Filter::None | Filter::Noop | Filter::Floor(_) => false,
        Filter::Lua => set.default_cohort() != "stable",
        Filter::Canary(cfg) => {
            let c = Config::from_json(cfg.as_bytes()).ok()?;
            if c.sticky.basis_points > 0 {
                return None;
            }
            c.cohorts
                .named(set.default_cohort())
                .is_some_and(|c| c.index() >= 2)
        }
    };
    Some(if claimed { "v2" } else { "v1" })
}

/// One request: 200 with the upstream's body from the subset the routes
/// should pick, and where the variant stamps the canary headers, the cohort
/// and version the header set implies.
async fn check(v: &Variant, envoy: &Envoy, set: HeaderSet) -> Result<(), String> {
    let mut req = Req::get("/");
    for (k, val) in set.headers() {
        req = req.header(k, val);
    }
    let r = envoy.client().try_send(&req).await?;
    if r.status != 200 || r.body != BODY.as_bytes() {
        return Err(format!(
            "expected 200 with the upstream's body, got {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    if let Some(want) = expected_upstream(v, set) {
        if r.upstream() != Some(want) {
            return Err(format!(
                "expected subset {want} to answer, got {:?}",
                r.upstream()
            ));
        }
    }
    let stamps = matches!(&v.filter, Filter::Lua | Filter::Floor(_))
        || matches!(&v.filter, Filter::Canary(c) if c.trim() == "{}");
    if stamps {
        let cohort = set.default_cohort();
        let version = match (&v.filter, v.path, cohort) {
            // The probe writes fixed values.
            (Filter::Floor(_), _, _) => NOOP_FLOOR_VERSION,
            // Lua has no upstream cluster name: its version follows the cohort.
            (Filter::Lua, _, "stable") => "v1",
            (Filter::Lua, _, _) => "v2",
            (_, Path::Direct, _) => "unknown",
            (_, Path::Proxied, "stable") => "v1",
            (_, Path::Proxied, _) => "v2",
        };
        let cohort = match &v.filter {
            Filter::Floor(_) => NOOP_FLOOR_COHORT,
            _ => cohort,
        };
        let got = (r.header("x-canary-cohort"), r.header("x-canary-version"));
        if got != (Some(cohort), Some(version)) {
            return Err(format!(
                "expected x-canary-cohort {cohort} and x-canary-version {version}, got {got:?}"
            ));
        }
    }
    Ok(())
}
