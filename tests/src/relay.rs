//! An application stand-in for the hop tests: for every request it receives
//! (from its inbound sidecar) it makes one call through its outbound sidecar,
//! copying only the headers a real application propagates (`baggage` and
//! `x-request-id`, as an OpenTelemetry SDK plus Istio's tracing advice do),
//! and answers with what the called service answered (`x-upstream`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

use crate::{Client, Req};

/// Headers the stand-in copies onto its outbound call.
pub const PROPAGATED: [&str; 2] = ["baggage", "x-request-id"];

pub struct Relay {
    pub addr: SocketAddr,
    target: Arc<OnceCell<SocketAddr>>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Listens now; calls go to the address given to [`Relay::call`], since
    /// the outbound sidecar is usually started after its app.
    pub async fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target: Arc<OnceCell<SocketAddr>> = Arc::new(OnceCell::new());
        let t = target.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let t = t.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let t = t.clone();
                        async move { relay(t.get().copied(), req).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Relay { addr, target, task }
    }

    /// Where outbound calls go (the outbound sidecar's listener); set once.
    pub fn call(&self, outbound: SocketAddr) {
        self.target.set(outbound).unwrap();
    }
}

async fn relay(
    target: Option<SocketAddr>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let incoming = req.headers().clone();
    let _ = req.into_body().collect().await;
    let Some(target) = target else {
        return Ok(Response::builder()
            .status(503)
            .body(Full::new(Bytes::from_static(b"no outbound target\n")))
            .unwrap());
    };
    let mut out = Req::get("/reviews");
    for name in PROPAGATED {
        if let Some(v) = incoming.get(name) {
            out = out.header(name, v.as_bytes());
        }
    }
    let reply = Client::new(target).send(&out).await;
    let mut resp = Response::builder().status(reply.status);
    for name in ["x-upstream", "x-canary-cohort"] {
        if let Some(v) = reply.headers.get(name) {
            resp = resp.header(name, v);
        }
    }
    Ok(resp.body(Full::new(reply.body)).unwrap())
}
