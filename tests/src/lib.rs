//! The one harness behind the end-to-end tests (`tests/tests`), `make bench`
//! and the sandbox crate behind `make demo`: real Envoy processes on loopback
//! ports, upstream test servers that name their version and fail on demand,
//! HTTP clients (plain, from a chosen source address, HTTP/2, mTLS), a user
//! population's traffic and a `/stats/prometheus` parser.
//!
//! It is test code: a broken precondition (no Envoy binary, a stale module, a
//! port that never opened) aborts loudly with what to do.

pub mod bench;
pub mod certs;
pub mod client;
pub mod command;
pub mod envoy;
pub mod jwt;
pub mod leftovers;
pub mod paths;
pub mod relay;
pub mod services;
pub mod sidecar;
pub mod soak;
pub mod stats;
pub mod traffic;
pub mod upstream;

pub use client::{Client, Reply, Req};
pub use envoy::Envoy;
pub use sidecar::{Direction, FilterSpec, Route, Sidecar};
pub use stats::Stats;
pub use upstream::{Behaviour, Upstream};
