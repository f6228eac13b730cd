//! Exercise 8's money, from the measured blast radius and time to withdrawal.
//!
//! Cost scales with the share of users hurt and how long they were hurt,
//! calibrated on the workshop module's "before" ($50,000 for everyone for
//! 2 hours).

use crate::options::{Business, TICK_MS};
use crate::results::{BusinessView, Exposure};

/// The business view of a broken canary met by outlier detection plus a
/// manual rollback (`outlier`) and by the filter's gate (`gated`).
pub fn view(b: &Business, outlier: &Exposure, gated: &Exposure) -> BusinessView {
    let full_second = b.outage_cost / b.rollback_before_s;
    // The withdrawal takes effect within two ticks of the trigger.
    let gate_secs =
        gated.time_to_withdrawal_ms.unwrap_or(0) as f64 / 1000.0 + 2.0 * TICK_MS as f64 / 1000.0;
    let manual = full_second * outlier.blast_radius() * b.rollback_manual_s;
    let gate = full_second * gated.blast_radius() * gate_secs;
    let before_month = b.outage_cost * b.bad_deploys_before;
    BusinessView {
        before_per_deploy: b.outage_cost,
        before_per_month: before_month,
        manual_per_deploy: manual,
        manual_per_month: manual * b.bad_deploys_after,
        gate_per_deploy: gate,
        gate_per_month: gate * b.bad_deploys_after,
        saved_per_month: before_month - gate * b.bad_deploys_after,
    }
}
