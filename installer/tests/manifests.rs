//! Every YAML object in manifests/ and every object canaryctl renders is
//! checked against the Istio 1.30.3 CRD schemas and CEL rules in
//! ../shared/istio-crds; every shipped pluginConfig passes the filter's own
//! config code; the Prometheus rules pass promtool; and every metric the rules
//! and dashboards query is one the filter exports.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod schema;

use canary_installer::cli::Cli;
use canary_installer::pluginconfig::validate as validate_plugin_config;
use clap::Parser;
use schema::{parse_yaml_docs, Crds};
use serde_json::{json, Value};

const SHA: &str = "abababababababababababababababababababababababababababababababab";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn crds() -> Crds {
    // CI lays shared/ beside the clone; CANARY_SHARED_DIR points elsewhere.
    let shared = std::env::var_os("CANARY_SHARED_DIR")
        .map_or_else(|| root().join("../shared"), PathBuf::from);
    let dir = shared.join("istio-crds");
    let c = Crds::load_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the Istio CRDs are expected in {} (set CANARY_SHARED_DIR): {e}",
            dir.display()
        )
    });
    assert!(c.kinds().len() >= 6, "no CRDs found in {}", dir.display());
    c
}

/// Kubernetes objects shipped in manifests/ (not Envoy config or rule files).
fn shipped_objects() -> Vec<(String, Value)> {
    let files = canary_e2e::paths::files_under(&root().join("manifests"), &["yaml"]);
    let mut out = vec![];
    for f in files {
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        if rel.starts_with("manifests/envoy/") || rel.starts_with("manifests/prometheus/") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, doc) in parse_yaml_docs(&text)
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .into_iter()
            .enumerate()
        {
            out.push((format!("{rel}#{i}"), doc));
        }
    }
    out
}

#[test]
fn every_shipped_istio_object_passes_the_crd_schema_and_cel_rules() {
    let crds = crds();
    let objects = shipped_objects();
    let mut istio = 0;
    for (name, obj) in &objects {
        let av = obj["apiVersion"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no apiVersion"));
        assert!(obj["kind"].is_string(), "{name}: no kind");
        assert!(
            obj["metadata"]["name"].is_string(),
            "{name}: no metadata.name"
        );
        // The shared CRD set has no Gateway schema; the one shipped Gateway
        // (security/trust.yaml) is checked by shape instead.
        if obj["kind"] == "Gateway" && av == "networking.istio.io/v1" {
            let server = &obj["spec"]["servers"][0];
            assert!(obj["spec"]["selector"].is_object(), "{name}: no selector");
            assert!(
                server["port"]["number"].is_u64() && server["hosts"].is_array(),
                "{name}: {server}"
            );
            continue;
        }
        if av.contains(".istio.io/") && !av.starts_with("install.istio.io/") {
            let errors = crds.validate(obj);
            assert!(errors.is_empty(), "{name}: {errors:#?}");
            istio += 1;
        }
    }
    assert!(istio >= 14, "only {istio} Istio objects found");
}

#[test]
fn every_shipped_plugin_config_passes_the_filters_own_validation() {
    let mut n = 0;
    for (name, obj) in shipped_objects() {
        if obj["kind"] == "WasmPlugin" {
            let cfg = validate_plugin_config(&obj["spec"]["pluginConfig"])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
            if name.contains("08-slo-gates") {
                assert_eq!(cfg.gates.unwrap().canary_version.as_deref(), Some("v2"));
            }
        }
    }
    assert!(n >= 4);
    // The pluginConfig `make wasm-deploy` ships.
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("manifests/module/plugin-config.json")).unwrap(),
    )
    .unwrap();
    validate_plugin_config(&v).unwrap();
}

