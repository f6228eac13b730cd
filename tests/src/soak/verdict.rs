//! What a soak run must show, decided from its samples and counts: every
//! request accounted for in the filter's counters, no failure before the
//! canary starts failing, no growth of memory or stats once warm, and the gate
//! reacting to the failing canary. Pure, so each rule is unit-tested.

use std::collections::BTreeMap;

use super::memory::LinearMemory;

/// The run's timeline, in seconds from the start of traffic.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Plan {
    pub warmup_s: f64,
    /// When the canary starts failing.
    pub half_s: f64,
    /// Time after `half_s` for the new series (errors, withdrawn cohorts) to
    /// appear before the stat count must hold still again.
    pub settle_s: f64,
    pub end_s: f64,
    pub rss_slack_kib: u64,
}

/// One look at Envoy during the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub at_s: f64,
    pub rss_kib: u64,
    pub vms: Vec<LinearMemory>,
    /// Every stat Envoy exports (lines of `/stats`).
    pub stats: usize,
    /// The filter's own series among them.
    pub canary_stats: usize,
    /// Open downstream connections: Envoy's RSS follows them, so they tell
    /// load from leak when RSS moves.
    pub connections: u64,
    /// Filter series that were not there at the previous sample.
    pub new_series: Vec<String>,
    /// `canary_gate_state` of the canary version (0 unknown .. 3 rollback).
    pub gate_state: Option<u64>,
    pub withdrawn: Option<u64>,
}

impl Sample {
    pub fn largest_vm_kib(&self) -> u64 {
        self.vms.iter().map(|m| m.size_kib).max().unwrap_or(0)
    }
}

/// Requests by code class, as the client saw them and as the filter counted them.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Accounting {
    pub sent: BTreeMap<String, u64>,
    pub counted: BTreeMap<String, u64>,
    /// (seconds, status) of requests that failed before the canary did.
    pub failed_early: Vec<(f64, u16)>,
}

/// A gate state change from the filter's log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Transition {
    pub at_s: f64,
    pub line: String,
}

/// Stat count, memory and the largest VM over one part of the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub from_s: f64,
    pub to_s: f64,
    pub stats: (usize, usize),
    pub canary_stats: (usize, usize),
    pub rss_kib: (u64, u64),
    pub largest_vm_kib: (u64, u64),
    pub gate_transitions: usize,
}

/// The run's parts: warm-up, healthy canary, onset of the failure, failing canary.
pub fn phases(plan: &Plan, samples: &[Sample], transitions: &[Transition]) -> Vec<Phase> {
    let bounds = [
        ("warm-up", 0.0, plan.warmup_s),
        ("healthy", plan.warmup_s, plan.half_s),
        ("onset", plan.half_s, plan.half_s + plan.settle_s),
        ("failing", plan.half_s + plan.settle_s, f64::INFINITY),
    ];
    bounds
        .iter()
        .filter_map(|&(name, from, to)| {
            let inside: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.at_s >= from && s.at_s < to)
                .collect();
            let (first, last) = (inside.first()?, inside.last()?);
            Some(Phase {
                name,
                from_s: first.at_s,
                to_s: last.at_s,
                stats: (first.stats, last.stats),
                canary_stats: (first.canary_stats, last.canary_stats),
                rss_kib: (first.rss_kib, last.rss_kib),
                largest_vm_kib: (first.largest_vm_kib(), last.largest_vm_kib()),
                gate_transitions: transitions
                    .iter()
                    .filter(|t| t.at_s >= from && t.at_s < to)
                    .count(),
            })
        })
        .collect()
}

fn new_series_between(samples: &[Sample], from: f64, to: f64) -> Vec<String> {
    samples
        .iter()
        .filter(|s| s.at_s > from && s.at_s <= to)
        .flat_map(|s| s.new_series.iter().cloned())
        .collect()
}

