//! Which version answered a request: the routed subset in CLIENT mode (from
//! the Istio cluster name), the workload's own label in SERVER mode, and in
//! auto mode whichever the cluster name says. Names outside `version.known`,
//! or unsafe inside a stat name, are reported as `other`.

use crate::config::error::is_label_safe;
use crate::config::raw::Direction;
use crate::host::Http;
use crate::property;

/// The label of a version nobody could tell.
pub const UNKNOWN: &str = "unknown";
/// The label of versions outside `version.known` (or the per-VM cap).
pub const OTHER: &str = "other";
/// Most versions declared in `version.known`.
pub const MAX_KNOWN_VERSIONS: usize = 32;

/// The `version` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionPolicy {
    pub direction: Direction,
    /// SERVER mode: overrides the pod label `version`.
    pub value: Option<String>,
    /// When set, versions outside it are reported as `other`.
    pub known: Option<Vec<String>>,
}

impl VersionPolicy {
    /// The workload's own version label: `version.value`, else the pod label
    /// (`xds.node.metadata.LABELS.version`), else `unknown`.
    pub fn own_version(&self, node_version: Option<&[u8]>) -> String {
        match (&self.value, node_version) {
            (Some(v), _) => v.clone(),
            (None, Some(raw)) => self.label(raw),
            (None, None) => UNKNOWN.to_string(),
        }
    }

    /// A label for a version name read from the proxy: `other` when it is
    /// outside `version.known` or not safe inside a stat name.
    pub fn label(&self, raw: &[u8]) -> String {
        let Ok(s) = std::str::from_utf8(raw) else {
            return OTHER.to_string();
        };
        let allowed = match &self.known {
            Some(known) => known.iter().any(|k| k == s),
            None => is_label_safe(s),
        };
        if allowed { s } else { OTHER }.to_string()
    }

    /// The version that answers this request. One cluster-name lookup serves
    /// both questions in auto mode: Istio names inbound clusters
    /// `inbound|port||` and outbound ones `outbound|port|subset|host`.
    pub fn resolve(&self, own_version: &str, host: &impl Http) -> String {
        if self.direction == Direction::Server {
            return own_version.to_string();
        }
        let auto = self.direction == Direction::Auto;
        let cluster = host.property(&["xds", "cluster_name"]);
        let inbound = match &cluster {
            Some(c) if auto && c.starts_with(b"inbound|") => true,
            // Not an Istio name: ask the listener (1 = INBOUND).
            Some(c) if auto && !c.starts_with(b"outbound|") => {
                host.property(&["xds", "listener_direction"])
                    .and_then(|b| property::int(&b))
                    == Some(1)
            }
            _ => false,
        };
        if inbound {
            return own_version.to_string();
        }
        match cluster.as_deref().and_then(property::istio_subset) {
            Some(subset) => self.label(subset),
            None => UNKNOWN.to_string(),
        }
    }
}
