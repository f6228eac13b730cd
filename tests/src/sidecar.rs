//! Envoy configurations that mirror what Istio renders for `reviews`:
//! Istio-style cluster names (`outbound|9080|v2|reviews.default.svc.cluster.local`),
//! a route per cohort match, a weighted default route, and the filter delivered
//! either inline or through ECDS from a file, as a WasmPlugin update would be.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};

pub const SERVICE: &str = "reviews.default.svc.cluster.local";
pub const PORT: u16 = 9080;
/// Name of the filter's ECDS resource and of the filter in the chain.
pub const FILTER_NAME: &str = "canary";
/// What the no-op module's probe mode calls per request (its plugin config):
/// every hostcall the filter makes for `{}`, or all but the three dearest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Floor,
    /// The floor without the `:status` and cluster name reads and the
    /// cohort write (tests/noop-filter says why).
    FloorRest,
}

impl Probe {
    pub fn config(self) -> &'static str {
        match self {
            Probe::Floor => r#"{"probe": "floor"}"#,
            Probe::FloorRest => r#"{"probe": "floor-rest"}"#,
        }
    }
}

/// What the floor probes write: the cohort header on the response (and, the
/// full floor only, on the request), and the version header on the response.
pub const NOOP_FLOOR_COHORT: &str = "stable";
pub const NOOP_FLOOR_VERSION: &str = "probe";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Istio CLIENT mode: the calling pod's sidecar, routing to subsets.
    Outbound,
    /// Istio SERVER mode: the called pod's sidecar in front of its app.
    Inbound,
}

#[derive(Debug, Clone)]
pub enum FilterSpec {
    /// No HTTP filter but the router.
    None,
    /// The canary filter with this pluginConfig, inline in the listener.
    Canary(String),
    /// The canary filter with this pluginConfig, through ECDS from a file.
    CanaryEcds(String),
    /// The canary filter with this pluginConfig, inline, from another build
    /// of the module (the test-trap build).
    CanaryModule(String, std::path::PathBuf),
    /// The do-nothing proxy-wasm module.
    Noop,
    /// The do-nothing module cut to the filter's exports, with a probe's
    /// config: it makes (some of) the filter's per-request hostcalls for
    /// `{}` and nothing else.
    NoopProbe(Probe),
    /// [`LUA_TAGGING`]: the filter's default work in Lua.
    Lua,
}

/// A route: requests whose `header` matches go to the weighted subsets.
#[derive(Debug, Clone)]
pub struct Route {
    pub header: Option<(String, String)>,
    pub weights: Vec<(String, u32)>,
}

impl Route {
    pub fn cohort(cohort: &str, subset: &str) -> Route {
        Route {
            header: Some(("x-canary-cohort".into(), cohort.into())),
            weights: vec![(subset.into(), 100)],
        }
    }

    pub fn weighted(weights: &[(&str, u32)]) -> Route {
        Route {
            header: None,
            weights: weights.iter().map(|(s, w)| (s.to_string(), *w)).collect(),
        }
    }
}

/// Server certificate and the CA that client certificates must chain to.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

#[derive(Debug, Clone)]
pub struct Sidecar {
    pub direction: Direction,
    pub filter: FilterSpec,
    pub routes: Vec<Route>,
    /// (subset, address); an inbound sidecar uses the first one as its app.
    pub upstreams: Vec<(String, SocketAddr)>,
    pub http2_upstream: bool,
    pub tls: Option<Tls>,
    /// Pod labels as Istio puts them in node metadata `LABELS`.
    pub node_labels: Vec<(String, String)>,
    pub route_timeout_ms: u64,
    /// Merged into every cluster (outlier detection, circuit breakers).
    pub cluster_extra: Value,
    /// Merged into every route action (retries).
    pub route_extra: Value,
    pub failure_policy: &'static str,
    pub concurrency: u32,
    /// Run Envoy under `valgrind --tool=callgrind`, which counts the
    /// instructions it executes (the benchmark's instruction meter).
    pub callgrind: bool,
    /// HTTP filters placed before the canary filter (e.g. `jwt_authn`).
    pub before_filters: Vec<Value>,
    /// Environment variables of the canary filter's VM (`vmConfig.env`).
    pub vm_env: Vec<(String, String)>,
}