fn render(args: &[&str]) -> Vec<Value> {
    let mut argv = vec!["canaryctl", "render", "-o", "json"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(canary_installer::cli::run(&cli)).unwrap();
    serde_json::from_str::<Vec<Value>>(&out).unwrap()
}

#[test]
fn every_rendered_object_passes_the_crd_schema_and_cel_rules() {
    let crds = crds();
    let wasm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wasm.path(), b"\0asm\x01\0\0\0").unwrap();
    let w = wasm.path().to_str().unwrap();
    let gates = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(
        gates.path(),
        json!({"sticky": {"percent": 50}, "gates": {"canaryVersion": "v2"}}).to_string(),
    )
    .unwrap();
    let g = gates.path().to_str().unwrap();
    let variants: Vec<Vec<&str>> = vec![
        vec![
            "--selector",
            "app=productpage",
            "--image",
            "oci://localhost:5001/canary/filter:v1",
            "--wasm",
            w,
        ],
        vec![
            "--selector",
            "app=reviews",
            "--mode",
            "server",
            "--port",
            "9080",
            "--url",
            "https://example.com/f.wasm",
            "--wasm",
            w,
        ],
        vec![
            "--target-ref",
            "Service/reviews",
            "--mode",
            "both",
            "--file",
            "/var/lib/f.wasm",
            "--sha256",
            SHA,
        ],
        vec![
            "--target-ref",
            "Gateway/ingress",
            "--phase",
            "AUTHZ",
            "--priority",
            "10",
            "--fail-strategy",
            "FAIL_OPEN",
            "--pull-policy",
            "Always",
            "--pull-secret",
            "regcred",
            "--env",
            "A=b",
            "--image",
            "ghcr.io/acme/canary:1",
            "--sha256",
            SHA,
            "--config",
            g,
        ],
        vec![
            "--selector",
            "app=productpage",
            "--image",
            "localhost:5001/canary/filter",
            "--wasm",
            w,
            "--step-mode",
            "weights",
            "--config",
            g,
        ],
    ];
    for v in variants {
        for obj in render(&v) {
            let errors = crds.validate(&obj);
            assert!(errors.is_empty(), "{v:?} -> {}: {errors:#?}", obj["kind"]);
        }
    }
}

#[test]
fn the_validator_catches_what_the_api_server_would_refuse() {
    let crds = crds();
    let ok = &render(&["--selector", "app=p", "--file", "/f.wasm", "--sha256", SHA])[0];
    assert!(crds.validate(ok).is_empty());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut o = ok.clone();
        f(&mut o);
        crds.validate(&o)
    };
    // CEL: only one of targetRefs or selector.
    let e = broken(&|o| {
        o["spec"]["targetRefs"] = json!([{"kind": "Service", "name": "r", "group": ""}])
    });
    assert!(
        e.iter()
            .any(|x| x.contains("only one of targetRefs or selector can be set")),
        "{e:?}"
    );
    // CEL: url scheme.
    let e = broken(&|o| o["spec"]["url"] = json!("ftp://x/f.wasm"));
    assert!(
        e.iter().any(|x| x.contains("url must have schema one of")),
        "{e:?}"
    );
    // Structural: enum, unknown field, type.
    let e = broken(&|o| o["spec"]["failStrategy"] = json!("FAIL_LATER"));
    assert!(
        e.iter().any(|x| x.starts_with("spec.failStrategy:")),
        "{e:?}"
    );
    let e = broken(&|o| o["spec"]["urll"] = json!("x"));
    assert!(e.iter().any(|x| x == "spec.urll: unknown field"), "{e:?}");
    let e = broken(&|o| o["spec"]["priority"] = json!("high"));
    assert!(
        e.iter()
            .any(|x| x.starts_with("spec.priority: expected integer")),
        "{e:?}"
    );
    // A VirtualService header match with two match types at once (oneOf).
    let mut vs = render(&["--selector", "app=p", "--file", "/f.wasm", "--sha256", SHA])[1].clone();
    assert!(crds.validate(&vs).is_empty());
    vs["spec"]["http"][0]["match"][0]["headers"]["x-canary-cohort"] =
        json!({"exact": "a", "prefix": "b"});
    let e = crds.validate(&vs);
    assert!(e.iter().any(|x| x.contains("exactly one")), "{e:?}");
}

