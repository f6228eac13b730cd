//! The heartbeat and the alive count on a real Envoy with two workers. Envoy
//! also runs the plugin in a VM on its main thread, which ticks but never
//! serves: it must not beat. Workers are stalled for real by a Lua filter that
//! spins on their thread, which stops their VMs' ticks as a hung worker would.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use canary_e2e::client::raw_http1;
use canary_e2e::sidecar::lua_stall;
use canary_e2e::{Envoy, FilterSpec, Sidecar, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HEARTBEAT: &str = "canary_heartbeat_timestamp_seconds";
const ALIVE: &str = "canary_workers_alive";
const TICKS: &str = "canary_ticks_total";

async fn gauge(envoy: &Envoy, name: &str) -> Option<f64> {
    let s = envoy.stats().await;
    s.samples.iter().find(|x| x.name == name).map(|x| x.value)
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Polls until `name` reads `want`; the time it took, `None` if it never did.
async fn wait_for(envoy: &Envoy, name: &str, want: f64, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if gauge(envoy, name).await == Some(want) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Envoy's per-worker listener stat; the name has the configured port, 0.
fn worker_stat(w: usize, stat: &str) -> String {
    format!("listener.127.0.0.1_0.worker_{w}.{stat}")
}

/// Open connections per worker.
async fn active(envoy: &Envoy) -> [u64; 2] {
    let name = |w| worker_stat(w, "downstream_cx_active");
    [envoy.stat(&name(0)).await, envoy.stat(&name(1)).await]
}

/// A new connection that a worker other than `not` accepted. Connections that
/// land on a stalled worker are never accepted; they are kept open in `held`.
async fn connection_off(
    envoy: &Envoy,
    not: Option<usize>,
    held: &mut Vec<TcpStream>,
) -> (TcpStream, usize) {
    for _ in 0..40 {
        let before = active(envoy).await;
        let c = TcpStream::connect(envoy.listener).await.unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(400) {
            let after = active(envoy).await;
            if let Some(w) = (0..2).find(|w| after[*w] > before[*w] && Some(*w) != not) {
                return (c, w);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        held.push(c);
    }
    panic!("no connection reached a worker other than {not:?}");
}

async fn stall(c: &mut TcpStream, seconds: u32) {
    let req = format!(
        "GET / HTTP/1.1\r\nhost: reviews\r\nx-stall-seconds: {seconds}\r\nconnection: close\r\n\r\n"
    );
    c.write_all(req.as_bytes()).await.unwrap();
}

async fn two_workers(upstream: SocketAddr) -> Envoy {
    // `{}`: metrics on, so the heartbeat ticks every second, no gates.
    let mut s = Sidecar::outbound(
        FilterSpec::Canary("{}".into()),
        &[("v1", upstream), ("v2", upstream)],
        &[("v1", 100)],
    );
    s.concurrency = 2;
    s.before_filters = vec![lua_stall()];
    Envoy::start(&s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_workers_that_serve_beat_and_a_stalled_worker_drops_out_of_the_count() {
    let v1 = Upstream::start("v1").await;
    let envoy = two_workers(v1.addr).await;

    // No traffic yet: three VMs tick (two workers, the main thread), none beats.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(gauge(&envoy, HEARTBEAT).await, None);
    assert_eq!(gauge(&envoy, TICKS).await, None);
    assert_eq!(gauge(&envoy, ALIVE).await, Some(0.0));

    // Traffic on new connections reaches both workers: both are counted.
    for _ in 0..20 {
        assert_eq!(
            raw_http1(envoy.listener, None, &[]).await.unwrap().status,
            200
        );
    }
    for w in 0..2 {
        let total = envoy.stat(&worker_stat(w, "downstream_cx_total")).await;
        assert!(total > 0, "worker {w} got no connection");
    }
    // Each serving worker stamps its slot at its next tick; a loaded
    // machine can delay ticks, so allow a few.
    assert!(
        wait_for(&envoy, ALIVE, 2.0, Duration::from_secs(8))
            .await
            .is_some(),
        "alive {:?}, ticks {:?}",
        gauge(&envoy, ALIVE).await,
        gauge(&envoy, TICKS).await
    );
    let beat = gauge(&envoy, HEARTBEAT).await.unwrap();
    assert!(now_s() - beat < 2.5, "heartbeat {beat} is old");
    // Ticks of serving VMs only: 2 per second, not 3.
    let t0 = gauge(&envoy, TICKS).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let per_s = (gauge(&envoy, TICKS).await.unwrap() - t0) / 4.0;
    assert!((1.5..=2.5).contains(&per_s), "{per_s} ticks/s");

    // One worker stalls: it drops out of the count, the other keeps beating.
    let mut held = vec![];
    let (mut a, wa) = connection_off(&envoy, None, &mut held).await;
    // Long enough to outlast finding a connection on the other worker.
    stall(&mut a, 16).await;
    let took = wait_for(&envoy, ALIVE, 1.0, Duration::from_secs(7)).await;
    assert!(took.is_some(), "the stalled worker {wa} is still counted");
    let beat = gauge(&envoy, HEARTBEAT).await.unwrap();
    assert!(
        now_s() - beat < 2.5,
        "one worker alive, yet heartbeat {beat} is old"
    );

    // The other stalls too: the heartbeat stops and the main thread reads 0.
    let (mut b, wb) = connection_off(&envoy, Some(wa), &mut held).await;
    assert_ne!(wa, wb);
    stall(&mut b, 6).await;
    assert!(wait_for(&envoy, ALIVE, 0.0, Duration::from_secs(5))
        .await
        .is_some());
    // 0 alive means no worker ticked for three ticks: the heartbeat (whole
    // seconds) is that old too.
    let frozen = gauge(&envoy, HEARTBEAT).await.unwrap();
    assert!(
        now_s() - frozen >= 2.0,
        "heartbeat {frozen} while both workers stall"
    );

    // Both come back in their slots.
    assert!(wait_for(&envoy, ALIVE, 2.0, Duration::from_secs(20))
        .await
        .is_some());
    let beat = gauge(&envoy, HEARTBEAT).await.unwrap();
    assert!(now_s() - beat < 2.5);
    drop(held);
}
