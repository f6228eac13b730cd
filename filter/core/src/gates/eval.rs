//! Turning windows into a verdict: `unknown`, `pass`, `hold` or `rollback`.
//!
//! Comparisons are strict, as the workshop module words them ("error rate > 0.2 %"
//! triggers, exactly 0.2 % does not; "< 0.05 %" passes, exactly 0.05 % holds).
//! A window with fewer than `minSamples` requests decides nothing: it can
//! neither fire a trigger nor pass a gate.

use super::window::{Cell, Counts, Ring};
use crate::config::duration::label_ms;
use crate::config::gates::{BurnPair, Condition, Gates};
use crate::decimal;
use crate::decimal::fixed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GateState {
    #[default]
    Unknown = 0,
    Pass = 1,
    Hold = 2,
    Rollback = 3,
}

impl GateState {
    pub fn label(self) -> &'static str {
        match self {
            GateState::Unknown => "unknown",
            GateState::Pass => "pass",
            GateState::Hold => "hold",
            GateState::Rollback => "rollback",
        }
    }

    pub fn from_u8(v: u8) -> GateState {
        match v {
            1 => GateState::Pass,
            2 => GateState::Hold,
            3 => GateState::Rollback,
            _ => GateState::Unknown,
        }
    }
}

/// Since when each condition has held; shared by all worker VMs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timers {
    pub triggers: Vec<Option<u64>>,
    pub held_since: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowStat {
    pub label: String,
    pub requests: u32,
    pub errors: u32,
    pub error_ratio: Option<f64>,
    /// Only for windows the fine ring covers.
    pub p99_us: Option<f64>,
    pub burn_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub state: GateState,
    /// Why, in words, for the log line on a state change.
    pub reason: String,
    pub windows: Vec<WindowStat>,
    /// Per rollback trigger, whether it fired; then whether the burn-rate
    /// page fired (counted only with `burnRate.rollback`). The judge compares
    /// these between the canary and its baseline.
    pub broken: Vec<bool>,
    /// The same, for conditions that hold now but may not yet have held for
    /// their duration or over `minSamples` requests: a baseline failing with
    /// the canary may cross either a moment later, and that must not
    /// withdraw the canary.
    pub holding: Vec<bool>,
}

fn ratio(part: u32, whole: u32) -> f64 {
    f64::from(part) / f64::from(whole)
}

fn pct(r: f64) -> String {
    format!("{} %", fixed(r * 100.0, 3))
}

fn ms(us: f64) -> String {
    format!("{} ms", fixed(us / 1_000.0, 1))
}