/// The no-op module's HTTP filter (the probe copy with `plugin_config`).
fn noop_filter(plugin_config: Option<&str>) -> Value {
    let wasm = match plugin_config {
        None => crate::paths::noop_wasm(),
        Some(_) => crate::paths::probe_wasm(),
    };
    let mut config = json!({
        "name": "noop",
        "vm_config": {
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm.to_string_lossy()}},
        },
    });
    if let Some(c) = plugin_config {
        config["configuration"] = json!({
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": c,
        });
    }
    json!({
        "name": "noop",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": config,
        }
    })
}

impl Sidecar {
    /// The workshop module's Exercise 5 routing on the filter's cohort header
    /// (internal, beta and the sticky canary go to v2) over Exercise 4 weights.
    pub fn outbound(
        filter: FilterSpec,
        upstreams: &[(&str, SocketAddr)],
        weights: &[(&str, u32)],
    ) -> Sidecar {
        Sidecar {
            direction: Direction::Outbound,
            filter,
            routes: vec![
                Route::cohort("internal", "v2"),
                Route::cohort("beta", "v2"),
                Route::cohort("canary", "v2"),
                Route::weighted(weights),
            ],
            upstreams: upstreams.iter().map(|(s, a)| (s.to_string(), *a)).collect(),
            http2_upstream: false,
            tls: None,
            node_labels: vec![
                ("app".into(), "productpage".into()),
                ("version".into(), "v1".into()),
            ],
            route_timeout_ms: 15_000,
            cluster_extra: json!({}),
            route_extra: json!({}),
            failure_policy: "FAIL_CLOSED",
            concurrency: 1,
            callgrind: false,
            before_filters: vec![],
            vm_env: vec![],
        }
    }

    /// A workload's own sidecar (SERVER mode) in front of `app`, labelled `version`.
    pub fn inbound(filter: FilterSpec, app: SocketAddr, version: &str) -> Sidecar {
        let mut s = Sidecar::outbound(filter, &[("", app)], &[("", 100)]);
        s.direction = Direction::Inbound;
        s.routes = vec![Route::weighted(&[("", 100)])];
        s.node_labels = vec![
            ("app".into(), "reviews".into()),
            ("version".into(), version.into()),
        ];
        s
    }

    pub fn cluster_name(&self, subset: &str) -> String {
        match self.direction {
            Direction::Outbound => format!("outbound|{PORT}|{subset}|{SERVICE}"),
            Direction::Inbound => format!("inbound|{PORT}||"),
        }
    }

