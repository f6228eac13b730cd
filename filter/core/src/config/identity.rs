//! The `identity` section: whether the cohort travels in W3C baggage, signed
//! where identity is verified and checked where the request is routed, and
//! where the shared HMAC key comes from.

use super::error::{ConfigError, Quoted};
use super::raw::{BaggageMode, Direction, RawIdentity};
use crate::identity::{tag, Baggage, Key, KeyError, KeySource, Mode};

/// The baggage member written when `entry` is not set.
pub const DEFAULT_ENTRY: &str = "canary-cohort";

/// The typed `identity` section; empty by default (nothing signed or read).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub baggage: Option<Baggage>,
}

impl Identity {
    /// Reads a `keyEnv` key from the VM's environment (`env`); nothing to do
    /// otherwise. The filter calls it once per configuration and refuses the
    /// configuration on error; the installer cannot, since the variable
    /// exists only inside the proxy.
    pub fn resolve_key(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), KeyError> {
        match self.baggage.as_mut() {
            Some(b) => b.resolve_key(env),
            None => Ok(()),
        }
    }

    /// `direction` supplies the default mode: SERVER signs, CLIENT verifies.
    pub(crate) fn from_raw(raw: RawIdentity, direction: Direction) -> Result<Self, ConfigError> {
        let Some(b) = raw.baggage else {
            return Ok(Identity::default());
        };
        let mode = match (b.mode, direction) {
            (Some(BaggageMode::Sign), _) | (None, Direction::Server) => Mode::Sign,
            (Some(BaggageMode::Verify), _) | (None, Direction::Client) => Mode::Verify,
            (None, Direction::Auto) => {
                return Err(ConfigError::invalid(
                    "identity.baggage.mode",
                    "set `sign` (where tokens are verified) or `verify` (where requests are routed), or set version.direction",
                ))
            }
        };
        let entry = b.entry.unwrap_or_else(|| DEFAULT_ENTRY.to_string());
        let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        if entry.is_empty() || entry.len() > 64 || !entry.bytes().all(token) {
            return Err(ConfigError::invalid(
                "identity.baggage.entry",
                format!(
                    "{} is not a baggage key (1-64 token characters)",
                    Quoted(&entry)
                ),
            ));
        }
        let (key_source, key) = match (b.key, b.key_env) {
            (Some(k), None) => {
                let key = Key::new(k.as_bytes()).ok_or_else(|| {
                    ConfigError::invalid(
                        "identity.baggage.key",
                        format!(
                            "{} bytes; at least {} are needed",
                            k.len(),
                            tag::MIN_KEY_BYTES
                        ),
                    )
                })?;
                (KeySource::Inline, Some(key))
            }
            (None, Some(name)) => {
                let env_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
                if name.is_empty() || !name.bytes().all(env_name) {
                    return Err(ConfigError::invalid(
                        "identity.baggage.keyEnv",
                        format!("{} is not an environment variable name", Quoted(&name)),
                    ));
                }
                (KeySource::Env(name), None)
            }
            (None, None) => {
                return Err(ConfigError::invalid(
                    "identity.baggage.key",
                    "missing: set `key` or `keyEnv` (the HMAC key shared by signing and verifying proxies)",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "identity.baggage",
                    "set only one of `key` or `keyEnv`",
                ))
            }
        };
        Ok(Identity {
            baggage: Some(Baggage {
                mode,
                entry,
                key_source,
                key,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use crate::config::{Config, Source, Test, UserKey};
    use crate::identity::{KeySource, Mode};

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn field(json: &str) -> String {
        match Config::from_json(json.as_bytes()) {
            Ok(c) => unreachable!("accepted {json}: {c:?}"),
            Err(e) => e.field().to_string(),
        }
    }

    #[test]
    fn claim_and_principal_rules_are_converted() {
        let c = Config::from_json(
            br#"{"cohorts": [
                {"name": "beta", "match": [{"claim": "groups", "contains": "beta-testers"}]},
                {"name": "gold", "match": [{"claim": "tenant.tier", "exact": "gold"}]},
                {"name": "roles", "match": [{"claim": ["https://example.com/roles"], "present": true}]},
                {"name": "qa", "match": [{"principal": "spiffe://cluster.local/ns/qa/sa/qa-bot"}]}],
               "sticky": {"percent": 10, "userKey": {"claim": "sub"}}}"#,
        )
        .unwrap();
        let m = |i: usize| &c.cohorts.rules[i].matches[0];
        assert!(matches!(&m(0).source, Source::Claim(p) if p.parts() == ["groups"]));
        assert_eq!(m(0).test, Test::Contains(b"beta-testers".to_vec()));
        assert!(matches!(&m(1).source, Source::Claim(p) if p.parts() == ["tenant", "tier"]));
        assert!(
            matches!(&m(2).source, Source::Claim(p) if p.parts() == ["https://example.com/roles"])
        );
        assert!(matches!(&m(3).source, Source::Principal(_)));
        assert!(matches!(&c.sticky.user_key, UserKey::Claim(p) if p.parts() == ["sub"]));
        assert!(c.cohorts.reads_claims());
        assert!(c.cohorts.headers.is_empty());
        assert!(!Config::default().cohorts.reads_claims());
    }

    #[test]
    fn bad_identity_rules_are_refused_with_their_field() {
        let rule = |m: &str| format!(r#"{{"cohorts": [{{"name": "a", "match": [{m}]}}]}}"#);
        let cases = [
            (
                r#"{"claim": "a..b", "exact": "1"}"#,
                "cohorts[0].match[0].claim",
            ),
            (
                r#"{"claim": "", "exact": "1"}"#,
                "cohorts[0].match[0].claim",
            ),
            (
                r#"{"claim": [], "exact": "1"}"#,
                "cohorts[0].match[0].claim",
            ),
            (r#"{"claim": 5, "exact": "1"}"#, "cohorts[0].match[0].claim"),
            (r#"{"claim": "g"}"#, "cohorts[0].match[0]"),
            (
                r#"{"claim": "g", "contains": "a b"}"#,
                "cohorts[0].match[0].contains",
            ),
            (
                r#"{"header": "g", "contains": "a"}"#,
                "cohorts[0].match[0].contains",
            ),
            (
                r#"{"claim": "g", "header": "g", "exact": "1"}"#,
                "cohorts[0].match[0]",
            ),
            (r#"{"principal": "*"}"#, "cohorts[0].match[0].principal"),
            (
                r#"{"principal": "spiffe://a", "exact": "1"}"#,
                "cohorts[0].match[0]",
            ),
            (
                r#"{"claim": "g", "exakt": "1"}"#,
                "cohorts[0].match[0].exakt",
            ),
        ];
        for (m, want) in cases {
            assert_eq!(field(&rule(m)), want, "{m}");
        }
        assert_eq!(
            field(r#"{"sticky": {"userKey": {"claim": "a."}}}"#),
            "sticky.userKey.claim"
        );
        assert_eq!(
            field(r#"{"sticky": {"userKey": {"claim": "sub", "header": "x"}}}"#),
            "sticky.userKey"
        );
    }

    #[test]
    fn baggage_signing_needs_a_long_enough_key_and_a_mode() {
        let c = Config::from_json(
            format!(r#"{{"version": {{"direction": "SERVER"}}, "identity": {{"baggage": {{"key": "{KEY}"}}}}}}"#)
                .as_bytes(),
        )
        .unwrap();
        let b = c.identity.baggage.unwrap();
        assert_eq!((b.mode, b.entry.as_str()), (Mode::Sign, "canary-cohort"));
        assert!(b.key.is_some());
        let c = Config::from_json(
            br#"{"identity": {"baggage": {"mode": "verify", "entry": "cc", "keyEnv": "CANARY_KEY"}}}"#,
        )
        .unwrap();
        let b = c.identity.baggage.unwrap();
        assert_eq!(b.mode, Mode::Verify);
        assert_eq!(b.key_source, KeySource::Env("CANARY_KEY".into()));
        assert!(b.key.is_none());

        let cases = [
            (r#"{"baggage": {"mode": "sign"}}"#, "identity.baggage.key"),
            (
                r#"{"baggage": {"mode": "sign", "key": "short"}}"#,
                "identity.baggage.key",
            ),
            (
                r#"{"baggage": {"key": "0123456789abcdef0123456789abcdef"}}"#,
                "identity.baggage.mode",
            ),
            (
                r#"{"baggage": {"mode": "sign", "keyEnv": "A-B"}}"#,
                "identity.baggage.keyEnv",
            ),
            (
                r#"{"baggage": {"mode": "sign", "key": "0123456789abcdef0123456789abcdef", "keyEnv": "K"}}"#,
                "identity.baggage",
            ),
            (
                r#"{"baggage": {"mode": "sign", "keyEnv": "K", "entry": "a b"}}"#,
                "identity.baggage.entry",
            ),
            (
                r#"{"baggage": {"mode": "push", "keyEnv": "K"}}"#,
                "identity.baggage.mode",
            ),
            (
                r#"{"baggage": {"mode": "sign", "keyEnv": "K", "ttl": 1}}"#,
                "identity.baggage.ttl",
            ),
            (r#"{"claims": {}}"#, "identity.claims"),
        ];
        for (section, want) in cases {
            assert_eq!(
                field(&format!(r#"{{"identity": {section}}}"#)),
                want,
                "{section}"
            );
        }
    }

    #[test]
    fn an_env_key_is_read_once_and_must_be_long_enough() {
        let c = Config::from_json(
            br#"{"identity": {"baggage": {"mode": "sign", "keyEnv": "CANARY_KEY"}}}"#,
        )
        .unwrap();
        let mut b = c.identity.baggage.unwrap();
        let unset = b.clone().resolve_key(|_| None).unwrap_err();
        assert!(
            unset.to_string().contains("CANARY_KEY is not set"),
            "{unset}"
        );
        let short = b.clone().resolve_key(|_| Some("x".into())).unwrap_err();
        assert!(short.to_string().contains("fewer than 32 bytes"), "{short}");
        b.resolve_key(|n| (n == "CANARY_KEY").then(|| KEY.to_string()))
            .unwrap();
        assert!(b.key.is_some());
    }
}
