//! Judging the canary against the stable baseline, sequentially.
//!
//! Three tests compare the canary with the baseline seen over the same time:
//! its error ratio ([`ratio`]), the centre of its latency ([`shift`], a
//! Mann-Whitney U test on the shared histogram buckets) and its latency tail
//! ([`tail`], the share of requests above the baseline's P99). Each is an
//! e-process: evidence that may be looked at every tick without inflating
//! its error rate, so strong evidence acts at once and weak evidence waits.
//! Each gives `worse`, `not-worse` or `inconclusive` ([`verdict`]); [`policy`]
//! combines them with the absolute limits into withdraw / hold / wait /
//! promote. [`pair::Judge`] is the state kept per canary/baseline pair.
//!
//! Pure functions over counts: no host access, no allocation per tick, no
//! dependency on the gates (they feed it, not the other way round).
//! `docs/judgment.md` has the formulas, guarantees and measured sample sizes.

pub(crate) mod codec;
pub mod evidence;
pub mod fleet;
pub mod logexp;
pub mod pair;
pub mod policy;
pub mod ratio;
pub mod shift;
pub mod tail;
pub mod valid;
pub mod verdict;

// The simulations check statistics, not the platform: the unit tests beside
// each test already run on wasm32, and the sweeps would only slow it down.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod sim;

pub use pair::{Judge, JudgeConfig, Tick, Verdicts};
pub use policy::{decide, BaselineFailing, Decision, Limit, PolicyConfig, Reason};
pub use valid::Invalid;
pub use verdict::{Metric, MetricVerdict, Verdict};
