//! Cohorts from verified identity, and the cohort's trip across a service hop.
//!
//! Where a token is verified (Istio's `jwt_authn` runs on a sidecar's inbound
//! side and on gateways) rules read JWT claims from what `jwt_authn` stored
//! ([`claim`], [`pairs`]) and the mTLS peer's SPIFFE id. The routing decision
//! happens later, on the calling workload's *outbound* side, where no token
//! is verified; so the inbound filter writes the cohort into the W3C
//! `baggage` header ([`baggage`]) with an HMAC tag ([`tag`]), the
//! application forwards `baggage` (and `x-request-id`) on its own calls, and
//! the outbound filter believes the cohort only when the tag verifies.
//!
//! [`carried`] and [`carry`] are the two calls the request path makes; both
//! cost nothing unless the config has a `identity.baggage` section.

pub mod baggage;
pub mod claim;
pub mod pairs;
pub mod path;
pub mod tag;

use crate::config::cohorts::{Cohort, Cohorts};
use crate::host::Http;
pub use claim::ClaimPath;
pub use tag::Key;

/// The header a cohort's signature is bound to.
pub const REQUEST_ID: &str = "x-request-id";
/// The W3C baggage header.
pub const BAGGAGE: &str = "baggage";

/// What this filter does with the baggage cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Where identity is verified (SERVER mode, a gateway): write the
    /// chosen cohort, signed, into `baggage`.
    Sign,
    /// Where the request is routed (CLIENT mode): use a baggage cohort
    /// whose tag verifies, else choose as usual.
    Verify,
}

/// Where the HMAC key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// In the pluginConfig itself.
    Inline,
    /// An environment variable of the Wasm VM (WasmPlugin `vmConfig.env`),
    /// read once when the configuration is applied.
    Env(String),
}

/// The `identity.baggage` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baggage {
    pub mode: Mode,
    /// The baggage member the filter owns, e.g. `canary-cohort`.
    pub entry: String,
    pub key_source: KeySource,
    /// `None` only until [`Baggage::resolve_key`] ran for an env key.
    pub key: Option<Key>,
}

/// Why a baggage key could not be found when the configuration was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("identity.baggage.keyEnv: environment variable {0} is not set")]
    Unset(String),
    #[error(
        "identity.baggage.keyEnv: environment variable {0} holds fewer than {min} bytes",
        min = tag::MIN_KEY_BYTES
    )]
    Short(String),
}

impl Baggage {
    /// Reads an env-sourced key through `env` (the VM's environment); an
    /// inline key is already there. Called once per configuration.
    pub fn resolve_key(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), KeyError> {
        if let KeySource::Env(name) = &self.key_source {
            let value = env(name).ok_or_else(|| KeyError::Unset(name.clone()))?;
            self.key =
                Some(Key::new(value.as_bytes()).ok_or_else(|| KeyError::Short(name.clone()))?);
        }
        Ok(())
    }
}

/// Verify mode: the cohort a signed baggage member vouches for, if its tag
/// verifies for this request and names a cohort of this configuration.
/// Reads `baggage`, and `x-request-id` only when the member is there.
pub fn carried(b: Option<&Baggage>, cohorts: &Cohorts, host: &impl Http) -> Option<Cohort> {
    let b = b?;
    if b.mode != Mode::Verify {
        return None;
    }
    let key = b.key.as_ref()?;
    host.request_header(BAGGAGE, |header| {
        let baggage::Lookup::One(member) = baggage::lookup(header?, &b.entry) else {
            return None;
        };
        let value = member.decoded();
        host.request_header(REQUEST_ID, |id| {
            let cohort = key.verify(&value, id?)?;
            cohorts.named(std::str::from_utf8(cohort).ok()?)
        })
    })
}

