//! The shapes of `pluginConfig`, exactly as operators write them, and how
//! each is read from JSON. Everything is optional unless said otherwise and
//! unknown fields are refused; the typed values and their rules come from the
//! `TryFrom` conversions next to each section.

use super::error::ConfigError;
use super::json::{Field, Obj, Value};

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
}

#[derive(Debug)]
pub(crate) struct RawCohort {
    pub name: String,
    pub matches: Vec<RawMatch>,
}

#[derive(Debug, Default)]
pub(crate) struct RawMatch {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub query: Option<String>,
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub present: Option<bool>,
}

#[derive(Debug, Default)]
pub(crate) struct RawSticky {
    pub percent: Option<f64>,
    pub user_key: Option<RawUserKey>,
    pub salt: Option<String>,
    pub missing_key: Option<MissingKey>,
}

#[derive(Debug)]
pub(crate) struct RawUserKey {
    pub header: Option<String>,
    pub cookie: Option<String>,
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

#[derive(Debug, Default)]
pub(crate) struct RawGates {
    pub canary_version: Option<String>,
    pub tick: Option<String>,
    pub bucket: Option<String>,
    pub min_samples: Option<u32>,
    pub objectives: Option<RawObjectives>,
    pub promotion: Option<Vec<RawPromotion>>,
    pub rollback: Option<Vec<RawTrigger>>,
    pub burn_rate: Option<RawBurn>,
    pub withdraw: Option<Vec<String>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawObjectives {
    pub availability_percent: Option<f64>,
    pub latency_p99: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawPromotion {
    pub at_percent: f64,
    pub max_error_percent: Option<f64>,
    pub max_p99: Option<String>,
    pub max_5xx: Option<u32>,
    pub objectives: Option<bool>,
    pub hold_for: Option<String>,
    pub window: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawTrigger {
    pub error_percent_above: Option<f64>,
    pub p99_above: Option<String>,
    pub http_5xx_percent_above: Option<f64>,
    pub window: Option<String>,
    pub for_: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RawBurn {
    pub windows: Option<Vec<RawBurnPair>>,
    pub rollback: Option<bool>,
}

#[derive(Debug)]
pub(crate) struct RawBurnPair {
    pub long: String,
    pub short: String,
    pub factor: f64,
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
        let mut o = Field::root(value).object(&[
            "cohortHeader",
            "cohorts",
            "sticky",
            "trust",
            "version",
            "responseHeaders",
            "metrics",
            "gates",
        ])?;
        let raw = RawConfig {
            cohort_header: o.string("cohortHeader")?,
            cohorts: o.opt("cohorts", |f| f.list(RawCohort::read))?,
            sticky: o.opt("sticky", RawSticky::read)?,
            trust: o.opt("trust", RawTrust::read)?,
            version: o.opt("version", RawVersion::read)?,
            response_headers: o.opt("responseHeaders", RawResponseHeaders::read)?,
            metrics: o.opt("metrics", |f| {
                let mut o = f.object(&["enabled"])?;
                let enabled = o.bool("enabled")?;
                o.close().map(|()| RawMetrics { enabled })
            })?,
            gates: o.opt("gates", RawGates::read)?,
        };
        o.close().map(|()| raw)
    }
}

/// Closes `o` and hands back `raw`.
fn done<T>(o: Obj, raw: T) -> Result<T, ConfigError> {
    o.close().map(|()| raw)
}

impl RawCohort {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&["name", "match"])?;
        let raw = RawCohort {
            name: o.req("name", Field::string)?,
            matches: o.req("match", |f| f.list(RawMatch::read))?,
        };
        done(o, raw)
    }
}

impl RawMatch {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&["header", "cookie", "query", "exact", "prefix", "present"])?;
        let raw = RawMatch {
            header: o.string("header")?,
            cookie: o.string("cookie")?,
            query: o.string("query")?,
            exact: o.string("exact")?,
            prefix: o.string("prefix")?,
            present: o.bool("present")?,
        };
        done(o, raw)
    }
}

