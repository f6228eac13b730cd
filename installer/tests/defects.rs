//! The rollout defects an operator could hit, each pinned by the exact
//! requests canaryctl sends to kube's tower-test mock API server: rollback
//! never goes up, weights mode reads its step from the VirtualService, dry
//! runs say so (and a client dry run writes nothing, registry included),
//! errors are printed once, and input files are parsed as what they are.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{call, json_file, not_found, run, wasm_file, wasmplugin, Silent};
use serde_json::{json, Value};

const WP: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/default/wasmplugins/canary";
const VS: &str = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews-canary";
const APPLY: &str = "?&force=true&fieldManager=canaryctl-rollout&fieldValidation=Strict";
const APPLY_DRY: &str =
    "?&dryRun=All&force=true&fieldManager=canaryctl-rollout&fieldValidation=Strict";
const PODS: &str = "/api/v1/namespaces/default/pods?&labelSelector=app%3Dproductpage";
const PROXY: &str = "/api/v1/namespaces/default/pods/pp-1:15090/proxy/stats/prometheus";

fn at(percent: u32) -> Value {
    wasmplugin("canary", json!({"sticky": {"percent": percent}}))
}

/// The VirtualService canaryctl manages, at weights (stable, canary).
fn vs(stable: u32, canary: u32) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews-canary", "namespace": "default"},
        "spec": {"hosts": ["reviews"], "http": [
            {"name": "cohorts", "match": [{"headers": {"x-canary-cohort": {"exact": "beta"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
            {"name": "default", "route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": stable},
                {"destination": {"host": "reviews", "subset": "v2"}, "weight": canary}]}]}
    })
}

fn default_weights(b: &Value) -> (u64, u64) {
    let r = &b["spec"]["http"][1]["route"];
    (
        r[0]["weight"].as_u64().unwrap(),
        r[1]["weight"].as_u64().unwrap(),
    )
}

fn pods() -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        {"metadata": {"name": "pp-1"}, "spec": {"containers": [{"name": "istio-proxy"}]}}]})
}

fn passing() -> Value {
    Value::String(
        "canary_requests_total{canary_version=\"v2\",canary_cohort=\"beta\",canary_code_class=\"2xx\"} 40\n\
         canary_gate_state{canary_version=\"v2\"} 1\n"
            .into(),
    )
}

// ---- 1. rollback never moves a rollout up

#[tokio::test]
async fn rollback_to_a_step_above_the_current_one_is_refused_without_a_write() {
    let err = run(
        &["rollback", "--to", "100"],
        vec![call("GET", WP, 200, at(10))],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        "rollback only goes down: the rollout is at 10 % and --to 100 is not below it (use promote, which checks the gate, to go up)"
    );
}

#[tokio::test]
async fn rollback_to_a_percentage_that_is_not_a_step_is_refused_before_any_request() {
    let err = run(&["rollback", "--to", "37"], vec![]).await.unwrap_err();
    assert_eq!(err, "--to 37 is not a rollout step (one of 0, 10, 50, 100)");
    // Before looking for a cluster at all.
    let err = common::run_cli(&["rollback", "--to", "37", "--kubeconfig", "/nonexistent"])
        .await
        .unwrap_err();
    assert_eq!(err, "--to 37 is not a rollout step (one of 0, 10, 50, 100)");
}