/// Sign mode: writes `cohort`, signed for this request's id, as the
/// configured baggage member, replacing any the caller sent. Without a
/// request id nothing can be signed, so only the caller's member is removed.
pub fn carry(b: Option<&Baggage>, cohorts: &Cohorts, host: &mut impl Http, cohort: Cohort) {
    let Some(b) = b else {
        return;
    };
    let (Mode::Sign, Some(key)) = (b.mode, b.key.as_ref()) else {
        return;
    };
    let value = host.request_header(REQUEST_ID, |id| {
        id.map(|id| key.sign(cohorts.label(cohort), id))
    });
    let header = host.request_header(BAGGAGE, |existing| match (&value, existing) {
        (Some(v), existing) => Some(baggage::with_member(existing, &b.entry, v)),
        (None, Some(existing))
            if baggage::lookup(existing, &b.entry) != baggage::Lookup::Absent =>
        {
            Some(baggage::without_member(existing, &b.entry))
        }
        (None, _) => None,
    });
    match header {
        Some(h) if h.is_empty() => host.remove_request_header(BAGGAGE),
        Some(h) => host.set_request_header(BAGGAGE, &h),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::cell::RefCell;

    use super::pairs::encode;
    use super::*;
    use crate::stream::{Plugin, Stream, Vm};
    use crate::testing::FakeHost;

    const KEY: &str = "an HMAC key of at least 32 bytes!";
    const RULES: &str = r#""cohorts": [
        {"name": "beta", "match": [{"claim": "groups", "contains": "beta-testers"}]},
        {"name": "internal", "match": [{"claim": "user_type", "exact": "internal"}]},
        {"name": "gold", "match": [{"claim": "tenant.tier", "exact": "gold"}]},
        {"name": "staff", "match": [{"claim": "staff", "exact": "true"}, {"claim": "level", "exact": "7"}]},
        {"name": "qa", "match": [{"principal": "spiffe://cluster.local/ns/qa/sa/qa-bot"}]}]"#;

    fn claim(name: &str) -> String {
        format!("{}.{name}", claim::PAYLOAD_PATH.join("."))
    }

    /// Records every attribute path the filter reads.
    struct Recording<'a> {
        inner: &'a mut FakeHost,
        paths: RefCell<Vec<String>>,
    }

    impl Http for Recording<'_> {
        fn request_header<R>(&self, n: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
            self.inner.request_header(n, read)
        }
        fn set_request_header(&mut self, n: &str, v: &[u8]) {
            self.inner.set_request_header(n, v)
        }
        fn remove_request_header(&mut self, n: &str) {
            self.inner.remove_request_header(n)
        }
        fn response_header<R>(&self, n: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
            self.inner.response_header(n, read)
        }
        fn set_response_header(&mut self, n: &str, v: &[u8]) {
            self.inner.set_response_header(n, v)
        }
        fn add_response_header(&mut self, n: &str, v: &[u8]) {
            self.inner.add_response_header(n, v)
        }
        fn response_trailer<R>(&self, n: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
            self.inner.response_trailer(n, read)
        }
        fn property<R>(&self, path: &[&str], read: impl FnOnce(Option<&[u8]>) -> R) -> R {
            self.paths.borrow_mut().push(path.join("."));
            self.inner.property(path, read)
        }
        fn now_nanos(&self) -> u64 {
            self.inner.now_nanos()
        }
    }

    fn plugin(json: &str) -> Plugin {
        Plugin::new(crate::Config::from_json(json.as_bytes()).unwrap(), None)
    }

    /// The cohort header written, and the attribute paths read.
    fn run(p: &Plugin, host: &mut FakeHost) -> (String, Vec<String>) {
        let mut rec = Recording {
            inner: host,
            paths: RefCell::new(vec![]),
        };
        Stream::default().on_request_headers(p, &Vm::default(), &mut rec);
        let paths = rec.paths.into_inner();
        (host.req(&p.config.cohort_header).unwrap_or_default(), paths)
    }

    fn token_host(claims: &[(&str, &[u8])], headers: &[(&str, &[u8])]) -> FakeHost {
        claims
            .iter()
            .fold(FakeHost::with_request(headers), |h, (name, v)| {
                h.prop(&claim(name), v)
            })
    }

    #[test]
    fn verified_claims_of_every_encoding_choose_the_cohort() {
        let p = plugin(&format!("{{{RULES}}}"));
        let groups = encode([(&b"staff"[..], &b""[..]), (b"beta-testers", b"")]);
        let cases: [(&str, &[u8], &str); 6] = [
            ("groups", &groups, "beta"),
            ("user_type", b"internal", "internal"),
            ("tenant.tier", b"gold", "gold"),
            ("staff", &[1], "staff"),
            ("level", &7.0f64.to_le_bytes(), "staff"),
            ("user_type", b"external", "stable"),
        ];
        for (name, value, want) in cases {
            let (got, _) = run(&p, &mut token_host(&[(name, value)], &[]));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn without_a_verified_token_forged_headers_change_nothing() {
        let p = plugin(&format!("{{{RULES}}}"));
        let forged: [(&str, &[u8]); 5] = [
            ("user-type", b"internal"),
            ("user_type", b"internal"),
            ("groups", b"beta-testers"),
            ("x-canary-cohort", b"beta"),
            ("baggage", b"canary-cohort=beta"),
        ];
        let (got, _) = run(&p, &mut FakeHost::with_request(&forged));
        assert_eq!(got, "stable");
    }

    #[test]
    fn claims_are_read_once_per_rule_reached_and_never_by_default() {
        let p = plugin(&format!("{{{RULES}}}"));
        let (got, paths) = run(
            &p,
            &mut token_host(
                &[("groups", &encode([(&b"beta-testers"[..], &b""[..])]))],
                &[],
            ),
        );
        assert_eq!(got, "beta");
        assert_eq!(paths, vec![claim("groups")], "first rule matched: one read");
        let (_, paths) = run(&p, &mut FakeHost::default());
        assert_eq!(
            paths.len(),
            6,
            "five claim rules and one peer read: {paths:?}"
        );
        let (_, paths) = run(&plugin(""), &mut token_host(&[("groups", b"x")], &[]));
        assert!(paths.is_empty(), "the default config read {paths:?}");
    }

    #[test]
    fn a_principal_rule_matches_the_mtls_peer() {
        let p = plugin(&format!("{{{RULES}}}"));
        let peer = "connection.uri_san_peer_certificate";
        let qa = FakeHost::default().prop(peer, b"spiffe://cluster.local/ns/qa/sa/qa-bot");
        assert_eq!(run(&p, &mut { qa }).0, "qa");
        let other = FakeHost::default().prop(peer, b"spiffe://cluster.local/ns/qa/sa/other");
        assert_eq!(run(&p, &mut { other }).0, "stable");
    }

    #[test]
    fn the_sticky_bucket_follows_the_subject_not_a_header() {
        let p =
            plugin(r#"{"cohorts": [], "sticky": {"percent": 50, "userKey": {"claim": "sub"}}}"#);
        let mut canary = 0;
        for i in 0..200 {
            let sub = format!("user-{i}");
            let want = crate::hash::bucket(b"canary", sub.as_bytes()) < 5000;
            let headers: [(&str, &[u8]); 1] = [("x-user-id", b"someone-else")];
            let (got, _) = run(&p, &mut token_host(&[("sub", sub.as_bytes())], &headers));
            assert_eq!(got == "canary", want, "{sub}");
            canary += usize::from(want);
        }
        assert!((60..140).contains(&canary), "{canary}");
        let headers: [(&str, &[u8]); 1] = [("x-user-id", b"user-1")];
        assert_eq!(run(&p, &mut FakeHost::with_request(&headers)).0, "stable");
    }

    fn signer() -> Plugin {
        plugin(&format!(
            r#"{{{RULES}, "version": {{"direction": "SERVER"}}, "identity": {{"baggage": {{"key": "{KEY}"}}}}}}"#
        ))
    }

    fn verifier() -> Plugin {
        plugin(&format!(
            r#"{{"cohorts": [{{"name": "beta", "match": [{{"header": "beta-user", "exact": "true"}}]}}],
                "version": {{"direction": "CLIENT"}}, "identity": {{"baggage": {{"key": "{KEY}"}}}}}}"#
        ))
    }

    /// The baggage an inbound filter wrote for a beta tester's request `id`.
    fn signed_baggage(id: &[u8]) -> Vec<u8> {
        let groups = encode([(&b"beta-testers"[..], &b""[..])]);
        let incoming: [(&str, &[u8]); 2] = [
            ("x-request-id", id),
            ("baggage", b"userId=alice, canary-cohort=forged.x"),
        ];
        let mut host = token_host(&[("groups", &groups)], &incoming);
        assert_eq!(run(&signer(), &mut host).0, "beta");
        host.req("baggage").unwrap().into_bytes()
    }

    #[test]
    fn the_inbound_side_signs_the_cohort_into_baggage_and_the_outbound_side_believes_it() {
        let baggage = signed_baggage(b"req-1");
        let text = String::from_utf8(baggage.clone()).unwrap();
        assert!(
            text.starts_with("userId=alice,canary-cohort=beta."),
            "{text}"
        );
        assert!(!text.contains("forged"), "{text}");
        let hop: [(&str, &[u8]); 2] = [("x-request-id", b"req-1"), ("baggage", &baggage)];
        assert_eq!(
            run(&verifier(), &mut FakeHost::with_request(&hop)).0,
            "beta"
        );
    }

    #[test]
    fn a_stable_decision_is_signed_too_so_a_forged_beta_cannot_replace_it() {
        let incoming: [(&str, &[u8]); 2] = [
            ("x-request-id", b"req-9"),
            ("baggage", b"canary-cohort=beta.AAAA"),
        ];
        let mut host = FakeHost::with_request(&incoming);
        assert_eq!(run(&signer(), &mut host).0, "stable");
        let baggage = host.req("baggage").unwrap().into_bytes();
        assert!(baggage.starts_with(b"canary-cohort=stable."));
        let hop: [(&str, &[u8]); 3] = [
            ("x-request-id", b"req-9"),
            ("baggage", &baggage),
            ("beta-user", b"true"),
        ];
        assert_eq!(
            run(&verifier(), &mut FakeHost::with_request(&hop)).0,
            "stable"
        );
    }

    #[test]
    fn the_outbound_side_recomputes_unless_the_tag_verifies() {
        let good = signed_baggage(b"req-1");
        let mut forged = good.clone();
        let at = forged.windows(5).position(|w| w == b"beta.").unwrap();
        forged.splice(at..at + 4, b"gold".iter().copied());
        let mut repeated = good.clone();
        repeated.extend_from_slice(b", canary-cohort=stable.x");
        let cases: [(&[u8], &[u8]); 5] = [
            (b"req-2", &good),
            (b"req-1", &forged),
            (b"req-1", &repeated),
            (b"req-1", b"canary-cohort=beta"),
            (b"req-1", &good[..good.len() - 2]),
        ];
        for (id, baggage) in cases {
            let with_header: [(&str, &[u8]); 3] = [
                ("x-request-id", id),
                ("baggage", baggage),
                ("beta-user", b"true"),
            ];
            assert_eq!(
                run(&verifier(), &mut FakeHost::with_request(&with_header)).0,
                "beta"
            );
            let without: [(&str, &[u8]); 2] = [("x-request-id", id), ("baggage", baggage)];
            assert_eq!(
                run(&verifier(), &mut FakeHost::with_request(&without)).0,
                "stable",
                "{}",
                String::from_utf8_lossy(baggage)
            );
        }
        // Signed under another key: not believed.
        let other = plugin(&format!(
            r#"{{"version": {{"direction": "CLIENT"}}, "identity": {{"baggage": {{"key": "{}"}}}}}}"#,
            "x".repeat(32)
        ));
        let hop: [(&str, &[u8]); 2] = [("x-request-id", b"req-1"), ("baggage", &good)];
        assert_eq!(run(&other, &mut FakeHost::with_request(&hop)).0, "stable");
    }

    #[test]
    fn a_signed_cohort_this_config_does_not_know_is_not_believed() {
        let key = Key::new(KEY.as_bytes()).unwrap();
        let value = key.sign("gold", b"r");
        let mut baggage = b"canary-cohort=".to_vec();
        baggage.extend_from_slice(&value);
        let hop: [(&str, &[u8]); 2] = [("x-request-id", b"r"), ("baggage", &baggage)];
        assert_eq!(
            run(&verifier(), &mut FakeHost::with_request(&hop)).0,
            "stable"
        );
    }

    #[test]
    fn without_a_request_id_the_signer_only_drops_the_callers_member() {
        let incoming: [(&str, &[u8]); 1] = [("baggage", b"a=1,canary-cohort=beta.x")];
        let mut host = FakeHost::with_request(&incoming);
        run(&signer(), &mut host);
        assert_eq!(host.req("baggage").as_deref(), Some("a=1"));
        let only: [(&str, &[u8]); 1] = [("baggage", b"canary-cohort=beta.x")];
        let mut host = FakeHost::with_request(&only);
        run(&signer(), &mut host);
        assert_eq!(host.req("baggage"), None);
    }
}