    /// The canary filter's `Wasm` typed config for a pluginConfig.
    pub fn canary_wasm(plugin_config: &str, wasm: &Path, failure_policy: &str) -> Value {
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": FILTER_NAME,
                "root_id": FILTER_NAME,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin_config,
                },
                "vm_config": {
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm.to_string_lossy()}},
                },
                "failure_policy": failure_policy,
            }
        })
    }

    /// The ECDS file content (a DiscoveryResponse) carrying `plugin_config`.
    pub fn ecds_document(plugin_config: &str, version: u64, failure_policy: &str) -> Value {
        json!({
            "version_info": version.to_string(),
            "resources": [{
                "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                "name": FILTER_NAME,
                "typed_config": Sidecar::canary_wasm(plugin_config, &crate::paths::filter_wasm(), failure_policy),
            }]
        })
    }

    /// `wasm` with [`Sidecar::vm_env`] as the VM's environment variables.
    fn with_vm_env(&self, mut wasm: Value) -> Value {
        if !self.vm_env.is_empty() {
            let vars: serde_json::Map<String, Value> = self
                .vm_env
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            wasm["config"]["vm_config"]["environment_variables"] = json!({"key_values": vars});
        }
        wasm
    }

    fn http_filters(&self, dir: &Path) -> Vec<Value> {
        let mut filters = self.before_filters.clone();
        match &self.filter {
            FilterSpec::None => {}
            FilterSpec::Canary(cfg) => {
                let wasm =
                    Sidecar::canary_wasm(cfg, &crate::paths::filter_wasm(), self.failure_policy);
                filters.push(json!({"name": FILTER_NAME, "typed_config": self.with_vm_env(wasm)}));
            }
            FilterSpec::CanaryModule(cfg, wasm) => {
                let wasm = Sidecar::canary_wasm(cfg, wasm, self.failure_policy);
                filters.push(json!({"name": FILTER_NAME, "typed_config": self.with_vm_env(wasm)}));
            }
            FilterSpec::CanaryEcds(cfg) => {
                let ecds_dir = dir.join("ecds");
                std::fs::create_dir_all(&ecds_dir).unwrap();
                let doc = Sidecar::ecds_document(cfg, 1, self.failure_policy);
                std::fs::write(ecds_dir.join("plugin.json"), doc.to_string()).unwrap();
                filters.push(json!({
                    "name": FILTER_NAME,
                    "config_discovery": {
                        "config_source": {
                            "resource_api_version": "V3",
                            "path_config_source": {
                                "path": ecds_dir.join("plugin.json").to_string_lossy(),
                                "watched_directory": {"path": ecds_dir.to_string_lossy()},
                            }
                        },
                        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"],
                    }
                }));
            }
            FilterSpec::Noop => filters.push(noop_filter(None)),
            FilterSpec::NoopProbe(p) => filters.push(noop_filter(Some(p.config()))),
            FilterSpec::Lua => filters.push(json!({
                "name": "envoy.filters.http.lua",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                    "default_source_code": {"inline_string": LUA_TAGGING},
                }
            })),
        }
        filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }));
        filters
    }

    fn route_json(&self, r: &Route) -> Value {
        let mut m = json!({"prefix": "/"});
        if let Some((name, value)) = &r.header {
            m["headers"] = json!([{"name": name, "string_match": {"exact": value}}]);
        }
        let mut action = if r.weights.len() == 1 {
            json!({"cluster": self.cluster_name(&r.weights[0].0)})
        } else {
            let clusters: Vec<Value> = r
                .weights
                .iter()
                .filter(|(_, w)| *w > 0)
                .map(|(s, w)| json!({"name": self.cluster_name(s), "weight": w}))
                .collect();
            json!({"weighted_clusters": {"clusters": clusters}})
        };
        action["timeout"] = json!(format!("{}s", self.route_timeout_ms as f64 / 1000.0));
        merge(&mut action, &self.route_extra);
        json!({"match": m, "route": action})
    }

    /// The full bootstrap, with files (ECDS, certificates) written into `dir`.
    pub fn render(&self, dir: &Path) -> Value {
        let labels: serde_json::Map<String, Value> = self
            .node_labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        // One cluster per subset, with every endpoint given for it (replicas).
        let mut by_cluster: Vec<(String, Vec<SocketAddr>)> = vec![];
        for (subset, addr) in &self.upstreams {
            let name = self.cluster_name(subset);
            match by_cluster.iter_mut().find(|(n, _)| *n == name) {
                Some((_, addrs)) => addrs.push(*addr),
                None => by_cluster.push((name, vec![*addr])),
            }
        }
        let clusters: Vec<Value> = by_cluster
            .into_iter()
            .map(|(name, addrs)| {
                let endpoints: Vec<Value> = addrs
                    .iter()
                    .map(|a| json!({"endpoint": {"address": {"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}}}}))
                    .collect();
                let mut c = json!({
                    "name": name,
                    "connect_timeout": "1s",
                    "type": "STATIC",
                    "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]}
                });
                if self.http2_upstream {
                    c["typed_extension_protocol_options"] = json!({
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}}
                        }
                    });
                }
                merge(&mut c, &self.cluster_extra);
                c
            })
            .collect();
        let routes: Vec<Value> = self.routes.iter().map(|r| self.route_json(r)).collect();
        let mut chain = json!({
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "reviews",
                    "codec_type": "AUTO",
                    "route_config": {
                        "name": "reviews",
                        "virtual_hosts": [{"name": "reviews", "domains": ["*"], "routes": routes}]
                    },
                    "http_filters": self.http_filters(dir),
                }
            }]
        });
        if let Some(tls) = &self.tls {
            let write = |name: &str, pem: &str| {
                let p = dir.join(name);
                std::fs::write(&p, pem).unwrap();
                p.to_string_lossy().into_owned()
            };
            chain["transport_socket"] = json!({
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": true,
                    "common_tls_context": {
                        "tls_certificates": [{
                            "certificate_chain": {"filename": write("server.pem", &tls.cert_pem)},
                            "private_key": {"filename": write("server.key", &tls.key_pem)},
                        }],
                        "validation_context": {"trusted_ca": {"filename": write("ca.pem", &tls.client_ca_pem)}},
                    }
                }
            });
        }
        let (listener, direction) = match self.direction {
            Direction::Outbound => ("outbound_reviews", "OUTBOUND"),
            Direction::Inbound => ("inbound_reviews", "INBOUND"),
        };
        json!({
            "node": {
                "id": format!("sidecar~127.0.0.1~{listener}.default~default.svc.cluster.local"),
                "cluster": "reviews",
                "metadata": {"LABELS": labels, "NAMESPACE": "default"},
            },
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            // Histograms reach /stats only when merged at a flush (5 s by default).
            "stats_flush_interval": "0.2s",
            "static_resources": {
                "listeners": [{
                    "name": listener,
                    "traffic_direction": direction,
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [chain],
                }],
                "clusters": clusters,
            }
        })
    }
}

