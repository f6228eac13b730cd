//! SLO gates in the data plane: rolling windows per version, combined across
//! worker VMs through shared data, evaluated on the root context's tick into a
//! gate state, exported as gauges, and acted on by withdrawing the canary
//! cohorts when a rollback trigger fires.

pub mod duration;
pub mod engine;
pub mod eval;
pub mod policy;
pub mod shared;
pub mod window;

pub use engine::{Engine, SharedStore};
pub use eval::GateState;
pub use policy::Gates;

#[cfg(test)]
mod tests;
