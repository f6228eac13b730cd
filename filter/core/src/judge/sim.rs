//! Deterministic simulations of whole rollouts: a seeded generator, log-normal
//! latencies binned into the gates' buckets, and the judge looked at every
//! tick. The fast ones run with `cargo test`; the table in
//! `docs/judgment.md` comes from the ignored `judgment_table` test
//! (`cargo test -p canary-core --release --lib judgment_table -- --ignored --nocapture`).

use super::evidence::phi;
use super::pair::{Judge, JudgeConfig, Tick, Verdicts};
use super::policy::{decide, Decision, Limit, PolicyConfig};
use super::verdict::{Metric, Verdict};
use crate::gates::window::{BINS, BOUNDS_US};

/// SplitMix64: tiny, fast and good enough for simulation.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The low 21 bits of `bits` as a uniform number in [0, 1).
pub(crate) fn unit21(bits: u64) -> f64 {
    (bits & 0x1F_FFFF) as f64 / f64::from(1u32 << 21)
}

/// A log-normal latency as the gates' histogram sees it: the bucket for each
/// of 65,536 equally likely slices of probability, so a draw is one lookup.
#[derive(Clone)]
struct Latency {
    table: std::rc::Rc<[u8]>,
}

impl Latency {
    fn log_normal(median_ms: f64, sigma: f64) -> Latency {
        let mut cdf = [1.0; BINS];
        for (c, b) in cdf.iter_mut().zip(BOUNDS_US) {
            *c = phi(((b as f64 / 1_000.0).ln() - median_ms.ln()) / sigma);
        }
        // One pass: the slices are in order, so the bucket only moves up.
        let mut bucket = 0;
        let table = (0..1u32 << 16)
            .map(|i| {
                let u = (f64::from(i) + 0.5) / 65_536.0;
                while bucket < BINS - 1 && cdf[bucket] <= u {
                    bucket += 1;
                }
                bucket as u8
            })
            .collect();
        Latency { table }
    }

    fn sample(&self, bits: u64) -> usize {
        usize::from(self.table[(bits & 0xFFFF) as usize])
    }
}

#[derive(Clone)]
struct Version {
    error: f64,
    latency: Latency,
}

/// The stable version: 20 ms median, log-sd 0.5 (P99 about 64 ms).
const MEDIAN_MS: f64 = 20.0;
const SIGMA: f64 = 0.5;

fn stable(error: f64) -> Version {
    Version {
        error,
        latency: Latency::log_normal(MEDIAN_MS, SIGMA),
    }
}

#[derive(Clone)]
struct Scenario {
    /// The canary's share of the pair's requests.
    share: f64,
    per_tick: u32,
    canary: Version,
    baseline: Version,
}

struct Counts {
    requests: u64,
    errors: u64,
    latency: [u64; BINS],
}

impl Counts {
    fn new() -> Counts {
        Counts {
            requests: 0,
            errors: 0,
            latency: [0; BINS],
        }
    }

    /// One request, its outcome drawn from `bits`: 21 bits decide the
    /// error, the low 16 the latency.
    fn record(&mut self, v: &Version, bits: u64) {
        self.requests += 1;
        self.errors += u64::from(unit21(bits >> 22) < v.error);
        self.latency[v.latency.sample(bits)] += 1;
    }

    fn tick(&self) -> Tick<'_> {
        Tick {
            requests: self.requests,
            errors: self.errors,
            latency: &self.latency,
        }
    }
}

/// Where a rollout stopped.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    ticks: u64,
    canary_requests: u64,
    canary_errors: u64,
    requests: u64,
    verdicts: Verdicts,
    stopped: bool,
}

/// Plays up to `max_ticks` ticks, judging after each, until `stop` says so.
fn play(s: &Scenario, seed: u64, max_ticks: u64, stop: impl Fn(&Verdicts) -> bool) -> Run {
    play_phases(&[(max_ticks, s)], seed, stop)
}

