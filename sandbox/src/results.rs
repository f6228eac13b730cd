//! What a sandbox run measured, phase by phase; serialized as the report's
//! JSON data and by `canary-demo --json`.

use std::collections::BTreeSet;

use canary_e2e::traffic::Record;
use serde::Serialize;

use crate::recorder::Sample;

/// How many requests and users a version's failures reached.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Exposure {
    pub requests: usize,
    pub errors: usize,
    pub users: usize,
    pub users_with_error: usize,
    /// Milliseconds from the first error to the withdrawal (gate runs only).
    pub time_to_withdrawal_ms: Option<u64>,
    /// Sticky-canary requests that still reached the bad version after the trigger.
    pub canary_requests_after_trigger: Option<usize>,
}

impl Exposure {
    /// The share of users who saw at least one error.
    pub fn blast_radius(&self) -> f64 {
        if self.users == 0 {
            0.0
        } else {
            self.users_with_error as f64 / self.users as f64
        }
    }

    /// Counts the failed requests (5xx or no response) and the users they hit.
    pub fn of(records: &[Record]) -> Exposure {
        let failed = |r: &&Record| r.status >= 500 || r.status == 0;
        let users: BTreeSet<usize> = records.iter().map(|r| r.user).collect();
        let hit: BTreeSet<usize> = records.iter().filter(failed).map(|r| r.user).collect();
        Exposure {
            requests: records.len(),
            errors: records.iter().filter(failed).count(),
            users: users.len(),
            users_with_error: hit.len(),
            time_to_withdrawal_ms: None,
            canary_requests_after_trigger: None,
        }
    }
}

/// One canary step of phase 2: per-request weights against the sticky cohort.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepResult {
    pub percent: u32,
    pub users: usize,
    pub weighted_share: f64,
    pub weighted_flipped: usize,
    pub sticky_share: f64,
    pub sticky_flipped: usize,
    /// Sticky users on the canary at the previous step who left it at this one.
    pub sticky_left: usize,
}

/// Phase 3: where each cohort landed, and how far spoofed headers got.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CohortResult {
    pub internal_on_v2: f64,
    pub beta_on_v2: f64,
    pub regular_on_v1: f64,
    pub spoofed: usize,
    pub spoofed_on_v2: usize,
}

/// Phase 6: cohorts from verified identity, and how far forgeries got.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdentityResult {
    /// Beta testers (by verified JWT group) whose call reached v2.
    pub beta_on_v2: f64,
    pub others_on_v1: f64,
    /// Spoofed headers, forged baggage through the inbound sidecar, and
    /// forged baggage straight at the outbound one.
    pub spoofed: usize,
    pub spoofed_on_v2: usize,
    pub expired: usize,
    /// Expired tokens jwt_authn refused with 401.
    pub expired_refused: usize,
}

/// One step of phase 5's gated promotion.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PromotionStep {
    pub percent: u32,
    pub seconds_to_pass: Option<f64>,
    pub state: String,
}

impl PromotionStep {
    /// How the step ended, in words.
    pub fn outcome(&self) -> String {
        match self.seconds_to_pass {
            _ if self.percent >= 100 => "full rollout".to_string(),
            Some(t) => format!("pass after {t:.1} s"),
            None => format!("stuck at {}", self.state),
        }
    }
}

/// Phases 7 and 8: the canary judged against its baseline, with both
/// versions' error ratios set by the client.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JudgedResult {
    pub scenario: String,
    /// Requests and failed requests sent to the canary (v2) and the baseline (v1).
    pub canary_requests: u64,
    pub canary_errors: u64,
    pub baseline_requests: u64,
    pub baseline_errors: u64,
    pub seconds: f64,
    /// Seconds into the phase when the cohort was withdrawn, if it was.
    pub withdrawn_after_s: Option<f64>,
    /// Requests sent (both versions) until the withdrawal.
    pub requests_to_withdrawal: Option<u64>,
    /// The last verdict per metric, and the judge's and the gate's state.
    pub verdicts: Vec<(String, String)>,
    pub decision: String,
    pub gate: String,
    /// The judge's and the gate's log lines for the canary: each verdict
    /// change and decision, with its reason.
    pub log: Vec<String>,
}

