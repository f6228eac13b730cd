//! A deliberate trap for the end-to-end tests of Envoy's `failure_policy`
//! (FAIL_RELOAD, FAIL_OPEN, FAIL_CLOSED): with the `test-trap` feature, a
//! request carrying [`HEADER`] panics, which aborts the VM the way a real bug
//! would. Without the feature (every shipped build) the check is an empty
//! function and the header name is not in the module; a test scans the
//! release module's bytes to prove it.

/// The request header that makes a `test-trap` build trap.
#[cfg(feature = "test-trap")]
pub const HEADER: &str = "x-canary-test-trap";

/// Traps when the current request carries [`HEADER`].
#[cfg(feature = "test-trap")]
#[allow(clippy::panic)] // the point of this build: a VM that dies mid-request
pub fn on_request_headers() {
    if let Ok(Some(_)) = proxy_wasm::hostcalls::get_map_value_bytes(
        proxy_wasm::types::MapType::HttpRequestHeaders,
        HEADER,
    ) {
        panic!("canary: trapping on {HEADER} (test-trap build)");
    }
}

/// Shipped builds: nothing to do, and nothing left after inlining.
#[cfg(not(feature = "test-trap"))]
#[inline(always)]
pub fn on_request_headers() {}
