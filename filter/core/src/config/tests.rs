//! What `pluginConfig` accepts, what it refuses, and the field each refusal names.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn header_names(c: &Config) -> Vec<&str> {
    c.cohorts.headers.iter().map(|h| h.name.as_str()).collect()
}

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
        assert_eq!(c.cohorts.rules.len(), 2);
        assert_eq!(c.cohorts.rules[0].name, "internal");
        assert_eq!(c.cohorts.rules[1].name, "beta");
        assert_eq!(header_names(&c), vec!["user-type", "beta-user"]);
        assert!(c.cohorts.headers.iter().all(|h| h.guarded));
        assert_eq!(c.trust.routing_headers, vec!["user-type", "beta-user"]);
        assert!(c.trust.trusts_everyone());
        assert_eq!(c.sticky.basis_points, 0);
        assert_eq!(
            c.sticky.user_key,
            UserKey::Header(HeaderName::fixed("x-user-id"))
        );
        assert_eq!(
            c.response_headers.version.as_deref(),
            Some("x-canary-version")
        );
        assert_eq!(c.response_headers.server_timing, None);
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
    let labels: Vec<&str> = c.cohorts.all().map(|id| c.cohort_label(id)).collect();
    assert_eq!(labels, ["stable", "canary", "qa", "beta"]);
    assert_eq!(c.cohort_label(Cohort::STABLE), "stable");
    assert_eq!(c.cohorts.named("beta").map(Cohort::index), Some(3));
    assert_eq!(c.cohorts.named("nobody"), None);
    assert_eq!(c.cohorts.rules[1].matches[0].source, Source::Header(0));
    assert_eq!(
        c.cohorts.rules[1].matches[0].test,
        Test::Prefix(b"t".to_vec())
    );
    assert_eq!(c.sticky.basis_points, 1250);
    assert_eq!(c.sticky.user_key, UserKey::Cookie("uid".into()));
    assert_eq!(c.sticky.missing_key, MissingKey::PerRequest);
    assert_eq!(c.trust.source_cidrs.len(), 2);
    assert!(!c.trust.trusts_everyone());
    assert_eq!(c.trust.routing_headers, vec!["beta-user"]);
    assert_eq!(
        c.cohorts
            .headers
            .iter()
            .map(|h| h.guarded)
            .collect::<Vec<_>>(),
        [true]
    );
    assert_eq!(c.version.direction, Direction::Server);
    assert_eq!(c.version.value.as_deref(), Some("v2"));
    assert_eq!(c.response_headers.version, None);
    assert_eq!(c.response_headers.cohort.as_deref(), Some("x-my-cohort"));
    assert_eq!(
        c.response_headers.server_timing.as_deref(),
        Some("server-timing")
    );
    assert!(!c.metrics_enabled);
}

#[test]
fn server_timing_is_written_only_when_asked_for_by_true_or_a_name() {
    let timing = |json: &str| {
        Config::from_json(json.as_bytes())
            .unwrap()
            .response_headers
            .server_timing
            .map(|h| h.as_str().to_string())
    };
    assert_eq!(timing("{}"), None);
    assert_eq!(timing(r#"{"responseHeaders": {"version": false}}"#), None);
    assert_eq!(
        timing(r#"{"responseHeaders": {"serverTiming": false}}"#),
        None
    );
    assert_eq!(
        timing(r#"{"responseHeaders": {"serverTiming": true}}"#).as_deref(),
        Some("server-timing")
    );
    assert_eq!(
        timing(r#"{"responseHeaders": {"serverTiming": "X-Upstream-Timing"}}"#).as_deref(),
        Some("x-upstream-timing")
    );
    // The version and cohort headers stay on unless turned off.
    let c = Config::from_json(br#"{"responseHeaders": {"serverTiming": true}}"#).unwrap();
    assert_eq!(
        c.response_headers.version.as_deref(),
        Some("x-canary-version")
    );
    assert_eq!(
        c.response_headers.cohort.as_deref(),
        Some("x-canary-cohort")
    );
    assert_eq!(
        err(r#"{"responseHeaders": {"cohort": "x-t", "serverTiming": "x-t"}}"#).field(),
        "responseHeaders.serverTiming"
    );
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let e = err(r#"{"cohorts": [{"name": "a", "match": [{"header": "x", "exakt": "1"}]}]}"#);
    assert!(e.is_schema());
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
    for bad in ["-1", "100.5", "1000"] {
        let e = Config::from_json(format!(r#"{{"sticky": {{"percent": {bad}}}}}"#).as_bytes())
            .unwrap_err();
        assert_eq!(e.field(), "sticky.percent", "{bad}: {e}");
    }
    // Beyond f64 the JSON itself is refused, with the place it broke.
    let e = err(r#"{"sticky": {"percent": 1e400}}"#);
    assert!(
        e.to_string().contains("number out of range at line 1"),
        "{e}"
    );
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
    assert_eq!(
        c.cohorts
            .headers
            .iter()
            .map(|h| h.guarded)
            .collect::<Vec<_>>(),
        [false, false]
    );
}

#[test]
fn missing_required_fields_and_unknown_variants_name_their_place() {
    let e = err(r#"{"cohorts": [{"match": [{"header": "a", "present": true}]}]}"#);
    assert_eq!(e.field(), "cohorts[0]");
    assert!(e.to_string().contains("missing field `name`"), "{e}");
    let e = err(r#"{"sticky": {"missingKey": "never"}}"#);
    assert_eq!(e.field(), "sticky.missingKey");
    assert!(e.to_string().contains("unknown variant `never`"), "{e}");
    assert_eq!(
        err(r#"{"gates": {"minSamples": -1}}"#).field(),
        "gates.minSamples"
    );
    assert_eq!(err(r#"{"cohorts": {"a": 1}}"#).field(), "cohorts");
    let e = err(r#"{"sticky": {"salt": "a", "salt": "b"}}"#);
    assert_eq!(e.field(), "sticky.salt");
    assert!(e.to_string().contains("duplicate field `salt`"), "{e}");
    // null is the same as absent, as it was for serde's Option.
    let c = Config::from_json(br#"{"cohortHeader": null, "sticky": {"salt": null}}"#).unwrap();
    assert_eq!(c, Config::default());
}
