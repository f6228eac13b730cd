//! What `make bench` measures: the variants (one Envoy process each), the
//! request header sets, and the cases (a variant with one header set) that
//! every round measures once.

use std::path::PathBuf;

use canary_core::Config;

use crate::sidecar::Probe;

/// Where a request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Routed to an Istio-named cluster whose endpoint is a second listener
    /// of the same Envoy answering directly: a real upstream cluster name, a
    /// real upstream response, and no third process on the two cores.
    Proxied,
    /// Answered by the sidecar's own route (no upstream at all).
    Direct,
}

impl Path {
    pub fn id(self) -> &'static str {
        match self {
            Path::Proxied => "proxied",
            Path::Direct => "direct",
        }
    }
}

/// The HTTP filter in front of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    None,
    /// The empty proxy-wasm module (tests/noop-filter): SDK dispatch only.
    Noop,
    /// The empty module, cut to the filter's exports, making (some of) the
    /// filter's per-request hostcalls for `{}` with fixed values: the ABI's
    /// floor for the filter's work (`Probe::Floor`), or that floor without
    /// its three dearest calls (`Probe::FloorRest`).
    Floor(Probe),
    /// [`crate::sidecar::LUA_TAGGING`]: the filter's default work in Lua.
    Lua,
    /// The canary filter with this pluginConfig (JSON text).
    Canary(String),
}

impl Filter {
    pub fn is_wasm(&self) -> bool {
        matches!(self, Filter::Noop | Filter::Floor(_) | Filter::Canary(_))
    }
}

/// Request headers h2load sends (besides the pseudo-headers and its own
/// `user-agent`, which the realistic set overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSet {
    /// Nothing beyond what h2load always sends.
    Minimal,
    /// What a browser-originated call carries inside a mesh: about fifteen
    /// headers none of the filter's rules read, incl. a five-cookie `cookie`.
    Realistic,
    /// Minimal plus `user-type: internal`: the first cohort rule matches and
    /// the request routes to v2.
    Internal,
}

impl HeaderSet {
    pub fn id(self) -> &'static str {
        match self {
            HeaderSet::Minimal => "minimal",
            HeaderSet::Realistic => "realistic",
            HeaderSet::Internal => "internal",
        }
    }

    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            HeaderSet::Minimal => &[],
            HeaderSet::Realistic => REALISTIC,
            HeaderSet::Internal => &[("user-type", "internal")],
        }
    }

    /// The cohort the filter's default rules give this request.
    pub fn default_cohort(self) -> &'static str {
        match self {
            HeaderSet::Internal => "internal",
            HeaderSet::Minimal | HeaderSet::Realistic => "stable",
        }
    }
}

const REALISTIC: &[(&str, &str)] = &[
    (
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("accept-encoding", "gzip, deflate, br"),
    ("accept-language", "en-GB,en;q=0.8,de;q=0.5"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "cookie",
        "session=9f3c2a71e4b04d8a; theme=dark; locale=en-GB; cart=3; consent=analytics%3Dno",
    ),
    ("x-request-id", "2f1d7c9e-6a43-4b8e-9d15-0c7e5a3b8f21"),
    (
        "traceparent",
        "00-6e0c63257de34c92bf9efcd03927272e-1f2e3d4c5b6a7980-01",
    ),
    ("b3", "6e0c63257de34c92bf9efcd03927272e-1f2e3d4c5b6a7980-1"),
    ("x-b3-traceid", "6e0c63257de34c92bf9efcd03927272e"),
    ("x-b3-spanid", "1f2e3d4c5b6a7980"),
    ("x-b3-sampled", "1"),
    ("x-user-id", "user-48151623"),
    ("x-forwarded-proto", "https"),
    ("referer", "https://shop.example.com/productpage?id=0"),
    ("cache-control", "no-cache"),
];

/// One Envoy process of the bench.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Short name for `--variants` and the JSON.
    pub id: String,
    /// What the table calls it.
    pub label: String,
    pub path: Path,
    pub filter: Filter,
    /// The header sets measured on this variant, each one case per round.
    pub header_sets: Vec<HeaderSet>,
    /// Another build of the filter's module (`--module`); `None` = the one
    /// `make build` made.
    pub module: Option<PathBuf>,
}

