//! Other real services the tests start on loopback: an OCI registry (Debian's
//! `docker-registry`) and a Prometheus server scraping Envoy admin endpoints.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::Client;

/// A free loopback port (bound then released: the service binds it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_http(addr: SocketAddr, path: &str, what: &str, p: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = Client::new(addr);
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            let log = std::fs::read_to_string(p.dir.path().join("log")).unwrap_or_default();
            panic!("{what} exited with {status}:\n{log}");
        }
        if let Ok(r) = client.try_send(&crate::Req::get(path)).await {
            if r.status == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready on {addr} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(cmd: &mut Command, dir: tempfile::TempDir, what: &str) -> Process {
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} through setpriv: {e} (run `make setup`)"));
    Process { child, dir }
}

/// A plain-HTTP OCI registry with filesystem storage in a temp dir.
pub struct Registry {
    pub addr: SocketAddr,
    _p: Process,
}

impl Registry {
    pub async fn start() -> Registry {
        let dir = crate::leftovers::temp_dir("registry");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut p = spawn(
            crate::leftovers::command("docker-registry")
                .arg("serve")
                .arg(&cfg),
            dir,
            "docker-registry",
        );
        wait_http(addr, "/v2/", "docker-registry", &mut p).await;
        Registry { addr, _p: p }
    }
}

/// Prometheus scraping `/stats/prometheus` of the given Envoy admin addresses every second.
pub struct Prometheus {
    pub addr: SocketAddr,
    _p: Process,
}

impl Prometheus {
    pub async fn start(envoy_admins: &[SocketAddr]) -> Prometheus {
        let dir = crate::leftovers::temp_dir("prometheus");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let targets: Vec<String> = envoy_admins.iter().map(|a| format!("'{a}'")).collect();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: envoy\n  metrics_path: /stats/prometheus\n  static_configs:\n  - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let mut p = spawn(
            crate::leftovers::command("prometheus")
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn"),
            dir,
            "prometheus",
        );
        wait_http(addr, "/-/ready", "prometheus", &mut p).await;
        // Discovery hands targets to the scraper with a delay of up to 5 s:
        // wait until every target has been scraped successfully.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = Client::new(addr);
        loop {
            let r = client.get("/api/v1/targets").await;
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let active = v["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if active.len() == envoy_admins.len() && active.iter().all(|t| t["health"] == "up") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus targets not up after 30 s: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Prometheus { addr, _p: p }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