/// Plays each scenario for its number of ticks in turn, as one rollout step.
fn play_phases(phases: &[(u64, &Scenario)], seed: u64, stop: impl Fn(&Verdicts) -> bool) -> Run {
    let cfg = JudgeConfig::default();
    let mut judge: Judge<BINS> = Judge::default();
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5DEE_CE66);
    let mut run = Run::default();
    for (ticks, s) in phases {
        for _ in 0..*ticks {
            let (mut c, mut b) = (Counts::new(), Counts::new());
            for _ in 0..s.per_tick {
                let bits = rng.next();
                if unit21(bits >> 43) < s.share {
                    c.record(&s.canary, bits);
                } else {
                    b.record(&s.baseline, bits);
                }
            }
            run.ticks += 1;
            run.canary_requests += c.requests;
            run.canary_errors += c.errors;
            run.requests += u64::from(s.per_tick);
            run.verdicts = judge.tick(&cfg, c.tick(), b.tick());
            if stop(&run.verdicts) {
                run.stopped = true;
                return run;
            }
        }
    }
    run
}

fn withdrawn(v: &Verdicts) -> bool {
    matches!(
        decide(&PolicyConfig::default(), &v.by_metric(), &[] as &[Limit]),
        Decision::Withdraw(_)
    )
}

fn worse(m: Metric) -> impl Fn(&Verdicts) -> bool {
    move |v: &Verdicts| v.get(m).verdict == Verdict::Worse
}

/// Rollouts withdrawn among `rollouts` seeded plays of `phases`, in total
/// and by the metric that read `worse`.
fn withdrawals(phases: &[(u64, &Scenario)], rollouts: u64) -> (u64, [u64; 3]) {
    let mut total = 0;
    let mut by_metric = [0u64; 3];
    for seed in 0..rollouts {
        let r = play_phases(phases, seed, withdrawn);
        if r.stopped {
            total += 1;
            for (n, (_, v)) in by_metric.iter_mut().zip(r.verdicts.by_metric()) {
                *n += u64::from(v == Verdict::Worse);
            }
        }
    }
    (total, by_metric)
}

/// Two identical versions: `share` of the requests to the canary, `error` each.
fn twins(share: f64, per_tick: u32, error: f64) -> Scenario {
    Scenario {
        share,
        per_tick,
        canary: stable(error),
        baseline: stable(error),
    }
}

/// A/A rollouts of `ticks` ticks of `per_tick` requests, a 20 % canary share, 1 % errors.
fn a_a(rollouts: u64, per_tick: u32, ticks: u64) -> (u64, [u64; 3]) {
    withdrawals(&[(ticks, &twins(0.2, per_tick, 0.01))], rollouts)
}

/// Both at 0.1 % errors and a 10 % canary share for 40 ticks, then an
/// incident takes both to 5 % while the canary's share drifts to 30 %: the
/// error rate and the share change together, the case a comparison of
/// totals gets wrong.
fn incident_with_drift(rollouts: u64, incident_ticks: u64) -> (u64, [u64; 3]) {
    withdrawals(
        &[
            (40, &twins(0.1, 100, 0.001)),
            (incident_ticks, &twins(0.3, 100, 0.05)),
        ],
        rollouts,
    )
}

#[test]
fn a_thousand_a_a_rollouts_looked_at_every_tick_withdraw_at_most_one_percent() {
    let (false_worse, by_metric) = a_a(1_000, 300, 50);
    assert!(
        false_worse <= 10,
        "{false_worse} of 1,000 A/A rollouts withdrawn (errors, shift, tail: {by_metric:?})"
    );
}

/// Failed canary requests before withdrawal for a canary failing everything,
/// one request per tick (the finest granularity: no batching helps).
fn failures_before_withdrawal(share: f64, seed: u64) -> u64 {
    let s = Scenario {
        share,
        per_tick: 1,
        canary: Version {
            error: 1.0,
            ..stable(0.0)
        },
        baseline: stable(0.001),
    };
    let r = play(&s, seed, 100_000, withdrawn);
    if r.stopped {
        r.canary_errors
    } else {
        u64::MAX
    }
}

#[test]
fn a_canary_failing_every_request_is_withdrawn_within_ten_failures() {
    for share in [0.01, 0.05, 0.1, 0.2] {
        let worst = (0..20)
            .map(|seed| failures_before_withdrawal(share, seed))
            .max()
            .unwrap_or(u64::MAX);
        assert!(worst <= 10, "share {share}: {worst} failed requests");
    }
}