/// Evaluates one version at `now_ms`, updating its timers.
pub fn evaluate(
    g: &Gates,
    step_bp: u32,
    fine: &Ring,
    burn: &Ring<Counts>,
    now_ms: u64,
    t: &mut Timers,
) -> Verdict {
    t.triggers.resize(g.triggers.len(), None);
    let enough = |c: u32| c >= g.min_samples;
    let label = label_ms;

    // Rollback triggers.
    let mut fired: Option<String> = None;
    let mut broken = vec![false; g.triggers.len() + 1];
    let mut holding = vec![false; g.triggers.len() + 1];
    for (i, trig) in g.triggers.iter().enumerate() {
        let c: Cell = fine.sum(now_ms, trig.window_ms);
        let holds = if c.requests == 0 {
            None
        } else {
            match trig.condition {
                Condition::ErrorRatioAbove(x) => {
                    let r = ratio(c.error_total(), c.requests);
                    (r > x).then(|| format!("error ratio {} > {}", pct(r), pct(x)))
                }
                Condition::Status5xxRatioAbove(x) => {
                    let r = ratio(c.status_5xx, c.requests);
                    (r > x).then(|| format!("5xx ratio {} > {}", pct(r), pct(x)))
                }
                Condition::P99Above(x) => {
                    let p = c.quantile_us(0.99).unwrap_or(0.0);
                    (p > x).then(|| format!("P99 {} > {}", ms(p), ms(x)))
                }
            }
        };
        // Below `minSamples` the condition decides nothing for this version,
        // but still counts as holding: as a baseline's, it turns the
        // canary's withdrawal into a hold (see `holding`).
        let holds = match holds {
            Some(_) if !enough(c.requests) => {
                holding[i] = true;
                None
            }
            h => h,
        };
        match holds {
            Some(why) => {
                let since = *t.triggers[i].get_or_insert(now_ms);
                let held = now_ms.saturating_sub(since) >= trig.for_ms;
                broken[i] = held;
                holding[i] = true;
                if held && fired.is_none() {
                    fired = Some(format!(
                        "{why} over {} for {}",
                        label(trig.window_ms),
                        label(trig.for_ms)
                    ));
                }
            }
            None => t.triggers[i] = None,
        }
    }

    // Burn rates, per window, from the long ring.
    // The rate over a window, and whether that window has `minSamples`.
    let burn_rate = |w: u64| -> (f64, bool) {
        let c: Counts = burn.sum(now_ms, w);
        let r = if c.requests == 0 {
            0.0
        } else {
            ratio(c.errors, c.requests) / g.budget
        };
        (r, enough(c.requests))
    };
    let mut burning = false;
    let page = g.burn.iter().find_map(|b: &BurnPair| {
        let (l, long_enough) = burn_rate(b.long_ms);
        let (s, short_enough) = burn_rate(b.short_ms);
        let both = l > b.factor && s > b.factor;
        burning |= both;
        match (long_enough && short_enough, both) {
            (true, true) => Some(format!(
                "burn rate {}x over {} and {}x over {} > {}x",
                fixed(l, 1),
                b.long_label,
                fixed(s, 1),
                b.short_label,
                decimal::short(b.factor)
            )),
            _ => None,
        }
    });
    if g.burn_rollback {
        broken[g.triggers.len()] = page.is_some();
        holding[g.triggers.len()] = burning;
        if fired.is_none() {
            fired = page;
        }
    }

    let fine_span = g.bucket_ms * g.fine_len as u64;
    let windows = g
        .windows
        .iter()
        .map(|(lbl, w)| {
            let (counts, p99) = if *w <= fine_span {
                let c = fine.sum(now_ms, *w);
                (Counts::from(&c), c.quantile_us(0.99))
            } else {
                (burn.sum(now_ms, *w), None)
            };
            let er = (counts.requests > 0).then(|| ratio(counts.errors, counts.requests));
            WindowStat {
                label: lbl.clone(),
                requests: counts.requests,
                errors: counts.errors,
                error_ratio: er,
                p99_us: p99,
                burn_rate: er.map(|r| r / g.budget),
            }
        })
        .collect();

    if let Some(reason) = fired {
        t.held_since = None;
        return Verdict {
            state: GateState::Rollback,
            reason,
            windows,
            broken,
            holding,
        };
    }

    // Promotion gate for the current step.
    let p = g.promotion_for(step_bp);
    let c = fine.sum(now_ms, p.window_ms);
    let (state, reason) = if !enough(c.requests) {
        t.held_since = None;
        (
            GateState::Unknown,
            format!(
                "{} requests over {}, fewer than {} samples",
                c.requests,
                label(p.window_ms),
                g.min_samples
            ),
        )
    } else {
        let r = ratio(c.error_total(), c.requests);
        let p99 = c.quantile_us(0.99).unwrap_or(0.0);
        let failing = if r >= p.max_error_ratio {
            Some(format!(
                "error ratio {} is not below {}",
                pct(r),
                pct(p.max_error_ratio)
            ))
        } else if p99 >= p.max_p99_us {
            Some(format!("P99 {} is not below {}", ms(p99), ms(p.max_p99_us)))
        } else {
            match p.max_5xx {
                Some(m) if c.status_5xx > m => Some(format!(
                    "{} 5xx responses, at most {m} allowed",
                    c.status_5xx
                )),
                _ => None,
            }
        };
        match failing {
            Some(why) => {
                t.held_since = None;
                (GateState::Hold, why)
            }
            None => {
                let since = *t.held_since.get_or_insert(now_ms);
                let held = now_ms.saturating_sub(since);
                if held >= p.hold_ms {
                    (
                        GateState::Pass,
                        format!(
                            "gate for step {} % held {}",
                            decimal::short(f64::from(p.at_bp) / 100.0),
                            label(p.hold_ms)
                        ),
                    )
                } else {
                    (
                        GateState::Hold,
                        format!("gate met for {} of {}", label(held), label(p.hold_ms)),
                    )
                }
            }
        }
    };
    Verdict {
        state,
        reason,
        windows,
        broken,
        holding,
    }
}