impl Variant {
    fn new(id: &str, label: &str, path: Path, filter: Filter, sets: &[HeaderSet]) -> Variant {
        Variant {
            id: id.into(),
            label: label.into(),
            path,
            filter,
            header_sets: sets.to_vec(),
            module: None,
        }
    }

    fn canary(id: &str, label: &str, config: &str, sets: &[HeaderSet]) -> Variant {
        Variant::new(
            id,
            label,
            Path::Proxied,
            Filter::Canary(config.into()),
            sets,
        )
    }

    /// The filter's own validation on the variant's pluginConfig, so a bench
    /// config with a misspelt field stops before any Envoy starts (Envoy
    /// would only log it and fail every request).
    pub fn check_config(&self) -> Result<(), String> {
        match &self.filter {
            Filter::Canary(cfg) => Config::from_json(cfg.as_bytes())
                .map(|_| ())
                .map_err(|e| format!("variant {}: {e}", self.id)),
            _ => Ok(()),
        }
    }
}

/// The shipped pluginConfig (what `make wasm-deploy` applies).
pub fn shipped_config_path() -> PathBuf {
    crate::paths::repo_root().join("manifests/module/plugin-config.json")
}

const RH_OFF: &str = r#""responseHeaders": {"version": false, "cohort": false}"#;
const METRICS_OFF: &str = r#""metrics": {"enabled": false}"#;

