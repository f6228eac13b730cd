//! The request path allocates nothing once a VM has served its first request:
//! a counting global allocator watches whole requests through [`Stream`] with
//! the default and the shipped configuration, and one using every rule source. The host here answers from
//! fixed data and allocates nothing itself, so every allocation counted is the
//! core's. One test in this binary, so no other test allocates meanwhile.
#![cfg(not(target_arch = "wasm32"))]

use std::alloc::System;
use std::cell::Cell;

use canary_core::host::{Http, MetricKind, Metrics, SharedStore};
use canary_core::pending::{Batched, PendingCounts};
use canary_core::stream::{Plugin, Stream, Vm};
use canary_core::Config;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Headers = &'static [(&'static str, &'static [u8])];

/// A proxy that answers from static data and forgets every write.
struct StaticHost {
    request: Headers,
    response: Headers,
    cluster: &'static [u8],
    now: Cell<u64>,
}

fn find(list: Headers, name: &str) -> Option<&'static [u8]> {
    list.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

impl Http for StaticHost {
    fn request_header<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        read(find(self.request, name))
    }
    fn set_request_header(&mut self, _: &str, _: &[u8]) {}
    fn remove_request_header(&mut self, _: &str) {}
    fn response_header<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        read(find(self.response, name))
    }
    fn set_response_header(&mut self, _: &str, _: &[u8]) {}
    fn add_response_header(&mut self, _: &str, _: &[u8]) {}
    fn response_trailer<R>(&self, _: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        read(None)
    }
    fn property<R>(&self, path: &[&str], read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        match path {
            ["xds", "cluster_name"] => read(Some(self.cluster)),
            // Every line of a header, joined: one line each here.
            ["request", "headers", name] => read(find(self.request, name)),
            _ => read(None),
        }
    }
    fn now_nanos(&self) -> u64 {
        let t = self.now.get() + 1_000_000;
        self.now.set(t);
        t
    }
}

/// Stat ids handed out in order; values are dropped.
#[derive(Default)]
struct Sink(u32);

impl Metrics for Sink {
    fn define(&mut self, _: MetricKind, _: &str) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn increment(&mut self, _: u32, _: i64) {}
    fn record(&mut self, _: u32, _: u64) {}
}

/// The proxy's shared data: one value per key (the version labels).
#[derive(Default)]
struct Store(Vec<(String, Vec<u8>, u32)>);

impl SharedStore for Store {
    fn get(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)> {
        let (_, v, cas) = self.0.iter().find(|(k, _, _)| k == key)?;
        Some((v.clone(), Some(*cas)))
    }
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        match self.0.iter_mut().find(|(k, _, _)| k == key) {
            Some((_, v, c)) if cas.is_none_or(|cas| cas == *c) => {
                *v = value.to_vec();
                *c += 1;
                true
            }
            Some(_) => false,
            None => {
                self.0.push((key.to_string(), value.to_vec(), 1));
                true
            }
        }
    }
}

/// Requests a sidecar sees: no routing header, each cohort's, and a browser's
/// worth of unrelated headers.
const REQUESTS: [Headers; 4] = [
    &[(":path", b"/reviews/1")],
    &[(":path", b"/reviews/1"), ("user-type", b"internal")],
    &[(":path", b"/reviews/1"), ("beta-user", b"true")],
    &[
        (":path", b"/reviews/1?x=1"),
        (":method", b"GET"),
        (":authority", b"reviews:9080"),
        ("user-agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
        ("accept", b"text/html,application/xhtml+xml"),
        ("accept-language", b"en-US,en;q=0.9"),
        ("cookie", b"a=1; session=abc; theme=dark; beta=0; uid=42"),
        ("x-request-id", b"2f0c8c1e-5f2b-4a47-9c1d-8f0e6c1b2a3d"),
        (
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("x-b3-traceid", b"4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-b3-spanid", b"00f067aa0ba902b7"),
        ("x-user-id", b"user-7"),
        ("x-forwarded-proto", b"http"),
        ("beta-user", b"false"),
    ],
];

/// Serves every request shape `rounds` times; returns the allocations made.
fn serve(
    p: &Plugin,
    vm: &mut Vm,
    metrics: &mut Batched<'_, Sink>,
    store: &mut Store,
    rounds: usize,
) -> usize {
    let region = Region::new(GLOBAL);
    for _ in 0..rounds {
        for request in REQUESTS {
            let mut host = StaticHost {
                request,
                response: &[(":status", b"200")],
                cluster: b"outbound|9080|v2|reviews.default.svc.cluster.local",
                now: Cell::new(1_000_000_000),
            };
            let mut s = Stream::default();
            s.on_request_headers(p, vm, &mut host);
            s.on_response_headers(p, &mut host, false);
            s.on_response_body(true);
            s.on_end(p, vm, metrics, &mut host, store);
        }
    }
    region.change().allocations
}

/// Every rule source, a cookie user key, a trust policy and `server-timing`.
const FEATURES: &[u8] = br#"{
  "cohorts": [{"name": "qa", "match": [{"query": "x", "exact": "1"}, {"cookie": "beta", "present": true}]},
              {"name": "beta", "match": [{"header": "beta-user", "exact": "true"}]}],
  "sticky": {"percent": 50, "userKey": {"cookie": "uid"}, "missingKey": "perRequest"},
  "trust": {"sourceCidrs": ["10.0.0.0/8"], "routingHeaders": ["beta-user", "x-debug"]},
  "responseHeaders": {"serverTiming": true}
}"#;

#[test]
fn requests_allocate_nothing_once_the_metrics_are_defined() {
    let shipped = include_bytes!("../../../manifests/module/plugin-config.json");
    for config in [&b"{}"[..], shipped, FEATURES] {
        let p = Plugin::new(Config::from_json(config).unwrap(), Some(b"v1"));
        let mut vm = Vm {
            engine: p
                .config
                .gates
                .as_ref()
                .map(|_| canary_core::gates::Engine::new("k", 1)),
            ..Vm::default()
        };
        let (mut sink, mut store) = (Sink::default(), Store::default());
        // Counter bumps wait in the VM for the tick, as in the filter.
        let mut pending = PendingCounts::default();
        let mut metrics = Batched {
            pending: &mut pending,
            sink: &mut sink,
        };
        // The first requests define each series and meet each version once.
        serve(&p, &mut vm, &mut metrics, &mut store, 1);
        let allocations = serve(&p, &mut vm, &mut metrics, &mut store, 50);
        assert_eq!(
            allocations,
            0,
            "{} allocations in 200 requests with {}",
            allocations,
            String::from_utf8_lossy(config)
        );
    }
}
