//! A scripted Kubernetes API server on kube's tower-test mock: each expected
//! call names its exact method, path and query, may check the body, and gets a
//! canned answer. Unexpected or missing calls fail the test.

// Test code: a failed precondition fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::time::Duration;

use canary_installer::cli::Cli;
use canary_installer::kubeops::{DryRun, Kube};
use clap::Parser;
use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};

pub type BodyCheck = Box<dyn Fn(&Value) + Send>;

pub struct Call {
    pub method: &'static str,
    pub uri: String,
    pub check_body: Option<BodyCheck>,
    pub status: u16,
    pub answer: Value,
}

pub fn call(method: &'static str, uri: &str, status: u16, answer: Value) -> Call {
    Call {
        method,
        uri: uri.to_string(),
        check_body: None,
        status,
        answer,
    }
}

impl Call {
    pub fn body(mut self, f: impl Fn(&Value) + Send + 'static) -> Call {
        self.check_body = Some(Box::new(f));
        self
    }
}

pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
}

pub fn not_found(name: &str) -> Value {
    status(
        404,
        "NotFound",
        &format!("wasmplugins.extensions.istio.io \"{name}\" not found"),
    )
}

pub fn wasmplugin(name: &str, config: Value) -> Value {
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": name, "namespace": "default", "generation": 4,
                     "labels": {"app.kubernetes.io/managed-by": "canaryctl"}},
        "spec": {"url": "oci://localhost:5001/canary/filter:v1", "sha256": "ab", "phase": "AUTHN",
                 "failStrategy": "FAIL_RELOAD", "selector": {"matchLabels": {"app": "productpage"}},
                 "match": [{"mode": "CLIENT"}], "pluginConfig": config},
        "status": {"observedGeneration": 4}
    })
}

/// Runs `args` against a mock API that answers `calls` in order.
pub async fn run(args: &[&str], calls: Vec<Call>) -> Result<String, String> {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let expected = calls.len();
    let server = tokio::spawn(async move {
        for (i, c) in calls.into_iter().enumerate() {
            let Some((req, send)) = handle.next_request().await else {
                panic!("call {i} ({} {}) never came", c.method, c.uri);
            };
            assert_eq!(req.method().as_str(), c.method, "call {i}: method");
            assert_eq!(req.uri().to_string(), c.uri, "call {i}: path and query");
            let body = req.into_body().collect_bytes().await.unwrap();
            if let Some(check) = &c.check_body {
                assert!(!body.is_empty(), "call {i}: a body was expected");
                let v: Value = serde_json::from_slice(&body)
                    .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
                check(&v);
            }
            // A string answer is sent as text (a sidecar's /stats/prometheus).
            let (ct, bytes) = match &c.answer {
                Value::String(text) => ("text/plain", text.clone().into_bytes()),
                v => ("application/json", serde_json::to_vec(v).unwrap()),
            };
            let resp = Response::builder()
                .status(c.status)
                .header("content-type", ct)
                .body(Body::from(bytes))
                .unwrap();
            send.send_response(resp);
        }
        expected
    });
    let client = kube::Client::new(svc, "default");
    let mut argv = vec!["canaryctl"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    let (namespace, dry_run) = match cli.command.cluster() {
        Some((k, _, dry_run)) => (k.namespace.clone().unwrap_or("default".into()), dry_run),
        None => ("default".into(), DryRun::None),
    };
    let kube = Kube {
        client,
        namespace,
        dry_run,
        server: "https://mock-api".into(),
        timeout: Duration::from_secs(5),
    };
    let out = canary_installer::cli::run_on(&cli, Some(&kube))
        .await
        .map_err(|e| canary_installer::report(&e));
    drop(kube);
    // Every scripted call must have been made.
    let served = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    match served {
        Ok(Ok(n)) => assert_eq!(n, expected),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        other => panic!("mock server: {other:?}"),
    }
    out
}

pub fn wasm_file() -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), b"\0asm\x01\0\0\0").unwrap();
    f
}

pub fn json_file(v: &Value) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(f.path(), v.to_string()).unwrap();
    f
}

/// A TCP server that accepts connections and never answers: every client
/// that talks to it must give up by its own deadline.
pub struct Silent {
    pub addr: std::net::SocketAddr,
    /// Connections accepted so far.
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Silent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = vec![];
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        Silent {
            addr,
            accepted,
            task,
        }
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A stand-in Kubernetes API server over plain HTTP that answers every
/// request 404 (object not found) and records each request line.
pub struct RecordingApi {
    pub url: String,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingApi {
    pub async fn start() -> RecordingApi {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    log.lock().unwrap().push(line.trim().to_string());
                    // Skip the headers (GET requests carry no body).
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let body = not_found("canary").to_string();
                    let resp = format!(
                        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = reader.get_mut().write_all(resp.as_bytes()).await;
                });
            }
        });
        RecordingApi { url, seen, task }
    }

    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for RecordingApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A kubeconfig file with one context per `(name, namespace)`, all pointing
/// at `server`; the first is current.
pub fn kubeconfig(server: &str, contexts: &[(&str, Option<&str>)]) -> tempfile::NamedTempFile {
    let mut ctx = String::new();
    for (name, ns) in contexts {
        let ns = ns.map_or(String::new(), |n| format!("\n    namespace: {n}"));
        ctx.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: c\n    user: u{ns}\n"
        ));
    }
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n{ctx}current-context: {}\n",
        contexts[0].0
    );
    let f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

/// Parses and runs `args` the way the binary does (connecting by itself).
pub async fn run_cli(args: &[&str]) -> Result<String, String> {
    let mut argv = vec!["canaryctl"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    canary_installer::cli::run(&cli)
        .await
        .map_err(|e| canary_installer::report(&e))
}
