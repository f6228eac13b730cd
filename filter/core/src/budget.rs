//! What one request costs in hostcalls, phase by phase, for the configs a
//! sidecar runs: the defaults (`{}`), the shipped plugin-config.json, a trust
//! policy and SLO gates. A hostcall crosses the wasm boundary (about 1 µs, a
//! property read more), so these counts are the deterministic stand-in for
//! the filter's CPU cost: a change that adds a call, or fetches a value
//! twice, fails here.
//!
//! Counts are for a VM in its steady state (the request's series are defined
//! and its version admitted by an earlier request). Histogram values are
//! hostcalls too and counted apart; counter bumps are counted apart as well,
//! because the glue holds them in the VM and hands them to Envoy on the tick.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::gates::Engine;
use crate::stream::{Plugin, Stream, Vm};
use crate::testing::{FakeHost, FakeMetrics, FakeStore};
use crate::Config;

const SHIPPED: &str = include_str!("../../../manifests/module/plugin-config.json");
const TRUST: &str = r#"{"trust": {"sourceCidrs": ["10.0.0.0/8"]}}"#;
const GATES: &str = r#"{"gates": {"canaryVersion": "v2"}}"#;

/// The hostcalls of each callback of one request.
#[derive(Debug, Default, PartialEq, Eq)]
struct Cost {
    request_headers: usize,
    response_headers: usize,
    body: usize,
    trailers: usize,
    log: usize,
    /// Histogram values recorded: one hostcall each.
    records: usize,
    /// Counter bumps, held for the tick by the glue.
    bumps: u64,
    /// The property reads among the hostcalls, in order.
    properties: Vec<String>,
}

/// The upstream's answer.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 with a body, from `outbound|80|v1|reviews`.
    Plain,
    /// A gRPC 200 whose `grpc-status: 0` comes in trailers.
    Grpc,
}

/// Serves a first request to warm the VM, then measures a second one alike.
fn cost(config: &str, request: &[(&str, &[u8])], answer: Answer) -> Cost {
    let p = Plugin::new(
        Config::from_json(config.as_bytes()).unwrap(),
        Some(b"v9".as_slice()),
    );
    let mut vm = Vm {
        engine: p.config.gates.as_ref().map(|_| Engine::new("k", 1)),
        ..Vm::default()
    };
    let (mut m, mut store) = (FakeMetrics::default(), FakeStore::default());
    let mut measured = Cost::default();
    for _ in 0..2 {
        let mut host = FakeHost::with_request(request)
            .prop("source.address", b"10.1.2.3:5555")
            .prop("xds.cluster_name", b"outbound|80|v1|reviews")
            .status(200);
        let trailers = matches!(answer, Answer::Grpc);
        if trailers {
            host.response
                .push(("content-type".into(), b"application/grpc".to_vec()));
            host.trailers.push(("grpc-status".into(), b"0".to_vec()));
        }
        let (records, bumps) = (recorded(&m), m.counters.values().sum::<u64>());
        let mut s = Stream::default();
        let mut since = {
            let mut last = 0;
            move |host: &FakeHost| {
                let now = host.calls.get();
                now - std::mem::replace(&mut last, now)
            }
        };
        let mut c = Cost::default();
        s.on_request_headers(&p, &vm, &mut host);
        c.request_headers = since(&host);
        s.on_response_headers(&p, &mut host, false);
        c.response_headers = since(&host);
        s.on_response_body(!trailers);
        c.body = since(&host);
        if trailers {
            s.on_response_trailers(&p, &mut host);
        }
        c.trailers = since(&host);
        s.on_end(&p, &mut vm, &mut m, &mut host, &mut store);
        c.log = since(&host);
        c.records = recorded(&m) - records;
        c.bumps = m.counters.values().sum::<u64>() - bumps;
        c.properties = host.properties_read.take();
        measured = c;
    }
    measured
}

fn recorded(m: &FakeMetrics) -> usize {
    m.records.values().map(Vec::len).sum()
}

/// `{}` on a plain request: the clock, the two rule headers and the cohort
/// header on the way in; `:status`, the cluster name (the version) and the
/// two canary headers on the way out; the clock and one histogram value at
/// the end. A completed 2xx needs neither `response.code` nor the flags.
fn default_cost() -> Cost {
    Cost {
        request_headers: 4,
        response_headers: 4,
        body: 0,
        trailers: 0,
        log: 1,
        records: 1,
        bumps: 1,
        properties: vec!["xds.cluster_name".into()],
    }
}

#[test]
fn a_plain_request_with_the_default_config_costs_nine_hostcalls_and_one_histogram_value() {
    for config in ["", "{}"] {
        assert_eq!(cost(config, &[], Answer::Plain), default_cost());
    }
}

#[test]
fn unrelated_request_headers_cost_nothing() {
    let browser: &[(&str, &[u8])] = &[
        ("cookie", b"session=1; theme=dark"),
        ("x-request-id", b"r-1"),
        ("x-user-id", b"u1"),
        ("traceparent", b"00-6e0c-1f2e-01"),
    ];
    assert_eq!(cost("{}", browser, Answer::Plain), default_cost());
}

