//! The canary judged against its baseline inside the gates' tick: which
//! version is the baseline, feeding each worker VM's new requests into the
//! shared [`Judge`], and folding the judge's decision into the canary's gate
//! state. The statistics are [`crate::judge`]; this file only wires them.

use super::eval::{GateState, Verdict as Gate};
use super::shared::{Pair, SharedState};
use super::window::{Delta, BINS};
use crate::config::gates::{Condition, Gates, Trigger};
use crate::config::judgment::Judgment;
use crate::judge::evidence::log_threshold;
use crate::judge::ratio::Above;
use crate::judge::{decide, Decision, Limit, Metric, Tick, Verdicts};
use crate::version::{OTHER, UNKNOWN};

/// How the burn-rate page reads in a reason.
const BURN_LIMIT: &str = "the burn-rate page";

/// The decisions by gauge value, for log lines.
const DECISIONS: [&str; 4] = ["wait", "promote", "hold", "withdraw"];

/// What the judge said on this tick, for gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub canary: String,
    pub baseline: Option<String>,
    pub verdicts: Verdicts,
    /// 0 wait, 1 promote, 2 hold, 3 withdraw.
    pub decision: u8,
}

fn decision_code(d: &Decision<'_>) -> u8 {
    match d {
        Decision::Wait(_) => 0,
        Decision::Promote(_) => 1,
        Decision::Hold(_) => 2,
        Decision::Withdraw(_) => 3,
    }
}

/// One version's new requests on this VM, summed over the delta's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub errors: u64,
    pub status_5xx: u64,
    pub latency: [u64; BINS],
}

impl Counts {
    pub fn of(deltas: &[(String, Delta)], version: &str) -> Counts {
        let mut c = Counts {
            requests: 0,
            errors: 0,
            status_5xx: 0,
            latency: [0; BINS],
        };
        for (_, cell) in deltas
            .iter()
            .filter(|(v, _)| v == version)
            .flat_map(|(_, d)| d.entries())
        {
            c.requests += u64::from(cell.requests);
            c.errors += u64::from(cell.error_total());
            c.status_5xx += u64::from(cell.status_5xx);
            for (t, l) in c.latency.iter_mut().zip(cell.latency) {
                *t += u64::from(l);
            }
        }
        c
    }

    fn tick(&self) -> Tick<'_> {
        Tick {
            requests: self.requests,
            errors: self.errors,
            latency: &self.latency,
        }
    }
}

/// The baseline: the configured one, else the busiest version other than
/// the canary over the fine ring. A chosen baseline stays while it still has
/// traffic there, so two versions of similar load do not take turns (each
/// change restarts the evidence).
pub fn baseline(
    j: &Judgment,
    canary: &str,
    st: &SharedState,
    g: &Gates,
    now_ms: u64,
) -> Option<String> {
    if let Some(b) = &j.baseline_version {
        return Some(b.clone());
    }
    let span = g.bucket_ms * g.fine_len as u64;
    let requests = |name: &str| {
        st.versions
            .iter()
            .find(|v| v.name == name)
            .map_or(0, |v| v.fine.sum(now_ms, span).requests)
    };
    if let Some(p) = &st.pair {
        if requests(&p.baseline) > 0 {
            return Some(p.baseline.clone());
        }
    }
    st.versions
        .iter()
        .filter(|v| v.name != canary && v.name != OTHER && v.name != UNKNOWN)
        .map(|v| (v.fine.sum(now_ms, span).requests, &v.name))
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, _)| *n)
        .map(|(_, name)| name.clone())
}

/// The level a rollback trigger's sequential test runs against: a ratio
/// trigger that fires at once (no `for`), at a level the test can take.
fn sequential_level(t: &Trigger) -> Option<f64> {
    let x = match t.condition {
        Condition::ErrorRatioAbove(x) | Condition::Status5xxRatioAbove(x) => x,
        Condition::P99Above(_) => return None,
    };
    (t.for_ms == 0 && Above::applies(x)).then_some(x)
}

/// The events a ratio trigger counts in `c`.
fn events(t: &Trigger, c: &Counts) -> u64 {
    match t.condition {
        Condition::Status5xxRatioAbove(_) => c.status_5xx,
        _ => c.errors,
    }
}

/// Per rollback trigger, whether its sequential test shows the canary's
/// ratio above the level (at the errors confidence), and whether it shows
/// the baseline's there at half that evidence (see `docs/gates.md`: the
/// lower bar for the baseline only turns a withdrawal into a hold).
fn sequential_breaks(j: &Judgment, limits: &[[Above; 2]], i: usize) -> (bool, bool) {
    let threshold = log_threshold(j.judge.errors.confidence);
    limits.get(i).map_or((false, false), |[c, b]| {
        (c.log_e() >= threshold, b.log_e() >= threshold / 2.0)
    })
}

