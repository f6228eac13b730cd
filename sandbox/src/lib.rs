//! The local sandbox behind `make demo`: the workshop module's canary
//! exercises (1-8) played on real Envoy processes running the filter, with the
//! numbers measured, summed up in a table and charted in an HTML report.
//!
//! - [`options`]: what to play and how hard (rate, users, phase length);
//! - [`mesh`]: the topology on loopback (reviews v1-v3 behind SERVER-mode
//!   sidecars, a CLIENT-mode productpage sidecar per phase);
//! - [`phases`]: the eight phases, one function each, and [`run`] playing them;
//! - [`recorder`]: the productpage sidecar's counters sampled while a phase runs;
//! - [`results`]: what a run measured; [`business`]: Exercise 8's money view of it;
//! - [`summary`] and [`report`]: the text table and the HTML report.
//!
//! The Envoy processes, upstream servers, clients and traffic come from the
//! `canary-e2e` harness the end-to-end tests and the benchmark use too.

pub mod business;
pub mod mesh;
pub mod options;
pub mod phases;
pub mod recorder;
pub mod records;
pub mod report;
pub mod results;
pub mod summary;

pub use options::Options;
pub use phases::run;
pub use results::Results;
