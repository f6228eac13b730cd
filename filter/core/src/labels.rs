//! The version labels a proxy admits to its stats.
//!
//! Envoy never deletes a stat, and all VMs of a proxy (one per worker, and a
//! fresh start on every configuration update) define their stats into one
//! store by name. A per-VM or per-configuration cap would therefore let the
//! label count grow with every worker and every update. The admitted labels
//! live in shared data instead: an append-only list, at most
//! [`MAX_VERSIONS`] long, for the life of the proxy. Any other version is
//! reported as [`OTHER`].
//!
//! The hot path only scans the local copy. The shared list is read when a VM
//! configures and when it meets a version its copy lacks while the list still
//! has room, so once the list is full no request reads it again.

use crate::config::error::is_label_safe;
use crate::host::SharedStore;
use crate::version::OTHER;

/// Distinct version labels a proxy reports before folding the rest into `other`.
pub const MAX_VERSIONS: usize = 16;
const KEY: &str = "canary/version-labels";
const CAS_ATTEMPTS: usize = 8;
const MAGIC: &[u8] = b"CVL1";

/// This VM's copy of the proxy's admitted version labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionLabels {
    admitted: Vec<String>,
}

impl VersionLabels {
    /// The labels admitted so far. Creates the shared entry when missing:
    /// creating a key is not CAS-protected, so it happens here, in
    /// `on_configure`, before this VM serves traffic (the main thread's VM
    /// configures before any worker's).
    pub fn load(store: &mut impl SharedStore) -> Self {
        match store.get(KEY) {
            Some((bytes, _)) => VersionLabels {
                admitted: decode(&bytes).unwrap_or_default(),
            },
            None => {
                store.set(KEY, MAGIC, None);
                VersionLabels::default()
            }
        }
    }

    /// The label `version` is reported under: itself once the proxy has
    /// admitted it (this VM or any other, now or earlier), `other` when the
    /// proxy already holds [`MAX_VERSIONS`] other labels.
    pub fn admit<'a>(&mut self, store: &mut impl SharedStore, version: &'a str) -> &'a str {
        if version == OTHER || self.admitted.iter().any(|v| v == version) {
            return version;
        }
        // The list only grows: a full copy means a full list.
        if self.admitted.len() >= MAX_VERSIONS {
            return OTHER;
        }
        for _ in 0..CAS_ATTEMPTS {
            let (bytes, cas) = store.get(KEY).unwrap_or_default();
            self.admitted = decode(&bytes).unwrap_or_default();
            if self.admitted.iter().any(|v| v == version) {
                return version;
            }
            if self.admitted.len() >= MAX_VERSIONS {
                return OTHER;
            }
            self.admitted.push(version.to_string());
            if store.set(KEY, &encode(&self.admitted), cas) {
                return version;
            }
            self.admitted.pop();
        }
        // Lost every race this time: this request only goes under `other`.
        OTHER
    }

    /// The labels admitted so far, in the order they were admitted.
    pub fn admitted(&self) -> &[String] {
        &self.admitted
    }
}

pub(crate) fn encode(labels: &[String]) -> Vec<u8> {
    let mut w = MAGIC.to_vec();
    for l in labels {
        w.push(b'\n');
        w.extend_from_slice(l.as_bytes());
    }
    w
}

/// `None` unless every entry is a label the filter could have admitted.
pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(bytes.strip_prefix(MAGIC)?).ok()?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    let labels: Vec<String> = text
        .strip_prefix('\n')?
        .split('\n')
        .map(str::to_string)
        .collect();
    (labels.len() <= MAX_VERSIONS && labels.iter().all(|l| is_label_safe(l))).then_some(labels)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::testing::FakeStore;

    #[test]
    fn the_cap_holds_across_configurations_and_vms() {
        let mut store = FakeStore::default();
        let mut seen = std::collections::BTreeSet::new();
        // Ten configurations in each of three VMs, each meeting 8 new versions.
        for config in 0..10 {
            for vm in 0..3 {
                let mut labels = VersionLabels::load(&mut store);
                for i in 0..8 {
                    let v = format!("v{config}-{vm}-{i}");
                    seen.insert(labels.admit(&mut store, &v).to_string());
                }
            }
        }
        assert_eq!(seen.len(), MAX_VERSIONS + 1, "{seen:?}");
        assert!(seen.contains(OTHER));
    }

    #[test]
    fn a_label_another_vm_admitted_is_used_even_when_the_list_is_full() {
        let mut store = FakeStore::default();
        let mut a = VersionLabels::load(&mut store);
        let mut b = VersionLabels::load(&mut store);
        assert_eq!(a.admit(&mut store, "v1"), "v1");
        for i in 0..MAX_VERSIONS - 1 {
            let v = format!("x{i}");
            assert_eq!(b.admit(&mut store, &v), v);
        }
        assert_eq!(b.admit(&mut store, "v1"), "v1");
        assert_eq!(b.admit(&mut store, "v99"), OTHER);
        assert_eq!(a.admit(&mut store, "x3"), "x3");
        assert_eq!(a.admit(&mut store, "v98"), OTHER);
        assert_eq!(a.admitted().len(), MAX_VERSIONS);
    }

    #[test]
    fn a_known_label_costs_no_shared_read_and_a_lost_race_is_retried() {
        let mut store = FakeStore::default();
        let mut a = VersionLabels::load(&mut store);
        store.fail_next = 2;
        assert_eq!(a.admit(&mut store, "v1"), "v1");
        store.data.clear();
        // Served from the local copy: the emptied store is not consulted.
        assert_eq!(a.admit(&mut store, "v1"), "v1");
        assert!(store.data.is_empty());
        assert_eq!(a.admit(&mut store, OTHER), OTHER);
        assert!(store.data.is_empty());
    }

    #[test]
    fn the_shared_list_round_trips_and_refuses_anything_else() {
        let labels = vec!["v1".to_string(), "unknown".to_string()];
        assert_eq!(decode(&encode(&labels)), Some(labels));
        assert_eq!(decode(MAGIC), Some(vec![]));
        for bad in [
            &b""[..],
            b"CVL1x",
            b"CVL1\n",
            b"CVL1\nv1\n",
            b"CVL1\nv 1",
            b"XXXX\nv1",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_VERSIONS).map(|i| format!("v{i}")).collect();
        assert_eq!(decode(&encode(&many)), None);
    }
}
