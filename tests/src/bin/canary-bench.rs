//! `make bench`: Envoy CPU per request for bare Envoy, a no-op proxy-wasm
//! filter, a Lua filter doing only the module's header tagging, and the canary
//! filter with its default config.
//!
//! Envoy runs with `--concurrency 1` pinned to CPU 0, h2load (`--h1`) pinned to
//! CPU 1. CPU per request is Envoy's utime+stime from /proc divided by the
//! requests of the measured run, so a loaded or slow load generator does not
//! change it. Each variant runs several rounds; the median is reported.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use canary_e2e::{Envoy, FilterSpec, Sidecar, Upstream};
use serde_json::json;

struct Args {
    requests: u64,
    rounds: usize,
    out: Option<PathBuf>,
    /// Extra canary-filter configurations to measure, for tuning.
    variants: Vec<(String, String)>,
    only_variants: bool,
}

fn args() -> Args {
    let mut a = Args {
        requests: 60_000,
        rounds: 3,
        out: None,
        variants: vec![],
        only_variants: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--requests" => {
                a.requests = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--requests N")
            }
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--out" => a.out = it.next().map(PathBuf::from),
            "--variant" => {
                let v = it.next().expect("--variant NAME=PLUGIN_CONFIG_JSON");
                let (name, cfg) = v
                    .split_once('=')
                    .expect("--variant NAME=PLUGIN_CONFIG_JSON");
                a.variants.push((name.to_string(), cfg.to_string()));
            }
            "--only-variants" => a.only_variants = true,
            "-h" | "--help" => {
                println!("canary-bench [--requests N] [--rounds N] [--out FILE.json] [--variant NAME=JSON]... [--only-variants]");
                println!(
                    "  --variant adds a canary-filter run with that pluginConfig (repeatable);"
                );
                println!("  --only-variants measures bare Envoy and the variants only.");
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other}; see --help");
                std::process::exit(2);
            }
        }
    }
    a
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // USER_HZ (CLK_TCK) is 100 on every Linux architecture Envoy ships for.
    ticks / 100.0
}

fn h2load(port: u16, n: u64) -> u64 {
    let out = Command::new("taskset")
        .args(["-c", "1", "h2load", "--h1", "-c", "16", "-t", "1", "-n"])
        .arg(n.to_string())
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("h2load (run `make setup`)");
    let text = String::from_utf8_lossy(&out.stdout);
    // "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, ..."
    let line = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("h2load said:\n{text}"));
    let succeeded = line
        .split(',')
        .find_map(|p| {
            p.trim()
                .strip_suffix(" succeeded")
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    assert_eq!(succeeded, n, "not every request succeeded:\n{text}");
    succeeded
}

struct Row {
    name: String,
    us_per_request: f64,
    rounds: Vec<f64>,
    requests_per_second: f64,
}

async fn measure(name: &str, filter: FilterSpec, a: &Args, upstream: &Upstream) -> Row {
    let mut s = Sidecar::outbound(
        filter,
        &[("v1", upstream.addr), ("v2", upstream.addr)],
        &[("v1", 100), ("v2", 0)],
    );
    s.cpu = Some(0);
    s.concurrency = 1;
    let envoy = Envoy::start(&s).await;
    let port = envoy.listener.port();
    h2load(port, a.requests / 10); // warm-up: connections, VM, stats
    let mut rounds = vec![];
    let mut rps = vec![];
    for _ in 0..a.rounds {
        let before = cpu_seconds(envoy.pid());
        let t = Instant::now();
        let n = tokio::task::block_in_place(|| h2load(port, a.requests));
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(envoy.pid()) - before;
        rounds.push(cpu / n as f64 * 1e6);
        rps.push(n as f64 / wall);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let us = median(&mut rounds.clone());
    let rps = median(&mut rps);
    eprintln!("  {name:<28} {us:>7.2} us/request  ({rps:.0} req/s)  rounds {rounds:.2?}");
    Row {
        name: name.to_string(),
        us_per_request: us,
        rounds,
        requests_per_second: rps,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let a = args();
    let upstream = Upstream::start("v1").await;
    let wasm = canary_e2e::paths::filter_wasm();
    let wasm_bytes = std::fs::metadata(&wasm).unwrap().len();
    eprintln!(
        "canary-bench: {} requests x {} rounds per variant; Envoy --concurrency 1 on CPU 0, h2load --h1 -c 16 on CPU 1",
        a.requests, a.rounds
    );
    let mut rows = vec![measure("bare Envoy", FilterSpec::None, &a, &upstream).await];
    if !a.only_variants {
        rows.push(measure("no-op proxy-wasm", FilterSpec::Noop, &a, &upstream).await);
        rows.push(measure("Lua header tagging", FilterSpec::Lua, &a, &upstream).await);
        rows.push(
            measure(
                "canary filter (defaults)",
                FilterSpec::Canary(String::new()),
                &a,
                &upstream,
            )
            .await,
        );
    }
    for (name, cfg) in &a.variants {
        rows.push(
            measure(
                &format!("canary: {name}"),
                FilterSpec::Canary(cfg.clone()),
                &a,
                &upstream,
            )
            .await,
        );
    }
    let bare = rows[0].us_per_request;
    println!();
    println!("| variant | CPU us/request | over bare | x bare | req/s |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.2} | {:+.2} | {:.2} | {:.0} |",
            r.name,
            r.us_per_request,
            r.us_per_request - bare,
            r.us_per_request / bare,
            r.requests_per_second
        );
    }
    let mut over = None;
    if !a.only_variants {
        let canary = rows[3].us_per_request;
        over = Some(canary - bare);
        println!();
        println!(
            "canary filter: {:+.2} us/request over bare Envoy (target <= 8); its overhead is {:.2} x the no-op wasm filter's and {:.2} x Lua tagging's",
            canary - bare,
            (canary - bare) / (rows[1].us_per_request - bare).max(0.01),
            (canary - bare) / (rows[2].us_per_request - bare).max(0.01)
        );
    }
    println!(
        "release module: {wasm_bytes} bytes ({:.0} KB; target <= 250 KB)",
        wasm_bytes as f64 / 1024.0
    );
    let report = json!({
        "requests_per_round": a.requests,
        "rounds": a.rounds,
        "method": "Envoy utime+stime from /proc/<pid>/stat over h2load --h1 -c 16 -n N; Envoy --concurrency 1 pinned to CPU 0, h2load to CPU 1; median of rounds",
        "variants": rows.iter().map(|r| json!({
            "name": r.name, "cpu_us_per_request": r.us_per_request, "rounds": r.rounds,
            "over_bare_us": r.us_per_request - bare, "requests_per_second": r.requests_per_second,
        })).collect::<Vec<_>>(),
        "canary_over_bare_us": over,
        "wasm_bytes": wasm_bytes,
    });
    if let Some(out) = a.out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("wrote {}", out.display());
    }
}