#[test]
fn a_present_rule_header_adds_one_property_read_for_its_other_lines() {
    let c = cost("{}", &[("user-type", b"internal")], Answer::Plain);
    assert_eq!(c.request_headers, 5);
    assert_eq!(
        c.properties,
        ["request.headers.user-type", "xds.cluster_name"]
    );
    assert_eq!((c.response_headers, c.log, c.records), (4, 1, 1));
}

#[test]
fn the_shipped_config_costs_what_the_default_costs() {
    // Sticky at 0 % reads no user key; gates record in the VM only.
    assert_eq!(cost(SHIPPED, &[], Answer::Plain), default_cost());
    assert_eq!(
        cost(SHIPPED, &[("x-user-id", b"u1")], Answer::Plain),
        default_cost()
    );
}

#[test]
fn a_trust_policy_costs_nothing_until_a_routing_header_arrives() {
    assert_eq!(cost(TRUST, &[], Answer::Plain), default_cost());
    // Then the sender's address is read once, beside the header's lines.
    let c = cost(TRUST, &[("user-type", b"internal")], Answer::Plain);
    assert_eq!(c.request_headers, 6);
    assert_eq!(
        c.properties,
        [
            "request.headers.user-type",
            "source.address",
            "xds.cluster_name"
        ]
    );
    // An untrusted sender's header is removed: one more call, no more reads.
    let strict = r#"{"trust": {"sourceCidrs": ["192.0.2.0/24"]}}"#;
    let c = cost(strict, &[("user-type", b"internal")], Answer::Plain);
    assert_eq!(c.request_headers, 7);
    assert_eq!(c.properties.len(), 3);
}

#[test]
fn gates_cost_no_hostcall_on_the_request_path() {
    assert_eq!(cost(GATES, &[], Answer::Plain), default_cost());
    // Gates alone still time and classify the request, and record nothing.
    let gates_only = r#"{"gates": {"canaryVersion": "v2"}, "metrics": {"enabled": false}}"#;
    let c = cost(gates_only, &[], Answer::Plain);
    assert_eq!(
        c,
        Cost {
            records: 0,
            bumps: 0,
            ..default_cost()
        }
    );
}

#[test]
fn grpc_trailers_cost_one_read() {
    let c = cost("{}", &[], Answer::Grpc);
    assert_eq!(
        c,
        Cost {
            trailers: 1,
            ..default_cost()
        }
    );
}

#[test]
fn server_timing_when_turned_on_costs_a_clock_read_and_a_header() {
    let c = cost(
        r#"{"responseHeaders": {"serverTiming": true}}"#,
        &[],
        Answer::Plain,
    );
    assert_eq!(
        c,
        Cost {
            response_headers: 6,
            ..default_cost()
        }
    );
}

#[test]
fn what_the_config_turns_off_costs_nothing() {
    // No metrics, gates or server-timing: no clock, no status, no version.
    let tagging = r#"{"metrics": {"enabled": false}, "responseHeaders": {"version": false, "cohort": false}}"#;
    assert_eq!(
        cost(tagging, &[], Answer::Plain),
        Cost {
            request_headers: 3,
            ..Cost::default()
        }
    );
    // The cohort response header alone is one write.
    let cohort_only = r#"{"metrics": {"enabled": false}, "responseHeaders": {"version": false}}"#;
    let c = cost(cohort_only, &[], Answer::Plain);
    assert_eq!((c.request_headers, c.response_headers, c.log), (3, 1, 0));
    // The version header alone: the cluster name and one write.
    let version_only = r#"{"metrics": {"enabled": false}, "responseHeaders": {"cohort": false}}"#;
    let c = cost(version_only, &[], Answer::Plain);
    assert_eq!((c.request_headers, c.response_headers, c.log), (3, 2, 0));
    // No rules either: only the cohort header is written.
    let bare = r#"{"cohorts": [], "metrics": {"enabled": false}, "responseHeaders": {"version": false, "cohort": false}}"#;
    assert_eq!(
        cost(bare, &[], Answer::Plain),
        Cost {
            request_headers: 1,
            ..Cost::default()
        }
    );
}

#[test]
fn a_keyless_split_reads_the_clock_only_when_nothing_else_did() {
    let split = r#"{"sticky": {"percent": 30, "missingKey": "perRequest"}, "metrics": {"enabled": false}, "responseHeaders": {"version": false, "cohort": false}}"#;
    // The request id first; the clock only without one.
    let c = cost(split, &[("x-request-id", b"r-1")], Answer::Plain);
    assert_eq!(c.request_headers, 5);
    let c = cost(split, &[], Answer::Plain);
    assert_eq!(c.request_headers, 6);
    // With metrics on, the start time already read serves the split.
    let timed = r#"{"sticky": {"percent": 30, "missingKey": "perRequest"}}"#;
    let c = cost(timed, &[], Answer::Plain);
    assert_eq!(c.request_headers, 6);
}
