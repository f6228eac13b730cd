//! Upstream test servers: each names its version in the body and in
//! `x-upstream`, and can be told — for all requests or per request through
//! `x-test-*` headers — to answer an error, slow down, reset, or fail gRPC.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What an upstream does with every request (headers can override per request).
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Status to answer; 0 means 200.
    pub status: u16,
    /// Share of requests, in per mille, that get `error_status` instead.
    pub error_permille: u32,
    /// Status for the `error_permille` share; 0 means 503.
    pub error_status: u16,
    pub delay: Duration,
    /// Close the connection without answering.
    pub reset: bool,
    /// Answer as gRPC with this status in the trailers.
    pub grpc_status: Option<u32>,
}

#[derive(Default)]
struct State {
    behaviour: Mutex<Behaviour>,
    requests: AtomicU64,
    last_headers: Mutex<Option<HeaderMap>>,
}

pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

impl Upstream {
    /// Starts a server on a free loopback port speaking HTTP/1.1 and h2c.
    pub async fn start(name: &str) -> Upstream {
        Upstream::start_with(name, Behaviour::default()).await
    }

    pub async fn start_with(name: &str, b: Behaviour) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        *state.behaviour.lock().unwrap() = b;
        let st = state.clone();
        let version = name.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let version = version.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        let version = version.clone();
                        async move { handle(&version, &st, req).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            name: name.to_string(),
            addr,
            state,
            task,
        }
    }

    pub fn set(&self, b: Behaviour) {
        *self.state.behaviour.lock().unwrap() = b;
    }

    pub fn behaviour(&self) -> Behaviour {
        self.state.behaviour.lock().unwrap().clone()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Headers of the last request, as the upstream saw them.
    pub fn last_headers(&self) -> Option<HeaderMap> {
        self.state.last_headers.lock().unwrap().clone()
    }
}

fn header_num(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.parse().ok()
}

#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset on request")
    }
}

impl std::error::Error for Reset {}

async fn handle(
    version: &str,
    st: &State,
    req: Request<Incoming>,
) -> Result<Response<Body>, Reset> {
    let n = st.requests.fetch_add(1, Ordering::SeqCst);
    let b = st.behaviour.lock().unwrap().clone();
    let h = req.headers().clone();
    *st.last_headers.lock().unwrap() = Some(h.clone());
    // How much body arrived, reported back in `x-received-bytes`.
    let received = req
        .into_body()
        .collect()
        .await
        .map_or(0, |b| b.to_bytes().len());

    let delay = header_num(&h, "x-test-delay-ms")
        .map(Duration::from_millis)
        .unwrap_or(b.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if b.reset || h.contains_key("x-test-reset") {
        // hyper closes an HTTP/1 connection (or resets an h2 stream) when the service fails.
        return Err(Reset);
    }
    if h.contains_key("x-test-reset-after-headers") {
        return Ok(Response::builder()
            .status(200)
            .header("x-upstream", version)
            .header("content-length", "100")
            .body(CutBody::new().boxed())
            .unwrap());
    }
    if let Some(code) = header_num(&h, "x-test-grpc-trailers-only") {
        // A gRPC error with no message: status in the headers, no body, no trailers.
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", code.to_string())
            .header("x-upstream", version)
            .body(
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .unwrap());
    }
    let grpc = header_num(&h, "x-test-grpc-status")
        .map(|s| s as u32)
        .or(b.grpc_status);
    if let Some(code) = grpc {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", code.to_string().parse().unwrap());
        let body = GrpcBody(vec![
            Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0])),
            Frame::trailers(trailers),
        ])
        .boxed();
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("x-upstream", version)
            .body(body)
            .unwrap());
    }
    // Spread the failing share evenly: request n fails when the running count of
    // failures owed grows, so 200 per mille fails exactly every fifth request.
    let owed = |k: u64| k * u64::from(b.error_permille) / 1000;
    let status = if let Some(s) = header_num(&h, "x-test-status") {
        s as u16
    } else if b.error_permille > 0 && owed(n + 1) > owed(n) {
        if b.error_status == 0 {
            503
        } else {
            b.error_status
        }
    } else if b.status == 0 {
        200
    } else {
        b.status
    };
    // `x-test-body-bytes: N` pads the answer to N bytes: a body that reaches
    // the client in many chunks.
    let mut body = format!("{version}\n").into_bytes();
    if let Some(n) = header_num(&h, "x-test-body-bytes") {
        body.resize(usize::try_from(n).unwrap_or(0).max(body.len()), b'.');
    }
    Ok(Response::builder()
        .status(status)
        .header("x-upstream", version)
        .header("x-received-bytes", received)
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap())
}

/// A gRPC response body: one empty message, then trailers.
struct GrpcBody(Vec<Frame<Bytes>>);

impl hyper::body::Body for GrpcBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let next = if self.0.is_empty() {
            None
        } else {
            Some(Ok(self.0.remove(0)))
        };
        std::task::Poll::Ready(next)
    }
}

/// A body that sends one chunk, waits so the headers and chunk are flushed,
/// then fails: the connection is cut after the response started (status 200
/// already on the wire).
struct CutBody {
    sent: bool,
    wait: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl CutBody {
    fn new() -> Self {
        CutBody {
            sent: false,
            wait: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
        }
    }
}

impl hyper::body::Body for CutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if !self.sent {
            self.sent = true;
            return std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))));
        }
        match self.wait.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Some(Err(Box::new(Reset)))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}
