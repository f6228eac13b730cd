//! `make bench`: Envoy CPU per request with and without the filter, measured
//! so that figures of one run can be compared with each other.
//!
//! - [`variants`]: what is measured (one Envoy per variant) and with which
//!   request headers;
//! - [`topology`]: each variant's Envoy, its upstream a second listener of
//!   the same process;
//! - [`load`]: h2load on the other CPU;
//! - [`probe`]: CPU time and wasm memory from /proc, machine facts;
//! - [`callgrind`]: the instruction meter, Envoy under callgrind;
//! - [`run`]: all Envoys up front, then interleaved rounds;
//! - [`table`]: medians, cost over bare Envoy, targets, markdown and JSON.

pub mod callgrind;
pub mod load;
pub mod probe;
pub mod run;
pub mod table;
pub mod topology;
pub mod variants;
