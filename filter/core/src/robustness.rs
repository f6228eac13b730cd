//! Nothing that parses client bytes (or shared data another VM wrote) may
//! panic: a panic traps the VM. Property tests feed arbitrary and mutated
//! input to every such parser, to whole requests through the `Stream`, to the
//! outcome classification and to the shared-data codecs, and check what must
//! hold besides not panicking. proptest shrinks a failure to a small case and
//! records its seed under `proptest-regressions/` so it is replayed first.
//!
//! proptest does not build for `wasm32-unknown-unknown` (its random source,
//! getrandom, has no backend there), so the properties run natively only; the
//! fixed regression cases at the end run on both targets.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::config::Config;
use crate::stream::{Plugin, Stream, Vm};
use crate::testing::{FakeHost, FakeMetrics, FakeStore};

/// A config that reads every kind of client input: header, cookie and query
/// rules, a cookie user key, a trust policy and gates.
const EVERYTHING: &str = r#"{
  "cohorts": [
    {"name": "internal", "match": [{"header": "user-type", "exact": "internal"}]},
    {"name": "beta", "match": [{"cookie": "beta", "exact": "1"}, {"header": "beta-user", "prefix": "t"}]},
    {"name": "qa", "match": [{"query": "canary", "present": true}]}
  ],
  "sticky": {"percent": 50, "userKey": {"cookie": "uid"}, "missingKey": "perRequest"},
  "trust": {"sourceCidrs": ["10.0.0.0/8"], "peerPrincipals": ["spiffe://a/*"]},
  "gates": {"canaryVersion": "v2"}
}"#;

/// [`EVERYTHING`], parsed once: the request properties run it hundreds of times.
fn everything() -> &'static Plugin {
    static PLUGIN: std::sync::OnceLock<Plugin> = std::sync::OnceLock::new();
    PLUGIN.get_or_init(|| Plugin::new(Config::from_json(EVERYTHING.as_bytes()).unwrap(), None))
}

/// One request's client-controlled input, as the fake host serves it.
#[derive(Debug, Clone)]
struct Request {
    headers: Vec<(&'static str, Vec<u8>)>,
    source: Vec<u8>,
    peer: Vec<u8>,
    cluster: Vec<u8>,
    code: Vec<u8>,
    flags: Vec<u8>,
    details: Vec<u8>,
    grpc: Vec<u8>,
    status: Vec<u8>,
    now: u64,
}

impl Request {
    fn host(&self) -> FakeHost {
        let refs: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_slice()))
            .collect();
        let mut host = FakeHost::with_request(&refs)
            .prop("source.address", &self.source)
            .prop("connection.uri_san_peer_certificate", &self.peer)
            .prop("xds.cluster_name", &self.cluster)
            .prop("response.code", &self.code)
            .prop("response.flags", &self.flags)
            .prop("response.code_details", &self.details);
        host.response.push((":status".into(), self.status.clone()));
        host.response
            .push(("grpc-status".into(), self.grpc.clone()));
        host.trailers
            .push(("grpc-status".into(), self.grpc.clone()));
        host.now.set(self.now);
        host
    }
}

/// Runs a request through every phase; returns the host afterwards.
fn run(p: &Plugin, vm: &mut Vm, r: &Request, end_in_headers: bool) -> FakeHost {
    let mut host = r.host();
    let mut s = Stream::default();
    s.on_request_headers(p, vm, &mut host);
    s.on_response_headers(p, &mut host, end_in_headers);
    s.on_response_body(!end_in_headers);
    s.on_response_trailers(p, &mut host);
    s.on_end(
        p,
        vm,
        &mut FakeMetrics::default(),
        &mut host,
        &mut FakeStore::default(),
    );
    host
}

