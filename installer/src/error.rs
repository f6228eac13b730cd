//! Every failure `canaryctl` reports, each printable as one clear line.

/// What went wrong, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid pluginConfig: {0}")]
    Config(#[from] canary_core::ConfigError),
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
    #[error("cannot reach the Kubernetes API: {0}")]
    Kube(String),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("HTTP {url}: {message}")]
    Http { url: String, message: String },
    #[error("Prometheus {url}: {message}")]
    Prometheus { url: String, message: String },
    #[error("promotion refused: {0} (re-run with --force to promote anyway)")]
    PromotionRefused(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("schema: {0}")]
    Schema(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Maps a kube error to the line an operator needs. `kind`/`name`
    /// describe the object the call was about.
    pub fn from_kube(e: kube::Error, crd: &str, kind: &str, namespace: &str, name: &str) -> Error {
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
            other => Error::Kube(other.to_string()),
        }
    }
}
