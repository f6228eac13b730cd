//! `pluginConfig`: strict serde shapes, then a validating conversion into typed
//! values. Every error names the field it is about, because the only place an
//! operator sees it is one log line of a sidecar (or the installer's refusal).

use std::collections::HashSet;

use serde::Deserialize;

use crate::trust::{Cidr, Principal};

/// Cohort label of requests no rule and no sticky bucket claimed.
pub const STABLE: &str = "stable";
/// Cohort label of users the sticky percentage puts on the canary.
pub const CANARY: &str = "canary";
/// Most cohorts a config may declare; each one multiplies the metric series.
pub const MAX_COHORTS: usize = 16;
/// Most versions declared in `version.known`.
pub const MAX_KNOWN_VERSIONS: usize = 32;

/// Why a `pluginConfig` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The JSON did not fit the schema (unknown field, wrong type, bad syntax).
    #[error("pluginConfig field `{field}`: {message}")]
    Schema { field: String, message: String },
    /// The JSON fit the schema but a value is not acceptable.
    #[error("pluginConfig field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    /// The dotted path of the offending field, e.g. `cohorts[1].name`.
    pub fn field(&self) -> &str {
        match self {
            ConfigError::Schema { field, .. } | ConfigError::Invalid { field, .. } => field,
        }
    }

    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------- raw shapes

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    cohort_header: Option<String>,
    cohorts: Option<Vec<RawCohort>>,
    sticky: Option<RawSticky>,
    trust: Option<RawTrust>,
    version: Option<RawVersion>,
    response_headers: Option<RawResponseHeaders>,
    metrics: Option<RawMetrics>,
    gates: Option<crate::gates::policy::RawGates>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCohort {
    name: String,
    #[serde(rename = "match")]
    matches: Vec<RawMatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMatch {
    header: Option<String>,
    cookie: Option<String>,
    query: Option<String>,
    exact: Option<String>,
    prefix: Option<String>,
    present: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSticky {
    percent: Option<f64>,
    user_key: Option<RawUserKey>,
    salt: Option<String>,
    missing_key: Option<MissingKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawUserKey {
    header: Option<String>,
    cookie: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTrust {
    routing_headers: Option<Vec<String>>,
    source_cidrs: Option<Vec<String>>,
    peer_principals: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVersion {
    direction: Option<Direction>,
    value: Option<String>,
    known: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResponseHeaders {
    version: Option<Toggle>,
    cohort: Option<Toggle>,
    server_timing: Option<Toggle>,
}

/// `true` (default name), `false` (off) or a header name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Toggle {
    On(bool),
    Name(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMetrics {
    enabled: Option<bool>,
}

// ---------------------------------------------------------------- typed config

/// What to do with a request whose user key (header or cookie) is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingKey {
    /// Keyless requests stay on stable: nobody anonymous meets the canary.
    #[default]
    Stable,
    /// Keyless requests are split per request at the same percentage.
    PerRequest,
}

/// Which side of the workload the filter sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Direction {
    /// Ask Envoy per request (`xds.listener_direction`); outbound if unknown.
    #[default]
    #[serde(alias = "AUTO")]
    #[serde(rename = "auto")]
    Auto,
    /// Istio CLIENT mode: sidecar outbound or gateway; the version is the routed subset.
    #[serde(alias = "CLIENT")]
    #[serde(rename = "client")]
    Client,
    /// Istio SERVER mode: sidecar inbound; the version is the workload's own.
    #[serde(alias = "SERVER")]
    #[serde(rename = "server")]
    Server,
}

/// Where a rule reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Index into [`Config::rule_headers`].
    Header(usize),
    /// Cookie of this name in the `cookie` header.
    Cookie(String),
    /// Query parameter of this name (percent-decoded) in `:path`.
    Query(String),
}

/// How a rule tests the value it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Present,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub source: Source,
    pub test: Test,
}

/// A named cohort: it claims a request when any of its matches holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    pub name: String,
    pub matches: Vec<Match>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    Header(String),
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    /// Canary share in basis points (percent × 100), 0..=10000.
    pub basis_points: u32,
    pub user_key: UserKey,
    pub salt: String,
    pub missing_key: MissingKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    /// Headers honoured only from trusted sources, removed otherwise.
    pub routing_headers: Vec<String>,
    pub source_cidrs: Vec<Cidr>,
    pub peer_principals: Vec<Principal>,
}

impl Trust {
    /// No policy means the module's behaviour: every routing header is believed.
    pub fn trusts_everyone(&self) -> bool {
        self.source_cidrs.is_empty() && self.peer_principals.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionPolicy {
    pub direction: Direction,
    /// SERVER mode: overrides the pod label `version`.
    pub value: Option<String>,
    /// When set, versions outside it are reported as `other`.
    pub known: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeaders {
    pub version: Option<String>,
    pub cohort: Option<String>,
    pub server_timing: Option<String>,
}

/// A validated `pluginConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub cohort_header: String,
    pub cohorts: Vec<Cohort>,
    pub sticky: Sticky,
    pub trust: Trust,
    pub version: VersionPolicy,
    pub response_headers: ResponseHeaders,
    pub metrics_enabled: bool,
    /// SLO gates; off unless a `gates` section is present.
    pub gates: Option<crate::gates::Gates>,
    /// Distinct header names the rules read, so each is fetched once per request.
    pub rule_headers: Vec<String>,
    /// For each of `rule_headers`: is it a routing header subject to trust?
    pub rule_header_guarded: Vec<bool>,
    pub needs_cookie: bool,
    pub needs_query: bool,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are valid by construction; tests assert it.
        Config::from_json(b"{}").unwrap_or_else(|_| Config::empty())
    }
}

impl Config {
    fn empty() -> Self {
        Config {
            cohort_header: "x-canary-cohort".into(),
            cohorts: vec![],
            sticky: Sticky {
                basis_points: 0,
                user_key: UserKey::Header("x-user-id".into()),
                salt: "canary".into(),
                missing_key: MissingKey::Stable,
            },
            trust: Trust {
                routing_headers: vec![],
                source_cidrs: vec![],
                peer_principals: vec![],
            },
            version: VersionPolicy {
                direction: Direction::Auto,
                value: None,
                known: None,
            },
            response_headers: ResponseHeaders {
                version: None,
                cohort: None,
                server_timing: None,
            },
            metrics_enabled: true,
            gates: None,
            rule_headers: vec![],
            rule_header_guarded: vec![],
            needs_cookie: false,
            needs_query: false,
        }
    }

    /// Parses and validates a `pluginConfig` as Istio delivers it (JSON text).
    /// Empty or whitespace-only input means the defaults, which reproduce the
    /// module's Exercise 5 routing headers.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let trimmed = bytes.trim_ascii();
        let raw: RawConfig = if trimmed.is_empty() {
            RawConfig::default()
        } else if trimmed.first() != Some(&b'{') {
            return Err(ConfigError::Schema {
                field: ".".into(),
                message: "must be a JSON object".into(),
            });
        } else {
            let de = &mut serde_json::Deserializer::from_slice(bytes);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                ConfigError::Schema {
                    field: if path.is_empty() || path == "?" {
                        ".".into()
                    } else {
                        path
                    },
                    message: readable(&inner.to_string()),
                }
            })?
        };
        Config::try_from(raw)
    }

    /// The label of cohort index `i`: 0 is `stable`, 1 is `canary`, then the rules'.
    pub fn cohort_label(&self, i: usize) -> &str {
        match i {
            0 => STABLE,
            1 => CANARY,
            n => self.cohorts.get(n - 2).map_or(STABLE, |c| c.name.as_str()),
        }
    }

    /// Whether finished requests are classified at all: for the metrics, the
    /// gates, or both.
    pub fn counts_outcomes(&self) -> bool {
        self.metrics_enabled || self.gates.is_some()
    }

    /// The label index of a cohort name.
    pub fn cohort_index(&self, name: &str) -> Option<usize> {
        (0..self.cohort_count()).find(|i| self.cohort_label(*i) == name)
    }

    /// Number of cohort labels (stable, canary and the declared ones).
    pub fn cohort_count(&self) -> usize {
        self.cohorts.len() + 2
    }
}

