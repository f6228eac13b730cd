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

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(users: usize, users_with_error: usize, withdrawal_ms: Option<u64>) -> Exposure {
        Exposure {
            users,
            users_with_error,
            time_to_withdrawal_ms: withdrawal_ms,
            ..Default::default()
        }
    }

    #[test]
    fn the_cost_scales_with_the_share_of_users_hurt_and_for_how_long() {
        let b = Business::default();
        // Half the users for the 30 s manual rollback: half of 30 s of a full outage.
        let v = view(&b, &exposure(100, 50, None), &exposure(100, 10, Some(600)));
        let full_second = 50_000.0 / 7_200.0;
        assert!((v.manual_per_deploy - full_second * 0.5 * 30.0).abs() < 1e-9);
        // A tenth of the users until the withdrawal took effect (600 ms + two ticks).
        assert!((v.gate_per_deploy - full_second * 0.1 * 1.0).abs() < 1e-9);
        assert_eq!(v.before_per_month, 100_000.0);
        assert!((v.saved_per_month - (100_000.0 - v.gate_per_deploy)).abs() < 1e-9);
    }

    #[test]
    fn nobody_hurt_costs_nothing() {
        let v = view(
            &Business::default(),
            &exposure(100, 0, None),
            &exposure(0, 0, None),
        );
        assert_eq!((v.manual_per_deploy, v.gate_per_deploy), (0.0, 0.0));
    }
}