/// Feeds this VM's new requests into the rollback triggers' sequential
/// tests: the canary's always, the baseline's while it stays the same
/// version (a new baseline starts its column afresh).
fn feed_limits(
    g: &Gates,
    st: &mut SharedState,
    baseline: Option<&str>,
    canary: &str,
    deltas: &[(String, Delta)],
) {
    let same = st.pair.as_ref().map(|p| p.baseline.as_str()) == baseline;
    st.limits.resize(g.triggers.len(), [Above::default(); 2]);
    let c = Counts::of(deltas, canary);
    let b = baseline.map(|b| Counts::of(deltas, b));
    for (t, trig) in st.limits.iter_mut().zip(&g.triggers) {
        if !same {
            t[1] = Above::default();
        }
        if let Some(x) = sequential_level(trig) {
            t[0].update(x, c.requests, events(trig, &c));
            if let Some(b) = &b {
                t[1].update(x, b.requests, events(trig, b));
            }
        }
    }
}

/// Feeds this VM's new requests of the canary and the baseline into the
/// shared judge (inside the CAS loop, so each request is judged once) and
/// returns the verdicts with a log line per changed verdict. A new baseline
/// starts from no evidence.
pub fn judge(
    g: &Gates,
    j: &Judgment,
    st: &mut SharedState,
    baseline: Option<&str>,
    canary: &str,
    deltas: &[(String, Delta)],
    log: &mut Vec<String>,
) -> Verdicts {
    feed_limits(g, st, baseline, canary, deltas);
    let Some(baseline) = baseline else {
        st.pair = None;
        return Verdicts::default();
    };
    let pair = match &mut st.pair {
        Some(p) if p.baseline == baseline => p,
        slot => {
            if let Some(old) = slot.as_ref() {
                log.push(format!(
                    "canary judge {canary}: baseline {} -> {baseline}, evidence restarts",
                    old.baseline
                ));
            }
            slot.insert(Pair::new(baseline))
        }
    };
    let c = Counts::of(deltas, canary);
    let b = Counts::of(deltas, baseline);
    let verdicts = if c.requests + b.requests > 0 {
        pair.judge.tick(&j.judge, c.tick(), b.tick())
    } else {
        pair.judge.verdicts(&j.judge)
    };
    for (last, m) in pair.last.iter_mut().zip(Metric::ALL) {
        let now = verdicts.get(m);
        if now.verdict != *last {
            log.push(format!(
                "canary judge {canary} vs {baseline}: {m} {} -> {now}",
                last.label()
            ));
            *last = now.verdict;
        }
    }
    verdicts
}

/// Folds the judge's decision into the canary's gate verdict: `withdraw`
/// reads `rollback` (which withdraws the cohorts), `hold` reads `hold` with
/// its reason, `wait` keeps a `pass` from showing, `promote` leaves the
/// gates' own promotion rules to decide. Logs the decision when it changed.
/// `on_failure` (a decision right after a failed canary request): the
/// canary's windowed limits do not count, and only a withdrawal is applied.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    g: &Gates,
    j: &Judgment,
    st: &mut SharedState,
    verdicts: &Verdicts,
    canary: (&str, &mut Gate),
    baseline: Option<&Gate>,
    log: &mut Vec<String>,
    on_failure: bool,
) -> u8 {
    let (name, canary) = canary;
    let names = g
        .triggers
        .iter()
        .map(|t| t.label.as_str())
        .chain([BURN_LIMIT]);
    let seq = &st.limits;
    let limits: Vec<Limit<'_>> = names
        .zip(&canary.broken)
        .enumerate()
        .map(|(i, (name, c))| {
            let (sc, sb) = sequential_breaks(j, seq, i);
            Limit {
                name,
                canary_breaks: (*c && !on_failure) || sc,
                baseline_breaks: sb || baseline.is_some_and(|b| b.holding.get(i) == Some(&true)),
            }
        })
        .collect();
    let d = decide(&j.policy, &verdicts.by_metric(), &limits);
    let code = decision_code(&d);
    if on_failure && !matches!(d, Decision::Withdraw(_)) {
        return code;
    }
    if let Some(p) = st.pair.as_mut().filter(|p| p.decision != code) {
        log.push(format!(
            "canary judge {name} vs {}: {} -> {} ({})",
            p.baseline,
            DECISIONS[usize::from(p.decision & 3)],
            d.label(),
            d.reason()
        ));
        p.decision = code;
    }
    let (state, reason) = match d {
        Decision::Withdraw(r) => (GateState::Rollback, r.to_string()),
        Decision::Hold(r) => (GateState::Hold, r.to_string()),
        Decision::Wait(r) if canary.state == GateState::Pass => {
            (GateState::Hold, format!("judge: {r}"))
        }
        Decision::Wait(_) | Decision::Promote(_) => return code,
    };
    // A fired trigger's own words (the measured ratio) stay in the reason.
    canary.reason = if canary.state == GateState::Rollback {
        format!("{reason} ({})", canary.reason)
    } else {
        reason
    };
    canary.state = state;
    code
}