#[cfg(not(target_arch = "wasm32"))]
mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::cohort::{cookie, query_param};
    use crate::gates::eval::GateState;
    use crate::gates::shared::{SharedState, VersionState};
    use crate::liveness::Beats;
    use crate::outcome::{classify, flags, CodeClass, Details, ErrorKind};

    /// Bytes biased towards the characters parsers care about.
    fn client_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        const SPECIAL: &[u8] = b"=;&?%+#\"'[]{}:,.-/ \\\t\x00\xff\xfe\xc3\x28";
        vec(
            prop_oneof![
                2 => any::<u8>(),
                1 => proptest::sample::select(SPECIAL),
            ],
            0..=max,
        )
    }

    /// 0-3 lines of a header.
    fn lines(name: &'static str) -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
        vec(client_bytes(40), 0..=3).prop_map(move |vs| vs.into_iter().map(|v| (name, v)).collect())
    }

    fn request() -> impl Strategy<Value = Request> {
        let headers = (
            lines("cookie"),
            lines(":path"),
            lines("user-type"),
            lines("beta-user"),
            lines("x-request-id"),
            lines("x-canary-cohort"),
        )
            .prop_map(|(a, b, c, d, e, f)| [a, b, c, d, e, f].concat());
        let props = (
            client_bytes(24),
            client_bytes(24),
            client_bytes(30),
            client_bytes(9),
            client_bytes(9),
            client_bytes(12),
            client_bytes(4),
            client_bytes(4),
        );
        (headers, props, any::<u64>()).prop_map(
            |(headers, (source, peer, cluster, code, flags, details, grpc, status), now)| Request {
                headers,
                source,
                peer,
                cluster,
                code,
                flags,
                details,
                grpc,
                status,
                now: now >> 20,
            },
        )
    }

    /// A JSON tree over the config's own keys, with values of any shape.
    fn config_json() -> impl Strategy<Value = Value> {
        const KEYS: &[&str] = &[
            "cohortHeader",
            "cohorts",
            "name",
            "match",
            "header",
            "cookie",
            "query",
            "exact",
            "prefix",
            "present",
            "sticky",
            "percent",
            "userKey",
            "salt",
            "missingKey",
            "trust",
            "sourceCidrs",
            "peerPrincipals",
            "routingHeaders",
            "version",
            "value",
            "known",
            "direction",
            "responseHeaders",
            "serverTiming",
            "metrics",
            "enabled",
            "gates",
            "canaryVersion",
            "tick",
            "bucket",
            "minSamples",
            "rollback",
            "window",
            "for",
            "errorPercentAbove",
            "p99Above",
            "withdraw",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            any::<i64>().prop_map(|i| json!(i)),
            "[a-z0-9%./:*-]{0,12}".prop_map(Value::String),
            proptest::sample::select(
                &[
                    "1s",
                    "200ms",
                    "5m",
                    "v2",
                    "canary",
                    "stable",
                    "perRequest",
                    "client",
                    "10.0.0.0/8",
                ][..]
            )
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                }),
            ]
        })
    }

    /// A gate state with arbitrary names, states, timers and counts.
    fn shared_state() -> impl Strategy<Value = SharedState> {
        let version = (
            "[a-z0-9.-]{1,10}",
            0u8..4,
            proptest::option::of(any::<u64>()),
            vec(proptest::option::of(any::<u64>()), 0..4),
            vec((any::<u16>(), any::<u32>(), any::<u32>()), 0..8),
        );
        (any::<u64>(), any::<u64>(), vec(version, 0..4)).prop_map(|(withdrawn_for, hash, vs)| {
            let g = Config::from_json(br#"{"gates": {"canaryVersion": "v2"}}"#)
                .ok()
                .and_then(|c| c.gates)
                .unwrap_or_else(|| unreachable!("the default gates are valid"));
            let versions = vs
                .into_iter()
                .map(|(name, state, held, triggers, cells)| {
                    let mut v = VersionState::new(&g, &name);
                    v.state = GateState::from_u8(state);
                    v.timers.held_since = held.filter(|h| *h != u64::MAX);
                    v.timers.triggers = triggers
                        .into_iter()
                        .map(|t| t.filter(|t| *t != u64::MAX))
                        .collect();
                    for (i, requests, errors) in cells {
                        let n = v.fine.cells.len();
                        let c = &mut v.fine.cells[usize::from(i) % n];
                        c.requests = requests;
                        c.errors[usize::from(i) % c.errors.len()] = errors;
                        let n = v.burn.cells.len();
                        v.burn.cells[usize::from(i) % n].errors = errors;
                    }
                    v
                })
                .collect();
            SharedState {
                withdrawn_for,
                config_hash: hash,
                versions,
                // The judge's pair has its own codec tests (gates::judging_tests).
                pair: None,
                limits: vec![],
            }
        })
    }

    proptest! {
        // Whole requests cost the most: fewer cases keep `cargo test` quick.
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn any_json_over_the_config_keys_is_refused_with_a_field_or_serves_requests(
            v in config_json(), r in request()
        ) {
            match Config::from_json(v.to_string().as_bytes()) {
                Err(e) => prop_assert!(e.to_string().starts_with("pluginConfig field `"), "{e}"),
                Ok(cfg) => {
                    let p = Plugin::new(cfg, None);
                    let _ = run(&p, &mut Vm::default(), &r, false);
                }
            }
        }

        #[test]
        fn any_request_gets_exactly_one_declared_cohort_and_the_same_one_twice(
            r in request(), end_in_headers in any::<bool>()
        ) {
            let p = everything();
            let mut vm = Vm::default();
            let host = run(p, &mut vm, &r, end_in_headers);
            let cohort: Vec<&Vec<u8>> = host.request.iter()
                .filter(|(k, _)| k == "x-canary-cohort").map(|(_, v)| v).collect();
            prop_assert_eq!(cohort.len(), 1);
            let labels: Vec<&str> = p.config.cohorts.all()
                .map(|c| p.config.cohort_label(c)).collect();
            prop_assert!(labels.iter().any(|l| l.as_bytes() == cohort[0].as_slice()));
            let again = run(p, &mut vm, &r, end_in_headers);
            prop_assert_eq!(again.req("x-canary-cohort"), host.req("x-canary-cohort"));
        }

        #[test]
        fn an_untrusted_sender_keeps_no_routing_header_line(
            r in request(), port in any::<u16>()
        ) {
            let p = everything();
            let mut r = r;
            r.source = format!("192.168.0.1:{port}").into_bytes();
            r.peer = b"spiffe://b/ns/x".to_vec();
            let host = run(p, &mut Vm::default(), &r, false);
            prop_assert!(!host.request.iter().any(|(k, _)| k == "user-type" || k == "beta-user"));
            let c = host.req("x-canary-cohort").unwrap_or_default();
            prop_assert!(c != "internal", "an untrusted sender reached internal");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_a_parser(b in client_bytes(64)) {
            let _ = cookie(&b, "uid");
            let _ = query_param(&b, "canary");
            let _ = crate::trust::parse_socket_ip(&b);
            let _ = crate::outcome::grpc_status(&b);
            let _ = crate::outcome::http_status(&b);
            let _ = crate::outcome::Details::of(Some(&b));
            let _ = crate::property::istio_subset(&b);
            let _ = crate::property::int(&b);
            let _ = crate::hash::bucket(&b, &b);
            let _ = Config::from_json(&b);
            let _ = SharedState::decode(&b);
            let _ = Beats::decode(&b);
            let _ = crate::labels::decode(&b);
            if let Ok(s) = std::str::from_utf8(&b) {
                let _ = s.parse::<crate::trust::Cidr>();
                let _ = s.parse::<crate::trust::Principal>();
                let _ = crate::config::duration::parse_ms(s);
            }
        }

        #[test]
        fn a_mutated_valid_config_is_accepted_or_refused_naming_a_field(
            edits in vec((0usize..4096, 0u8..3, any::<u8>()), 1..5)
        ) {
            let mut m = EVERYTHING.as_bytes().to_vec();
            for (at, op, byte) in edits {
                let i = at % m.len().max(1);
                match op {
                    0 if i < m.len() => m[i] = byte,
                    1 if i < m.len() => { m.remove(i); }
                    _ => m.insert(i.min(m.len()), byte),
                }
            }
            if let Err(e) = Config::from_json(&m) {
                prop_assert!(e.to_string().starts_with("pluginConfig field `"), "{e}");
            }
        }

        #[test]
        fn a_cookie_is_found_on_any_line_and_at_any_position(
            others in vec(("[a-z]{1,6}", "[!-~&&[^;,\"]]{0,8}"), 0..5),
            at in 0usize..6,
            value in "[!-~&&[^;,\"]]{0,12}",
            quoted in any::<bool>(),
            second_line in any::<bool>(),
        ) {
            let mut pairs: Vec<String> = others.iter()
                .map(|(k, v)| format!("x{k}={v}")).collect();
            let v = if quoted { format!("\"{value}\"") } else { value.clone() };
            pairs.insert(at.min(pairs.len()), format!("uid={v}"));
            let header = if second_line {
                let (a, b) = pairs.split_at(pairs.len() / 2);
                format!("{},{}", a.join("; "), b.join(";"))
            } else {
                pairs.join("; ")
            };
            prop_assert_eq!(cookie(header.as_bytes(), "uid"), Some(value.as_bytes()));
        }

        #[test]
        fn a_percent_encoded_query_value_decodes_to_its_bytes(
            v in vec(any::<u8>(), 0..24), before in "[a-z]{0,6}"
        ) {
            let encoded: String = v.iter().map(|b| format!("%{b:02X}")).collect();
            let path = format!("/p?{before}x=1&canary={encoded}&canary=no");
            let decoded = query_param(path.as_bytes(), "canary").map(|d| d.collect::<Vec<u8>>());
            prop_assert_eq!(decoded, Some(v));
        }

        #[test]
        fn outcomes_classify_by_code_flags_and_grpc(
            code in prop_oneof![0i64..700, any::<i64>()],
            fl in prop_oneof![Just(0i64), any::<i64>(), proptest::sample::select(&[
                flags::UPSTREAM_REQUEST_TIMEOUT, flags::UPSTREAM_REMOTE_RESET,
                flags::STREAM_IDLE_TIMEOUT, flags::UPSTREAM_PROTOCOL_ERROR,
                flags::NO_HEALTHY_UPSTREAM,
            ][..])],
            complete in any::<bool>(),
            grpc in proptest::option::of(0u32..20),
            details in proptest::option::of(client_bytes(24)),
        ) {
            let mut asked = 0;
            let (class, error) = classify(code, fl, complete, grpc, || {
                asked += 1;
                Details::of(details.as_deref())
            });
            prop_assert_eq!(class, CodeClass::of(code));
            prop_assert!(asked <= 1);
            if fl & flags::TIMEOUT != 0 {
                prop_assert_eq!(error, Some(ErrorKind::Timeout));
            } else if fl & flags::RESET != 0 {
                prop_assert_eq!(error, Some(ErrorKind::Reset));
            } else if class == CodeClass::C5xx {
                prop_assert!(matches!(error, Some(ErrorKind::Http5xx | ErrorKind::Local)));
            } else if complete && grpc.unwrap_or(0) == 0 {
                prop_assert_eq!(error, None);
            }
        }

        #[test]
        fn the_gate_state_codec_round_trips_and_survives_corruption(
            st in shared_state(), cut in any::<prop::sample::Index>(), byte in any::<u8>()
        ) {
            let bytes = st.encode();
            prop_assert_eq!(SharedState::decode(&bytes), Some(st));
            let i = cut.index(bytes.len());
            prop_assert_eq!(SharedState::decode(&bytes[..i]), None);
            let mut flipped = bytes.clone();
            flipped[i] ^= byte;
            let _ = SharedState::decode(&flipped);
        }

        #[test]
        fn the_liveness_and_label_codecs_round_trip(
            slots in vec((any::<u32>(), any::<u64>()), 0..20),
            labels in vec("[a-z0-9._-]{1,20}", 0..=16),
        ) {
            let b = Beats { slots };
            prop_assert_eq!(Beats::decode(&b.encode()), Some(b));
            prop_assert_eq!(crate::labels::decode(&crate::labels::encode(&labels)), Some(labels));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_baggage_and_claim_bytes_never_panic(
            b in client_bytes(96), at in any::<prop::sample::Index>(), byte in any::<u8>(),
        ) {
            use crate::config::Test;
            use crate::identity::{baggage, claim, pairs::Pairs, Key};
            let key = Key::new(&[3; 32]).unwrap();
            let signed = key.sign("beta", b"id");
            let _ = baggage::lookup(&b, "canary-cohort");
            let _ = baggage::with_member(Some(&b), "canary-cohort", b"v");
            let _ = baggage::without_member(&b, "canary-cohort");
            baggage::members(&b).for_each(|m| drop(m.decoded()));
            let _ = key.verify(&b, &b);
            if let Some(p) = Pairs::parse(&b) {
                p.iter().for_each(drop);
            }
            for t in [
                Test::Exact(b"a".to_vec()),
                Test::Contains(b"a".to_vec()),
                Test::Present,
                Test::Prefix(b"a".to_vec()),
            ] {
                let _ = claim::test(&t, Some(&b));
            }
            // Mutated pairs buffers and tags, not only arbitrary ones.
            let list = crate::identity::pairs::encode([(&b"beta"[..], &b""[..]), (&b[..], &b""[..])]);
            for base in [&list, &signed] {
                let mut m = base.clone();
                let i = at.index(m.len());
                m[i] = byte;
                if let Some(p) = Pairs::parse(&m) {
                    p.iter().for_each(drop);
                }
                let _ = key.verify(&m, b"id");
            }
        }

        #[test]
        fn whole_requests_through_signing_and_verifying_filters_never_panic(
            baggage in client_bytes(80), id in client_bytes(16), groups in client_bytes(40),
            x in client_bytes(9), sub in client_bytes(12), peer in client_bytes(16),
        ) {
            static PLUGINS: std::sync::OnceLock<[Plugin; 2]> = std::sync::OnceLock::new();
            let plugins = PLUGINS.get_or_init(|| {
                let key = "k".repeat(32);
                let rules = r#""cohorts": [{"name": "beta", "match": [{"claim": "groups", "contains": "b"}, {"claim": "t.x", "exact": "1"}]},
                               {"name": "qa", "match": [{"principal": "spiffe://a/*"}]}],
                    "sticky": {"percent": 50, "userKey": {"claim": "sub"}}"#;
                ["SERVER", "CLIENT"].map(|d| {
                    let json = format!(
                        r#"{{{rules}, "version": {{"direction": "{d}"}}, "identity": {{"baggage": {{"key": "{key}"}}}}}}"#
                    );
                    Plugin::new(Config::from_json(json.as_bytes()).unwrap(), None)
                })
            });
            let payload = "metadata.filter_metadata.envoy.filters.http.jwt_authn.payload";
            for p in plugins {
                let headers: [(&str, &[u8]); 2] = [("baggage", &baggage), ("x-request-id", &id)];
                let mut host = FakeHost::with_request(&headers)
                    .prop(&format!("{payload}.groups"), &groups)
                    .prop(&format!("{payload}.t.x"), &x)
                    .prop(&format!("{payload}.sub"), &sub)
                    .prop("connection.uri_san_peer_certificate", &peer);
                Stream::default().on_request_headers(p, &Vm::default(), &mut host);
            }
        }
    }
}

/// Inputs that once needed care, fixed so they run on every target.
#[test]
fn hostile_requests_from_past_findings_never_panic() {
    let p = everything();
    let cases: [&[(&'static str, &[u8])]; 6] = [
        &[("user-type", b"\xff\xfe"), ("beta-user", b"t\x80\x81")],
        &[("cookie", b"\xff=\xfe; uid=\x80\x90; beta=\xc3\x28")],
        &[("cookie", b";;;==;=; ; uid"), ("cookie", b",,=,")],
        &[("cookie", b"uid=\""), ("cookie", b"beta=1")],
        &[
            (":path", b"/?%%%&&==&canary=%ff%&canary"),
            (":path", b"/%ff%00"),
        ],
        &[
            ("x-canary-cohort", b"\xff"),
            ("x-canary-cohort", b"internal"),
        ],
    ];
    for headers in cases {
        let r = Request {
            headers: headers.iter().map(|(k, v)| (*k, v.to_vec())).collect(),
            source: b"10.0.0.1:1".to_vec(),
            peer: vec![],
            cluster: b"outbound|80|\xff|x".to_vec(),
            code: vec![0xff; 3],
            flags: vec![],
            details: b"upstream_reset".to_vec(),
            grpc: b"\xff".to_vec(),
            status: b"20\xff".to_vec(),
            now: 1,
        };
        let host = run(p, &mut Vm::default(), &r, false);
        assert_eq!(
            host.request
                .iter()
                .filter(|(k, _)| k == "x-canary-cohort")
                .count(),
            1
        );
    }
}
