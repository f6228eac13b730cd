//! Decoding Envoy attribute values (see the attribute encoding in the docs):
//! integers are 8 bytes little-endian, strings are raw bytes.

/// An int/uint/enum/timestamp/duration attribute.
pub fn int(bytes: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(bytes).ok().map(i64::from_le_bytes)
}

/// The subset in an Istio outbound cluster name:
/// `outbound|9080|v2|reviews.default.svc.cluster.local` → `v2`.
/// `None` for clusters without a subset and for non-Istio names.
pub fn istio_subset(cluster: &[u8]) -> Option<&[u8]> {
    let mut parts = cluster.split(|&b| b == b'|');
    let direction = parts.next()?;
    let _port = parts.next()?;
    let subset = parts.next()?;
    let _host = parts.next()?;
    if parts.next().is_some() || !matches!(direction, b"outbound" | b"inbound") {
        return None;
    }
    (!subset.is_empty()).then_some(subset)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn integers_are_eight_bytes_little_endian() {
        assert_eq!(int(&503i64.to_le_bytes()), Some(503));
        assert_eq!(int(&[1, 2, 3]), None);
        assert_eq!(int(&(-1i64).to_le_bytes()), Some(-1));
    }

    #[test]
    fn subsets_come_from_istio_cluster_names() {
        assert_eq!(
            istio_subset(b"outbound|9080|v2|reviews.default.svc.cluster.local"),
            Some(&b"v2"[..])
        );
        assert_eq!(
            istio_subset(b"outbound|80||reviews.default.svc.cluster.local"),
            None
        );
        assert_eq!(istio_subset(b"inbound|9080||"), None);
        assert_eq!(istio_subset(b"PassthroughCluster"), None);
        assert_eq!(istio_subset(b"a|b|c|d|e"), None);
        assert_eq!(istio_subset(b"sideways|1|v1|h"), None);
    }
}
