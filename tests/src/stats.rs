//! The Prometheus text reader is canaryctl's (it reads the same sidecar
//! scrapes). The harness compiles that one source file rather than linking
//! the installer, so the e2e tests, the benchmark and the demo do not build
//! kube, k8s-openapi and the registry client they never use.

#[path = "../../installer/src/promtext.rs"]
mod promtext;

pub use promtext::{Sample, Stats};
