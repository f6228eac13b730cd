//! The cohort rules and the sticky canary percentage: which cohorts exist,
//! what claims a request for each, and how users are bucketed. The cohort
//! numbering (stable, canary, then the declared cohorts) lives here and
//! nowhere else.

use super::error::{is_cohort_name, ConfigError, HeaderName, Quoted, QuotedList};
use super::raw::{MissingKey, RawClaim, RawCohort, RawMatch, RawSticky};
use crate::decimal::short;
use crate::identity::path::ClaimPath;
use crate::peer::Principal;

/// Cohort label of requests no rule and no sticky bucket claimed.
pub const STABLE: &str = "stable";
/// Cohort label of users the sticky percentage puts on the canary.
pub const CANARY: &str = "canary";
/// Most cohorts a config may declare; each one multiplies the metric series.
pub const MAX_COHORTS: usize = 16;

/// One cohort label of a configuration: `stable`, `canary` or a declared
/// cohort. A small copyable id, so requests, metrics and gates carry no names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct Cohort(u8);

impl Cohort {
    pub const STABLE: Cohort = Cohort(0);
    pub const CANARY: Cohort = Cohort(1);

    /// The cohort of `rules[rule]`.
    pub(crate) fn declared(rule: usize) -> Cohort {
        Cohort(u8::try_from(rule + 2).unwrap_or(u8::MAX))
    }

    /// A dense index (0 = stable, 1 = canary, then the declared cohorts), for
    /// tables keyed by cohort.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Where a rule reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Index into [`Cohorts::headers`].
    Header(usize),
    /// Cookie of this name in the `cookie` header.
    Cookie(String),
    /// Query parameter of this name (percent-decoded) in `:path`.
    Query(String),
    /// A claim of the JWT `jwt_authn` verified (never a header).
    Claim(ClaimPath),
    /// The mTLS peer's SPIFFE id; the rule holds when it is this principal.
    Principal(Principal),
}

/// How a rule tests the value it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Present,
    /// An element of an array claim, or a word of a space-delimited value.
    Contains(Vec<u8>),
}

impl Test {
    /// Applies the test to the value a rule read (`None` = absent).
    pub fn holds(&self, value: Option<&[u8]>) -> bool {
        match (self, value) {
            (_, None) => false,
            (Test::Present, Some(_)) => true,
            (Test::Exact(want), Some(v)) => v == want.as_slice(),
            (Test::Prefix(p), Some(v)) => v.starts_with(p),
            // A word of a space-delimited value, as OAuth scopes are written.
            (Test::Contains(word), Some(v)) => v
                .split(|b| matches!(b, b' ' | b'\t'))
                .any(|w| w == word.as_slice()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub source: Source,
    pub test: Test,
}

/// A declared cohort: it claims a request when any of its matches holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortRule {
    pub name: String,
    pub matches: Vec<Match>,
}

/// A header the rules read, fetched once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHeader {
    pub name: HeaderName,
    /// A routing header: honoured only from trusted callers (see `trust`).
    pub guarded: bool,
}

/// The declared cohorts in order (the first that matches wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohorts {
    pub rules: Vec<CohortRule>,
    /// Distinct header names the rules read.
    pub headers: Vec<RuleHeader>,
}

impl Cohorts {
    /// The label of `c`; an id from another configuration reads as stable.
    pub fn label(&self, c: Cohort) -> &str {
        match c.index() {
            0 => STABLE,
            1 => CANARY,
            n => self.rules.get(n - 2).map_or(STABLE, |r| r.name.as_str()),
        }
    }

    /// The cohort labelled `name`.
    pub fn named(&self, name: &str) -> Option<Cohort> {
        self.all().find(|c| self.label(*c) == name)
    }

    /// Every cohort, stable and canary first.
    pub fn all(&self) -> impl Iterator<Item = Cohort> {
        (0..self.count()).map(|i| Cohort(u8::try_from(i).unwrap_or(u8::MAX)))
    }

    /// Number of declared cohorts.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// No declared cohorts: every request is stable or sticky canary.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Number of cohort labels (stable, canary and the declared ones).
    pub fn count(&self) -> usize {
        self.rules.len() + 2
    }

    /// The workshop module's Exercise 5 rules, used when `cohorts` is absent.
    pub(crate) fn module_defaults() -> Vec<RawCohort> {
        let rule = |name: &str, header: &str, value: &str| RawCohort {
            name: name.into(),
            matches: vec![RawMatch {
                header: Some(header.into()),
                exact: Some(value.into()),
                ..RawMatch::default()
            }],
        };
        vec![
            rule("internal", "user-type", "internal"),
            rule("beta", "beta-user", "true"),
        ]
    }

