//! The narrow doors to the proxy: per-request hostcalls, metrics and the
//! shared data the worker VMs of one proxy share.
//!
//! The filter crate implements them over proxy-wasm; unit tests use the fakes in
//! `testing`. Values are raw bytes because header values are client data and
//! need not be UTF-8.

/// Hostcalls one HTTP stream needs. Each call crosses the wasm boundary
/// (0.1-0.9 µs), so callers fetch each value at most once per request.
///
/// Getters lend the value to a closure (`None` when absent) and return what
/// it returns: the core decides on the bytes in place and keeps only the
/// decision, so the request path allocates nothing of its own. (The proxy-wasm
/// ABI still has the module allocate the buffer the host copies a value
/// into; the adapter frees it as soon as the closure returns.)
pub trait Http {
    fn request_header<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R;
    fn set_request_header(&mut self, name: &str, value: &[u8]);
    fn remove_request_header(&mut self, name: &str);
    fn response_header<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R;
    fn set_response_header(&mut self, name: &str, value: &[u8]);
    fn add_response_header(&mut self, name: &str, value: &[u8]);
    fn response_trailer<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R;
    /// An Envoy attribute, e.g. `["xds", "cluster_name"]`. Property reads are
    /// the dearest hostcalls: the path is serialized and looked up by name.
    fn property<R>(&self, path: &[&str], read: impl FnOnce(Option<&[u8]>) -> R) -> R;
    /// Wall clock, nanoseconds since the epoch.
    fn now_nanos(&self) -> u64;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Envoy stats defined by the plugin. Envoy keys stats by name, so the same
/// name defined in every worker's VM is one series in `/stats`.
pub trait Metrics {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment(&mut self, id: u32, by: i64);
    fn record(&mut self, id: u32, value: u64);
}

/// proxy-wasm shared data, one store per VM id, shared by the worker VMs.
pub trait SharedStore {
    /// The value and its CAS token, `None` when the key does not exist.
    fn get(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)>;
    /// Stores `value` if `cas` still matches (any value when `None`);
    /// `false` on a CAS mismatch.
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
}
