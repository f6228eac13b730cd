//! The load generator: h2load (Debian's nghttp2-client) over HTTP/1.1 with
//! 16 connections, pinned to CPU 1 so it never runs on Envoy's core.

use std::net::SocketAddr;

use super::variants::HeaderSet;

/// Connections h2load keeps open (`-c`).
pub const CONNECTIONS: u64 = 16;

/// What one h2load run did.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Requests answered with a 2xx.
    pub ok: u64,
}

/// Sends `n` GET requests with the header set to `addr` and waits for them.
/// `Err` names what went wrong: a run where any request failed or was
/// answered with anything but 2xx measures something else.
pub async fn run(addr: SocketAddr, set: HeaderSet, n: u64) -> Result<Load, String> {
    let n = n.max(CONNECTIONS);
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", "1", "h2load", "--h1", "-t", "1"])
        .arg("-c")
        .arg(CONNECTIONS.to_string())
        .arg("-n")
        .arg(n.to_string());
    for (k, v) in set.headers() {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(format!("http://{addr}/"));
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("cannot run taskset/h2load (run `make setup`): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match answered(&text) {
        (Some(done), Some(ok)) if done == n && ok == n => Ok(Load { ok }),
        _ => Err(format!(
            "h2load: not all {n} requests answered 2xx:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Requests done and answered 2xx, from h2load's summary:
/// `requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, ...`
/// and `status codes: 100 2xx, 0 3xx, 0 4xx, 0 5xx`.
fn answered(text: &str) -> (Option<u64>, Option<u64>) {
    let count = |prefix: &str, suffix: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))?
            .split(',')
            .find_map(|p| p.trim().strip_suffix(suffix)?.trim().parse().ok())
    };
    (count("requests:", " done"), count("status codes:", " 2xx"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_gives_requests_done_and_answered_2xx() {
        let text = "finished in 1.2s, 100.00 req/s\n\
            requests: 120 total, 120 started, 118 done, 117 succeeded, 3 failed, 2 errored, 0 timeout\n\
            status codes: 116 2xx, 0 3xx, 0 4xx, 1 5xx\n";
        assert_eq!(super::answered(text), (Some(118), Some(116)));
        assert_eq!(super::answered("connect failed"), (None, None));
    }
}