impl JudgedResult {
    /// The canary's and the baseline's error ratio, in %.
    pub fn error_percents(&self) -> (f64, f64) {
        let pc = |e: u64, n: u64| {
            if n == 0 {
                0.0
            } else {
                100.0 * e as f64 / n as f64
            }
        };
        (
            pc(self.canary_errors, self.canary_requests),
            pc(self.baseline_errors, self.baseline_requests),
        )
    }

    /// The reason of the judge's last decision, as its log line gives it
    /// ("canary judge v2 vs v1: wait -> hold (reason)").
    pub fn reason(&self) -> &str {
        const DECISIONS: [&str; 4] = ["wait", "promote", "hold", "withdraw"];
        self.log
            .iter()
            .rev()
            .filter(|l| l.starts_with("canary judge "))
            .find_map(|l| {
                let (_, r) = l.split_once(" -> ")?;
                let (decision, r) = r.split_once(" (")?;
                DECISIONS.contains(&decision).then_some(())?;
                r.strip_suffix(')')
            })
            .unwrap_or("-")
    }

    /// The verdicts in one line: "errors worse, latency-shift not-worse, ...".
    pub fn verdict_line(&self) -> String {
        let v: Vec<String> = self
            .verdicts
            .iter()
            .map(|(m, v)| format!("{m} {v}"))
            .collect();
        v.join(", ")
    }

    /// The last verdict read for `metric`.
    pub fn verdict(&self, metric: &str) -> &str {
        self.verdicts
            .iter()
            .find(|(m, _)| m == metric)
            .map_or("-", |(_, v)| v.as_str())
    }
}

/// Exercise 8's cost of a bad deployment, per deployment and per month.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BusinessView {
    pub before_per_deploy: f64,
    pub before_per_month: f64,
    pub manual_per_deploy: f64,
    pub manual_per_month: f64,
    pub gate_per_deploy: f64,
    pub gate_per_month: f64,
    pub saved_per_month: f64,
}

/// Everything one run measured; a phase not played leaves its part empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Results {
    pub all_at_once: Option<Exposure>,
    pub all_at_once_on_v2: f64,
    pub steps: Vec<StepResult>,
    pub cohorts: Option<CohortResult>,
    pub outlier_only: Option<Exposure>,
    pub gated: Option<Exposure>,
    pub v3_withdrawn: bool,
    /// The broken v3 under the same gate with judgment on: the sequential
    /// decision instead of the fixed `minSamples`.
    pub judged_gate: Option<Exposure>,
    pub v3_withdrawn_by_judge: bool,
    pub promotion: Vec<PromotionStep>,
    pub business: Option<BusinessView>,
    pub identity: Option<IdentityResult>,
    /// Phase 7 (subtle regression) and phase 8 (shared incident).
    pub judged: Vec<JudgedResult>,
    /// The productpage sidecar's samples, per (sub-)phase.
    pub timelines: Vec<(String, Vec<Sample>)>,
    pub rate: f64,
    pub users: usize,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use canary_e2e::traffic::Kind;

    use super::*;

    fn record(user: usize, status: u16) -> Record {
        Record {
            user,
            kind: Kind::Regular,
            sent: SystemTime::UNIX_EPOCH,
            latency: Duration::ZERO,
            status,
            upstream: None,
            cohort: None,
        }
    }

    #[test]
    fn the_reason_is_the_judges_last_decision_not_a_verdict_change() {
        let j = JudgedResult {
            log: vec![
                "canary judge v2 vs v1: wait -> hold (baseline failing too: both break x)".into(),
                "canary gate v2: unknown -> hold (baseline failing too: both break x (1 > 0))"
                    .into(),
                "canary judge v2 vs v1: errors inconclusive -> not-worse (evidence 4.7)".into(),
            ],
            ..Default::default()
        };
        assert_eq!(j.reason(), "baseline failing too: both break x");
        assert_eq!(JudgedResult::default().reason(), "-");
    }

    #[test]
    fn a_5xx_or_no_response_counts_as_an_error_against_its_user() {
        let records = [
            record(1, 200),
            record(1, 503),
            record(2, 0),
            record(3, 404),
            record(3, 200),
        ];
        let e = Exposure::of(&records);
        assert_eq!((e.requests, e.errors), (5, 2));
        assert_eq!((e.users, e.users_with_error), (3, 2));
        assert!((e.blast_radius() - 2.0 / 3.0).abs() < 1e-9);
    }
}
