//! `canaryctl`: ships the canary filter and deploys it through Istio
//! `WasmPlugin` resources, then drives the rollout (percent, promote,
//! rollback) and reads back what the sidecars measure.
//!
//! The pluginConfig is validated with the filter's own code (`canary-core`,
//! compiled natively) before anything is sent anywhere.

pub mod cli;
pub mod connect;
pub mod error;
pub mod http;
pub mod input;
pub mod judge;
pub mod kubeops;
pub mod objects;
pub mod oci;
pub mod pluginconfig;
pub mod rollout;
pub mod stats;

pub use canary_promtext as promtext;
pub use error::{report, Error, Result};