impl RawSticky {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&["percent", "userKey", "salt", "missingKey"])?;
        let raw = RawSticky {
            percent: o.f64("percent")?,
            user_key: o.opt("userKey", |f| {
                let mut o = f.object(&["header", "cookie"])?;
                let raw = RawUserKey {
                    header: o.string("header")?,
                    cookie: o.string("cookie")?,
                };
                done(o, raw)
            })?,
            salt: o.string("salt")?,
            missing_key: o.opt("missingKey", |f| {
                f.variant(&[
                    ("stable", MissingKey::Stable),
                    ("perRequest", MissingKey::PerRequest),
                ])
            })?,
        };
        done(o, raw)
    }
}

impl RawTrust {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&["routingHeaders", "sourceCidrs", "peerPrincipals"])?;
        let raw = RawTrust {
            routing_headers: o.strings("routingHeaders")?,
            source_cidrs: o.strings("sourceCidrs")?,
            peer_principals: o.strings("peerPrincipals")?,
        };
        done(o, raw)
    }
}

impl RawVersion {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&["direction", "value", "known"])?;
        let raw = RawVersion {
            direction: o.opt("direction", |f| {
                f.variant(&[
                    ("auto", Direction::Auto),
                    ("client", Direction::Client),
                    ("server", Direction::Server),
                    ("AUTO", Direction::Auto),
                    ("CLIENT", Direction::Client),
                    ("SERVER", Direction::Server),
                ])
            })?,
            value: o.string("value")?,
            known: o.strings("known")?,
        };
        done(o, raw)
    }
}

impl RawResponseHeaders {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&["version", "cohort", "serverTiming"])?;
        let raw = RawResponseHeaders {
            version: o.opt("version", Toggle::read)?,
            cohort: o.opt("cohort", Toggle::read)?,
            server_timing: o.opt("serverTiming", Toggle::read)?,
        };
        done(o, raw)
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

impl RawGates {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&[
            "canaryVersion",
            "tick",
            "bucket",
            "minSamples",
            "objectives",
            "promotion",
            "rollback",
            "burnRate",
            "withdraw",
        ])?;
        let raw = RawGates {
            canary_version: o.string("canaryVersion")?,
            tick: o.string("tick")?,
            bucket: o.string("bucket")?,
            min_samples: o.u32("minSamples")?,
            objectives: o.opt("objectives", |f| {
                let mut o = f.object(&["availabilityPercent", "latencyP99"])?;
                let raw = RawObjectives {
                    availability_percent: o.f64("availabilityPercent")?,
                    latency_p99: o.string("latencyP99")?,
                };
                done(o, raw)
            })?,
            promotion: o.opt("promotion", |f| f.list(RawPromotion::read))?,
            rollback: o.opt("rollback", |f| f.list(RawTrigger::read))?,
            burn_rate: o.opt("burnRate", |f| {
                let mut o = f.object(&["windows", "rollback"])?;
                let raw = RawBurn {
                    windows: o.opt("windows", |f| f.list(RawBurnPair::read))?,
                    rollback: o.bool("rollback")?,
                };
                done(o, raw)
            })?,
            withdraw: o.strings("withdraw")?,
        };
        done(o, raw)
    }
}

impl RawPromotion {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&[
            "atPercent",
            "maxErrorPercent",
            "maxP99",
            "max5xx",
            "objectives",
            "holdFor",
            "window",
        ])?;
        let raw = RawPromotion {
            at_percent: o.req("atPercent", Field::f64)?,
            max_error_percent: o.f64("maxErrorPercent")?,
            max_p99: o.string("maxP99")?,
            max_5xx: o.u32("max5xx")?,
            objectives: o.bool("objectives")?,
            hold_for: o.string("holdFor")?,
            window: o.string("window")?,
        };
        done(o, raw)
    }
}

impl RawTrigger {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&[
            "errorPercentAbove",
            "p99Above",
            "http5xxPercentAbove",
            "window",
            "for",
        ])?;
        let raw = RawTrigger {
            error_percent_above: o.f64("errorPercentAbove")?,
            p99_above: o.string("p99Above")?,
            http_5xx_percent_above: o.f64("http5xxPercentAbove")?,
            window: o.string("window")?,
            for_: o.string("for")?,
        };
        done(o, raw)
    }
}

impl RawBurnPair {
    fn read(f: Field) -> Result<Self, ConfigError> {
        let mut o = f.object(&["long", "short", "factor"])?;
        let raw = RawBurnPair {
            long: o.req("long", Field::string)?,
            short: o.req("short", Field::string)?,
            factor: o.req("factor", Field::f64)?,
        };
        done(o, raw)
    }
}
