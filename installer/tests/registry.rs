//! `push` against a real OCI registry (Debian's docker-registry on loopback):
//! pulled back, the image is what Istio's fetcher checks for — a Docker
//! schema2 manifest, one tar+gzip layer holding `plugin.wasm` — and its
//! manifest digest is the `sha256` the WasmPlugin carries.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use canary_e2e::services::Registry as LocalRegistry;
use std::time::Duration;

use canary_installer::cli::Cli;
use canary_installer::oci::{ImageRef, Registry, LAYER_TYPE, MANIFEST_TYPE};
use clap::Parser;
use common::{call, not_found, run, wasmplugin};
use serde_json::{json, Value};

async fn offline(args: &[&str]) -> Result<String, String> {
    let mut argv = vec!["canaryctl"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    canary_installer::cli::run(&cli)
        .await
        .map_err(|e| canary_installer::report(&e))
}

/// `canaryctl -o json push … --plain-http`, answered.
async fn push_json(wasm: &std::path::Path, image: &str) -> String {
    offline(&[
        "push",
        "-o",
        "json",
        "--wasm",
        wasm.to_str().unwrap(),
        "--image",
        image,
        "--plain-http",
    ])
    .await
    .unwrap()
}

fn module() -> std::path::PathBuf {
    canary_e2e::paths::filter_wasm()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_module_pulls_back_as_istio_expects_with_the_pinned_digest() {
    let reg = LocalRegistry::start().await;
    let image = format!("{}/canary/filter:v1", reg.addr);
    let wasm = module();
    let out = push_json(&wasm, &image).await;
    let pushed: Value = serde_json::from_str(&out).unwrap();
    let digest = pushed["digest"].as_str().unwrap().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(
        pushed["pinned"],
        format!("{}/canary/filter@{digest}", reg.addr)
    );

    let r: ImageRef = image.parse().unwrap();
    let registry = Registry::new(&r, true, None, Duration::from_secs(10));
    let pulled = registry.pull(&r).await.unwrap();
    assert_eq!(pulled.manifest_media_type, MANIFEST_TYPE);
    assert_eq!(pulled.layer_media_type, LAYER_TYPE);
    assert_eq!(
        pulled.wasm,
        std::fs::read(&wasm).unwrap(),
        "plugin.wasm differs from the module pushed"
    );
    assert_eq!(pulled.manifest_digest, digest);

    // The registry serves the manifest under its digest too (what a pinned reference resolves).
    let by_digest = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/canary/filter/manifests/{digest}",
            reg.addr
        ))
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap();
    assert_eq!(by_digest.status(), 200);
    assert_eq!(
        by_digest.headers()["docker-content-digest"]
            .to_str()
            .unwrap(),
        digest
    );

    // render computes the same digest offline, so GitOps output pins what push uploads.
    let rendered = offline(&[
        "render",
        "-o",
        "json",
        "--selector",
        "app=p",
        "--image",
        &image,
        "--wasm",
        wasm.to_str().unwrap(),
    ])
    .await
    .unwrap();
    let objs: Vec<Value> = serde_json::from_str(&rendered).unwrap();
    assert_eq!(
        objs[0]["spec"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    assert_eq!(objs[0]["spec"]["url"], format!("oci://{image}"));

    // Pushing again is idempotent: same digest.
    let again: Value = serde_json::from_str(&push_json(&wasm, &image).await).unwrap();
    assert_eq!(again["digest"], digest.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_pushes_then_applies_the_wasmplugin_pinned_to_the_manifest_digest() {
    let reg = LocalRegistry::start().await;
    let image = format!("{}/canary/filter:v2", reg.addr);
    let wasm = module();
    let expected = canary_installer::oci::Built::new(&std::fs::read(&wasm).unwrap())
        .unwrap()
        .digest();
    let sha = expected.trim_start_matches("sha256:").to_string();
    let wp = "/apis/extensions.istio.io/v1alpha1/namespaces/default/wasmplugins/canary";
    let out = run(
        &[
            "deploy",
            "--selector",
            "app=productpage",
            "--image",
            &image,
            "--wasm",
            wasm.to_str().unwrap(),
            "--plain-http",
        ],
        vec![
            call("GET", wp, 404, not_found("canary")),
            call(
                "PATCH",
                &format!("{wp}?&fieldManager=canaryctl&fieldValidation=Strict"),
                201,
                wasmplugin("canary", json!({})),
            )
            .body(move |b| assert_eq!(b["spec"]["sha256"], sha.as_str())),
        ],
    )
    .await
    .unwrap();
    assert!(
        out.starts_with(&format!(
            "pushed oci://{}/canary/filter@{expected}\n",
            reg.addr
        )),
        "{out}"
    );
    let r: ImageRef = image.parse().unwrap();
    assert_eq!(
        Registry::new(&r, true, None, Duration::from_secs(10))
            .pull(&r)
            .await
            .unwrap()
            .manifest_digest,
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_one_clear_error() {
    let port = canary_e2e::services::free_port();
    let err = offline(&[
        "push",
        "--wasm",
        module().to_str().unwrap(),
        "--image",
        &format!("127.0.0.1:{port}/canary/filter:v1"),
        "--plain-http",
    ])
    .await
    .unwrap_err();
    assert!(
        err.starts_with(&format!("registry 127.0.0.1:{port}: cannot connect: check the address and that the registry is running: ")),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_registry_reached_over_https_says_to_add_plain_http() {
    let reg = LocalRegistry::start().await;
    let err = offline(&[
        "push",
        "--wasm",
        module().to_str().unwrap(),
        "--image",
        &format!("{}/canary/filter:v1", reg.addr),
    ])
    .await
    .unwrap_err();
    assert_eq!(
        err,
        format!("registry {} speaks plain HTTP: add --plain-http", reg.addr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_with_a_tag_alone_pins_the_digest_the_registry_serves() {
    let reg = LocalRegistry::start().await;
    let image = format!("{}/canary/filter:v3", reg.addr);
    let pushed: Value = serde_json::from_str(&push_json(&module(), &image).await).unwrap();
    let sha = pushed["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let wp = "/apis/extensions.istio.io/v1alpha1/namespaces/default/wasmplugins/canary";
    let sha2 = sha.clone();
    let url = format!("oci://{image}");
    let out = run(
        &[
            "deploy",
            "--selector",
            "app=productpage",
            "--image",
            &image,
            "--plain-http",
        ],
        vec![
            call("GET", wp, 404, not_found("canary")),
            call(
                "PATCH",
                &format!("{wp}?&fieldManager=canaryctl&fieldValidation=Strict"),
                201,
                wasmplugin("canary", json!({})),
            )
            .body(move |b| {
                assert_eq!(b["spec"]["sha256"], sha2.as_str());
                assert_eq!(b["spec"]["url"], url.as_str());
            }),
        ],
    )
    .await
    .unwrap();
    assert!(
        out.starts_with(&format!(
            "pinned oci://{}/canary/filter@sha256:{sha}\n",
            reg.addr
        )),
        "{out}"
    );
    // An unknown tag is refused, not deployed unpinned.
    let err = run(
        &[
            "deploy",
            "--selector",
            "app=productpage",
            "--image",
            &format!("{}/canary/filter:missing", reg.addr),
            "--plain-http",
        ],
        vec![call("GET", wp, 404, not_found("canary"))],
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with(&format!(
            "registry {}: resolving the digest of {}/canary/filter:missing failed",
            reg.addr, reg.addr
        )),
        "{err}"
    );
}
