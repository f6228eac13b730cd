//! Which version answered a request: the routed subset in CLIENT mode (from
//! the Istio cluster name), the workload's own label in SERVER mode, and in
//! auto mode whichever the cluster name says. Names outside `version.known`,
//! or unsafe inside a stat name, are reported as `other`.

use std::fmt;

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

/// A version label: at most 63 bytes of `A-Za-z0-9._-` (see
/// `is_label_safe`), held inline so a request keeps its version without
/// allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Label {
    len: u8,
    bytes: [u8; 63],
}

impl Label {
    /// `s` when it is a safe label, else `other`.
    fn new(s: &str) -> Label {
        let s = if is_label_safe(s) { s } else { OTHER };
        let mut bytes = [0; 63];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Label {
            len: s.len() as u8,
            bytes,
        }
    }

    pub fn as_str(&self) -> &str {
        // Built from a `&str` cut at its own length: always valid.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or(OTHER)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

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
    pub fn own_version(&self, node_version: Option<&[u8]>) -> Label {
        match (&self.value, node_version) {
            (Some(v), _) => Label::new(v),
            (None, Some(raw)) => self.label(raw),
            (None, None) => Label::new(UNKNOWN),
        }
    }

    /// A label for a version name read from the proxy: `other` when it is
    /// outside `version.known` or not safe inside a stat name.
    pub fn label(&self, raw: &[u8]) -> Label {
        let Ok(s) = std::str::from_utf8(raw) else {
            return Label::new(OTHER);
        };
        let allowed = match &self.known {
            Some(known) => known.iter().any(|k| k == s),
            None => is_label_safe(s),
        };
        Label::new(if allowed { s } else { OTHER })
    }

    /// The version that answers this request. In SERVER mode that is `own`
    /// without a hostcall; otherwise one cluster-name lookup serves both
    /// questions of auto mode: Istio names inbound clusters `inbound|port||`
    /// and outbound ones `outbound|port|subset|host`.
    pub fn resolve(&self, own: Label, host: &impl Http) -> Label {
        if self.direction == Direction::Server {
            return own;
        }
        let auto = self.direction == Direction::Auto;
        host.property(&["xds", "cluster_name"], |cluster| {
            let inbound = match cluster {
                Some(c) if auto && c.starts_with(b"inbound|") => true,
                // Not an Istio name: ask the listener (1 = INBOUND).
                Some(c) if auto && !c.starts_with(b"outbound|") => host
                    .property(&["xds", "listener_direction"], |b| {
                        b.and_then(property::int) == Some(1)
                    }),
                _ => false,
            };
            if inbound {
                return own;
            }
            match cluster.and_then(property::istio_subset) {
                Some(subset) => self.label(subset),
                None => Label::new(UNKNOWN),
            }
        })
    }
}
