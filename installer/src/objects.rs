//! The Istio objects canaryctl renders: the WasmPlugin that ships the filter
//! and the VirtualService that routes on its cohort header. Built as plain
//! JSON so what is printed, applied and schema-checked is one value.

use serde_json::{json, Map, Value};

pub const MANAGED_BY: &str = "canaryctl";
pub const WASMPLUGIN_CRD: &str = "wasmplugins.extensions.istio.io";
pub const VIRTUALSERVICE_CRD: &str = "virtualservices.networking.istio.io";

/// Traffic the plugin applies to, as WasmPlugin `match.mode` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Sidecar outbound and gateways: the callers' side (routes on the cohort).
    Client,
    /// Sidecar inbound: the called workload's side (its own version).
    Server,
    /// Both directions.
    Both,
}

impl Mode {
    fn istio(self) -> &'static str {
        match self {
            Mode::Client => "CLIENT",
            Mode::Server => "SERVER",
            Mode::Both => "CLIENT_AND_SERVER",
        }
    }

    /// The filter's `version.direction` for this mode.
    pub fn direction(self) -> &'static str {
        match self {
            Mode::Client => "client",
            Mode::Server => "server",
            Mode::Both => "auto",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    #[value(name = "AUTHN")]
    Authn,
    #[value(name = "AUTHZ")]
    Authz,
    #[value(name = "STATS")]
    Stats,
    #[value(name = "UNSPECIFIED_PHASE")]
    Unspecified,
}

impl Phase {
    fn istio(self) -> &'static str {
        match self {
            Phase::Authn => "AUTHN",
            Phase::Authz => "AUTHZ",
            Phase::Stats => "STATS",
            Phase::Unspecified => "UNSPECIFIED_PHASE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailStrategy {
    #[value(name = "FAIL_CLOSE")]
    FailClose,
    #[value(name = "FAIL_OPEN")]
    FailOpen,
    #[value(name = "FAIL_RELOAD")]
    FailReload,
}

impl FailStrategy {
    fn istio(self) -> &'static str {
        match self {
            FailStrategy::FailClose => "FAIL_CLOSE",
            FailStrategy::FailOpen => "FAIL_OPEN",
            FailStrategy::FailReload => "FAIL_RELOAD",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    #[value(name = "IfNotPresent")]
    IfNotPresent,
    #[value(name = "Always")]
    Always,
}

/// A `targetRefs` entry: `Kind/name`, e.g. `Service/reviews` or `Gateway/ingress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub kind: String,
    pub name: String,
}

impl std::str::FromStr for TargetRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((k, n)) if !k.is_empty() && !n.is_empty() => Ok(TargetRef {
                kind: k.into(),
                name: n.into(),
            }),
            _ => Err(format!("{s:?} is not Kind/name (e.g. Service/reviews)")),
        }
    }
}

/// Everything a WasmPlugin for the filter needs.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub namespace: String,
    pub url: String,
    pub sha256: Option<String>,
    pub selector: Vec<(String, String)>,
    pub target_refs: Vec<TargetRef>,
    pub mode: Mode,
    pub ports: Vec<u16>,
    pub phase: Phase,
    pub priority: Option<i32>,
    pub fail_strategy: FailStrategy,
    pub pull_policy: Option<PullPolicy>,
    pub pull_secret: Option<String>,
    pub env: Vec<(String, String)>,
    /// Already validated with the filter's own config code.
    pub plugin_config: Value,
}

fn labels() -> Value {
    json!({"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/name": "canary-filter"})
}

impl PluginSpec {
    pub fn render(&self) -> Value {
        let mut spec = Map::new();
        if !self.selector.is_empty() {
            let m: Map<String, Value> = self
                .selector
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            spec.insert("selector".into(), json!({"matchLabels": m}));
        }
        if !self.target_refs.is_empty() {
            let group = |kind: &str| match kind {
                "Gateway" => "gateway.networking.k8s.io",
                _ => "",
            };
            let refs: Vec<Value> = self
                .target_refs
                .iter()
                .map(|r| json!({"group": group(&r.kind), "kind": r.kind, "name": r.name}))
                .collect();
            spec.insert("targetRefs".into(), json!(refs));
        }
        spec.insert("url".into(), json!(self.url));
        if let Some(s) = &self.sha256 {
            spec.insert("sha256".into(), json!(s));
        }
        if let Some(p) = self.pull_policy {
            spec.insert("imagePullPolicy".into(), json!(format!("{p:?}")));
        }
        if let Some(s) = &self.pull_secret {
            spec.insert("imagePullSecret".into(), json!(s));
        }
        spec.insert("phase".into(), json!(self.phase.istio()));
        if let Some(p) = self.priority {
            spec.insert("priority".into(), json!(p));
        }
        spec.insert("failStrategy".into(), json!(self.fail_strategy.istio()));
        let mut m = Map::new();
        m.insert("mode".into(), json!(self.mode.istio()));
        if !self.ports.is_empty() {
            let ports: Vec<Value> = self.ports.iter().map(|p| json!({"number": p})).collect();
            m.insert("ports".into(), json!(ports));
        }
        spec.insert("match".into(), json!([m]));
        spec.insert("pluginName".into(), json!("canary"));
        spec.insert("type".into(), json!("HTTP"));
        spec.insert("pluginConfig".into(), self.plugin_config.clone());
        if !self.env.is_empty() {
            let env: Vec<Value> = self
                .env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            spec.insert("vmConfig".into(), json!({"env": env}));
        }
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": labels()},
            "spec": spec,
        })
    }
}

/// The VirtualService of the workshop module's Exercises 3-5, routing on the cohort.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub namespace: String,
    pub host: String,
    pub stable: String,
    pub canary: String,
    pub cohort_header: String,
    /// Cohorts routed to the canary subset (e.g. internal, beta, canary).
    pub canary_cohorts: Vec<String>,
    /// Default route weights (stable, canary) for everyone else.
    pub weights: (u32, u32),
}

impl RouteSpec {
    pub fn render(&self) -> Value {
        let dest = |subset: &str| json!({"host": self.host, "subset": subset});
        let matches: Vec<Value> = self
            .canary_cohorts
            .iter()
            .map(|c| json!({"headers": {self.cohort_header.clone(): {"exact": c}}}))
            .collect();
        let mut http = vec![];
        if !matches.is_empty() {
            http.push(json!({"name": "cohorts", "match": matches, "route": [{"destination": dest(&self.canary)}]}));
        }
        http.push(json!({
            "name": "default",
            "route": [
                {"destination": dest(&self.stable), "weight": self.weights.0},
                {"destination": dest(&self.canary), "weight": self.weights.1},
            ]
        }));
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": labels()},
            "spec": {"hosts": [self.host], "http": http},
        })
    }
}