#[test]
fn the_prometheus_rules_pass_promtool_check_and_unit_tests() {
    let dir = root().join("manifests/prometheus");
    for args in [
        vec!["check", "rules", "rules.yaml"],
        vec!["test", "rules", "rules_test.yaml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("promtool (make setup installs it)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Metric names the filter exports, as Prometheus sees them.
fn exported() -> Vec<String> {
    use canary_core::gates::engine as gate;
    use canary_core::liveness;
    use canary_core::metrics::{DURATION, ERRORS, REQUESTS};
    let mut v: Vec<String> = [
        REQUESTS,
        ERRORS,
        gate::STATE,
        gate::WITHDRAWN,
        gate::REQUESTS,
        gate::ERROR_RATIO,
        gate::BURN_RATE,
        gate::P99,
        gate::JUDGE_VERDICT,
        gate::JUDGE_EVIDENCE_WORSE,
        gate::JUDGE_EVIDENCE_NOT_WORSE,
        gate::JUDGE_CANARY_SAMPLES,
        gate::JUDGE_BASELINE_SAMPLES,
        gate::JUDGE_DECISION,
        liveness::HEARTBEAT,
        liveness::TICKS,
        liveness::WORKERS_ALIVE,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for suffix in ["_bucket", "_sum", "_count"] {
        v.push(format!("{DURATION}{suffix}"));
    }
    v
}

#[test]
fn every_metric_queried_by_rules_dashboards_and_gates_is_exported() {
    let exported = exported();
    let rules = std::fs::read_to_string(root().join("manifests/prometheus/rules.yaml")).unwrap();
    let recorded: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .map(str::to_string)
        .collect();
    let re = regex::Regex::new(r"\bcanary(?::[a-z0-9_]+:[a-z0-9_]+|_[a-z0-9_]+)").unwrap();
    let mut checked = 0;
    for f in [
        "manifests/prometheus/rules.yaml",
        "manifests/grafana/canary-dashboard.json",
        "manifests/flagger/metric-template.yaml",
        "manifests/argo/analysis-template.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        for m in re.find_iter(&text) {
            let name = m.as_str();
            // Label names (canary_version, canary_window, ...) are not metrics.
            if canary_core::metrics::TAGS.contains(&name) {
                continue;
            }
            assert!(
                exported.iter().any(|e| e == name) || recorded.iter().any(|r| r == name),
                "{f}: {name} is not a metric the filter exports"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
}

/// Where a name in a comment points: from the file's folder up to the
/// repository root, the first folder holding it.
fn resolve(from: &Path, name: &str) -> Option<PathBuf> {
    let mut dir = from.parent();
    while let Some(d) = dir {
        if d.join(name).exists() {
            return Some(d.join(name));
        }
        if d == root() {
            break;
        }
        dir = d.parent();
    }
    None
}

#[test]
fn every_file_a_manifest_comment_names_exists() {
    let named = regex::Regex::new(r"[A-Za-z0-9_./-]+\.(?:ya?ml|json)\b").unwrap();
    let files = canary_e2e::paths::files_under(&root().join("manifests"), &["yaml", "yml"]);
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let Some((_, comment)) = line.split_once('#') else {
                continue;
            };
            for m in named.find_iter(comment) {
                checked += 1;
                assert!(
                    resolve(&f, m.as_str()).is_some(),
                    "{}:{}: names {}, which does not exist",
                    f.display(),
                    i + 1,
                    m.as_str()
                );
            }
        }
    }
    assert!(checked >= 10, "only {checked} references found");
}

#[test]
fn no_two_shipped_objects_collide_unless_they_are_alternatives_in_separate_folders() {
    let mut seen: std::collections::BTreeMap<(String, String, String), String> = Default::default();
    for (name, obj) in shipped_objects() {
        let key = (
            obj["kind"].as_str().unwrap().to_string(),
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
            obj["metadata"]["name"].as_str().unwrap().to_string(),
        );
        let file = name.split('#').next().unwrap().to_string();
        if let Some(first) = seen.get(&key) {
            let folder = |f: &str| Path::new(f).parent().unwrap().to_path_buf();
            let set = |f: &str| f.split('/').nth(1).unwrap_or_default().to_string();
            // An alternative lives in its own folder within the same set
            // (e.g. module/08-slo-gates/ for module/04-wasmplugin-client.yaml).
            assert!(
                folder(first) != folder(&file) && set(first) == set(&file),
                "{key:?} is defined by both {first} and {file}: the last applied would win"
            );
        } else {
            seen.insert(key, file);
        }
    }
}

#[test]
fn every_shipped_wasmplugin_is_pinned_by_digest() {
    let hex64 = regex::Regex::new("^[a-f0-9]{64}$").unwrap();
    let mut n = 0;
    for (name, obj) in shipped_objects() {
        if obj["kind"] != "WasmPlugin" {
            continue;
        }
        n += 1;
        let spec = &obj["spec"];
        let pinned = spec["sha256"].as_str().is_some_and(|s| hex64.is_match(s))
            || spec["url"].as_str().is_some_and(|u| u.contains("@sha256:"));
        assert!(pinned, "{name}: WasmPlugin not pinned by sha256");
    }
    assert!(n >= 4);
}

#[test]
fn every_pod_with_canary_stat_tags_gets_the_microsecond_histogram_buckets() {
    let mut n = 0;
    for (name, obj) in shipped_objects() {
        let annotations = &obj["spec"]["template"]["metadata"]["annotations"];
        if annotations["sidecar.istio.io/extraStatTags"].is_null() {
            continue;
        }
        n += 1;
        let buckets = annotations["sidecar.istio.io/statsHistogramBuckets"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: stat tags but no statsHistogramBuckets"));
        let v: Value = serde_json::from_str(buckets).unwrap();
        let prefix = format!("wasmcustom.{}=.=", canary_core::metrics::TAG_VERSION);
        assert!(
            v[&prefix].as_array().is_some_and(|b| b.len() > 10),
            "{name}: {buckets}"
        );
    }
    // productpage, reviews v1, v2 and v3.
    assert!(n >= 4, "{n}");
}