/// Every variant of a default run, in table order.
pub fn all() -> Vec<Variant> {
    use HeaderSet::{Internal, Minimal, Realistic};
    let shipped = std::fs::read_to_string(shipped_config_path())
        .unwrap_or_else(|e| panic!("{}: {e}", shipped_config_path().display()));
    vec![
        Variant::new(
            "bare",
            "bare Envoy",
            Path::Proxied,
            Filter::None,
            &[Minimal, Realistic, Internal],
        ),
        Variant::new(
            "noop",
            "empty proxy-wasm module",
            Path::Proxied,
            Filter::Noop,
            &[Minimal, Realistic],
        ),
        Variant::new(
            "floor",
            "empty module + the filter's hostcalls for `{}`",
            Path::Proxied,
            Filter::Floor(Probe::Floor),
            &[Minimal],
        ),
        // What `{}` cannot skip: the floor without the `:status` and cluster
        // name reads and the cohort write.
        Variant::new(
            "floor-rest",
            "the same without its three dearest calls",
            Path::Proxied,
            Filter::Floor(Probe::FloorRest),
            &[Minimal],
        ),
        Variant::new(
            "lua",
            "Lua doing the filter's default work",
            Path::Proxied,
            Filter::Lua,
            &[Minimal, Realistic, Internal],
        ),
        Variant::canary(
            "filter",
            "filter, `{}`",
            "{}",
            &[Minimal, Realistic, Internal],
        ),
        Variant::canary(
            "shipped",
            "filter, shipped plugin-config.json",
            &shipped,
            &[Minimal, Realistic],
        ),
        // Loopback callers are trusted: a routing header costs the source
        // address lookup and is then honoured.
        Variant::canary(
            "trust",
            "filter, trust policy on",
            r#"{"trust": {"sourceCidrs": ["127.0.0.0/8"]}}"#,
            &[Minimal, Internal],
        ),
        Variant::canary(
            "gates",
            "filter, gates on",
            r#"{"gates": {"canaryVersion": "v2"}}"#,
            &[Minimal],
        ),
        // The realistic set carries x-user-id, so the user is hashed.
        Variant::canary(
            "sticky",
            "filter, sticky canary 10 %",
            r#"{"sticky": {"percent": 10}}"#,
            &[Realistic],
        ),
        // The cost ladder: `{}` with the opt-in header on, then one
        // feature off at a time, then less.
        Variant::canary(
            "server-timing",
            "filter, `{}` with server-timing",
            r#"{"responseHeaders": {"serverTiming": true}}"#,
            &[Minimal],
        ),
        Variant::canary(
            "no-response-headers",
            "filter, `{}` without response headers",
            &format!("{{{RH_OFF}}}"),
            &[Minimal],
        ),
        Variant::canary(
            "no-metrics",
            "filter, `{}` without metrics",
            &format!("{{{METRICS_OFF}}}"),
            &[Minimal],
        ),
        Variant::canary(
            "tagging-only",
            "filter, tagging only (no metrics, no response headers)",
            &format!("{{{METRICS_OFF}, {RH_OFF}}}"),
            &[Minimal],
        ),
        Variant::canary(
            "no-rules",
            "filter, no cohort rules, no metrics, no response headers",
            &format!(r#"{{"cohorts": [], {METRICS_OFF}, {RH_OFF}}}"#),
            &[Minimal],
        ),
        Variant::new(
            "bare-direct",
            "bare Envoy, direct response",
            Path::Direct,
            Filter::None,
            &[Minimal],
        ),
        Variant::new(
            "noop-direct",
            "empty proxy-wasm module, direct response",
            Path::Direct,
            Filter::Noop,
            &[Minimal],
        ),
        Variant::new(
            "floor-direct",
            "empty module + the filter's hostcalls for `{}`, direct response",
            Path::Direct,
            Filter::Floor(Probe::Floor),
            &[Minimal],
        ),
        Variant::new(
            "lua-direct",
            "Lua doing the filter's default work, direct response",
            Path::Direct,
            Filter::Lua,
            &[Minimal],
        ),
        Variant::new(
            "filter-direct",
            "filter, `{}`, direct response",
            Path::Direct,
            Filter::Canary("{}".into()),
            &[Minimal],
        ),
    ]
}

/// The variants named in `ids` (comma-separated), in table order; every
/// unknown name is an error that lists the known ones.
pub fn select(all: Vec<Variant>, ids: &str) -> Result<Vec<Variant>, String> {
    let wanted: Vec<&str> = ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = wanted.iter().find(|w| !all.iter().any(|v| v.id == **w)) {
        let known: Vec<&str> = all.iter().map(|v| v.id.as_str()).collect();
        return Err(format!(
            "unknown variant {bad:?}; known: {}",
            known.join(", ")
        ));
    }
    Ok(all
        .into_iter()
        .filter(|v| wanted.contains(&v.id.as_str()))
        .collect())
}

/// An extra variant from `--module NAME=PATH`: the filter with `{}` from
/// another build of the module (say, another opt-level), so two builds are
/// compared within one run (proxied, minimal headers).
pub fn other_module(spec: &str) -> Result<Variant, String> {
    let (name, path) = spec
        .split_once('=')
        .ok_or_else(|| format!("--module {spec:?}: expected NAME=PATH_TO_WASM"))?;
    let path = PathBuf::from(path);
    let bytes = std::fs::metadata(&path)
        .map_err(|e| format!("--module {name}: {}: {e}", path.display()))?
        .len();
    let mut v = Variant::canary(
        &format!("module:{name}"),
        &format!("filter, `{{}}`, module {name} ({bytes} bytes)"),
        "{}",
        &[HeaderSet::Minimal],
    );
    v.module = Some(path);
    Ok(v)
}

/// An extra filter variant from `--config NAME=JSON` (proxied, minimal headers).
pub fn extra(spec: &str) -> Result<Variant, String> {
    let (name, json) = spec
        .split_once('=')
        .ok_or_else(|| format!("--config {spec:?}: expected NAME=PLUGIN_CONFIG_JSON"))?;
    let v = Variant::canary(
        &format!("config:{name}"),
        &format!("filter, {name}"),
        json,
        &[HeaderSet::Minimal],
    );
    v.check_config()?;
    Ok(v)
}
