//! Envoy processes on loopback: start one from a [`Sidecar`], find its admin
//! and listener ports (both bound to port 0, so parallel tests never collide),
//! read its stats, update the filter through ECDS, stop it on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::Client;
use crate::sidecar::{Sidecar, FILTER_NAME};
use crate::stats::Stats;

pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
    dir: tempfile::TempDir,
    ecds_version: std::sync::atomic::AtomicU64,
    failure_policy: &'static str,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Envoy on `config` with the shipped stats config merged in, under
/// callgrind when `callgrind` names its output file. It dies with the thread
/// that starts it ([`crate::leftovers`]), the benchmark's SIGSTOPped variants
/// too, even when the harness aborts or a Ctrl-C reaches their process group.
fn envoy_command(config: &Path, callgrind: Option<&Path>) -> Command {
    let mut cmd = match callgrind {
        Some(out) => {
            let mut cmd = crate::leftovers::command("valgrind");
            let mut file = std::ffi::OsString::from("--callgrind-out-file=");
            file.push(out);
            cmd.args(CALLGRIND_ARGS)
                .arg(file)
                .arg(crate::paths::envoy_bin());
            cmd
        }
        None => crate::leftovers::command(crate::paths::envoy_bin()),
    };
    cmd.arg("-c").arg(config);
    let stats = crate::paths::stats_config_yaml();
    cmd.arg("--config-yaml").arg(
        std::fs::read_to_string(&stats).unwrap_or_else(|e| panic!("{}: {e}", stats.display())),
    );
    cmd
}

/// callgrind for V8: its JIT writes code into anonymous memory, which
/// valgrind must watch for changes (`--smc-check`); valgrind's own notes on
/// stderr stay out of the way (`-q`).
const CALLGRIND_ARGS: &[&str] = &["--tool=callgrind", "--smc-check=all-non-file", "-q"];

/// How long Envoy gets to start: under callgrind, V8 compiling the module
/// takes about a minute on an idle machine, two or more on a busy one.
fn start_time(callgrind: bool) -> Duration {
    Duration::from_secs(if callgrind { 240 } else { 30 })
}

/// `envoy --mode validate` on a bootstrap (with the shipped stats config merged in).
pub fn validate(config: &Path) -> Result<(), String> {
    crate::command::run(
        envoy_command(config, None).args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "-l",
            "error",
        ]),
        "envoy (run `make setup`)",
    )
    .map(drop)
}

impl Envoy {
    /// Starts Envoy and waits until it serves; panics with its log if it cannot.
    pub async fn start(s: &Sidecar) -> Envoy {
        match Envoy::try_start(s).await {
            Ok(e) => e,
            Err(log) => panic!("Envoy did not start:\n{log}"),
        }
    }

    /// Starts Envoy; `Err` carries its log when it exits or never gets ready.
    pub async fn try_start(s: &Sidecar) -> Result<Envoy, String> {
        Envoy::try_start_edited(s, |_| {}).await
    }