#[test]
fn a_few_errors_against_an_all_zero_baseline_are_worse_once_evidence_suffices() {
    // Kayenta#426: the canary errs at 0.5 %, the baseline never.
    let s = Scenario {
        share: 0.1,
        per_tick: 100,
        canary: stable(0.005),
        baseline: stable(0.0),
    };
    for seed in 0..10 {
        let r = play(&s, seed, 2_000, worse(Metric::Errors));
        assert!(
            r.stopped,
            "seed {seed}: not worse after {} canary errors",
            r.canary_errors
        );
        assert!(
            r.canary_errors <= 12,
            "seed {seed}: {} canary errors",
            r.canary_errors
        );
    }
}

/// A canary whose P99 doubles around the same median: log-sd grows so that
/// `exp(2.326 sigma')` is twice `exp(2.326 sigma)`.
fn wider() -> Version {
    Version {
        error: 0.0,
        latency: Latency::log_normal(MEDIAN_MS, SIGMA + 2f64.ln() / 2.326),
    }
}

#[test]
fn variance_growth_with_the_same_median_is_worse_on_the_tail_only() {
    // Kayenta#780.
    let s = Scenario {
        share: 0.2,
        per_tick: 100,
        canary: wider(),
        baseline: stable(0.0),
    };
    for seed in 0..5 {
        let r = play(&s, seed, 1_000, worse(Metric::LatencyTail));
        assert!(
            r.stopped,
            "seed {seed}: tail not worse after {} requests",
            r.requests
        );
        assert_ne!(r.verdicts.shift.verdict, Verdict::Worse, "seed {seed}");
    }
}

#[test]
fn an_incident_shared_by_both_versions_is_not_worse() {
    // Both at 5 % errors: the relative test sees no difference, so only the
    // absolute limits fire, for both, and the policy holds.
    let s = twins(0.2, 100, 0.05);
    for seed in 0..20 {
        let r = play(&s, seed, 300, worse(Metric::Errors));
        assert!(!r.stopped, "seed {seed}");
        let both = [Limit {
            name: "error ratio > 0.2 %",
            canary_breaks: true,
            baseline_breaks: true,
        }];
        let d = decide(&PolicyConfig::default(), &r.verdicts.by_metric(), &both);
        assert_eq!(d.label(), "hold", "seed {seed}: {d:?}");
    }
}

#[test]
fn an_a_a_rollout_through_an_incident_and_a_drifting_share_is_rarely_withdrawn() {
    let (n, by_metric) = incident_with_drift(300, 40);
    assert!(n <= 3, "{n} of 300 withdrawn: {by_metric:?}");
}

#[test]
fn a_subtle_error_regression_under_the_absolute_trigger_is_worse() {
    // 0.15 % against 0.01 %: 15 times worse, under a 0.2 % rollback trigger.
    let s = Scenario {
        share: 0.2,
        per_tick: 100,
        canary: stable(0.0015),
        baseline: stable(0.0001),
    };
    let r = play(&s, 1, 5_000, worse(Metric::Errors));
    assert!(r.stopped, "not worse after {} requests", r.requests);
}

