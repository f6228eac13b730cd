//! SLO gates in the data plane: rolling windows per version, combined across
//! worker VMs through shared data, evaluated on the root context's tick into a
//! gate state, exported as gauges, and acted on by withdrawing the canary
//! cohorts when a rollback trigger fires. This is the runtime; the `gates`
//! section of the config is [`crate::config::gates`].

pub mod engine;
pub mod eval;
pub mod judging;
pub mod shared;
pub mod window;

pub use crate::config::Gates;
pub use engine::Engine;
pub use eval::GateState;

#[cfg(test)]
mod judging_tests;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod sim;
#[cfg(test)]
mod tests;
