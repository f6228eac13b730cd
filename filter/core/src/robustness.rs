//! Nothing that parses client bytes (or shared data another VM wrote) may
//! panic: a panic traps the VM. These tests feed random and mutated input to
//! every such parser and to whole requests through the `Stream`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::config::Config;
use crate::gates::shared::SharedState;
use crate::metrics::Registry;
use crate::stream::{Plugin, Stream, Vm};
use crate::testing::{FakeHost, FakeMetrics};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Random bytes biased towards the characters parsers care about.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        const SPECIAL: &[u8] = b"=;&?%+#\"'[]{}:,.-/ \\\t\x00\xff\xfe\xc3\x28";
        let len = self.below(max + 1);
        (0..len)
            .map(|_| {
                if self.below(3) == 0 {
                    SPECIAL[self.below(SPECIAL.len())]
                } else {
                    self.next() as u8
                }
            })
            .collect()
    }
}

const ITERATIONS: usize = 3_000;

#[test]
fn random_bytes_never_panic_the_parsers() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..ITERATIONS {
        let b = rng.bytes(64);
        let _ = crate::cohort::cookie(&b, "uid");
        let _ = crate::cohort::query_param(&b, "canary");
        let _ = crate::trust::parse_socket_ip(&b);
        let _ = crate::outcome::grpc_status(&b);
        let _ = crate::property::istio_subset(&b);
        let _ = crate::property::int(&b);
        let _ = crate::hash::bucket(&b, &b);
        let _ = Config::from_json(&b);
        let _ = SharedState::decode(&b);
        if let Ok(s) = std::str::from_utf8(&b) {
            let _ = s.parse::<crate::trust::Cidr>();
            let _ = s.parse::<crate::trust::Principal>();
            let _ = crate::config::duration::parse_ms(s);
        }
    }
}

#[test]
fn mutated_configs_and_shared_state_never_panic() {
    let mut rng = Rng(42);
    let valid = br#"{"cohorts": [{"name": "beta", "match": [{"cookie": "b", "exact": "1"}]}],
        "sticky": {"percent": 12.5, "userKey": {"header": "x-user-id"}},
        "trust": {"sourceCidrs": ["10.0.0.0/8"], "peerPrincipals": ["spiffe://a/*"]},
        "gates": {"canaryVersion": "v2", "bucket": "10s", "rollback": [{"p99Above": "200ms", "for": "3m"}]}}"#;
    let g = Config::from_json(valid).unwrap().gates.unwrap();
    let mut st = SharedState::default();
    st.version_mut(&g, "v2", 16)
        .unwrap()
        .fine
        .cell_mut(3)
        .unwrap()
        .requests = 9;
    let blob = st.encode();
    for _ in 0..ITERATIONS {
        for base in [&valid[..], &blob[..]] {
            let mut m = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                match rng.below(3) {
                    0 => m[i] = rng.next() as u8,
                    1 => {
                        m.remove(i);
                    }
                    _ => m.insert(i, rng.next() as u8),
                }
            }
            let _ = Config::from_json(&m);
            let _ = SharedState::decode(&m);
        }
    }
}

#[test]
fn whole_requests_with_random_headers_never_panic() {
    let mut rng = Rng(7);
    let p = Plugin::new(
        Config::from_json(
            br#"{"cohorts": [{"name": "beta", "match": [{"cookie": "beta", "exact": "1"}, {"header": "beta-user", "prefix": "t"}]},
                           {"name": "qa", "match": [{"query": "canary", "present": true}]}],
                "sticky": {"percent": 50, "userKey": {"cookie": "uid"}, "missingKey": "perRequest"},
                "trust": {"sourceCidrs": ["10.0.0.0/8"], "peerPrincipals": ["spiffe://a/*"]},
                "gates": {"canaryVersion": "v2"}}"#,
        )
        .unwrap(),
        None,
    );
    let mut vm = Vm {
        registry: Registry::default(),
        engine: Some(crate::gates::Engine::new("k", 1)),
    };
    let mut m = FakeMetrics::default();
    for _ in 0..ITERATIONS {
        let names = [
            "cookie",
            ":path",
            "beta-user",
            "user-type",
            "x-request-id",
            "x-canary-cohort",
        ];
        let headers: Vec<(String, Vec<u8>)> = names
            .iter()
            .map(|n| (n.to_string(), rng.bytes(40)))
            .collect();
        let refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let mut host = FakeHost::with_request(&refs)
            .prop("source.address", &rng.bytes(24))
            .prop("connection.uri_san_peer_certificate", &rng.bytes(24))
            .prop("xds.cluster_name", &rng.bytes(30))
            .prop("response.code", &rng.bytes(9))
            .prop("response.flags", &rng.bytes(9))
            .prop("response.code_details", &rng.bytes(12));
        host.response.push(("grpc-status".into(), rng.bytes(4)));
        host.response.push((":status".into(), rng.bytes(4)));
        host.trailers.push(("grpc-status".into(), rng.bytes(4)));
        host.now.set(rng.next() >> 20);
        let mut s = Stream::default();
        s.on_request_headers(&p, &vm, &mut host);
        s.on_response_headers(&p, &mut host, rng.below(2) == 0);
        s.on_response_body(rng.below(2) == 0);
        s.on_response_trailers(&p, &mut host);
        s.on_log(&p, &mut vm, &mut m, &mut host);
    }
}

