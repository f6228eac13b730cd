//! The shapes of `pluginConfig`, exactly as operators write them, and how
//! each is read from JSON. Everything is optional unless said otherwise and
//! unknown fields are refused; the typed values and their rules come from the
//! `TryFrom` conversions next to each section.

use super::error::ConfigError;
use super::json::{Field, Value};
use super::raw_gates::RawGates;

#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub cohort_header: Option<String>,
    pub cohorts: Option<Vec<RawCohort>>,
    pub sticky: Option<RawSticky>,
    pub trust: Option<RawTrust>,
    pub version: Option<RawVersion>,
    pub response_headers: Option<RawResponseHeaders>,
    pub metrics: Option<RawMetrics>,
    pub gates: Option<RawGates>,
    pub identity: Option<RawIdentity>,
}

#[derive(Debug, Default)]
pub(crate) struct RawCohort {
    pub name: String,
    pub matches: Vec<RawMatch>,
}

#[derive(Debug, Default)]
pub(crate) struct RawMatch {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub query: Option<String>,
    pub claim: Option<RawClaim>,
    pub principal: Option<String>,
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub present: Option<bool>,
    pub contains: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawSticky {
    pub percent: Option<f64>,
    pub user_key: Option<RawUserKey>,
    pub salt: Option<String>,
    pub missing_key: Option<MissingKey>,
}

#[derive(Debug, Default)]
pub(crate) struct RawUserKey {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub claim: Option<RawClaim>,
}

/// A JWT claim: `"tenant.tier"`, or segments (`["https://example.com/roles"]`)
/// for claim names that contain dots.
#[derive(Debug)]
pub(crate) enum RawClaim {
    Dotted(String),
    Segments(Vec<String>),
}

#[derive(Debug, Default)]
pub(crate) struct RawIdentity {
    pub baggage: Option<RawBaggage>,
}

#[derive(Debug, Default)]
pub(crate) struct RawBaggage {
    pub mode: Option<BaggageMode>,
    pub entry: Option<String>,
    pub key: Option<String>,
    pub key_env: Option<String>,
}

/// `identity.baggage.mode` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaggageMode {
    Sign,
    Verify,
}

#[derive(Debug, Default)]
pub(crate) struct RawTrust {
    pub routing_headers: Option<Vec<String>>,
    pub source_cidrs: Option<Vec<String>>,
    pub peer_principals: Option<Vec<String>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawVersion {
    pub direction: Option<Direction>,
    pub value: Option<String>,
    pub known: Option<Vec<String>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawResponseHeaders {
    pub version: Option<Toggle>,
    pub cohort: Option<Toggle>,
    pub server_timing: Option<Toggle>,
}

/// `true` (default name), `false` (off) or a header name.
#[derive(Debug)]
pub(crate) enum Toggle {
    On(bool),
    Name(String),
}

#[derive(Debug, Default)]
pub(crate) struct RawMetrics {
    pub enabled: Option<bool>,
}

/// What to do with a request whose user key (header or cookie) is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// Keyless requests stay on stable: nobody anonymous meets the canary.
    #[default]
    Stable,
    /// Keyless requests are split per request at the same percentage.
    PerRequest,
}

/// Which side of the workload the filter sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Ask Envoy per request (`xds.listener_direction`); outbound if unknown.
    #[default]
    Auto,
    /// Istio CLIENT mode: sidecar outbound or gateway; the version is the routed subset.
    Client,
    /// Istio SERVER mode: sidecar inbound; the version is the workload's own.
    Server,
}

// ---------------------------------------------------------------- reading

impl RawConfig {
    /// The whole document; `value` is its root.
    pub fn read(value: Value) -> Result<Self, ConfigError> {
        let mut raw = RawConfig::default();
        Field::root(value).fields(
            &[
                "cohortHeader",
                "cohorts",
                "sticky",
                "trust",
                "version",
                "responseHeaders",
                "metrics",
                "gates",
                "identity",
            ],
            &[],
            |name, f| {
                match name {
                    "cohortHeader" => raw.cohort_header = Some(f.string()?),
                    "cohorts" => raw.cohorts = Some(f.list(RawCohort::read)?),
                    "sticky" => raw.sticky = Some(RawSticky::read(f)?),
                    "trust" => raw.trust = Some(RawTrust::read(f)?),
                    "version" => raw.version = Some(RawVersion::read(f)?),
                    "responseHeaders" => raw.response_headers = Some(RawResponseHeaders::read(f)?),
                    "metrics" => {
                        let mut m = RawMetrics::default();
                        f.fields(&["enabled"], &[], |name, f| {
                            match name {
                                "enabled" => m.enabled = Some(f.bool()?),
                                _ => return Ok(false),
                            }
                            Ok(true)
                        })?;
                        raw.metrics = Some(m);
                    }
                    "gates" => raw.gates = Some(RawGates::read(f)?),
                    "identity" => raw.identity = Some(RawIdentity::read(f)?),
                    _ => return Ok(false),
                }
                Ok(true)
            },
        )?;
        Ok(raw)
    }
}

