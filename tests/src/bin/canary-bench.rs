//! `make bench`: Envoy CPU per request for bare Envoy, the empty proxy-wasm
//! module, Lua doing the filter's default work, and the filter under several
//! configs, on one Envoy process per variant whose upstream is a second
//! listener of itself. Envoy runs on CPU 0, h2load on CPU 1; all variants are
//! started first and measured in interleaved rounds. See docs/performance.md.

use std::path::PathBuf;

use canary_e2e::bench::run::{run, Meter, Options};
use canary_e2e::bench::{probe, table, variants};

const HELP: &str = "\
canary-bench [--instructions] [--rounds N] [--requests N] [--variants ID,ID,...] [--config NAME=JSON]... [--module NAME=PATH]... [--direct] [--quick] [--out FILE.json]

  --instructions      count the instructions Envoy executes (under valgrind's callgrind)
                      instead of its CPU time: nearly the same figures from run to run; defaults
                      become 3 rounds of 3000 requests and the variants bare, noop, floor,
                      floor-rest, lua, filter and shipped
  --rounds N          interleaved rounds (default 15; at least 5 for figures worth quoting)
  --requests N        requests per case and round (default 14000)
  --variants LIST     measure only these variants (comma-separated ids, see below)
  --config NAME=JSON  also measure the filter with this pluginConfig (repeatable)
  --module NAME=PATH  also measure the filter `{}` from this build of the module (repeatable)
  --direct            measure the --config and --module variants on the direct-response path
  --quick             3 rounds of 5000 requests: checks the setup, figures are rough
  --out FILE.json     write the JSON there and the markdown report next to it (FILE.md)

Variants:";

/// What `--instructions` measures unless `--variants` says otherwise: the
/// variants the targets compare. Each Envoy under callgrind takes most of a
/// minute to start.
const INSTRUCTION_VARIANTS: &str = "bare,noop,floor,floor-rest,lua,filter,shipped";

struct Args {
    opts: Options,
    out: Option<PathBuf>,
}

fn fail(msg: &str) -> ! {
    eprintln!("canary-bench: {msg}");
    std::process::exit(2)
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> T {
    v.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fail(&format!("{flag} needs a positive number")))
}

fn args() -> Args {
    // Many short rounds rather than a few long ones: each case sits closer in
    // time to the bare Envoy it is compared with in its round, and the medians
    // rest on more rounds.
    let mut rounds = None;
    let mut requests = None;
    let mut meter = Meter::CpuTime;
    let mut only: Option<String> = None;
    let mut extra = vec![];
    let mut out = None;
    let mut direct = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--instructions" => meter = Meter::Instructions,
            "--rounds" => rounds = Some(number("--rounds", it.next())),
            "--requests" => requests = Some(number("--requests", it.next())),
            "--variants" => {
                only = Some(it.next().unwrap_or_else(|| fail("--variants needs a list")))
            }
            "--config" => {
                let spec = it
                    .next()
                    .unwrap_or_else(|| fail("--config needs NAME=JSON"));
                extra.push(variants::extra(&spec).unwrap_or_else(|e| fail(&e)));
            }
            "--module" => {
                let spec = it
                    .next()
                    .unwrap_or_else(|| fail("--module needs NAME=PATH"));
                extra.push(variants::other_module(&spec).unwrap_or_else(|e| fail(&e)));
            }
            "--direct" => direct = true,
            "--quick" => {
                rounds = Some(3);
                requests = Some(5_000);
            }
            "--out" => out = it.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!("{HELP}");
                for v in variants::all() {
                    let sets: Vec<&str> = v.header_sets.iter().map(|s| s.id()).collect();
                    println!("  {:<20} {} [{}]", v.id, v.label, sets.join(", "));
                }
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other}; see --help")),
        }
    }
    // Under callgrind Envoy runs about 50 times slower, and its counts
    // barely move between rounds: fewer, shorter rounds say as much.
    let (rounds, requests) = match meter {
        Meter::CpuTime => (rounds.unwrap_or(15), requests.unwrap_or(14_000)),
        Meter::Instructions => (rounds.unwrap_or(3), requests.unwrap_or(3_000)),
    };
    if rounds == 0 || requests == 0 {
        fail("--rounds and --requests must be at least 1");
    }
    if meter == Meter::Instructions && only.is_none() {
        only = Some(INSTRUCTION_VARIANTS.into());
    }
    let mut chosen = match &only {
        Some(ids) => variants::select(variants::all(), ids).unwrap_or_else(|e| fail(&e)),
        None => variants::all(),
    };
    if direct {
        for v in &mut extra {
            v.path = variants::Path::Direct;
            v.id.push_str("-direct");
            v.label.push_str(", direct response");
        }
    }
    chosen.extend(extra);
    Args {
        opts: Options {
            rounds,
            requests,
            variants: chosen,
            meter,
        },
        out,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let a = args();
    let cases: usize = a.opts.variants.iter().map(|v| v.header_sets.len()).sum();
    eprintln!(
        "canary-bench: {} variants, {cases} cases, {} rounds of {} requests; Envoy --concurrency 1 on CPU 0, h2load --h1 -c 16 on CPU 1",
        a.opts.variants.len(),
        a.opts.rounds,
        a.opts.requests
    );
    if a.opts.rounds < 5 && a.opts.meter == Meter::CpuTime {
        eprintln!("canary-bench: fewer than 5 rounds: the figures show the setup works, not what things cost");
    }
    // Nothing else should run during a bench: say so when something does.
    let (busy0, t) = (probe::machine_busy(), std::time::Instant::now());
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let busy = (probe::machine_busy() - busy0) / t.elapsed().as_secs_f64() * 100.0;
    if busy > 10.0 {
        eprintln!("canary-bench: other processes use {busy:.0} % of one CPU right now: expect noisy figures (the report states how much ran beside the bench)");
    }
    let result = run(&a.opts, |msg| eprintln!("  {msg}")).await;
    let md = table::markdown(&result);
    println!();
    print!("{md}");
    if let Some(out) = a.out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
        }
        let json = serde_json::to_string_pretty(&table::json(&result)).unwrap_or_default();
        let md_path = out.with_extension("md");
        for (path, text) in [(&out, json), (&md_path, md)] {
            std::fs::write(path, text)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        }
        println!("\nwrote {} and {}", out.display(), md_path.display());
    }
}
