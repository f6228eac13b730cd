//! Every network call ends within `--request-timeout`: a server that
//! accepts the connection and never answers (registry, Prometheus, the
//! Kubernetes API server) gets one clear line naming it and the next step.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{kubeconfig, run_cli, wasm_file, Silent};

/// Runs `args` and checks it failed within a few seconds of a 1 s timeout.
async fn fails_in_time(args: &[&str]) -> String {
    let start = Instant::now();
    let err = run_cli(args).await.unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}: {err}"
    );
    assert!(!err.contains('\n'), "{err}");
    err
}

#[tokio::test]
async fn a_silent_registry_fails_push_within_the_timeout() {
    let s = Silent::start().await;
    let wasm = wasm_file();
    let err = fails_in_time(&[
        "push",
        "--wasm",
        wasm.path().to_str().unwrap(),
        "--image",
        &format!("{}/canary/filter:v1", s.addr),
        "--plain-http",
        "--request-timeout",
        "1s",
    ])
    .await;
    assert_eq!(
        err,
        format!(
            "registry {} did not answer within 1s: check the address or raise --request-timeout",
            s.addr
        )
    );
    assert!(s.connections() > 0);
}

#[tokio::test]
async fn a_silent_prometheus_fails_stats_within_the_timeout() {
    let s = Silent::start().await;
    let url = format!("http://{}", s.addr);
    let err = fails_in_time(&["stats", "--prometheus", &url, "--request-timeout", "1s"]).await;
    assert_eq!(
        err,
        format!("Prometheus {url} did not answer within 1s: check --prometheus or raise --request-timeout")
    );
}

#[tokio::test]
async fn a_silent_api_server_fails_status_within_the_timeout() {
    let s = Silent::start().await;
    let url = format!("http://{}", s.addr);
    let kc = kubeconfig(&url, &[("kind-canary", None)]);
    let err = fails_in_time(&[
        "status",
        "--kubeconfig",
        kc.path().to_str().unwrap(),
        "--request-timeout",
        "1s",
    ])
    .await;
    assert_eq!(
        err,
        format!("Kubernetes API server {url} did not answer within 1s: check the cluster is up (`kubectl cluster-info`) or raise --request-timeout")
    );
}

#[tokio::test]
async fn a_silent_tls_api_server_fails_within_the_timeout_too() {
    let s = Silent::start().await;
    let url = format!("https://{}", s.addr);
    let kc = kubeconfig(&url, &[("kind-canary", None)]);
    let err = fails_in_time(&[
        "rollback",
        "--kubeconfig",
        kc.path().to_str().unwrap(),
        "--request-timeout",
        "1s",
    ])
    .await;
    assert!(
        err.starts_with(&format!(
            "Kubernetes API server {url} did not answer within 1s"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_registry_fails_deploys_digest_lookup_within_the_timeout() {
    let registry = Silent::start().await;
    let api = common::RecordingApi::start().await;
    let kc = kubeconfig(&api.url, &[("kind-canary", None)]);
    let err = fails_in_time(&[
        "deploy",
        "--selector",
        "app=productpage",
        "--image",
        &format!("{}/canary/filter:v1", registry.addr),
        "--plain-http",
        "--kubeconfig",
        kc.path().to_str().unwrap(),
        "--request-timeout",
        "1s",
    ])
    .await;
    assert!(
        err.starts_with(&format!(
            "registry {} did not answer within 1s",
            registry.addr
        )),
        "{err}"
    );
}
