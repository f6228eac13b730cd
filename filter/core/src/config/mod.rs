//! `pluginConfig`: strict serde shapes ([`raw`]), then one validating
//! conversion per section into typed values. Every error names the field it is
//! about, because the only place an operator sees it is one log line of a
//! sidecar (or the installer's refusal).

pub mod cohorts;
pub mod duration;
pub mod error;
pub mod gates;
pub mod identity;
mod json;
pub mod judgment;
pub(crate) mod raw;
mod raw_gates;

pub use cohorts::{Cohort, CohortRule, Cohorts, Match, RuleHeader, Source, Sticky, Test, UserKey};
pub use cohorts::{CANARY, MAX_COHORTS, STABLE};
pub use error::{ConfigError, HeaderName, Quoted, QuotedList};
pub use gates::Gates;
pub use identity::Identity;
pub use raw::{Direction, MissingKey};

use crate::peer::{Cidr, Principal};
use crate::trust::Trust;
use crate::version::{VersionPolicy, MAX_KNOWN_VERSIONS};
use error::is_label_safe;
use raw::{RawConfig, RawResponseHeaders, RawTrust, RawVersion, Toggle};

/// Which canary headers go on the response, under which names (`None` = off).
/// `version` and `cohort` are on by default, `server_timing` off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeaders {
    pub version: Option<HeaderName>,
    pub cohort: Option<HeaderName>,
    pub server_timing: Option<HeaderName>,
}

/// A validated `pluginConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The request header the chosen cohort is written to, for routing.
    pub cohort_header: HeaderName,
    pub cohorts: Cohorts,
    pub sticky: Sticky,
    pub trust: Trust,
    pub version: VersionPolicy,
    pub response_headers: ResponseHeaders,
    pub metrics_enabled: bool,
    /// SLO gates; off unless a `gates` section is present.
    pub gates: Option<Gates>,
    /// Cohorts carried in signed baggage; off unless configured.
    pub identity: Identity,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are valid by construction; tests assert it.
        Config::from_json(b"{}").unwrap_or_else(|_| Config::empty())
    }
}

impl Config {
    /// The smallest valid config: no rules, nothing written.
    fn empty() -> Self {
        Config {
            cohort_header: HeaderName::fixed("x-canary-cohort"),
            cohorts: Cohorts {
                rules: vec![],
                headers: vec![],
            },
            sticky: Sticky {
                basis_points: 0,
                user_key: UserKey::Header(HeaderName::fixed("x-user-id")),
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
            identity: Identity::default(),
        }
    }

    /// Parses and validates a `pluginConfig` as Istio delivers it (JSON text).
    /// Empty or whitespace-only input means the defaults, which reproduce the
    /// workshop module's Exercise 5 routing headers.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let trimmed = bytes.trim_ascii();
        let raw: RawConfig = if trimmed.is_empty() {
            RawConfig::default()
        } else if trimmed.first() != Some(&b'{') {
            return Err(ConfigError::schema(".", "must be a JSON object"));
        } else {
            // Bad JSON has no field to name: its message says where it broke.
            let value: json::Value = serde_json::from_slice(bytes)
                .map_err(|e| ConfigError::schema(".", e.to_string()))?;
            RawConfig::read(value)?
        };
        Config::try_from(raw)
    }

    /// The label of cohort `c`.
    pub fn cohort_label(&self, c: Cohort) -> &str {
        self.cohorts.label(c)
    }

    /// Whether finished requests are classified at all: for the metrics, the
    /// gates, or both.
    pub fn counts_outcomes(&self) -> bool {
        self.metrics_enabled || self.gates.is_some()
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    /// Each section converts on its own; the rules that tie sections
    /// together (nobody reads or routes on the header the filter writes,
    /// withdrawn cohorts exist) are checked here.
    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let cohort_header = match raw.cohort_header {
            Some(h) => HeaderName::parse("cohortHeader", &h)?,
            None => HeaderName::fixed("x-canary-cohort"),
        };

        let mut cohorts = Cohorts::try_from(raw.cohorts.unwrap_or_else(Cohorts::module_defaults))?;
        if let Some(field) = cohorts.field_reading(&cohort_header) {
            return Err(ConfigError::invalid(
                field,
                "a rule cannot read the cohort header the filter writes",
            ));
        }

        let sticky = Sticky::try_from(raw.sticky.unwrap_or_default())?;
        if sticky.user_key == UserKey::Header(cohort_header.clone()) {
            return Err(ConfigError::invalid(
                "sticky.userKey.header",
                "must not be the cohort header the filter writes",
            ));
        }

        let raw_trust = raw.trust.unwrap_or_default();
        let default_routing = raw_trust.routing_headers.is_none();
        let mut trust = Trust::try_from(raw_trust)?;
        if default_routing {
            trust.routing_headers = cohorts.headers.iter().map(|h| h.name.clone()).collect();
        }
        if trust.routing_headers.contains(&cohort_header) {
            return Err(ConfigError::invalid(
                "trust.routingHeaders",
                "the cohort header is always recomputed; it cannot be a routing header",
            ));
        }
        for h in cohorts.headers.iter_mut() {
            h.guarded = trust.routing_headers.contains(&h.name);
        }

        let version = VersionPolicy::try_from(raw.version.unwrap_or_default())?;
        let identity = Identity::from_raw(raw.identity.unwrap_or_default(), version.direction)?;
        let response_headers = ResponseHeaders::try_from(raw.response_headers.unwrap_or_default())?;
        let gates = match raw.gates {
            Some(g) => {
                let mut gates = Gates::try_from(g)?;
                gates.resolve_withdraw(&cohorts)?;
                Some(gates)
            }
            None => None,
        };
        Ok(Config {
            cohort_header,
            cohorts,
            sticky,
            trust,
            version,
            response_headers,
            metrics_enabled: raw.metrics.and_then(|m| m.enabled).unwrap_or(true),
            gates,
            identity,
        })
    }
}

