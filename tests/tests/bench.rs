//! The benchmark's machinery works: every variant's Envoy configuration is
//! valid, and a tiny interleaved run answers every request and reads CPU
//! time and wasm memory. No timing is asserted: figures come from `make bench`.

use std::time::Duration;

use canary_e2e::bench::run::{run, signal, Meter, Options};
use canary_e2e::bench::variants::{self, HeaderSet};
use canary_e2e::bench::{table, topology};
use canary_e2e::envoy::validate;
use canary_e2e::leftovers;
use canary_e2e::sidecar::{NOOP_FLOOR_COHORT, NOOP_FLOOR_VERSION};
use canary_e2e::Req;

#[test]
fn every_bench_variant_has_a_valid_plugin_config_and_envoy_configuration() {
    for v in variants::all() {
        v.check_config().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("envoy.json");
        let bootstrap = topology::bootstrap(&v, &topology::free_upstreams(), dir.path());
        let clusters: Vec<&str> = bootstrap["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(
            clusters,
            [
                "outbound|80|v1|reviews.default.svc.cluster.local",
                "outbound|80|v2|reviews.default.svc.cluster.local"
            ],
            "variant {}",
            v.id
        );
        std::fs::write(&path, bootstrap.to_string()).unwrap();
        if let Err(e) = validate(&path) {
            panic!("variant {} does not validate:\n{e}", v.id);
        }
    }
}

#[test]
fn a_misspelt_bench_config_is_refused_before_any_envoy_starts() {
    let err = variants::extra(r#"typo={"metric": {"enabled": false}}"#).unwrap_err();
    assert!(err.contains("metric"), "{err}");
}

#[test]
fn a_stopped_envoy_dies_with_the_thread_that_started_it_though_nothing_dropped_it() {
    // What a panicking release build of the bench does (it aborts, dropping
    // nothing) to one of its variants, which sits SIGSTOPped while another
    // is measured.
    let (pid, dir) = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let v = variants::select(variants::all(), "bare").unwrap().remove(0);
        let envoy = rt.block_on(topology::start(&v, false));
        let (pid, dir) = (envoy.pid(), envoy.dir());
        assert!(signal(pid, "STOP"));
        std::mem::forget(envoy);
        (pid, dir)
    })
    .join()
    .unwrap();
    // Killed if the test fails, and the directory the forgotten handle owned.
    struct Cleanup(u32, std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            signal(self.0, "KILL");
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let _cleanup = Cleanup(pid, dir);
    // Dead means gone, or a zombie: nobody is left to wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !leftovers::dead(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        leftovers::dead(pid),
        "Envoy {pid} outlived the thread that started it, in state {:?}",
        leftovers::state(pid)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn another_build_of_the_module_runs_as_its_own_variant_and_a_missing_one_is_refused() {
    let err = variants::other_module("o3=/nonexistent/canary.wasm").unwrap_err();
    assert!(err.contains("/nonexistent/canary.wasm"), "{err}");
    let wasm = canary_e2e::paths::filter_wasm();
    let v = variants::other_module(&format!("copy={}", wasm.display())).unwrap();
    assert_eq!(v.id, "module:copy");
    assert!(v.label.contains("bytes"), "{}", v.label);
    // Starting checks a 200 from v1 with the canary headers of `{}`.
    let envoy = topology::start(&v, false).await;
    assert_eq!(envoy.client().send(&Req::get("/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn both_floor_probes_load_in_envoy_and_make_the_filters_writes_and_record() {
    for v in variants::select(variants::all(), "floor,floor-rest").unwrap() {
        // Starting checks a 200 from v1 with the probe's canary headers.
        let envoy = topology::start(&v, false).await;
        let r = envoy.client().send(&Req::get("/")).await;
        assert_eq!(r.status, 200, "{}", v.id);
        assert_eq!(r.upstream(), Some("v1"), "{}", v.id);
        assert_eq!(r.header("x-canary-cohort"), Some(NOOP_FLOOR_COHORT));
        assert_eq!(r.header("x-canary-version"), Some(NOOP_FLOOR_VERSION));
        // The duration is recorded as the context is deleted (histograms
        // show after a stats flush): the probe module has no proxy_on_log.
        let name = "canary_probe_duration_microseconds_count";
        let recorded = envoy
            .stats_once_they_hold(Duration::from_secs(8), |s| s.sum(name, &[]) >= 2.0)
            .await
            .sum(name, &[]);
        assert!(
            recorded >= 2.0,
            "{}: {name} = {recorded}\n{}",
            v.id,
            envoy.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_interleaved_run_answers_every_request_and_reads_cpu_and_memory() {
    let mut chosen = variants::select(variants::all(), "bare,noop,filter").unwrap();
    for v in &mut chosen {
        v.header_sets = vec![HeaderSet::Minimal];
    }
    let opts = Options {
        rounds: 2,
        requests: 2_000,
        variants: chosen,
        meter: Meter::CpuTime,
    };
    let result = run(&opts, |_| {}).await;
    assert_eq!(result.cases.len(), 3);
    for c in &result.cases {
        assert_eq!(c.samples.len(), 2);
        for s in &c.samples {
            assert_eq!(s.requests, 2_000);
            assert!(s.cost_per_request > 0.0, "{s:?}");
        }
    }
    let id = |i: usize| result.variants[i].id.as_str();
    for (i, mem) in result.memory.iter().enumerate() {
        match id(i) {
            "bare" => assert!(mem.is_empty(), "bare Envoy has no wasm memory: {mem:?}"),
            _ => assert!(
                !mem.is_empty() && mem.iter().all(|m| m.size_kib >= 64),
                "{}: {mem:?}",
                id(i)
            ),
        }
    }
    let md = table::markdown(&result);
    for v in &result.variants {
        assert!(md.contains(&v.label), "{md}");
    }
    assert_eq!(table::json(&result)["cases"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_envoy_started_under_callgrind_unpinned_ends_up_with_every_thread_on_cpu_0() {
    let v = variants::select(variants::all(), "bare").unwrap().remove(0);
    let envoy = topology::start(&v, true).await;
    let tasks = std::fs::read_dir(format!("/proc/{}/task", envoy.pid())).unwrap();
    let mut threads = 0;
    for t in tasks {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(str::trim);
        assert_eq!(cpus, Some("0"), "{status}");
        threads += 1;
    }
    // Envoy's main thread, a worker and more (valgrind runs them all).
    assert!(threads > 2, "{threads} threads");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_instruction_meter_counts_nearly_the_same_instructions_in_every_round() {
    // Bare Envoy: no V8 to start under callgrind, so this stays short.
    let mut chosen = variants::select(variants::all(), "bare").unwrap();
    chosen[0].header_sets = vec![HeaderSet::Minimal];
    let opts = Options {
        rounds: 2,
        requests: 500,
        variants: chosen,
        meter: Meter::Instructions,
    };
    let result = run(&opts, |_| {}).await;
    let counts: Vec<f64> = result.cases[0]
        .samples
        .iter()
        .map(|s| s.cost_per_request)
        .collect();
    // Envoy answers a proxied request in tens of thousands of instructions;
    // CPU time in µs would read in the hundreds at most.
    assert!(counts.iter().all(|c| *c > 10_000.0), "{counts:?}");
    // The point of the meter: rounds agree (within 0.2 % at 3,000 requests
    // per round; 500 leave more of the idle timers' work in each count).
    let spread = (counts[0] - counts[1]).abs() / counts[0];
    assert!(spread < 0.05, "{counts:?}");
    let md = table::markdown(&result);
    assert!(md.contains("instructions/request"), "{md}");
}
