//! The release module as Envoy loads it. `make build` cuts its exports down
//! to the callbacks the filter implements (`filter/wasm-exports.json`), so
//! Envoy never enters the VM for a request body or a connection event; the
//! traffic those callbacks would have seen still passes and is counted.

use std::collections::BTreeSet;
use std::time::Duration;

use canary_e2e::paths::{filter_wasm, noop_wasm, probe_wasm, repo_root};
use canary_e2e::{Envoy, FilterSpec, Req, Sidecar, Upstream};

/// The export names the build keeps: in `filter/wasm-exports.json` (a
/// wasm-metadce graph), the exports of the nodes a root reaches.
fn kept_exports() -> BTreeSet<String> {
    let path = repo_root().join("filter/wasm-exports.json");
    let graph: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let nodes = graph.as_array().unwrap();
    let reached: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n["root"] == true)
        .flat_map(|n| n["reaches"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    nodes
        .iter()
        .filter(|n| reached.contains(n["name"].as_str().unwrap()))
        .filter_map(|n| n["export"].as_str().map(String::from))
        .collect()
}

fn module_exports(wasm: &[u8]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::ExportSection(section) = payload.unwrap() {
            for export in section {
                names.insert(export.unwrap().name.to_string());
            }
        }
    }
    names
}

#[test]
fn the_release_module_exports_only_the_callbacks_the_filter_implements() {
    let exports = module_exports(&std::fs::read(filter_wasm()).unwrap());
    assert_eq!(exports, kept_exports());
    // `proxy_on_done` would be called for every request, to do nothing.
    for unused in [
        "proxy_on_done",
        "proxy_on_request_body",
        "proxy_on_request_trailers",
        "proxy_on_http_call_response",
        "proxy_on_new_connection",
    ] {
        assert!(!exports.contains(unused), "the module exports {unused}");
    }
}

/// The bench's floor probes stand for the filter's hostcalls, so they must
/// enter the VM where the filter does: their module keeps the filter's
/// exports, while the empty module keeps all of the SDK's.
#[test]
fn the_floor_probes_module_exports_what_the_filter_exports_and_the_empty_module_more() {
    let probe = module_exports(&std::fs::read(probe_wasm()).unwrap());
    assert_eq!(probe, kept_exports());
    let empty = module_exports(&std::fs::read(noop_wasm()).unwrap());
    for callback in ["proxy_on_log", "proxy_on_done", "proxy_on_request_body"] {
        assert!(
            empty.contains(callback),
            "the empty module lacks {callback}"
        );
    }
}

/// A callback the glue implements but the build drops would never run:
/// Envoy calls only what the module exports.
#[test]
fn every_callback_the_glue_implements_stays_exported() {
    let glue = std::fs::read_to_string(repo_root().join("filter/src/lib.rs")).unwrap();
    let kept = kept_exports();
    let callbacks = [
        ("fn on_vm_start", "proxy_on_vm_start"),
        ("fn on_configure", "proxy_on_configure"),
        ("fn on_tick", "proxy_on_tick"),
        ("fn on_queue_ready", "proxy_on_queue_ready"),
        ("fn on_done", "proxy_on_done"),
        ("fn on_http_request_headers", "proxy_on_request_headers"),
        ("fn on_http_request_body", "proxy_on_request_body"),
        ("fn on_http_request_trailers", "proxy_on_request_trailers"),
        ("fn on_http_response_headers", "proxy_on_response_headers"),
        ("fn on_http_response_body", "proxy_on_response_body"),
        ("fn on_http_response_trailers", "proxy_on_response_trailers"),
        ("fn on_log", "proxy_on_log"),
        ("fn on_http_call_response", "proxy_on_http_call_response"),
        ("fn on_grpc_", "proxy_on_grpc_receive"),
        ("fn on_foreign_function", "proxy_on_foreign_function"),
    ];
    let mut implemented = 0;
    for (method, export) in callbacks {
        if glue.contains(method) {
            implemented += 1;
            assert!(
                kept.contains(export),
                "filter/src/lib.rs implements `{method}` but filter/wasm-exports.json drops {export}"
            );
        }
    }
    assert!(implemented >= 6, "the glue's callbacks were not found");
}

/// The size target: one module per sidecar, in every pod. Deterministic, so a
/// test, unlike CPU cost, which only `make bench` measures.
#[test]
fn the_release_module_fits_in_200_kib() {
    let size = std::fs::metadata(filter_wasm()).unwrap().len();
    assert!(size <= 200 * 1024, "the release module is {size} bytes");
}

/// `make build` compiles std with `panic=immediate-abort`: a panic traps at
/// once, and std's panic hook, which formats the message and tells how to get
/// a backtrace, is not in the module.
#[test]
fn the_release_module_carries_no_panic_hook() {
    let wasm = std::fs::read(filter_wasm()).unwrap();
    for text in [
        &b"RUST_BACKTRACE"[..],
        b"called `Result::unwrap()` on an `Err` value",
    ] {
        assert!(
            !wasm.windows(text.len()).any(|w| w == text),
            "the release module carries std's panic text {:?}",
            String::from_utf8_lossy(text)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_bodies_pass_whole_and_are_counted_once() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let sidecar = Sidecar::outbound(
        FilterSpec::Canary("{}".into()),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    let envoy = Envoy::start(&sidecar).await;
    let c = envoy.client();

    // A 1 MiB upload and a 1 MiB download: many chunks each way.
    const MIB: usize = 1 << 20;
    for _ in 0..3 {
        let r = c
            .send(
                &Req::post("/upload", vec![b'x'; MIB])
                    .header("beta-user", "true")
                    .header("x-test-body-bytes", MIB.to_string()),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.upstream(), Some("v2"), "the cohort header routed it");
        assert_eq!(r.header("x-received-bytes"), Some("1048576"));
        assert_eq!(r.body.len(), MIB);
        assert_eq!(r.header("x-canary-cohort"), Some("beta"));
        assert_eq!(r.header("x-canary-version"), Some("v2"));
    }

    let s = envoy
        .stats_once_they_hold(Duration::from_secs(2), |s| {
            let beta_2xx = [("canary_cohort", "beta"), ("canary_code_class", "2xx")];
            s.sum("canary_requests_total", &beta_2xx) >= 3.0
        })
        .await;
    assert_eq!(
        s.sum(
            "canary_requests_total",
            &[("canary_version", "v2"), ("canary_cohort", "beta")]
        ),
        3.0,
        "each request counted once, as a complete 2xx"
    );
    assert_eq!(s.sum("canary_errors_total", &[]), 0.0);
}
