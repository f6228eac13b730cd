//! canaryctl finds its cluster as kubectl does and reports like a
//! kubectl-family tool: the context's namespace unless `-n` says otherwise,
//! `--context` to pick another, a broken kubeconfig named as broken, and one
//! uncoloured error line on stderr.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{kubeconfig, run_cli, RecordingApi};

const WP: &str = "/apis/extensions.istio.io/v1alpha1/namespaces";

#[tokio::test]
async fn the_namespace_defaults_to_the_contexts_and_n_overrides_it() {
    let api = RecordingApi::start().await;
    let kc = kubeconfig(
        &api.url,
        &[
            ("a", Some("team-a")),
            ("b", Some("team-b")),
            ("plain", None),
        ],
    );
    let k = kc.path().to_str().unwrap();
    let err = run_cli(&["status", "--kubeconfig", k]).await.unwrap_err();
    assert_eq!(err, "WasmPlugin team-a/canary not found");
    run_cli(&["status", "--kubeconfig", k, "--context", "b"])
        .await
        .unwrap_err();
    run_cli(&["status", "--kubeconfig", k, "--context", "b", "-n", "ops"])
        .await
        .unwrap_err();
    run_cli(&["status", "--kubeconfig", k, "--context", "plain"])
        .await
        .unwrap_err();
    let paths: Vec<String> = api
        .requests()
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            format!("{WP}/team-a/wasmplugins/canary"),
            format!("{WP}/team-b/wasmplugins/canary"),
            format!("{WP}/ops/wasmplugins/canary"),
            format!("{WP}/default/wasmplugins/canary"),
        ]
    );
}

#[tokio::test]
async fn an_unknown_context_and_a_malformed_kubeconfig_are_named_as_such() {
    let api = RecordingApi::start().await;
    let kc = kubeconfig(&api.url, &[("a", None)]);
    let err = run_cli(&[
        "status",
        "--kubeconfig",
        kc.path().to_str().unwrap(),
        "--context",
        "nope",
    ])
    .await
    .unwrap_err();
    assert!(
        err.starts_with(&format!("kubeconfig {}: ", kc.path().display())) && err.contains("nope"),
        "{err}"
    );
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "clusters: [unclosed\n").unwrap();
    let err = run_cli(&["status", "--kubeconfig", bad.path().to_str().unwrap()])
        .await
        .unwrap_err();
    assert!(
        err.starts_with(&format!("kubeconfig {}: ", bad.path().display())),
        "{err}"
    );
    assert!(!err.contains("no kubeconfig"), "{err}");
    assert!(api.requests().is_empty());
}

/// Runs the real binary with a clean environment: no kubeconfig unless given.
fn canaryctl(args: &[&str], env: &[(&str, &str)]) -> (String, String, bool) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_canaryctl"))
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.success(),
    )
}

#[test]
fn a_malformed_kubeconfig_variable_is_reported_as_malformed_not_missing() {
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "{not: [yaml").unwrap();
    let (_, err, ok) = canaryctl(&["status"], &[("KUBECONFIG", bad.path().to_str().unwrap())]);
    assert!(!ok);
    assert!(
        err.starts_with(&format!(
            "error: kubeconfig KUBECONFIG={}: ",
            bad.path().display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let (_, err, ok) = canaryctl(&["status"], &[]);
    assert!(!ok);
    assert_eq!(
        err,
        "error: no kubeconfig: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config (e.g. `make kind-up`)\n"
    );
}

#[test]
fn errors_are_one_uncoloured_line_on_stderr_even_with_logging_on() {
    let cfg = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(cfg.path(), r#"{"sticky": {"percent": 101}}"#).unwrap();
    let p = cfg.path().to_str().unwrap();
    let (out, err, ok) = canaryctl(&["validate-config", p], &[("CANARYCTL_LOG", "debug")]);
    assert!(!ok);
    assert_eq!(out, "");
    assert!(!err.contains('\u{1b}'), "colour codes in {err:?}");
    assert!(
        err.ends_with(&format!(
            "error: {p}: pluginConfig field `sticky.percent`: 101 is outside 0-100\n"
        )),
        "{err}"
    );
    assert_eq!(err.matches("sticky.percent").count(), 1, "{err}");

    // A refused connection: libraries log it at debug, never in colour into
    // a pipe, and by default only the one error line is printed.
    let port = canary_e2e::services::free_port();
    let kc = kubeconfig(&format!("http://127.0.0.1:{port}"), &[("a", None)]);
    let k = kc.path().to_str().unwrap();
    let (_, err, ok) = canaryctl(
        &["status", "--kubeconfig", k],
        &[("CANARYCTL_LOG", "debug")],
    );
    assert!(!ok);
    assert!(err.lines().count() > 1, "{err}");
    assert!(!err.contains('\u{1b}'), "colour codes in {err:?}");
    let (_, err, _) = canaryctl(&["status", "--kubeconfig", k], &[]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: cannot reach the Kubernetes API server http://127.0.0.1:{port}: check the cluster is up")),
        "{err}"
    );
}
