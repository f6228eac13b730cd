//! Finding the cluster the way kubectl does: `--kubeconfig`, else
//! `KUBECONFIG`, else `~/.kube/config`, else the pod's service account;
//! `--context` picks the context and `-n` overrides its namespace. A
//! kubeconfig that exists but cannot be read is reported as such, never as
//! "no kubeconfig".

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};
use crate::kubeops::{DryRun, Kube};

/// Where the kubeconfig came from, for messages.
fn origin_of(path: &Path) -> String {
    path.display().to_string()
}

fn default_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".kube").join("config"))
}

/// The kubeconfig to use and a name for it, or `None` for in-cluster.
fn kubeconfig(explicit: Option<&Path>) -> Result<Option<(Kubeconfig, String)>> {
    let read = |p: &Path| {
        Kubeconfig::read_from(p)
            .map(|k| Some((k, origin_of(p))))
            .map_err(|source| Error::Kubeconfig {
                origin: origin_of(p),
                source,
            })
    };
    if let Some(p) = explicit {
        return read(p);
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let origin = format!("KUBECONFIG={}", list.to_string_lossy());
        return match Kubeconfig::from_env() {
            Ok(Some(k)) => Ok(Some((k, origin))),
            Ok(None) => Err(Error::NoKubeconfig),
            Err(source) => Err(Error::Kubeconfig { origin, source }),
        };
    }
    match default_path() {
        Some(p) if p.exists() => read(&p),
        _ => Ok(None),
    }
}

/// A client for the chosen cluster whose every request ends within `timeout`.
pub async fn connect(
    kubeconfig_path: Option<&Path>,
    context: Option<&str>,
    namespace: Option<&str>,
    timeout: Duration,
    dry_run: DryRun,
) -> Result<Kube> {
    let (mut config, origin) = match kubeconfig(kubeconfig_path)? {
        Some((k, origin)) => {
            let opts = KubeConfigOptions {
                context: context.map(str::to_string),
                ..KubeConfigOptions::default()
            };
            let config = kube::Config::from_custom_kubeconfig(k, &opts)
                .await
                .map_err(|source| Error::Kubeconfig {
                    origin: origin.clone(),
                    source,
                })?;
            (config, origin)
        }
        None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => (
            kube::Config::incluster().map_err(|_| Error::NoKubeconfig)?,
            "in-cluster service account".to_string(),
        ),
        None => return Err(Error::NoKubeconfig),
    };
    config.connect_timeout = Some(crate::http::connect_timeout(timeout));
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    // Count the read timeout from when the request went out, not from when a
    // pooled connection went idle.
    config.reset_reader_on_write = true;
    let server = config.cluster_url.to_string();
    let server = server.trim_end_matches('/').to_string();
    let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_string);
    let client =
        kube::Client::try_from(config).map_err(|source| Error::KubeClient { origin, source })?;
    Ok(Kube {
        client,
        namespace,
        dry_run,
        server,
        timeout,
    })
}