/// Deep-merges `extra` into `base` (objects merge, anything else replaces).
pub fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// The filter's default work in Lua, the benchmark's comparison without wasm:
/// the cohort from the workshop module's two headers, the cohort header set for
/// routing, and the version and cohort on the response. Envoy's Lua filter
/// clears the route cache itself when a script changes request headers (the
/// benchmark checks that internal requests reach v2). Its API has no upstream
/// cluster name, so the response side maps the cohort to the subset
/// [`Sidecar::outbound`]'s routes send it to (every named cohort to v2).
pub const LUA_TAGGING: &str = r#"
function envoy_on_request(handle)
  local h = handle:headers()
  local cohort = "stable"
  if h:get("user-type") == "internal" then
    cohort = "internal"
  elseif h:get("beta-user") == "true" then
    cohort = "beta"
  end
  h:replace("x-canary-cohort", cohort)
end

function envoy_on_response(handle)
  local cohort = handle:requestHeaders():get("x-canary-cohort") or "stable"
  local version = "v1"
  if cohort ~= "stable" then
    version = "v2"
  end
  local h = handle:headers()
  h:replace("x-canary-version", version)
  h:replace("x-canary-cohort", cohort)
end
"#;

/// A Lua filter that blocks its worker thread for `x-stall-seconds` (whole
/// seconds, the clock's resolution): a stalled worker, for the liveness tests.
pub fn lua_stall() -> Value {
    json!({
        "name": "stall",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": LUA_STALL},
        }
    })
}

const LUA_STALL: &str = r#"
function envoy_on_request(handle)
  local s = handle:headers():get("x-stall-seconds")
  if s then
    local stop = os.time() + tonumber(s)
    while os.time() < stop do end
  end
end
"#;
