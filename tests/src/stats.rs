//! The Prometheus text reader is canaryctl's, which reads the same sidecar
//! scrapes; the harness uses it as is.

pub use canary_installer::promtext::{Sample, Stats};