/// Median and 90th percentile of a sample; `u64::MAX` marks "not reached".
fn quantiles(mut xs: Vec<u64>) -> (u64, u64) {
    xs.sort_unstable();
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

fn cell(x: u64) -> String {
    if x == u64::MAX {
        "not reached".to_string()
    } else {
        x.to_string()
    }
}

#[test]
#[ignore = "a sweep of about a minute in release mode; prints the tables in docs/judgment.md"]
fn judgment_table() {
    let slower = |f: f64| Version {
        error: 0.0,
        latency: Latency::log_normal(MEDIAN_MS * f, SIGMA),
    };
    let rows: [(&str, Version, Version, Metric); 10] = [
        (
            "errors 2x, baseline 0.1 %",
            stable(0.002),
            stable(0.001),
            Metric::Errors,
        ),
        (
            "errors 3x, baseline 0.1 %",
            stable(0.003),
            stable(0.001),
            Metric::Errors,
        ),
        (
            "errors 10x, baseline 0.1 %",
            stable(0.01),
            stable(0.001),
            Metric::Errors,
        ),
        (
            "errors 2x, baseline 1 %",
            stable(0.02),
            stable(0.01),
            Metric::Errors,
        ),
        (
            "errors 3x, baseline 1 %",
            stable(0.03),
            stable(0.01),
            Metric::Errors,
        ),
        (
            "errors 10x, baseline 1 %",
            stable(0.1),
            stable(0.01),
            Metric::Errors,
        ),
        (
            "errors 15x, 0.15 % vs 0.01 %",
            stable(0.0015),
            stable(0.0001),
            Metric::Errors,
        ),
        (
            "median +20 %",
            slower(1.2),
            stable(0.0),
            Metric::LatencyShift,
        ),
        (
            "median +50 %",
            slower(1.5),
            stable(0.0),
            Metric::LatencyShift,
        ),
        (
            "P99 x2, same median (tail)",
            wider(),
            stable(0.0),
            Metric::LatencyTail,
        ),
    ];
    let rollouts = 100;
    println!("| regression | share | canary requests to `worse` (median) | (90th pct) | all requests (median) |");
    println!("|---|---|---|---|---|");
    for (name, canary, baseline, metric) in rows {
        for share in [0.1, 0.5] {
            let s = Scenario {
                share,
                per_tick: 100,
                canary: canary.clone(),
                baseline: baseline.clone(),
            };
            let runs: Vec<Run> = (0..rollouts)
                .map(|seed| play(&s, seed, 50_000, worse(metric)))
                .collect();
            let pick = |f: fn(&Run) -> u64| {
                quantiles(
                    runs.iter()
                        .map(|r| if r.stopped { f(r) } else { u64::MAX })
                        .collect(),
                )
            };
            let (c50, c90) = pick(|r| r.canary_requests);
            let (a50, _) = pick(|r| r.requests);
            println!(
                "| {name} | {:.0} % | {} | {} | {} |",
                share * 100.0,
                cell(c50),
                cell(c90),
                cell(a50)
            );
        }
    }
    println!();
    println!("| canary share | failed requests before withdrawal (median) | (worst of 100) |");
    println!("|---|---|---|");
    for share in [0.01, 0.05, 0.1, 0.2, 0.3, 0.5] {
        let xs: Vec<u64> = (0..rollouts)
            .map(|seed| failures_before_withdrawal(share, seed))
            .collect();
        let worst = xs.iter().copied().max().unwrap_or(u64::MAX);
        let (m, _) = quantiles(xs);
        println!("| {:.0} % | {} | {} |", share * 100.0, cell(m), cell(worst));
    }
    println!();
    let (fw, by) = a_a(10_000, 100, 1_000);
    println!("| A/A | withdrawn | errors | shift | tail |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, (n, by): (u64, [u64; 3])| {
        println!("| {name} | {n} | {} | {} | {} |", by[0], by[1], by[2]);
    };
    row(
        "10,000 rollouts of 1,000 ticks x 100 requests, 20 % share, 1 % errors",
        (fw, by),
    );
    row(
        "4,000 rollouts of 400 single-request ticks, 20 % share, 5 % errors",
        withdrawals(&[(400, &twins(0.2, 1, 0.05))], 4_000),
    );
    row(
        "4,000 rollouts of 400 single-request ticks, 50 % share, 20 % errors",
        withdrawals(&[(400, &twins(0.5, 1, 0.2))], 4_000),
    );
    row(
        "4,000 rollouts: 40 calm ticks, then a 5 % incident for 200 ticks with the share drifting from 10 to 30 %",
        incident_with_drift(4_000, 200),
    );
    println!();
    println!("| A/A, 20 % share | canary requests to `not-worse` (median) | (90th pct) |");
    println!("|---|---|---|");
    for (name, err) in [("errors 0.1 %", 0.001), ("errors 1 %", 0.01)] {
        let s = twins(0.2, 100, err);
        for m in Metric::ALL {
            if m != Metric::Errors && err > 0.005 {
                continue;
            }
            let runs: Vec<u64> = (0..rollouts)
                .map(|seed| {
                    let r = play(&s, seed, 50_000, move |v: &Verdicts| {
                        v.get(m).verdict == Verdict::NotWorse
                    });
                    if r.stopped {
                        r.canary_requests
                    } else {
                        u64::MAX
                    }
                })
                .collect();
            let (m50, m90) = quantiles(runs);
            let label = if m == Metric::Errors {
                name.to_string()
            } else {
                m.label().to_string()
            };
            println!("| {label} | {} | {} |", cell(m50), cell(m90));
        }
    }
}
