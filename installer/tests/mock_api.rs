//! Every cluster command against kube's tower-test mock API server, asserting
//! the exact method, path, query and body, including the error paths.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{call, json_file, not_found, run, status, wasm_file, wasmplugin};
use serde_json::{json, Value};

const SHA: &str = "abababababababababababababababababababababababababababababababab";
const WP: &str = "/apis/extensions.istio.io/v1alpha1/namespaces/default/wasmplugins/canary";
const VS: &str = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews-canary";
const APPLY_DEPLOY: &str = "?&fieldManager=canaryctl&fieldValidation=Strict";
const APPLY_ROLLOUT: &str = "?&force=true&fieldManager=canaryctl-rollout&fieldValidation=Strict";

fn wp(q: &str) -> String {
    format!("{WP}{q}")
}

#[tokio::test]
async fn deploy_validates_then_applies_the_wasmplugin_with_its_field_manager() {
    let wasm = wasm_file();
    let sha = canary_installer::oci::sha256_hex(b"\0asm\x01\0\0\0");
    let cfg = json_file(&json!({"sticky": {"percent": 10}}));
    let args = [
        "deploy",
        "--selector",
        "app=productpage",
        "--file",
        "/var/lib/canary.wasm",
        "--wasm",
        wasm.path().to_str().unwrap(),
        "--config",
        cfg.path().to_str().unwrap(),
        "--port",
        "9080",
    ];
    let sha2 = sha.clone();
    let out = run(
        &args,
        vec![
            call("GET", WP, 404, not_found("canary")),
            call(
                "PATCH",
                &wp(APPLY_DEPLOY),
                201,
                wasmplugin("canary", json!({})),
            )
            .body(move |b| {
                assert_eq!(b["apiVersion"], "extensions.istio.io/v1alpha1");
                assert_eq!(b["kind"], "WasmPlugin");
                assert_eq!(
                    b["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                    "canaryctl"
                );
                let s = &b["spec"];
                assert_eq!(s["url"], "file:///var/lib/canary.wasm");
                assert_eq!(s["sha256"], sha2.as_str());
                assert_eq!(
                    s["selector"],
                    json!({"matchLabels": {"app": "productpage"}})
                );
                assert_eq!(
                    s["match"],
                    json!([{"mode": "CLIENT", "ports": [{"number": 9080}]}])
                );
                assert_eq!(
                    (s["phase"].as_str(), s["failStrategy"].as_str()),
                    (Some("AUTHN"), Some("FAIL_RELOAD"))
                );
                assert_eq!(
                    s["pluginConfig"],
                    json!({"sticky": {"percent": 10}, "version": {"direction": "client"}})
                );
            }),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "WasmPlugin default/canary applied, generation 4\n");
}

#[tokio::test]
async fn deploy_keeps_the_live_plugin_config_when_none_is_given() {
    let live = json!({"sticky": {"percent": 50}, "version": {"direction": "server"}});
    let live2 = live.clone();
    run(
        &[
            "deploy",
            "--selector",
            "app=reviews",
            "--mode",
            "server",
            "--url",
            "https://example.invalid/f.wasm",
            "--sha256",
            SHA,
        ],
        vec![
            call("GET", WP, 200, wasmplugin("canary", live.clone())),
            call("PATCH", &wp(APPLY_DEPLOY), 200, wasmplugin("canary", live)).body(move |b| {
                assert_eq!(b["spec"]["pluginConfig"], live2);
                assert_eq!(b["spec"]["url"], "https://example.invalid/f.wasm");
                assert_eq!(b["spec"]["sha256"], SHA);
                assert_eq!(b["spec"]["match"], json!([{"mode": "SERVER"}]));
            }),
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_dry_run_deploy_asks_the_api_server_for_dry_run_all() {
    run(
        &[
            "deploy",
            "--dry-run=server",
            "--target-ref",
            "Service/reviews",
            "--file",
            "/m.wasm",
            "--sha256",
            SHA,
            "--force-conflicts",
        ],
        vec![
            call("GET", WP, 404, not_found("canary")),
            call(
                "PATCH",
                &wp("?&dryRun=All&force=true&fieldManager=canaryctl&fieldValidation=Strict"),
                200,
                wasmplugin("canary", json!({})),
            )
            .body(|b| {
                assert_eq!(
                    b["spec"]["targetRefs"],
                    json!([{"group": "", "kind": "Service", "name": "reviews"}])
                )
            }),
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_invalid_plugin_config_is_refused_before_any_request() {
    let cfg = json_file(&json!({"sticky": {"percent": 120}}));
    let err = run(
        &[
            "deploy",
            "--file",
            "/m.wasm",
            "--sha256",
            SHA,
            "--config",
            cfg.path().to_str().unwrap(),
        ],
        vec![],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        "invalid pluginConfig: pluginConfig field `sticky.percent`: 120 is outside 0-100"
    );
    let cfg = json_file(&json!({"cohort": []}));
    let err = run(
        &[
            "deploy",
            "--file",
            "/m.wasm",
            "--sha256",
            SHA,
            "--config",
            cfg.path().to_str().unwrap(),
        ],
        vec![],
    )
    .await
    .unwrap_err();
    assert!(err.contains("field `cohort`: unknown field"), "{err}");
}

#[tokio::test]
async fn a_malformed_sha256_is_refused_before_any_request() {
    let err = run(&["deploy", "--file", "/m.wasm", "--sha256", "abc"], vec![])
        .await
        .unwrap_err();
    assert_eq!(err, "--sha256 \"abc\" must be 64 lowercase hex digits");
}

#[tokio::test]
async fn a_missing_crd_says_istio_is_not_installed() {
    let err = run(
        &["deploy", "--file", "/m.wasm", "--sha256", SHA],
        vec![call(
            "GET",
            WP,
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        )],
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("Istio is not installed in this cluster: the wasmplugins.extensions.istio.io CustomResourceDefinition is missing"), "{err}");
}

#[tokio::test]
async fn forbidden_and_conflict_answers_give_one_clear_line() {
    let err = run(
        &["deploy", "--file", "/m.wasm", "--sha256", SHA],
        vec![call("GET", WP, 403, status(403, "Forbidden", "wasmplugins.extensions.istio.io \"canary\" is forbidden: User \"dev\" cannot get resource"))],
    )
    .await
    .unwrap_err();
    assert_eq!(err, "forbidden: wasmplugins.extensions.istio.io \"canary\" is forbidden: User \"dev\" cannot get resource");
    let err = run(
        &["deploy", "--file", "/m.wasm", "--sha256", SHA],
        vec![
            call("GET", WP, 404, not_found("canary")),
            call("PATCH", &wp(APPLY_DEPLOY), 409, status(409, "Conflict", "Apply failed with 1 conflict: conflict with \"canaryctl-rollout\": .spec.pluginConfig")),
        ],
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("conflict: Apply failed with 1 conflict"),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    assert!(!err.contains('\n'));
}

#[tokio::test]
async fn set_changes_only_the_plugin_config_under_the_rollout_manager() {
    let gates = json_file(&json!({"canaryVersion": "v2"}));
    let out = run(
        &["set", "--percent", "25", "--salt", "r2", "--gates", gates.path().to_str().unwrap()],
        vec![
            call("GET", WP, 200, wasmplugin("canary", json!({"sticky": {"percent": 10}}))),
            call("PATCH", &wp(APPLY_ROLLOUT), 200, wasmplugin("canary", json!({}))).body(|b| {
                assert_eq!(
                    b,
                    &json!({
                        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
                        "metadata": {"name": "canary", "namespace": "default"},
                        "spec": {"pluginConfig": {"sticky": {"percent": 25.0, "salt": "r2"}, "gates": {"canaryVersion": "v2"}}}
                    })
                );
            }),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "pluginConfig of default/canary updated\n");
    let err = run(
        &["set", "--percent", "101"],
        vec![call("GET", WP, 200, wasmplugin("canary", json!({})))],
    )
    .await
    .unwrap_err();
    assert!(err.contains("sticky.percent"), "{err}");
    let err = run(
        &["set", "--percent", "5"],
        vec![call("GET", WP, 404, not_found("canary"))],
    )
    .await
    .unwrap_err();
    assert_eq!(err, "WasmPlugin default/canary not found");
}

fn pods(names: &[&str]) -> Value {
    let items: Vec<Value> = names
        .iter()
        .map(|n| json!({"metadata": {"name": n}, "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}, "status": {"phase": "Running"}}))
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

const PODS: &str = "/api/v1/namespaces/default/pods?&labelSelector=app%3Dproductpage";

fn proxy(pod: &str) -> String {
    format!("/api/v1/namespaces/default/pods/{pod}:15090/proxy/stats/prometheus")
}

fn scrape(gate: u8) -> Value {
    Value::String(format!(
        "canary_requests_total{{canary_version=\"v2\",canary_cohort=\"canary\",canary_code_class=\"2xx\"}} 40\n\
         canary_gate_state{{canary_version=\"v2\"}} {gate}\n"
    ))
}

#[tokio::test]
async fn promote_refuses_unless_every_sidecar_reads_pass() {
    let err = run(
        &["promote"],
        vec![
            call(
                "GET",
                WP,
                200,
                wasmplugin("canary", json!({"sticky": {"percent": 10}})),
            ),
            call("GET", PODS, 200, pods(&["pp-1", "pp-2"])),
            call("GET", &proxy("pp-1"), 200, scrape(1)),
            call("GET", &proxy("pp-2"), 200, scrape(2)),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err, "promotion refused: the gate for v2 at step 10 % reads hold, not pass (re-run with --force to promote anyway)");
}

#[tokio::test]
async fn promote_moves_to_the_next_step_in_the_filter_and_the_virtual_service() {
    let out = run(
        &["promote"],
        vec![
            call("GET", WP, 200, wasmplugin("canary", json!({"sticky": {"percent": 10}, "gates": {"canaryVersion": "v2"}}))),
            call("GET", PODS, 200, pods(&["pp-1"])),
            call("GET", &proxy("pp-1"), 200, scrape(1)),
            call("PATCH", &wp(APPLY_ROLLOUT), 200, wasmplugin("canary", json!({})))
                .body(|b| assert_eq!(b["spec"]["pluginConfig"]["sticky"]["percent"], 50)),
            call("PATCH", &format!("{VS}{APPLY_ROLLOUT}"), 200, json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews-canary"}}))
                .body(|b| {
                    assert_eq!(b["kind"], "VirtualService");
                    let default = &b["spec"]["http"][1]["route"];
                    assert_eq!((default[0]["destination"]["subset"].as_str(), default[0]["weight"].as_u64()), (Some("v1"), Some(100)));
                    assert_eq!((default[1]["destination"]["subset"].as_str(), default[1]["weight"].as_u64()), (Some("v2"), Some(0)));
                    assert_eq!(b["spec"]["http"][0]["match"][2]["headers"]["x-canary-cohort"]["exact"], "canary");
                }),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "promoted v2 from 10 % to 50 %\n");
}

#[tokio::test]
async fn forced_promotion_says_what_it_forced_past_and_the_last_step_moves_the_weights() {
    let out = run(
        &["promote", "--force", "--step-mode", "sticky"],
        vec![
            call(
                "GET",
                WP,
                200,
                wasmplugin("canary", json!({"sticky": {"percent": 50}})),
            ),
            call("GET", PODS, 200, pods(&[])),
            call(
                "PATCH",
                &wp(APPLY_ROLLOUT),
                200,
                wasmplugin("canary", json!({})),
            ),
            call(
                "PATCH",
                &format!("{VS}{APPLY_ROLLOUT}"),
                200,
                json!({"metadata": {"name": "reviews-canary"}}),
            )
            .body(|b| assert_eq!(b["spec"]["http"][1]["route"][1]["weight"], 100)),
        ],
    )
    .await
    .unwrap();
    assert!(
        out.starts_with("forced past: no gate state for v2"),
        "{out}"
    );
    assert!(out.ends_with("promoted v2 from 50 % to 100 %\n"), "{out}");
}

#[tokio::test]
async fn rollback_returns_to_stable_without_asking_the_gate() {
    let out = run(
        &["rollback"],
        vec![
            call(
                "GET",
                WP,
                200,
                wasmplugin("canary", json!({"sticky": {"percent": 50}})),
            ),
            call(
                "PATCH",
                &wp(APPLY_ROLLOUT),
                200,
                wasmplugin("canary", json!({})),
            )
            .body(|b| assert_eq!(b["spec"]["pluginConfig"]["sticky"]["percent"], 0)),
            call(
                "PATCH",
                &format!("{VS}{APPLY_ROLLOUT}"),
                200,
                json!({"metadata": {"name": "reviews-canary"}}),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "rolled back from 50 % to step 0 %\n");
}

#[tokio::test]
async fn status_shows_the_module_and_the_matched_pods() {
    let out = run(
        &["status"],
        vec![
            call(
                "GET",
                WP,
                200,
                wasmplugin("canary", json!({"sticky": {"percent": 10}})),
            ),
            call("GET", PODS, 200, pods(&["pp-1"])),
        ],
    )
    .await
    .unwrap();
    assert!(
        out.contains("WasmPlugin default/canary  generation 4"),
        "{out}"
    );
    assert!(
        out.contains("module  oci://localhost:5001/canary/filter:v1"),
        "{out}"
    );
    assert!(out.contains("step 10.0 %"), "{out}");
    assert!(out.contains("pp-1  Running  sidecar yes"), "{out}");
    assert!(out.contains("status  {\"observedGeneration\":4}"), "{out}");
}

#[tokio::test]
async fn stats_reads_the_sidecars_through_the_pod_proxy() {
    let out = run(
        &["stats", "-o", "json"],
        vec![
            call("GET", PODS, 200, pods(&["pp-1"])),
            call("GET", &proxy("pp-1"), 200, scrape(3)),
        ],
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({"version": "v2", "cohort": "canary", "requests": 40.0, "errors": 0.0, "p99_ms": null, "gate": "rollback"})
    );
}

#[tokio::test]
async fn remove_deletes_only_what_canaryctl_created() {
    let out = run(
        &["remove"],
        vec![
            call("GET", WP, 200, wasmplugin("canary", json!({}))),
            call(
                "DELETE",
                &format!("{WP}?"),
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
            )
            .body(|b| assert!(b.get("dryRun").is_none(), "{b}")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "WasmPlugin default/canary deleted\n");
    let mut foreign = wasmplugin("canary", json!({}));
    foreign["metadata"]["labels"] = json!({"app": "someone-else"});
    let err = run(&["remove"], vec![call("GET", WP, 200, foreign)])
        .await
        .unwrap_err();
    assert!(err.contains("was not created by canaryctl"), "{err}");
    let out = run(&["remove"], vec![call("GET", WP, 404, not_found("canary"))])
        .await
        .unwrap();
    assert_eq!(
        out,
        "WasmPlugin default/canary not found: nothing to remove\n"
    );
    let out = run(
        &["remove", "--dry-run=server"],
        vec![
            call("GET", WP, 200, wasmplugin("canary", json!({}))),
            call(
                "DELETE",
                &format!("{WP}?"),
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
            )
            // kube sends dry run for DELETE in the DeleteOptions body.
            .body(|b| assert_eq!(b["dryRun"], json!(["All"]))),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "WasmPlugin default/canary would be deleted (server dry run: nothing stored)\n"
    );
}

#[tokio::test]
async fn deploy_only_ships_a_module_pinned_by_digest() {
    let pinned = format!("oci://ghcr.io/acme/canary@sha256:{SHA}");
    let out = run(
        &[
            "deploy",
            "--selector",
            "app=productpage",
            "--image",
            &pinned,
        ],
        vec![
            call("GET", WP, 404, not_found("canary")),
            call(
                "PATCH",
                &wp(APPLY_DEPLOY),
                201,
                wasmplugin("canary", json!({})),
            )
            .body(move |b| {
                assert_eq!(
                    b["spec"]["url"],
                    format!("oci://ghcr.io/acme/canary@sha256:{SHA}")
                );
                assert_eq!(b["spec"]["sha256"], SHA);
            }),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out, "WasmPlugin default/canary applied, generation 4\n");
    let err = run(
        &["deploy", "--url", "https://example.invalid/f.wasm"],
        vec![],
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        "--url and --file need --wasm FILE or --sha256 HEX: canaryctl only ships modules pinned by digest"
    );
    let err = common::run_cli(&["render", "--image", "ghcr.io/acme/canary:v1"])
        .await
        .unwrap_err();
    assert!(
        err.starts_with("render works offline: give --wasm FILE or --sha256 HEX"),
        "{err}"
    );
}
