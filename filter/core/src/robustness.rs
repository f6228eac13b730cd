//! Nothing that parses client bytes (or shared data another VM wrote) may
//! panic: a panic traps the VM. These tests feed random and mutated input to
//! every such parser and to whole requests through the `Stream`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::config::Config;
use crate::gates::shared::SharedState;
use crate::metrics::Registry;
use crate::stream::{Plugin, Stream, Vm};
use crate::testing::{FakeHost, FakeMetrics, FakeStore};

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
        ..Vm::default()
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
        host.trailers.push(("grpc-status".into(), rng.bytes(4)));
        host.now.set(rng.next() >> 20);
        let mut s = Stream::default();
        s.on_request_headers(&p, &vm, &mut host);
        s.on_response_headers(&p, &mut host, rng.below(2) == 0);
        s.on_response_body(rng.below(2) == 0);
        s.on_response_trailers(&p, &mut host);
        s.on_log(&p, &mut vm, &mut m, &mut host, &mut FakeStore::default());
    }
}
