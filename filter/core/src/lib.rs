//! The canary filter's logic, free of any proxy-wasm dependency.
//!
//! Everything that decides something — which cohort a request joins, whether a
//! routing header may be believed, which version answered, whether the outcome was
//! an error, which metric to bump — lives here and is unit-tested natively and on
//! `wasm32-unknown-unknown`. The filter crate only adapts proxy-wasm hostcalls to
//! the small traits in [`host`], and the installer validates `pluginConfig` with
//! the very same [`config::Config::from_json`] the filter runs in `on_configure`.

#[cfg(test)]
mod budget;
pub mod cohort;
pub mod config;
pub mod decimal;
pub mod gates;
pub mod hash;
pub mod host;
pub mod identity;
pub mod judge;
pub mod labels;
pub mod liveness;
pub mod metrics;
pub mod outcome;
pub mod peer;
pub mod pending;
pub mod property;
#[cfg(test)]
mod robustness;
pub mod stream;
pub mod trust;
pub mod version;

pub use config::{Config, ConfigError};
pub use stream::Stream;

#[cfg(test)]
pub(crate) mod testing;