    /// As [`Envoy::try_start`], with the rendered bootstrap passed through
    /// `edit` first: the benchmark adds a listener this way. The sidecar's
    /// listener must stay the first one (its port is the one reported).
    pub async fn try_start_edited(
        s: &Sidecar,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Envoy, String> {
        let dir = crate::leftovers::temp_dir("envoy");
        let mut config: Value = s.render(dir.path());
        edit(&mut config);
        let config_path = dir.path().join("envoy.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let admin_path = dir.path().join("admin.txt");
        let log_path = dir.path().join("envoy.log");
        let callgrind_out = dir.path().join("callgrind.out");
        let mut cmd = envoy_command(&config_path, s.callgrind.then_some(&*callgrind_out));
        cmd.arg("--disable-hot-restart")
            .arg("--concurrency")
            .arg(s.concurrency.to_string())
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["-l", "info", "--log-path"])
            .arg(&log_path)
            // The log file is buffered (10 s by default); tests read it live.
            .args(["--file-flush-interval-msec", "50"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start Envoy through setpriv: {e}"))?;
        let mut envoy = Envoy {
            child,
            admin: "127.0.0.1:0".parse().unwrap(),
            listener: "127.0.0.1:0".parse().unwrap(),
            dir,
            ecds_version: std::sync::atomic::AtomicU64::new(1),
            failure_policy: s.failure_policy,
        };
        let within = start_time(s.callgrind);
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Err(format!("Envoy exited with {status}:\n{}", envoy.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Envoy not ready after {} s:\n{}",
                    within.as_secs(),
                    envoy.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let Ok(admin) = std::fs::read_to_string(&admin_path) else {
                continue;
            };
            let Ok(admin) = admin.trim().parse() else {
                continue;
            };
            envoy.admin = admin;
            let Ok(ready) = Client::new(admin)
                .try_send(&crate::Req::get("/ready"))
                .await
            else {
                continue;
            };
            if ready.status != 200 {
                continue;
            }
            let Ok(l) = Client::new(admin)
                .try_send(&crate::Req::get("/listeners?format=json"))
                .await
            else {
                continue;
            };
            let v: Value = serde_json::from_slice(&l.body).unwrap_or(Value::Null);
            let port =
                v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"].as_u64();
            if let Some(port) = port.filter(|p| *p > 0) {
                envoy.listener = SocketAddr::new("127.0.0.1".parse().unwrap(), port as u16);
                // An ECDS config Envoy refused leaves the filter without a config:
                // say so here rather than let every request fail later.
                let rejected =
                    format!("extension_config_discovery.http_filter.{FILTER_NAME}.update_rejected");
                if matches!(s.filter, crate::sidecar::FilterSpec::CanaryEcds(_))
                    && envoy.stat(&rejected).await > 0
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(format!(
                        "Envoy rejected the filter's initial ECDS config:\n{}",
                        envoy.log()
                    ));
                }
                return Ok(envoy);
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Envoy's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// The log once it holds `needle`, or as it stands after `within`. The
    /// file is flushed every 50 ms, so a line written just before the stats
    /// showed its effect may not be there yet.
    pub async fn log_once_it_holds(&self, needle: &str, within: Duration) -> String {
        once_it_holds(
            within,
            Duration::from_millis(25),
            || async { self.log() },
            |log: &String| log.contains(needle),
        )
        .await
    }

    /// The stats once `holds` accepts them, or as they stand after `within`.
    /// The filter counts at the stream's end, after the client has its response, and
    /// histograms merge at the next stats flush: a test reads after both.
    pub async fn stats_once_they_hold(
        &self,
        within: Duration,
        holds: impl Fn(&Stats) -> bool,
    ) -> Stats {
        once_it_holds(within, Duration::from_millis(20), || self.stats(), holds).await
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn client(&self) -> Client {
        Client::new(self.listener)
    }

    pub async fn admin_get(&self, path: &str) -> String {
        let r = Client::new(self.admin).get(path).await;
        String::from_utf8_lossy(&r.body).into_owned()
    }

    pub async fn stats(&self) -> Stats {
        Stats::parse(&self.admin_get("/stats/prometheus").await)
    }

    /// A plain `/stats` counter or gauge by full name (0 when absent).
    pub async fn stat(&self, name: &str) -> u64 {
        let text = self
            .admin_get(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))
            .await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name}: "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Replaces the filter's pluginConfig through ECDS, as an Istio WasmPlugin
    /// update would (atomic rename into the watched directory). `Ok` when
    /// Envoy accepted it, `Err` with the log when it was rejected.
    pub async fn update_filter(&self, plugin_config: &str) -> Result<(), String> {
        let prefix = format!("extension_config_discovery.http_filter.{FILTER_NAME}");
        let ok0 = self.stat(&format!("{prefix}.update_success")).await;
        let bad0 = self.stat(&format!("{prefix}.update_rejected")).await;
        let version = self
            .ecds_version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let doc = Sidecar::ecds_document(plugin_config, version, self.failure_policy);
        let dir = self.dir.path().join("ecds");
        let tmp = dir.join(".plugin.json.tmp");
        std::fs::write(&tmp, doc.to_string()).unwrap();
        std::fs::rename(&tmp, dir.join("plugin.json")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.stat(&format!("{prefix}.update_success")).await > ok0 {
                return Ok(());
            }
            if self.stat(&format!("{prefix}.update_rejected")).await > bad0 {
                return Err(self.log());
            }
        }
        Err(format!("no ECDS update within 10 s:\n{}", self.log()))
    }
}

/// Reads with `read` every `every` until `holds` accepts a reading or
/// `within` has passed, and returns the last reading: the caller asserts on
/// it, so a timeout fails with what was there.
async fn once_it_holds<T, F: std::future::Future<Output = T>>(
    within: Duration,
    every: Duration,
    mut read: impl FnMut() -> F,
    holds: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let reading = read().await;
        if holds(&reading) || Instant::now() > deadline {
            return reading;
        }
        tokio::time::sleep(every).await;
    }
}