/// Every rule the run broke, one line each; empty when it passed.
pub fn problems(
    plan: &Plan,
    samples: &[Sample],
    acc: &Accounting,
    transitions: &[Transition],
) -> Vec<String> {
    let mut out = vec![];
    let sent: u64 = acc.sent.values().sum();
    let counted: u64 = acc.counted.values().sum();
    let classes: std::collections::BTreeSet<&String> =
        acc.sent.keys().chain(acc.counted.keys()).collect();
    let differ: Vec<String> = classes
        .into_iter()
        .filter_map(|c| {
            let (s, k) = (
                acc.sent.get(c).copied().unwrap_or(0),
                acc.counted.get(c).copied().unwrap_or(0),
            );
            (s != k).then(|| format!("{c}: sent {s}, counted {k}"))
        })
        .collect();
    if !differ.is_empty() {
        out.push(format!(
            "canary_requests_total counted {counted} of {sent} requests sent ({})",
            differ.join("; ")
        ));
    }
    if let Some((at, status)) = acc.failed_early.first() {
        out.push(format!(
            "{} requests failed before the canary did (first at {at:.1} s, status {status})",
            acc.failed_early.len()
        ));
    }

    let warm = samples.iter().find(|s| s.at_s >= plan.warmup_s);
    let (Some(warm), Some(last)) = (warm, samples.last()) else {
        out.push("the run ended before warm-up did: no sample to compare".into());
        return out;
    };
    for p in phases(plan, samples, transitions) {
        if !matches!(p.name, "healthy" | "failing") {
            continue;
        }
        if p.stats.1 > p.stats.0 || p.canary_stats.1 > p.canary_stats.0 {
            let new = new_series_between(samples, p.from_s, p.to_s);
            out.push(format!(
                "stats grew during the {} phase ({:.0}-{:.0} s): {} -> {} exported, {} -> {} of the filter's{}",
                p.name,
                p.from_s,
                p.to_s,
                p.stats.0,
                p.stats.1,
                p.canary_stats.0,
                p.canary_stats.1,
                if new.is_empty() { String::new() } else { format!(" (new: {})", new.join(", ")) }
            ));
        }
    }
    if last.rss_kib > warm.rss_kib + plan.rss_slack_kib {
        let most = samples.iter().map(|s| s.connections).max().unwrap_or(0);
        out.push(format!(
            "RSS grew after warm-up: {} KiB at {:.0} s -> {} KiB at {:.0} s (slack {} KiB; open connections {} -> {}, at most {most})",
            warm.rss_kib, warm.at_s, last.rss_kib, last.at_s, plan.rss_slack_kib, warm.connections, last.connections
        ));
    }
    let largest_later = samples
        .iter()
        .filter(|s| s.at_s >= warm.at_s)
        .map(Sample::largest_vm_kib)
        .max()
        .unwrap_or(0);
    if largest_later > warm.largest_vm_kib() {
        out.push(format!(
            "a VM's linear memory grew after warm-up: {} KiB -> {largest_later} KiB",
            warm.largest_vm_kib()
        ));
    }
    if !transitions
        .iter()
        .any(|t| t.at_s >= plan.half_s && t.line.contains("-> rollback"))
    {
        out.push("the canary failed but its gate never went to rollback".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            warmup_s: 10.0,
            half_s: 50.0,
            settle_s: 10.0,
            end_s: 100.0,
            rss_slack_kib: 1024,
        }
    }

    fn sample(at_s: f64, stats: usize, rss_kib: u64, vm_kib: u64) -> Sample {
        Sample {
            at_s,
            rss_kib,
            vms: vec![LinearMemory {
                size_kib: vm_kib,
                rss_kib: 60,
            }],
            stats,
            canary_stats: stats / 10,
            connections: 8,
            new_series: vec![],
            gate_state: None,
            withdrawn: None,
        }
    }

    /// A run that passes: stats jump only at the onset of the failure.
    fn good() -> (Vec<Sample>, Accounting, Vec<Transition>) {
        let samples = (0..=20)
            .map(|i| {
                let t = f64::from(i) * 5.0;
                let stats = if t < 55.0 { 500 } else { 520 };
                sample(t, stats, 100_000 + i as u64, 1088)
            })
            .collect();
        let mut acc = Accounting::default();
        acc.sent.insert("2xx".into(), 900);
        acc.sent.insert("5xx".into(), 100);
        acc.counted = acc.sent.clone();
        let t = vec![Transition {
            at_s: 53.0,
            line: "canary gate v2: pass -> rollback (error ratio)".into(),
        }];
        (samples, acc, t)
    }

    #[test]
    fn a_clean_run_has_no_problems_and_four_phases() {
        let (s, a, t) = good();
        assert_eq!(problems(&plan(), &s, &a, &t), Vec::<String>::new());
        let p = phases(&plan(), &s, &t);
        let names: Vec<&str> = p.iter().map(|p| p.name).collect();
        assert_eq!(names, ["warm-up", "healthy", "onset", "failing"]);
        assert_eq!(p[2].stats, (500, 520));
        assert_eq!(p[2].gate_transitions, 1);
    }

    #[test]
    fn a_request_missing_from_the_counters_fails_the_run_by_class() {
        let (s, mut a, t) = good();
        a.counted.insert("2xx".into(), 899);
        let p = problems(&plan(), &s, &a, &t);
        assert_eq!(
            p,
            ["canary_requests_total counted 999 of 1000 requests sent (2xx: sent 900, counted 899)"]
        );
    }

    #[test]
    fn a_failure_before_the_canary_fails_the_run() {
        let (s, mut a, t) = good();
        a.failed_early.push((12.5, 503));
        let p = problems(&plan(), &s, &a, &t);
        assert_eq!(
            p,
            ["1 requests failed before the canary did (first at 12.5 s, status 503)"]
        );
    }

    #[test]
    fn stats_that_grow_within_a_phase_fail_the_run_and_are_named() {
        let (mut s, a, t) = good();
        s[15].stats += 2;
        s[15].new_series = vec!["canary_version=.=v9".into()];
        for x in s.iter_mut().skip(16) {
            x.stats += 2;
        }
        let p = problems(&plan(), &s, &a, &t);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("stats grew during the failing phase"),
            "{}",
            p[0]
        );
        assert!(p[0].ends_with("(new: canary_version=.=v9)"), "{}", p[0]);
    }

    #[test]
    fn memory_growth_after_warm_up_fails_the_run() {
        let (mut s, a, t) = good();
        s.last_mut().unwrap().rss_kib += 4096;
        s[12].vms[0].size_kib = 1152;
        let p = problems(&plan(), &s, &a, &t);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("RSS grew after warm-up"));
        assert_eq!(
            p[1],
            "a VM's linear memory grew after warm-up: 1088 KiB -> 1152 KiB"
        );
    }

    #[test]
    fn a_gate_that_never_rolls_back_fails_the_run() {
        let (s, a, _) = good();
        let p = problems(&plan(), &s, &a, &[]);
        assert_eq!(p, ["the canary failed but its gate never went to rollback"]);
    }
}
