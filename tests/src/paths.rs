//! Where the harness finds Envoy, the modules and the shipped config snippets.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `$ENVOY_BIN`, else the binary `make setup` links into `.tools/bin/envoy`.
pub fn envoy_bin() -> PathBuf {
    let p = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/bin/envoy"));
    assert!(
        p.exists(),
        "no Envoy at {}: run `make setup` (or set ENVOY_BIN)",
        p.display()
    );
    p
}

/// Every file below `dir` whose extension is one of `exts` (all files when
/// `exts` is empty), sorted. A missing directory has none.
pub fn files_under(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if exts.is_empty()
                || p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| exts.contains(&x))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn newest_source(dir: &Path) -> SystemTime {
    files_under(dir, &[])
        .iter()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn module(file: &str, sources: &[&str]) -> PathBuf {
    let root = repo_root();
    let wasm = root.join("target/wasm32-wasip1/release").join(file);
    let built = std::fs::metadata(&wasm)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: run `make build`", wasm.display()));
    // Cargo's dep-info lists exactly the sources the module was built from
    // (test-only files are not among them); without it, scan the directories.
    let dep_info = wasm.with_extension("d");
    let deps: Vec<PathBuf> = std::fs::read_to_string(&dep_info)
        .ok()
        .and_then(|d| {
            d.lines()
                .next()
                .and_then(|l| l.split_once(": "))
                .map(|(_, r)| r.to_string())
        })
        .map(|r| r.split_whitespace().map(PathBuf::from).collect())
        .unwrap_or_default();
    if deps.is_empty() {
        for s in sources {
            assert!(
                newest_source(&root.join(s)) <= built,
                "{} is older than {s}: run `make build`",
                wasm.display()
            );
        }
    }
    for d in deps {
        let changed = std::fs::metadata(&d)
            .and_then(|m| m.modified())
            .map_or(true, |t| t > built);
        assert!(
            !changed,
            "{} is older than {}: run `make build`",
            wasm.display(),
            d.display()
        );
    }
    wasm
}

/// The release filter module, refusing a stale one so tests never pass on old code.
pub fn filter_wasm() -> PathBuf {
    module("canary_filter.wasm", &["filter/src", "filter/core/src"])
}

/// The request header that makes the test-trap build of the filter trap
/// (the filter's `test_trap::HEADER`; the trap test checks they agree).
pub const TRAP_HEADER: &str = "x-canary-test-trap";

/// The filter built with its `test-trap` feature, which traps on a request
/// carrying [`TRAP_HEADER`]. It goes to its own target directory, so the
/// release module `make build` produces never contains the trap. Built once
/// per test process (Cargo rebuilds only what changed).
pub fn trap_filter_wasm() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = repo_root();
            let target_dir = root.join("target/test-trap");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let built = crate::command::run(
                std::process::Command::new(cargo)
                    .current_dir(&root)
                    .args(["build", "-q", "-p", "canary-filter", "--release"])
                    .args(["--target", "wasm32-wasip1", "--features", "test-trap"])
                    .arg("--target-dir")
                    .arg(&target_dir),
                "cargo for the test-trap build",
            );
            if let Err(e) = built {
                panic!("the test-trap build of the filter failed:\n{e}");
            }
            target_dir.join("wasm32-wasip1/release/canary_filter.wasm")
        })
        .clone()
}

/// The do-nothing module the benchmark compares against.
pub fn noop_wasm() -> PathBuf {
    module("noop_filter.wasm", &["tests/noop-filter/src"])
}

/// The no-op module cut to the filter's exports (`make build`), which the
/// floor probes run from: they enter the VM where the filter does.
pub fn probe_wasm() -> PathBuf {
    module("noop_probe.wasm", &["tests/noop-filter/src"])
}

/// The shipped `stats_config` for plain Envoy (tags and histogram buckets).
pub fn stats_config_yaml() -> PathBuf {
    repo_root().join("manifests/envoy/stats-config.yaml")
}
