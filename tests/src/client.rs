//! HTTP clients for driving a sidecar: plain HTTP/1.1 or h2c, from a chosen
//! loopback source address (so CIDR trust can be tested), or over mTLS with a
//! client certificate carrying a SPIFFE id.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// A request to send; header values are bytes so tests can send non-UTF-8.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl Req {
    pub fn get(path: &str) -> Req {
        Req {
            method: Method::GET,
            path: path.to_string(),
            headers: vec![],
            body: Bytes::new(),
        }
    }

    /// A POST carrying `body` (Content-Length set from it).
    pub fn post(path: &str, body: impl Into<Bytes>) -> Req {
        Req {
            method: Method::POST,
            body: body.into(),
            ..Req::get(path)
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Req {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    fn build(&self, authority: &str) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(format!("http://{authority}{}", self.path));
        for (k, v) in &self.headers {
            b = b.header(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        b.body(Full::new(self.body.clone())).unwrap()
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The version that answered, as the upstream named itself.
    pub fn upstream(&self) -> Option<&str> {
        self.header("x-upstream")
    }
}

/// A pooled client for one sidecar listener.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client::build(addr, None, false)
    }

    /// Connects from `source` (any 127.0.0.0/8 address works on loopback).
    pub fn from_source(addr: SocketAddr, source: IpAddr) -> Client {
        Client::build(addr, Some(source), false)
    }

    /// HTTP/2 with prior knowledge (h2c).
    pub fn http2(addr: SocketAddr) -> Client {
        Client::build(addr, None, true)
    }

    fn build(addr: SocketAddr, source: Option<IpAddr>, h2: bool) -> Client {
        let mut conn = HttpConnector::new();
        conn.set_local_address(source);
        conn.set_nodelay(true);
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(h2)
            .build(conn);
        Client { addr, inner }
    }

    pub async fn send(&self, req: &Req) -> Reply {
        self.try_send(req)
            .await
            .unwrap_or_else(|e| panic!("request to {} failed: {e}", self.addr))
    }

    pub async fn try_send(&self, req: &Req) -> Result<Reply, String> {
        let resp = self
            .inner
            .request(req.build(&self.addr.to_string()))
            .await
            .map_err(|e| format!("{e:?}"))?;
        collect(resp).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(&Req::get(path)).await
    }
}

async fn collect(resp: hyper::Response<hyper::body::Incoming>) -> Result<Reply, String> {
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    })
}

/// An mTLS client: one new connection per request, presenting `cert`.
pub struct TlsClient {
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
}

impl TlsClient {
    pub fn new(addr: SocketAddr, ca_pem: &str, cert_pem: &str, key_pem: &str) -> TlsClient {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        TlsClient {
            addr,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    pub async fn send(&self, req: &Req) -> Reply {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.connector.connect(name, tcp).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut r = req.build("localhost");
        *r.uri_mut() = req.path.parse().unwrap();
        r.headers_mut()
            .insert("host", HeaderValue::from_static("reviews"));
        collect(sender.send_request(r).await.unwrap())
            .await
            .unwrap()
    }
}

/// What [`raw_http1`] read back: the status and the header lines, in order.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn upstream(&self) -> Option<&str> {
        self.header("x-upstream")
    }
}

/// One HTTP/1.1 GET written byte for byte on a new connection, from `source`
/// when given, with `header_lines` (`"name: value"`) as they are: repeated
/// lines stay separate lines, which a client library may merge. The new
/// connection also lets the kernel spread requests over Envoy's workers.
pub async fn raw_http1(
    addr: SocketAddr,
    source: Option<IpAddr>,
    header_lines: &[&str],
) -> Result<RawReply, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| e.to_string())?;
    }
    let mut tcp = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let mut head = String::from("GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n");
    for line in header_lines {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tcp.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(RawReply { status, headers })
}