    /// Where a rule reads `header`, as a field path, if any rule does.
    pub(crate) fn field_reading(&self, header: &HeaderName) -> Option<String> {
        let idx = self.headers.iter().position(|h| h.name == *header)?;
        self.rules.iter().enumerate().find_map(|(i, r)| {
            let j = r
                .matches
                .iter()
                .position(|m| m.source == Source::Header(idx))?;
            Some(format!("cohorts[{i}].match[{j}].header"))
        })
    }
}

impl TryFrom<Vec<RawCohort>> for Cohorts {
    type Error = ConfigError;

    fn try_from(raw: Vec<RawCohort>) -> Result<Self, ConfigError> {
        if raw.len() > MAX_COHORTS {
            return Err(ConfigError::invalid(
                "cohorts",
                format!("{} cohorts declared, at most {MAX_COHORTS} allowed (each multiplies metric series)", raw.len()),
            ));
        }
        let mut cohorts = Cohorts {
            rules: Vec::with_capacity(raw.len()),
            headers: vec![],
        };
        for (i, rc) in raw.into_iter().enumerate() {
            let field = format!("cohorts[{i}].name");
            if !is_cohort_name(&rc.name) {
                return Err(ConfigError::invalid(
                    field,
                    format!("{} must be 1-32 characters of a-z, 0-9, '-' or '_', starting with a letter or digit", Quoted(&rc.name)),
                ));
            }
            if rc.name == STABLE || rc.name == CANARY {
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "{} is reserved for requests no rule claims",
                        Quoted(&rc.name)
                    ),
                ));
            }
            if cohorts.rules.iter().any(|r| r.name == rc.name) {
                return Err(ConfigError::invalid(
                    field,
                    format!("duplicate cohort {}", Quoted(&rc.name)),
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
                matches.push(cohorts.convert_match(&format!("cohorts[{i}].match[{j}]"), m)?);
            }
            cohorts.rules.push(CohortRule {
                name: rc.name,
                matches,
            });
        }
        Ok(cohorts)
    }
}

impl Cohorts {
    fn convert_match(&mut self, field: &str, m: RawMatch) -> Result<Match, ConfigError> {
        let sources = [
            m.header.is_some(),
            m.cookie.is_some(),
            m.query.is_some(),
            m.claim.is_some(),
            m.principal.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(ConfigError::invalid(
                field,
                "set exactly one of `header`, `cookie`, `query`, `claim` or `principal`",
            ));
        }
        let tests = [
            m.exact.is_some(),
            m.prefix.is_some(),
            m.present.is_some(),
            m.contains.is_some(),
        ];
        if let Some(p) = m.principal {
            // The principal is the test: the rule holds for that peer.
            if tests.contains(&true) {
                return Err(ConfigError::invalid(
                    field,
                    "a `principal` rule takes no `exact`, `prefix`, `present` or `contains`",
                ));
            }
            let principal = p.parse::<Principal>().map_err(|e| {
                ConfigError::invalid(format!("{field}.principal"), format!("{}: {e}", Quoted(&p)))
            })?;
            return Ok(Match {
                source: Source::Principal(principal),
                test: Test::Present,
            });
        }
        let source = if let Some(h) = m.header {
            let h = HeaderName::parse(&format!("{field}.header"), &h)?;
            let idx = match self.headers.iter().position(|x| x.name == h) {
                Some(i) => i,
                None => {
                    self.headers.push(RuleHeader {
                        name: h,
                        guarded: false,
                    });
                    self.headers.len() - 1
                }
            };
            Source::Header(idx)
        } else if let Some(c) = m.claim {
            Source::Claim(claim_path(&format!("{field}.claim"), c)?)
        } else {
            match (m.cookie, m.query) {
                (Some(c), _) if !c.is_empty() => Source::Cookie(c),
                (_, Some(q)) if !q.is_empty() => Source::Query(q),
                _ => {
                    return Err(ConfigError::invalid(
                        field,
                        "the cookie or query name must not be empty",
                    ))
                }
            }
        };
        if m.contains.is_some() && !matches!(source, Source::Claim(_)) {
            return Err(ConfigError::invalid(
                format!("{field}.contains"),
                "`contains` applies to claims only",
            ));
        }
        let test = match (m.exact, m.prefix, m.present, m.contains) {
            (Some(v), None, None, None) => Test::Exact(v.into_bytes()),
            (None, Some(p), None, None) => Test::Prefix(p.into_bytes()),
            (None, None, Some(true), None) => Test::Present,
            (None, None, None, Some(c)) if !c.is_empty() && !c.contains([' ', '\t']) => {
                Test::Contains(c.into_bytes())
            }
            (None, None, None, Some(c)) => {
                return Err(ConfigError::invalid(
                    format!("{field}.contains"),
                    format!("{} must be one non-empty word", Quoted(&c)),
                ))
            }
            (None, None, Some(false), None) => {
                return Err(ConfigError::invalid(
                    format!("{field}.present"),
                    "only `present: true` is supported",
                ))
            }
            _ => {
                return Err(ConfigError::invalid(
                    field,
                    "set exactly one of `exact`, `prefix`, `present` or `contains`",
                ))
            }
        };
        Ok(Match { source, test })
    }