#[tokio::test]
async fn rollback_in_weights_mode_goes_down_from_the_virtual_service_weights() {
    let out = run(
        &["rollback", "--to", "10", "--step-mode", "weights"],
        vec![
            call("GET", WP, 200, at(0)),
            call("GET", VS, 200, vs(50, 50)),
            call("PATCH", &format!("{WP}{APPLY}"), 200, at(0))
                .body(|b| assert_eq!(b["spec"]["pluginConfig"]["sticky"]["percent"], 0)),
            call("PATCH", &format!("{VS}{APPLY}"), 200, vs(90, 10))
                .body(|b| assert_eq!(default_weights(b), (90, 10))),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "rolled back from 50 % to step 10 %\n");
}

// ---- 2. weights mode reads its step from the VirtualService

#[tokio::test]
async fn promote_in_weights_mode_moves_on_from_the_live_weights() {
    let out = run(
        &["promote", "--step-mode", "weights"],
        vec![
            call("GET", WP, 200, at(0)),
            call("GET", VS, 200, vs(90, 10)),
            call("GET", PODS, 200, pods()),
            call("GET", PROXY, 200, passing()),
            call("PATCH", &format!("{WP}{APPLY}"), 200, at(0))
                .body(|b| assert_eq!(b["spec"]["pluginConfig"]["sticky"]["percent"], 0)),
            call("PATCH", &format!("{VS}{APPLY}"), 200, vs(50, 50))
                .body(|b| assert_eq!(default_weights(b), (50, 50))),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "promoted v2 from 10 % to 50 %\n");
}

#[tokio::test]
async fn promote_in_weights_mode_stops_at_full_weight() {
    let err = run(
        &["promote", "--step-mode", "weights"],
        vec![
            call("GET", WP, 200, at(0)),
            call("GET", VS, 200, vs(0, 100)),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err, "already at 100 %: nothing to promote");
}

// ---- 3. dry runs say so, and a client dry run writes nothing

#[tokio::test]
async fn a_server_dry_run_sends_dry_run_all_and_says_nothing_was_stored() {
    let out = run(
        &["set", "--percent", "20", "--dry-run=server"],
        vec![
            call("GET", WP, 200, at(10)),
            call("PATCH", &format!("{WP}{APPLY_DRY}"), 200, at(10)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "pluginConfig of default/canary would be updated (server dry run: nothing stored)\n"
    );
    let out = run(
        &["rollback", "--dry-run=server"],
        vec![
            call("GET", WP, 200, at(50)),
            call("PATCH", &format!("{WP}{APPLY_DRY}"), 200, at(50)),
            call("PATCH", &format!("{VS}{APPLY_DRY}"), 200, vs(100, 0)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "would roll back from 50 % to step 0 % (server dry run: nothing stored)\n"
    );
}

#[tokio::test]
async fn a_client_dry_run_only_reads_and_prints_what_it_would_send() {
    let out = run(
        &["set", "--percent", "20", "--dry-run=client", "-o", "json"],
        vec![call("GET", WP, 200, at(10))],
    )
    .await
    .unwrap();
    let sent: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sent["spec"]["pluginConfig"]["sticky"]["percent"], 20.0);
    let out = run(
        &["promote", "--dry-run=client"],
        vec![
            call("GET", WP, 200, at(10)),
            call("GET", PODS, 200, pods()),
            call("GET", PROXY, 200, passing()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "would promote v2 from 10 % to 50 % (dry run: nothing sent)\n"
    );
    let out = run(
        &["remove", "--dry-run=client"],
        vec![call("GET", WP, 200, wasmplugin("canary", json!({})))],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "WasmPlugin default/canary would be deleted (dry run: nothing sent)\n"
    );
}

#[tokio::test]
async fn a_client_dry_run_deploy_neither_pushes_nor_applies() {
    let registry = Silent::start().await;
    let wasm = wasm_file();
    let image = format!("{}/canary/filter:v1", registry.addr);
    let args = [
        "deploy",
        "--selector",
        "app=productpage",
        "--image",
        &image,
        "--wasm",
        wasm.path().to_str().unwrap(),
        "--plain-http",
        "--dry-run=client",
    ];
    let out = run(&args, vec![call("GET", WP, 404, not_found("canary"))])
        .await
        .unwrap();
    let digest = canary_installer::oci::Built::new(b"\0asm\x01\0\0\0")
        .unwrap()
        .digest();
    assert_eq!(
        out,
        format!(
            "would push oci://{}/canary/filter@{digest} (dry run: nothing sent)\n\
             WasmPlugin default/canary would be applied (dry run: nothing sent)\n",
            registry.addr
        )
    );
    assert_eq!(registry.connections(), 0, "the registry was contacted");
}

#[tokio::test]
async fn push_dry_run_computes_the_digest_without_contacting_the_registry() {
    let registry = Silent::start().await;
    let wasm = wasm_file();
    let image = format!("{}/canary/filter:v1", registry.addr);
    let out = common::run_cli(&[
        "push",
        "--wasm",
        wasm.path().to_str().unwrap(),
        "--image",
        &image,
        "--plain-http",
        "--dry-run=client",
    ])
    .await
    .unwrap();
    assert!(
        out.starts_with(&format!(
            "would push {image} (dry run: nothing sent)\npinned oci://"
        )),
        "{out}"
    );
    assert_eq!(registry.connections(), 0, "the registry was contacted");
}

// ---- 5. an error is printed once

#[tokio::test]
async fn a_plugin_config_error_names_the_field_once() {
    let err = run(
        &["set", "--percent", "101"],
        vec![call("GET", WP, 200, at(10))],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        "invalid pluginConfig: pluginConfig field `sticky.percent`: 101 is outside 0-100"
    );
}

// ---- 6. JSON is JSON

#[tokio::test]
async fn validate_config_reads_json_strictly_and_yaml_only_when_it_says_so() {
    let bad = |text: &str, suffix: &str| {
        let f = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    };
    let trailing = bad(r#"{"sticky": {"percent": 10},}"#, ".json");
    let err = common::run_cli(&["validate-config", trailing.path().to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(err.contains("trailing comma"), "{err}");
    let dup = bad(
        r#"{"sticky": {"percent": 10}, "sticky": {"percent": 90}}"#,
        ".json",
    );
    let err = common::run_cli(&["validate-config", dup.path().to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(
        err.ends_with("duplicate key `sticky` at line 1 column 36"),
        "{err}"
    );
    let deep = bad(&"[".repeat(200_000), ".json");
    let start = std::time::Instant::now();
    let err = common::run_cli(&["validate-config", deep.path().to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(
        err.ends_with("nested 200000 levels deep, more than the 32 allowed"),
        "{err}"
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    let yaml = bad("sticky:\n  percent: 10\n", ".yaml");
    let out = common::run_cli(&["validate-config", yaml.path().to_str().unwrap()])
        .await
        .unwrap();
    assert!(
        out.ends_with(": valid (2 cohorts, sticky 10 %, gates off)\n"),
        "{out}"
    );
    // The same YAML in a .json file is not JSON, unless --format says so.
    let yaml_as_json = bad("sticky:\n  percent: 10\n", ".json");
    let p = yaml_as_json.path().to_str().unwrap();
    assert!(common::run_cli(&["validate-config", p]).await.is_err());
    assert!(common::run_cli(&["validate-config", p, "--format", "yaml"])
        .await
        .is_ok());
    let cfg = json_file(&json!({"sticky": {"percent": 101}}));
    let p = cfg.path().to_str().unwrap();
    let err = common::run_cli(&["validate-config", p]).await.unwrap_err();
    assert_eq!(
        err,
        format!("{p}: pluginConfig field `sticky.percent`: 101 is outside 0-100")
    );
}
