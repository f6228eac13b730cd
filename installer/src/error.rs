//! Every failure `canaryctl` reports. Each variant's message says what went
//! wrong and, where there is one, the next step; the underlying error stays
//! reachable as its `source`, and [`report`] prints the chain as one line.

use std::time::Duration;

/// What went wrong, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid pluginConfig")]
    Config(#[from] canary_core::ConfigError),
    /// A flag or argument the command cannot use (checked before any request).
    #[error("{0}")]
    Usage(String),
    #[error("Istio is not installed in this cluster: the {crd} CustomResourceDefinition is missing (install Istio, e.g. `make istio-sidecar`)")]
    CrdMissing { crd: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("conflict: {0} (another field manager owns these fields; re-run with --force-conflicts to take them over)")]
    Conflict(String),
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("{kind} {namespace}/{name} was not created by canaryctl (no app.kubernetes.io/managed-by=canaryctl label); refusing to touch it")]
    NotOurs {
        kind: String,
        namespace: String,
        name: String,
    },
    #[error("Kubernetes API error {code} ({reason}): {message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("Kubernetes API server {server} did not answer within {}: check the cluster is up (`kubectl cluster-info`) or raise --request-timeout", secs(*.after))]
    KubeTimeout { server: String, after: Duration },
    #[error("cannot reach the Kubernetes API server {server}: check the cluster is up (`kubectl cluster-info`) and the kubeconfig context")]
    Kube {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config (e.g. `make kind-up`)")]
    NoKubeconfig,
    #[error("kubeconfig {origin}")]
    Kubeconfig {
        origin: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {origin}: cannot build a client")]
    KubeClient {
        origin: String,
        #[source]
        source: kube::Error,
    },
    #[error("registry {registry} did not answer within {}: check the address or raise --request-timeout", secs(*.after))]
    RegistryTimeout { registry: String, after: Duration },
    #[error("registry {registry} speaks plain HTTP: add --plain-http")]
    RegistryPlainHttp { registry: String },
    #[error("registry {registry}: {message}")]
    Registry {
        registry: String,
        message: String,
        #[source]
        source: Option<oci_client::errors::OciDistributionError>,
    },
    #[error("Prometheus {url} did not answer within {}: check --prometheus or raise --request-timeout", secs(*.after))]
    PrometheusTimeout { url: String, after: Duration },
    #[error("Prometheus {url}: {message}")]
    Prometheus {
        url: String,
        message: String,
        #[source]
        source: Option<reqwest::Error>,
    },
    #[error("promotion refused: {0} (re-run with --force to promote anyway)")]
    PromotionRefused(String),
    #[error("{path}: {message}")]
    File {
        path: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("{path}")]
    InvalidConfigFile {
        path: String,
        #[source]
        source: canary_core::ConfigError,
    },
    #[error("printing the result as {format}")]
    Print {
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("building the image layer")]
    Layer(#[source] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `1s`, `1.5s`: how long a timeout was, for messages.
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The whole chain of `e` as one line: each cause once, joined by ": ".
/// A cause whose text its parent already shows (some libraries embed their
/// source in their own message) is skipped, so nothing is said twice.
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line.replace('\n', " ")
}

impl Error {
    /// A file-level error with no underlying cause.
    pub fn file(path: &std::path::Path, message: impl Into<String>) -> Error {
        Error::File {
            path: path.display().to_string(),
            message: message.into(),
            source: None,
        }
    }

    /// Maps a kube error to the line an operator needs. `kind`/`name`
    /// describe the object the call was about; `server` is the API server.
    pub fn from_kube(
        e: kube::Error,
        server: &str,
        timeout: Duration,
        crd: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Error {
        match e {
            kube::Error::Api(s) => {
                let code = s.code;
                let reason = s.reason.clone();
                let message = s.message.clone();
                match code {
                    // A missing resource type answers 404 without naming an object.
                    404 if message.contains("could not find the requested resource") => {
                        Error::CrdMissing {
                            crd: crd.to_string(),
                        }
                    }
                    404 => Error::NotFound {
                        kind: kind.to_string(),
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    },
                    403 => Error::Forbidden(message),
                    409 => Error::Conflict(message),
                    _ => Error::Api {
                        code,
                        reason,
                        message,
                    },
                }
            }
            other if is_timeout(&other) => Error::KubeTimeout {
                server: server.to_string(),
                after: timeout,
            },
            other => Error::Kube {
                server: server.to_string(),
                source: other,
            },
        }
    }
}

/// Whether anything in the chain of `e` is a timeout (hyper-timeout and
/// tokio both surface it as an `io::Error` of kind `TimedOut`).
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = next {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return true;
            }
        }
        if c.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
            return true;
        }
        let text = c.to_string().to_ascii_lowercase();
        if text.contains("timed out") || text.contains("deadline has elapsed") {
            return true;
        }
        next = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_config_error_is_reported_once() {
        let e: Error = canary_core::Config::from_json(br#"{"sticky": {"percent": 101}}"#)
            .unwrap_err()
            .into();
        let line = report(&e);
        assert_eq!(line.matches("sticky.percent").count(), 1, "{line}");
        assert!(line.starts_with("invalid pluginConfig: pluginConfig field `sticky.percent`"));
    }
}