impl RawCohort {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawCohort::default();
        f.fields(&["name", "match"], &["name", "match"], |name, f| {
            match name {
                "name" => raw.name = f.string()?,
                "match" => raw.matches = f.list(RawMatch::read)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawMatch {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawMatch::default();
        let known = &[
            "header",
            "cookie",
            "query",
            "claim",
            "principal",
            "exact",
            "prefix",
            "present",
            "contains",
        ];
        f.fields(known, &[], |name, f| {
            match name {
                "header" => raw.header = Some(f.string()?),
                "cookie" => raw.cookie = Some(f.string()?),
                "query" => raw.query = Some(f.string()?),
                "claim" => raw.claim = Some(RawClaim::read(f)?),
                "principal" => raw.principal = Some(f.string()?),
                "contains" => raw.contains = Some(f.string()?),
                "exact" => raw.exact = Some(f.string()?),
                "prefix" => raw.prefix = Some(f.string()?),
                "present" => raw.present = Some(f.bool()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawSticky {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawSticky::default();
        let known = &["percent", "userKey", "salt", "missingKey"];
        f.fields(known, &[], |name, f| {
            match name {
                "percent" => raw.percent = Some(f.f64()?),
                "userKey" => {
                    let mut key = RawUserKey::default();
                    f.fields(&["header", "cookie", "claim"], &[], |name, f| {
                        match name {
                            "header" => key.header = Some(f.string()?),
                            "cookie" => key.cookie = Some(f.string()?),
                            "claim" => key.claim = Some(RawClaim::read(f)?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    raw.user_key = Some(key);
                }
                "salt" => raw.salt = Some(f.string()?),
                "missingKey" => {
                    raw.missing_key = Some(f.variant(&[
                        ("stable", MissingKey::Stable),
                        ("perRequest", MissingKey::PerRequest),
                    ])?)
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawTrust {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawTrust::default();
        let known = &["routingHeaders", "sourceCidrs", "peerPrincipals"];
        f.fields(known, &[], |name, f| {
            match name {
                "routingHeaders" => raw.routing_headers = Some(f.strings()?),
                "sourceCidrs" => raw.source_cidrs = Some(f.strings()?),
                "peerPrincipals" => raw.peer_principals = Some(f.strings()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawVersion {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawVersion::default();
        f.fields(&["direction", "value", "known"], &[], |name, f| {
            match name {
                "direction" => {
                    raw.direction = Some(f.variant(&[
                        ("auto", Direction::Auto),
                        ("client", Direction::Client),
                        ("server", Direction::Server),
                        ("AUTO", Direction::Auto),
                        ("CLIENT", Direction::Client),
                        ("SERVER", Direction::Server),
                    ])?)
                }
                "value" => raw.value = Some(f.string()?),
                "known" => raw.known = Some(f.strings()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawResponseHeaders {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawResponseHeaders::default();
        f.fields(&["version", "cohort", "serverTiming"], &[], |name, f| {
            match name {
                "version" => raw.version = Some(Toggle::read(f)?),
                "cohort" => raw.cohort = Some(Toggle::read(f)?),
                "serverTiming" => raw.server_timing = Some(Toggle::read(f)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl RawClaim {
    fn read(f: Field) -> Result<Self, ConfigError> {
        match f.value {
            Value::String(s) => Ok(RawClaim::Dotted(s)),
            Value::Array(_) => f.strings().map(RawClaim::Segments),
            _ => Err(f.invalid_type("a claim path (\"tenant.tier\") or a list of segments")),
        }
    }
}

impl RawIdentity {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut raw = RawIdentity::default();
        f.fields(&["baggage"], &[], |name, f| {
            match name {
                "baggage" => {
                    let mut b = RawBaggage::default();
                    f.fields(&["mode", "entry", "key", "keyEnv"], &[], |name, f| {
                        match name {
                            "mode" => {
                                b.mode = Some(f.variant(&[
                                    ("sign", BaggageMode::Sign),
                                    ("verify", BaggageMode::Verify),
                                ])?)
                            }
                            "entry" => b.entry = Some(f.string()?),
                            "key" => b.key = Some(f.string()?),
                            "keyEnv" => b.key_env = Some(f.string()?),
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    raw.baggage = Some(b);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(raw)
    }
}

impl Toggle {
    fn read(f: Field) -> Result<Self, ConfigError> {
        match f.value {
            Value::Bool(b) => Ok(Toggle::On(b)),
            Value::String(s) => Ok(Toggle::Name(s)),
            _ => Err(f.invalid_type("true, false or a header name")),
        }
    }
}
