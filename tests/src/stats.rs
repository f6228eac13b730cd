//! The Prometheus text reader is canaryctl's (it reads the same sidecar
//! scrapes), from its own small crate, so the e2e tests, the benchmark and
//! the demo do not build kube, k8s-openapi and the registry client.

pub use canary_promtext::{Sample, Stats};
