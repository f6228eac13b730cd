//! `make soak`: a bounded run on a real Envoy (2 workers) at a fixed rate,
//! with ECDS config updates every few seconds, 100,000 distinct users, and a
//! canary that starts failing halfway. It samples RSS, each VM's linear
//! memory, the stats Envoy exports and the canary's gate, keeps every
//! request's outcome, and fails when a request is missing from the filter's
//! counters or memory or the stat count grows once warm.

pub mod args;
pub mod memory;
pub mod run;
pub mod verdict;
