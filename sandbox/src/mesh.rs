//! The sandbox's topology, all on loopback, shaped like the workshop
//! module's bookinfo slice:
//! - `reviews` v1, v2 and v3 (two replicas, broken as in Exercise 6), each an
//!   upstream server behind its own Envoy with the filter in SERVER mode, which
//!   stamps `x-canary-version`;
//! - a `productpage` sidecar: Envoy with the filter in CLIENT mode and routes
//!   like the workshop module's VirtualService/DestinationRule (subsets,
//!   weights, cohort matches, outlier detection, retries and timeouts of
//!   Exercise 7), started afresh for each phase since its routes change;
//! - user traffic arriving from a trusted frontend address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use canary_e2e::{Behaviour, Client, Envoy, FilterSpec, Route, Sidecar, Upstream};
use serde_json::{json, Value};

use crate::options::Options;

/// The frontend the trusted traffic comes from; everything else is "outside".
pub const FRONTEND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Where the spoofing traffic of phase 3 comes from.
pub const OUTSIDE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// reviews v1, v2 and v3 behind their own SERVER-mode sidecars.
pub struct Mesh {
    pub replicas: Vec<(String, Upstream, Envoy)>,
}

impl Mesh {
    pub async fn start(o: &Options) -> Mesh {
        let mut replicas = vec![];
        let specs = [
            (
                "v1",
                Behaviour {
                    delay: Duration::from_millis(1),
                    ..Default::default()
                },
            ),
            (
                "v2",
                Behaviour {
                    delay: Duration::from_millis(o.v2_delay_ms),
                    ..Default::default()
                },
            ),
            (
                "v3",
                Behaviour {
                    error_permille: o.v3_error_permille,
                    ..Default::default()
                },
            ),
            (
                "v3",
                Behaviour {
                    error_permille: o.v3_error_permille,
                    ..Default::default()
                },
            ),
        ];
        for (version, b) in specs {
            let app = Upstream::start_with(&format!("reviews-{version}"), b).await;
            let cfg = json!({"version": {"direction": "server"}, "trust": {"sourceCidrs": ["127.0.0.1/32"]}});
            let sidecar = Sidecar::inbound(FilterSpec::Canary(cfg.to_string()), app.addr, version);
            let envoy = Envoy::start(&sidecar).await;
            replicas.push((version.to_string(), app, envoy));
        }
        Mesh { replicas }
    }

    fn endpoints(&self) -> Vec<(&str, SocketAddr)> {
        self.replicas
            .iter()
            .map(|(v, _, e)| (v.as_str(), e.listener))
            .collect()
    }

    /// The productpage sidecar with Exercise 6-7 policies and these routes.
    pub async fn productpage(&self, plugin: &Value, routes: Vec<Route>) -> Envoy {
        let mut s = Sidecar::outbound(
            FilterSpec::CanaryEcds(plugin.to_string()),
            &self.endpoints(),
            &[("v1", 100)],
        );
        s.routes = routes;
        s.concurrency = 2;
        s.route_timeout_ms = 5_000;
        // Exercise 6/7: outlier detection (interval scaled from 30 s to 1 s) and
        // retries on connection failures (503 answers are not retried, as in Istio).
        s.cluster_extra = json!({
            "outlier_detection": {"consecutive_5xx": 3, "interval": "1s", "base_ejection_time": "30s", "max_ejection_percent": 50},
            "circuit_breakers": {"thresholds": [{"max_connections": 1000, "max_pending_requests": 1000}]}
        });
        s.route_extra = json!({"retry_policy": {"retry_on": "connect-failure,refused-stream,reset", "num_retries": 3, "per_try_timeout": "2s"}});
        Envoy::start(&s).await
    }
}

/// Cohort matches to `subset` first, then the default split.
pub fn cohort_routes(cohorts: &[&str], subset: &str, default: &[(&str, u32)]) -> Vec<Route> {
    let mut r: Vec<Route> = cohorts.iter().map(|c| Route::cohort(c, subset)).collect();
    r.push(Route::weighted(default));
    r
}

/// A client of `envoy` sending from the trusted frontend address.
pub fn frontend(envoy: &Envoy) -> Client {
    Client::from_source(envoy.listener, FRONTEND)
}

/// A client of `envoy` sending from outside the trusted frontend.
pub fn outsider(envoy: &Envoy) -> Client {
    Client::from_source(envoy.listener, OUTSIDE)
}
