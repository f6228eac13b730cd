//! The HTTP client for Prometheus (the registry goes through oci-client, on
//! the same reqwest stack): rustls with ring and the system's roots, the
//! usual HTTP(S)_PROXY/NO_PROXY variables, and a deadline on every request.

use std::time::Duration;

use crate::error::{Error, Result};

/// How long a connection may take to open: the smaller of the request
/// timeout and 10 s, so an unroutable address fails fast.
pub fn connect_timeout(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(10))
}

/// A client whose every request (connect, send, whole answer) ends within
/// `timeout`, which it keeps for messages.
#[derive(Debug, Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub timeout: Duration,
}

impl Http {
    pub fn new(timeout: Duration) -> Result<Http> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("canaryctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout(timeout))
            .timeout(timeout)
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Http { client, timeout })
    }
}
