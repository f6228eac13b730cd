//! The Prometheus text parser lives in `canary-core`, shared with `canaryctl`.

pub use canary_core::promtext::{Sample, Stats};