/// Rewords serde's message for operators: internal type names out, and the
/// " at line 1 column 7" suffix dropped because the field path says more.
fn readable(msg: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    };
    if msg.contains("untagged enum Toggle") {
        return "expected true, false or a header name".into();
    }
    match msg.find("expected struct Raw") {
        Some(i) => format!("{}expected an object", &msg[..i]),
        None => msg.to_string(),
    }
}

/// A label value that can be embedded in an Envoy stat name and a Prometheus label.
pub(crate) fn is_label_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_cohort_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

/// HTTP header names are case-insensitive; Envoy stores them lower-cased.
fn header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if lower.is_empty() || !lower.bytes().all(token) {
        return Err(ConfigError::invalid(
            field,
            format!("{name:?} is not a valid HTTP header name"),
        ));
    }
    Ok(lower)
}

fn toggle(field: &str, t: Option<Toggle>, default: &str) -> Result<Option<String>, ConfigError> {
    match t {
        None | Some(Toggle::On(true)) => Ok(Some(default.to_string())),
        Some(Toggle::On(false)) => Ok(None),
        Some(Toggle::Name(n)) => header_name(field, &n).map(Some),
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let mut cfg = Config::empty();

        if let Some(h) = raw.cohort_header {
            cfg.cohort_header = header_name("cohortHeader", &h)?;
        }
        if cfg.cohort_header.starts_with(':') {
            return Err(ConfigError::invalid(
                "cohortHeader",
                "must not be a pseudo-header",
            ));
        }

        // Cohorts: absent means the module's Exercise 5 rules.
        let raw_cohorts = match raw.cohorts {
            Some(c) => c,
            None => vec![
                RawCohort {
                    name: "internal".into(),
                    matches: vec![RawMatch::header_exact("user-type", "internal")],
                },
                RawCohort {
                    name: "beta".into(),
                    matches: vec![RawMatch::header_exact("beta-user", "true")],
                },
            ],
        };
        if raw_cohorts.len() > MAX_COHORTS {
            return Err(ConfigError::invalid(
                "cohorts",
                format!("{} cohorts declared, at most {MAX_COHORTS} allowed (each multiplies metric series)", raw_cohorts.len()),
            ));
        }
        let mut seen = HashSet::new();
        for (i, rc) in raw_cohorts.into_iter().enumerate() {
            let field = format!("cohorts[{i}].name");
            if !is_cohort_name(&rc.name) {
                return Err(ConfigError::invalid(
                    field,
                    format!("{:?} must be 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit", rc.name),
                ));
            }
            if rc.name == STABLE || rc.name == CANARY {
                return Err(ConfigError::invalid(
                    field,
                    format!("{:?} is reserved for requests no rule claims", rc.name),
                ));
            }
            if !seen.insert(rc.name.clone()) {
                return Err(ConfigError::invalid(
                    field,
                    format!("duplicate cohort {:?}", rc.name),
                ));
            }
            if rc.matches.is_empty() {
                return Err(ConfigError::invalid(
                    format!("cohorts[{i}].match"),
                    "needs at least one match",
                ));
            }
            let mut matches = Vec::with_capacity(rc.matches.len());
            for (j, m) in rc.matches.into_iter().enumerate() {
                matches.push(cfg.convert_match(&format!("cohorts[{i}].match[{j}]"), m)?);
            }
            cfg.cohorts.push(Cohort {
                name: rc.name,
                matches,
            });
        }

        // Sticky canary percentage.
        let sticky = raw.sticky.unwrap_or_default();
        if let Some(p) = sticky.percent {
            if !p.is_finite() || !(0.0..=100.0).contains(&p) {
                return Err(ConfigError::invalid(
                    "sticky.percent",
                    format!("{p} is outside 0-100"),
                ));
            }
            let bp = (p * 100.0).round();
            if (bp - p * 100.0).abs() > 1e-6 {
                return Err(ConfigError::invalid(
                    "sticky.percent",
                    format!("{p} is finer than the 0.01 % bucket size"),
                ));
            }
            // In range 0..=10000 by the checks above.
            cfg.sticky.basis_points = bp as u32;
        }
        if let Some(k) = sticky.user_key {
            cfg.sticky.user_key = match (k.header, k.cookie) {
                (Some(h), None) => UserKey::Header(header_name("sticky.userKey.header", &h)?),
                (None, Some(c)) if !c.is_empty() => UserKey::Cookie(c),
                (None, Some(_)) => {
                    return Err(ConfigError::invalid(
                        "sticky.userKey.cookie",
                        "must not be empty",
                    ))
                }
                _ => {
                    return Err(ConfigError::invalid(
                        "sticky.userKey",
                        "set exactly one of `header` or `cookie`",
                    ))
                }
            };
        }
        if let UserKey::Header(h) = &cfg.sticky.user_key {
            if *h == cfg.cohort_header {
                return Err(ConfigError::invalid(
                    "sticky.userKey.header",
                    "must not be the cohort header the filter writes",
                ));
            }
        }
        if let Some(s) = sticky.salt {
            if s.len() > 128 {
                return Err(ConfigError::invalid("sticky.salt", "longer than 128 bytes"));
            }
            cfg.sticky.salt = s;
        }
        cfg.sticky.missing_key = sticky.missing_key.unwrap_or_default();

        // Trust.
        let trust = raw.trust.unwrap_or_default();
        cfg.trust.routing_headers = match trust.routing_headers {
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, h)| header_name(&format!("trust.routingHeaders[{i}]"), h))
                .collect::<Result<_, _>>()?,
            None => cfg.rule_headers.clone(),
        };
        if cfg.trust.routing_headers.contains(&cfg.cohort_header) {
            return Err(ConfigError::invalid(
                "trust.routingHeaders",
                "the cohort header is always recomputed; it cannot be a routing header",
            ));
        }
        for (i, c) in trust.source_cidrs.unwrap_or_default().iter().enumerate() {
            let parsed = c.parse::<Cidr>().map_err(|e| {
                ConfigError::invalid(format!("trust.sourceCidrs[{i}]"), format!("{c:?}: {e}"))
            })?;
            cfg.trust.source_cidrs.push(parsed);
        }
        for (i, p) in trust.peer_principals.unwrap_or_default().iter().enumerate() {
            let parsed = p.parse::<Principal>().map_err(|e| {
                ConfigError::invalid(format!("trust.peerPrincipals[{i}]"), format!("{p:?}: {e}"))
            })?;
            cfg.trust.peer_principals.push(parsed);
        }
        cfg.rule_header_guarded = cfg
            .rule_headers
            .iter()
            .map(|h| cfg.trust.routing_headers.contains(h))
            .collect();

        // Version awareness.
        let version = raw.version.unwrap_or_default();
        cfg.version.direction = version.direction.unwrap_or_default();
        if let Some(v) = version.value {
            if !is_label_safe(&v) {
                return Err(ConfigError::invalid(
                    "version.value",
                    format!("{v:?} must be 1-63 characters of A-Z, a-z, 0-9, '-', '_' or '.'"),
                ));
            }
            cfg.version.value = Some(v);
        }
        if let Some(known) = version.known {
            if known.len() > MAX_KNOWN_VERSIONS {
                return Err(ConfigError::invalid(
                    "version.known",
                    format!("at most {MAX_KNOWN_VERSIONS} versions"),
                ));
            }
            let mut seen = HashSet::new();
            for (i, v) in known.iter().enumerate() {
                if !is_label_safe(v) || v == "other" || v == "unknown" {
                    return Err(ConfigError::invalid(
                        format!("version.known[{i}]"),
                        format!("{v:?} is not a usable version label"),
                    ));
                }
                if !seen.insert(v) {
                    return Err(ConfigError::invalid(
                        format!("version.known[{i}]"),
                        format!("duplicate version {v:?}"),
                    ));
                }
            }
            cfg.version.known = Some(known);
        }

        // Response headers.
        let rh = raw.response_headers.unwrap_or_default();
        cfg.response_headers.version =
            toggle("responseHeaders.version", rh.version, "x-canary-version")?;
        cfg.response_headers.cohort =
            toggle("responseHeaders.cohort", rh.cohort, "x-canary-cohort")?;
        cfg.response_headers.server_timing = toggle(
            "responseHeaders.serverTiming",
            rh.server_timing,
            "server-timing",
        )?;
        let names = [
            ("responseHeaders.version", &cfg.response_headers.version),
            ("responseHeaders.cohort", &cfg.response_headers.cohort),
            (
                "responseHeaders.serverTiming",
                &cfg.response_headers.server_timing,
            ),
        ];
        for (i, (field, a)) in names.iter().enumerate() {
            if let Some(a) = a {
                if names[..i].iter().any(|(_, b)| b.as_ref() == Some(a)) {
                    return Err(ConfigError::invalid(*field, format!("{a:?} is used twice")));
                }
            }
        }

        cfg.metrics_enabled = raw.metrics.and_then(|m| m.enabled).unwrap_or(true);
        if let Some(g) = raw.gates {
            let gates = crate::gates::Gates::from_raw(g, |name| cfg.cohort_index(name))?;
            cfg.gates = Some(gates);
        }
        Ok(cfg)
    }
}