    /// Whether any rule reads a JWT claim (claims exist only behind
    /// `jwt_authn`).
    pub fn reads_claims(&self) -> bool {
        self.rules
            .iter()
            .flat_map(|r| &r.matches)
            .any(|m| matches!(m.source, Source::Claim(_)))
    }
}

/// A validated claim path; `field` names it in the error.
pub(crate) fn claim_path(field: &str, raw: RawClaim) -> Result<ClaimPath, ConfigError> {
    let (shown, parsed) = match raw {
        RawClaim::Dotted(s) => (Quoted(&s).to_string(), ClaimPath::dotted(&s)),
        RawClaim::Segments(v) => (QuotedList(&v).to_string(), ClaimPath::segments(v)),
    };
    parsed.map_err(|e| ConfigError::invalid(field, format!("{shown} is not a claim path: {e}")))
}

/// Whose request the sticky percentage buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    Header(HeaderName),
    Cookie(String),
    /// A claim of the verified JWT, usually `sub`: the bucket follows the
    /// person, not a value the client picks.
    Claim(ClaimPath),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    /// Canary share in basis points (percent × 100), 0..=10000.
    pub basis_points: u32,
    pub user_key: UserKey,
    pub salt: String,
    pub missing_key: MissingKey,
}

impl TryFrom<RawSticky> for Sticky {
    type Error = ConfigError;

    fn try_from(raw: RawSticky) -> Result<Self, ConfigError> {
        let mut sticky = Sticky {
            basis_points: 0,
            user_key: UserKey::Header(HeaderName::fixed("x-user-id")),
            salt: "canary".into(),
            missing_key: raw.missing_key.unwrap_or_default(),
        };
        if let Some(p) = raw.percent {
            if !p.is_finite() || !(0.0..=100.0).contains(&p) {
                return Err(ConfigError::invalid(
                    "sticky.percent",
                    format!("{} is outside 0-100", short(p)),
                ));
            }
            let bp = (p * 100.0).round();
            if (bp - p * 100.0).abs() > 1e-6 {
                return Err(ConfigError::invalid(
                    "sticky.percent",
                    format!("{} is finer than the 0.01 % bucket size", short(p)),
                ));
            }
            // In range 0..=10000 by the checks above.
            sticky.basis_points = bp as u32;
        }
        if let Some(k) = raw.user_key {
            sticky.user_key = match (k.header, k.cookie, k.claim) {
                (Some(h), None, None) => {
                    UserKey::Header(HeaderName::parse("sticky.userKey.header", &h)?)
                }
                (None, Some(c), None) if !c.is_empty() => UserKey::Cookie(c),
                (None, Some(_), None) => {
                    return Err(ConfigError::invalid(
                        "sticky.userKey.cookie",
                        "must not be empty",
                    ))
                }
                (None, None, Some(c)) => UserKey::Claim(claim_path("sticky.userKey.claim", c)?),
                _ => {
                    return Err(ConfigError::invalid(
                        "sticky.userKey",
                        "set exactly one of `header`, `cookie` or `claim`",
                    ))
                }
            };
        }
        if let Some(s) = raw.salt {
            if s.len() > 128 {
                return Err(ConfigError::invalid("sticky.salt", "longer than 128 bytes"));
            }
            sticky.salt = s;
        }
        Ok(sticky)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::Test;

    #[test]
    fn a_rule_test_compares_bytes_exactly() {
        assert!(Test::Exact(b"internal".to_vec()).holds(Some(b"internal")));
        assert!(!Test::Exact(b"internal".to_vec()).holds(Some(b"Internal")));
        assert!(!Test::Exact(b"internal".to_vec()).holds(None));
        assert!(Test::Prefix(b"int".to_vec()).holds(Some(b"internal")));
        assert!(Test::Present.holds(Some(b"")));
        assert!(!Test::Present.holds(None));
    }
}