#[test]
fn random_baggage_and_claim_bytes_never_panic() {
    use crate::config::Test;
    use crate::identity::{baggage, claim, pairs::Pairs, Key};
    let mut rng = Rng(0x1de7_1717);
    let key = Key::new(&[3; 32]).unwrap();
    let signed = key.sign("beta", b"id");
    let tests = [
        Test::Exact(b"a".to_vec()),
        Test::Contains(b"a".to_vec()),
        Test::Present,
        Test::Prefix(b"a".to_vec()),
    ];
    for _ in 0..ITERATIONS {
        let b = rng.bytes(96);
        let _ = baggage::lookup(&b, "canary-cohort");
        let _ = baggage::with_member(Some(&b), "canary-cohort", b"v");
        let _ = baggage::without_member(&b, "canary-cohort");
        baggage::members(&b).for_each(|m| drop(m.decoded()));
        let _ = key.verify(&b, &b);
        if let Some(p) = Pairs::parse(&b) {
            p.iter().for_each(drop);
        }
        for t in &tests {
            let _ = claim::test(t, Some(&b));
        }
        // Mutated pairs buffers and tags, not only random ones.
        let list = crate::identity::pairs::encode([(&b"beta"[..], &b""[..]), (&b[..], &b""[..])]);
        for base in [&list, &signed] {
            let mut m = base.clone();
            let i = rng.below(m.len());
            m[i] = rng.next() as u8;
            if let Some(p) = Pairs::parse(&m) {
                p.iter().for_each(drop);
            }
            let _ = key.verify(&m, b"id");
        }
    }
}

#[test]
fn whole_requests_through_signing_and_verifying_filters_never_panic() {
    let key = "k".repeat(32);
    let rules = r#""cohorts": [{"name": "beta", "match": [{"claim": "groups", "contains": "b"}, {"claim": "t.x", "exact": "1"}]},
                   {"name": "qa", "match": [{"principal": "spiffe://a/*"}]}],
        "sticky": {"percent": 50, "userKey": {"claim": "sub"}}"#;
    let plugins = ["SERVER", "CLIENT"].map(|d| {
        let json = format!(
            r#"{{{rules}, "version": {{"direction": "{d}"}}, "identity": {{"baggage": {{"key": "{key}"}}}}}}"#
        );
        Plugin::new(Config::from_json(json.as_bytes()).unwrap(), None)
    });
    let payload = "metadata.filter_metadata.envoy.filters.http.jwt_authn.payload";
    let mut rng = Rng(99);
    for _ in 0..ITERATIONS {
        for p in &plugins {
            let baggage = rng.bytes(80);
            let id = rng.bytes(16);
            let headers: [(&str, &[u8]); 2] = [("baggage", &baggage), ("x-request-id", &id)];
            let mut host = FakeHost::with_request(&headers)
                .prop(&format!("{payload}.groups"), &rng.bytes(40))
                .prop(&format!("{payload}.t.x"), &rng.bytes(9))
                .prop(&format!("{payload}.sub"), &rng.bytes(12))
                .prop("connection.uri_san_peer_certificate", &rng.bytes(16));
            Stream::default().on_request_headers(p, &Vm::default(), &mut host);
        }
    }
}