impl TryFrom<RawTrust> for Trust {
    type Error = ConfigError;

    /// An absent `routingHeaders` stays empty here: it defaults to the rule
    /// headers, which the whole config knows.
    fn try_from(raw: RawTrust) -> Result<Self, ConfigError> {
        let routing_headers = raw
            .routing_headers
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, h)| HeaderName::parse(&format!("trust.routingHeaders[{i}]"), h))
            .collect::<Result<_, _>>()?;
        let mut source_cidrs = vec![];
        for (i, c) in raw.source_cidrs.unwrap_or_default().iter().enumerate() {
            let parsed = c.parse::<Cidr>().map_err(|e| {
                ConfigError::invalid(
                    format!("trust.sourceCidrs[{i}]"),
                    format!("{}: {e}", Quoted(c)),
                )
            })?;
            source_cidrs.push(parsed);
        }
        let mut peer_principals = vec![];
        for (i, p) in raw.peer_principals.unwrap_or_default().iter().enumerate() {
            let parsed = p.parse::<Principal>().map_err(|e| {
                ConfigError::invalid(
                    format!("trust.peerPrincipals[{i}]"),
                    format!("{}: {e}", Quoted(p)),
                )
            })?;
            peer_principals.push(parsed);
        }
        Ok(Trust {
            routing_headers,
            source_cidrs,
            peer_principals,
        })
    }
}

impl TryFrom<RawVersion> for VersionPolicy {
    type Error = ConfigError;

    fn try_from(raw: RawVersion) -> Result<Self, ConfigError> {
        if let Some(v) = &raw.value {
            if !is_label_safe(v) {
                return Err(ConfigError::invalid(
                    "version.value",
                    format!(
                        "{} must be 1-63 characters of A-Z, a-z, 0-9, '-', '_' or '.'",
                        Quoted(v)
                    ),
                ));
            }
        }
        if let Some(known) = &raw.known {
            if known.len() > MAX_KNOWN_VERSIONS {
                return Err(ConfigError::invalid(
                    "version.known",
                    format!("at most {MAX_KNOWN_VERSIONS} versions"),
                ));
            }
            for (i, v) in known.iter().enumerate() {
                if !is_label_safe(v) || v == "other" || v == "unknown" {
                    return Err(ConfigError::invalid(
                        format!("version.known[{i}]"),
                        format!("{} is not a usable version label", Quoted(v)),
                    ));
                }
                if known[..i].contains(v) {
                    return Err(ConfigError::invalid(
                        format!("version.known[{i}]"),
                        format!("duplicate version {}", Quoted(v)),
                    ));
                }
            }
        }
        Ok(VersionPolicy {
            direction: raw.direction.unwrap_or_default(),
            value: raw.value,
            known: raw.known,
        })
    }
}

impl TryFrom<RawResponseHeaders> for ResponseHeaders {
    type Error = ConfigError;

    fn try_from(raw: RawResponseHeaders) -> Result<Self, ConfigError> {
        // `on` says whether an absent field means the header is written.
        let toggle = |field: &str, t: Option<Toggle>, name: &'static str, on: bool| match t {
            None if !on => Ok(None),
            None | Some(Toggle::On(true)) => Ok(Some(HeaderName::fixed(name))),
            Some(Toggle::On(false)) => Ok(None),
            Some(Toggle::Name(n)) => HeaderName::parse(field, &n).map(Some),
        };
        let rh = ResponseHeaders {
            version: toggle(
                "responseHeaders.version",
                raw.version,
                "x-canary-version",
                true,
            )?,
            cohort: toggle(
                "responseHeaders.cohort",
                raw.cohort,
                "x-canary-cohort",
                true,
            )?,
            // Off unless asked for: it shows every client (browsers display
            // it) how long the upstream took, and costs a clock read and a
            // header per request.
            server_timing: toggle(
                "responseHeaders.serverTiming",
                raw.server_timing,
                "server-timing",
                false,
            )?,
        };
        let names = [
            ("responseHeaders.version", &rh.version),
            ("responseHeaders.cohort", &rh.cohort),
            ("responseHeaders.serverTiming", &rh.server_timing),
        ];
        for (i, (field, a)) in names.iter().enumerate() {
            if let Some(a) = a {
                if names[..i].iter().any(|(_, b)| b.as_ref() == Some(a)) {
                    return Err(ConfigError::invalid(
                        *field,
                        format!("{} is used twice", Quoted(a.as_str())),
                    ));
                }
            }
        }
        Ok(rh)
    }
}

#[cfg(test)]
mod tests;