impl RawMatch {
    fn header_exact(name: &str, value: &str) -> Self {
        RawMatch {
            header: Some(name.into()),
            cookie: None,
            query: None,
            exact: Some(value.into()),
            prefix: None,
            present: None,
        }
    }
}

impl Config {
    fn convert_match(&mut self, field: &str, m: RawMatch) -> Result<Match, ConfigError> {
        let source = match (m.header, m.cookie, m.query) {
            (Some(h), None, None) => {
                let h = header_name(&format!("{field}.header"), &h)?;
                if h == self.cohort_header {
                    return Err(ConfigError::invalid(
                        format!("{field}.header"),
                        "a rule cannot read the cohort header the filter writes",
                    ));
                }
                if h.starts_with(':') {
                    return Err(ConfigError::invalid(
                        format!("{field}.header"),
                        "pseudo-headers are not routing headers",
                    ));
                }
                let idx = match self.rule_headers.iter().position(|x| *x == h) {
                    Some(i) => i,
                    None => {
                        self.rule_headers.push(h);
                        self.rule_headers.len() - 1
                    }
                };
                Source::Header(idx)
            }
            (None, Some(c), None) if !c.is_empty() => {
                self.needs_cookie = true;
                Source::Cookie(c)
            }
            (None, None, Some(q)) if !q.is_empty() => {
                self.needs_query = true;
                Source::Query(q)
            }
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(ConfigError::invalid(
                    field,
                    "the cookie or query name must not be empty",
                ))
            }
            _ => {
                return Err(ConfigError::invalid(
                    field,
                    "set exactly one of `header`, `cookie` or `query`",
                ))
            }
        };
        let test = match (m.exact, m.prefix, m.present) {
            (Some(v), None, None) => Test::Exact(v.into_bytes()),
            (None, Some(p), None) => Test::Prefix(p.into_bytes()),
            (None, None, Some(true)) => Test::Present,
            (None, None, Some(false)) => {
                return Err(ConfigError::invalid(
                    format!("{field}.present"),
                    "only `present: true` is supported",
                ))
            }
            _ => {
                return Err(ConfigError::invalid(
                    field,
                    "set exactly one of `exact`, `prefix` or `present`",
                ))
            }
        };
        Ok(Match { source, test })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn err(json: &str) -> ConfigError {
        match Config::from_json(json.as_bytes()) {
            Ok(c) => unreachable!("accepted {json}: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn an_empty_config_reproduces_the_module_defaults() {
        for input in ["", "  \n", "{}"] {
            let c = Config::from_json(input.as_bytes()).unwrap();
            assert_eq!(c.cohort_header, "x-canary-cohort");
            assert_eq!(c.cohorts.len(), 2);
            assert_eq!(c.cohorts[0].name, "internal");
            assert_eq!(c.cohorts[1].name, "beta");
            assert_eq!(c.rule_headers, vec!["user-type", "beta-user"]);
            assert_eq!(c.trust.routing_headers, vec!["user-type", "beta-user"]);
            assert!(c.trust.trusts_everyone());
            assert_eq!(c.sticky.basis_points, 0);
            assert_eq!(c.sticky.user_key, UserKey::Header("x-user-id".into()));
            assert_eq!(
                c.response_headers.version.as_deref(),
                Some("x-canary-version")
            );
            assert_eq!(
                c.response_headers.server_timing.as_deref(),
                Some("server-timing")
            );
            assert!(c.metrics_enabled);
        }
        assert_eq!(Config::default(), Config::from_json(b"{}").unwrap());
    }

    #[test]
    fn a_full_config_is_converted_into_typed_values() {
        let c = Config::from_json(
            br#"{
              "cohortHeader": "X-Cohort",
              "cohorts": [
                {"name": "qa", "match": [{"query": "canary", "exact": "1"}]},
                {"name": "beta", "match": [{"header": "Beta-User", "prefix": "t"}, {"cookie": "beta", "present": true}]}
              ],
              "sticky": {"percent": 12.5, "userKey": {"cookie": "uid"}, "salt": "s1", "missingKey": "perRequest"},
              "trust": {"sourceCidrs": ["10.0.0.0/8", "::1/128"], "peerPrincipals": ["spiffe://cluster.local/ns/a/sa/*"]},
              "version": {"direction": "SERVER", "value": "v2", "known": ["v1", "v2"]},
              "responseHeaders": {"version": false, "cohort": "x-my-cohort", "serverTiming": true},
              "metrics": {"enabled": false}
            }"#,
        )
        .unwrap();
        assert_eq!(c.cohort_header, "x-cohort");
        assert_eq!(c.cohort_label(0), "stable");
        assert_eq!(c.cohort_label(1), "canary");
        assert_eq!(c.cohort_label(2), "qa");
        assert_eq!(c.cohort_label(3), "beta");
        assert_eq!(c.cohort_count(), 4);
        assert_eq!(c.cohorts[1].matches[0].source, Source::Header(0));
        assert_eq!(c.cohorts[1].matches[0].test, Test::Prefix(b"t".to_vec()));
        assert!(c.needs_cookie && c.needs_query);
        assert_eq!(c.sticky.basis_points, 1250);
        assert_eq!(c.sticky.user_key, UserKey::Cookie("uid".into()));
        assert_eq!(c.sticky.missing_key, MissingKey::PerRequest);
        assert_eq!(c.trust.source_cidrs.len(), 2);
        assert!(!c.trust.trusts_everyone());
        assert_eq!(c.trust.routing_headers, vec!["beta-user"]);
        assert_eq!(c.rule_header_guarded, vec![true]);
        assert_eq!(c.version.direction, Direction::Server);
        assert_eq!(c.version.value.as_deref(), Some("v2"));
        assert_eq!(c.response_headers.version, None);
        assert_eq!(c.response_headers.cohort.as_deref(), Some("x-my-cohort"));
        assert!(!c.metrics_enabled);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let e = err(r#"{"cohorts": [{"name": "a", "match": [{"header": "x", "exakt": "1"}]}]}"#);
        assert!(matches!(e, ConfigError::Schema { .. }));
        assert_eq!(e.field(), "cohorts[0].match[0].exakt");
        assert!(e.to_string().contains("unknown field `exakt`"), "{e}");
        assert_eq!(err(r#"{"percent": 10}"#).field(), "percent");
    }

    #[test]
    fn wrong_types_are_refused_with_their_path() {
        let e = err(r#"{"sticky": {"percent": "10"}}"#);
        assert_eq!(e.field(), "sticky.percent");
        assert!(e.to_string().contains("invalid type"), "{e}");
        assert_eq!(
            err(r#"{"version": {"direction": "sideways"}}"#).field(),
            "version.direction"
        );
        assert_eq!(err(r#"[1]"#).field(), ".");
        assert!(err(r#""x""#).to_string().contains("must be a JSON object"));
        assert_eq!(err(r#"{"#).field(), ".");
        let e = err(r#"{"sticky": 5}"#);
        assert_eq!(
            e.to_string(),
            "pluginConfig field `sticky`: invalid type: integer `5`, expected an object"
        );
        let e = err(r#"{"responseHeaders": {"version": 3}}"#);
        assert_eq!(e.field(), "responseHeaders.version");
        assert!(
            e.to_string()
                .contains("expected true, false or a header name"),
            "{e}"
        );
    }

    #[test]
    fn percentages_outside_zero_to_a_hundred_are_refused() {
        for bad in ["-1", "100.5", "1000", "1e400"] {
            let e = Config::from_json(format!(r#"{{"sticky": {{"percent": {bad}}}}}"#).as_bytes())
                .unwrap_err();
            assert_eq!(e.field(), "sticky.percent", "{bad}: {e}");
        }
        let e = err(r#"{"sticky": {"percent": 33.333}}"#);
        assert!(e.to_string().contains("0.01 %"), "{e}");
        for ok in ["0", "0.01", "50", "100"] {
            Config::from_json(format!(r#"{{"sticky": {{"percent": {ok}}}}}"#).as_bytes()).unwrap();
        }
    }

    #[test]
    fn duplicate_and_reserved_cohorts_are_refused() {
        let e = err(
            r#"{"cohorts": [{"name": "beta", "match": [{"header": "a", "present": true}]},
                                     {"name": "beta", "match": [{"header": "b", "present": true}]}]}"#,
        );
        assert_eq!(e.field(), "cohorts[1].name");
        assert!(e.to_string().contains("duplicate cohort \"beta\""), "{e}");
        for name in ["stable", "canary", "Beta", "", "a b", "-x"] {
            let json = format!(
                r#"{{"cohorts": [{{"name": "{name}", "match": [{{"header": "a", "present": true}}]}}]}}"#
            );
            assert_eq!(err(&json).field(), "cohorts[0].name", "{name}");
        }
    }

    #[test]
    fn each_match_needs_exactly_one_source_and_one_test() {
        let cases = [
            (
                r#"{"header": "a", "cookie": "b", "exact": "1"}"#,
                "cohorts[0].match[0]",
            ),
            (r#"{"exact": "1"}"#, "cohorts[0].match[0]"),
            (r#"{"header": "a"}"#, "cohorts[0].match[0]"),
            (
                r#"{"header": "a", "exact": "1", "prefix": "1"}"#,
                "cohorts[0].match[0]",
            ),
            (
                r#"{"header": "a", "present": false}"#,
                "cohorts[0].match[0].present",
            ),
            (
                r#"{"header": "a b", "exact": "1"}"#,
                "cohorts[0].match[0].header",
            ),
            (
                r#"{"header": "x-canary-cohort", "exact": "1"}"#,
                "cohorts[0].match[0].header",
            ),
            (
                r#"{"header": ":path", "exact": "1"}"#,
                "cohorts[0].match[0].header",
            ),
            (r#"{"cookie": "", "exact": "1"}"#, "cohorts[0].match[0]"),
        ];
        for (m, field) in cases {
            let json = format!(r#"{{"cohorts": [{{"name": "a", "match": [{m}]}}]}}"#);
            assert_eq!(err(&json).field(), field, "{m}");
        }
        assert_eq!(
            err(r#"{"cohorts": [{"name": "a", "match": []}]}"#).field(),
            "cohorts[0].match"
        );
    }

    #[test]
    fn too_many_cohorts_are_refused() {
        let cohorts: Vec<String> = (0..17)
            .map(|i| format!(r#"{{"name": "c{i}", "match": [{{"header": "h", "exact": "{i}"}}]}}"#))
            .collect();
        let e = err(&format!(r#"{{"cohorts": [{}]}}"#, cohorts.join(",")));
        assert_eq!(e.field(), "cohorts");
    }

    #[test]
    fn trust_and_version_values_are_checked() {
        assert_eq!(
            err(r#"{"trust": {"sourceCidrs": ["10.0.0.0/33"]}}"#).field(),
            "trust.sourceCidrs[0]"
        );
        assert_eq!(
            err(r#"{"trust": {"sourceCidrs": ["nonsense"]}}"#).field(),
            "trust.sourceCidrs[0]"
        );
        assert_eq!(
            err(r#"{"trust": {"peerPrincipals": [""]}}"#).field(),
            "trust.peerPrincipals[0]"
        );
        assert_eq!(
            err(r#"{"trust": {"routingHeaders": ["x-canary-cohort"]}}"#).field(),
            "trust.routingHeaders"
        );
        assert_eq!(
            err(r#"{"version": {"value": "v 2"}}"#).field(),
            "version.value"
        );
        assert_eq!(
            err(r#"{"version": {"known": ["v1", "v1"]}}"#).field(),
            "version.known[1]"
        );
        assert_eq!(
            err(r#"{"version": {"known": ["other"]}}"#).field(),
            "version.known[0]"
        );
        assert_eq!(
            err(r#"{"sticky": {"userKey": {}}}"#).field(),
            "sticky.userKey"
        );
        assert_eq!(
            err(r#"{"sticky": {"userKey": {"header": "x-canary-cohort"}}}"#).field(),
            "sticky.userKey.header"
        );
        assert_eq!(
            err(r#"{"responseHeaders": {"version": "x-a", "cohort": "x-a"}}"#).field(),
            "responseHeaders.cohort"
        );
    }

    #[test]
    fn an_explicit_routing_header_list_replaces_the_default() {
        let c = Config::from_json(br#"{"trust": {"routingHeaders": ["x-team"]}}"#).unwrap();
        assert_eq!(c.trust.routing_headers, vec!["x-team"]);
        assert_eq!(c.rule_header_guarded, vec![false, false]);
    }
}
