//! What the phases read from the responses the harness recorded.

use std::collections::{BTreeMap, BTreeSet};

use canary_e2e::traffic::Record;

/// The version that answered (stamped by its SERVER-mode sidecar).
pub fn version(r: &Record) -> Option<&str> {
    r.upstream
        .as_deref()
        .and_then(|u| u.strip_prefix("reviews-"))
}

/// The share of requests version `v` answered.
pub fn share(records: &[Record], v: &str) -> f64 {
    if records.is_empty() {
        return 0.0;
    }
    records.iter().filter(|r| version(r) == Some(v)).count() as f64 / records.len() as f64
}

/// How many users were answered by more than one version.
pub fn flipped(records: &[Record]) -> usize {
    let mut seen: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for r in records {
        if let Some(v) = version(r) {
            seen.entry(r.user).or_default().insert(v.to_string());
        }
    }
    seen.values().filter(|s| s.len() > 1).count()
}
