//! Baselines for `make bench`.
//!
//! With an empty plugin config: a root and an HTTP context that only
//! continue, so the bench sees the SDK's dispatch of every stream callback.
//!
//! With `{"probe": "floor"}`: the same, plus exactly the hostcalls the canary
//! filter makes per request with its default config `{}` (see
//! `filter/core/src/budget.rs`), with fixed values and no logic. The bench
//! then tells the ABI's floor for the filter's work apart from the filter's
//! own code.
//!
//! With `{"probe": "floor-rest"}`: the floor without its three dearest calls,
//! the two reads that copy a value into the module (`:status` and the cluster
//! name) and the request header write that makes Envoy select the route
//! again. What is left is the cheapest form of work `{}` cannot skip: the
//! start and end time of the latency, the two cohort rules' header lookups
//! (absent headers, so nothing is copied), the two response headers and one
//! histogram value. What it costs over the empty module is thus a lower
//! bound for any filter doing `{}`'s work on this ABI, whatever its code.
//! Any other config is refused.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

#[allow(unsafe_code)]
mod entry {
    use super::*;

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
    }}
}

/// The plugin configs that turn a probe on (whitespace aside); the
/// harness's `sidecar::Probe::config` says the same.
const FLOOR_CONFIG: &str = r#"{"probe":"floor"}"#;
const FLOOR_REST_CONFIG: &str = r#"{"probe":"floor-rest"}"#;

/// What the probe writes to the request's cohort header (routes to v1, as
/// the filter's `stable` does) and to the response's canary headers.
const PROBE_COHORT: &str = "stable";
const PROBE_VERSION: &str = "probe";

/// The histogram the probe records into: tagged like the filter's.
const HISTOGRAM: &str =
    "canary_version=.=probe;.;canary_cohort=.=stable;.;canary_probe_duration_microseconds";

#[derive(Default)]
struct Root {
    /// The probe's histogram id and whether it makes the dear calls too;
    /// `None` for the empty module.
    floor: Option<(u32, bool)>,
}

impl Context for Root {}

/// The config's bytes without ASCII whitespace.
fn compact(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect()
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = compact(&config);
        if config.is_empty() {
            self.floor = None;
            return true;
        }
        let dear = if config == FLOOR_CONFIG.as_bytes() {
            true
        } else if config == FLOOR_REST_CONFIG.as_bytes() {
            false
        } else {
            let _ = hostcalls::log(
                LogLevel::Error,
                r#"noop: unknown plugin config; known: {"probe": "floor"}, {"probe": "floor-rest"}"#,
            );
            return false;
        };
        // Defined once per VM (Envoy hands out the same id for the same name).
        match hostcalls::define_metric(MetricType::Histogram, HISTOGRAM) {
            Ok(id) => {
                self.floor = Some((id, dear));
                true
            }
            Err(_) => false,
        }
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match self.floor {
            None => Box::new(Noop),
            Some((histogram, dear)) => Box::new(Floor {
                histogram,
                dear,
                started_ns: 0,
            }),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        Action::Continue
    }
}

/// The filter's per-request hostcalls for `{}`, in its order.
struct Floor {
    histogram: u32,
    /// Whether to make the three dearest calls (`floor`) or not (`floor-rest`).
    dear: bool,
    started_ns: u64,
}

fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn read(map: MapType, name: &str) {
    let _ = hostcalls::get_map_value_bytes(map, name);
}

fn write(map: MapType, name: &str, value: &str) {
    let _ = hostcalls::set_map_value_bytes(map, name, Some(value.as_bytes()));
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        self.started_ns = now_ns();
        read(MapType::HttpRequestHeaders, "user-type");
        read(MapType::HttpRequestHeaders, "beta-user");
        if self.dear {
            write(MapType::HttpRequestHeaders, "x-canary-cohort", PROBE_COHORT);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if self.dear {
            read(MapType::HttpResponseHeaders, ":status");
            let _ = hostcalls::get_property(vec!["xds", "cluster_name"]);
        }
        write(
            MapType::HttpResponseHeaders,
            "x-canary-version",
            PROBE_VERSION,
        );
        write(
            MapType::HttpResponseHeaders,
            "x-canary-cohort",
            PROBE_COHORT,
        );
        Action::Continue
    }
}

/// The stream's end, where the filter records its latency: as the SDK drops
/// the context in `proxy_on_delete`. The probes run from a copy of this
/// module cut to the filter's exports (`make build`), which has no
/// `proxy_on_log` either, so they enter the VM exactly where the filter does.
impl Drop for Floor {
    fn drop(&mut self) {
        let us = now_ns().saturating_sub(self.started_ns) / 1000;
        let _ = hostcalls::record_metric(self.histogram, us);
    }
}
