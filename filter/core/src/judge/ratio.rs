//! Is the canary's event ratio (errors, or requests slower than a threshold)
//! higher than the baseline's by more than a relative margin? A sequential
//! test, updated once per tick with that tick's new requests.
//!
//! # The test
//!
//! Condition on the events themselves. When an event happens, the chance that
//! the canary produced it is `theta = k s / (k s + 1 - s)`, where `s` is the
//! canary's share of the pair's requests and `k` the ratio of the canary's
//! event probability to the baseline's. The null hypothesis "not worse beyond
//! the margin" is `k <= 1 + margin`, i.e. `theta <= theta0`. Each event is then
//! a coin flip, and the likelihood ratio of an alternative `theta1 > theta0`
//! against `theta0` is a product over events of `theta1/theta0` (canary event)
//! or `(1-theta1)/(1-theta0)` (baseline event). Under the null each factor has
//! expectation at most 1, so the product is a test supermartingale; a weighted
//! mixture over several alternatives is one too (a *mixture SPRT*). Ville's
//! inequality bounds the chance that it ever reaches `1/alpha` by `alpha`.
//!
//! Why this test: conditioning on events removes the unknown baseline ratio
//! (the nuisance) exactly, so no plug-in estimate of it can inflate errors;
//! the event rate may change at any time (an incident, a quiet night) without
//! breaking the guarantee, because only "which version erred" is modelled; the
//! state is a handful of numbers; and a canary erring against an all-zero
//! baseline gains evidence with every error (Kayenta#426). A fixed-alternative
//! SPRT would be faster at one effect size and slow at the rest; the mixture
//! gives up a constant (`ln 1/weight`) to be near-optimal at every size.
//!
//! The traffic share `s` is estimated from the last [`SHARE_MEMORY`] requests
//! or so, the tick being scored included (older requests fade out). A long
//! memory would be steadier but wrong exactly when it matters: when an
//! incident raises both versions' errors while the canary's share drifts,
//! events scored against a stale, lower share read as canary errors. With a
//! short memory the share follows within a couple of ticks. Including the
//! tick also favours the null: a canary event's own request raises the share
//! it is scored against, a baseline event's lowers it. The guarantee below
//! is exact for a known share; with the share estimated, the A/A simulations
//! measure it (single-request ticks, incidents with a drifting share).
//! Scoring against a confidence bound of the share instead was tried: it
//! costs evidence on every event, which adds up to more than the effect of a
//! subtle regression.
//!
//! # Two margins
//!
//! `not-worse` is the same test the other way round, against its own margin:
//! the null "the canary's ratio is at least `1 + not_worse_margin` times the
//! baseline's". Proving a ratio below 1.2x takes hundreds of events, which a
//! service at 0.1 % errors needs hundreds of thousands of requests for;
//! ruling out 2x takes a small fraction of that. A canary between the two
//! margins may reach either verdict; `worse` always wins and is kept once
//! reached.
//!
//! # The floor
//!
//! Relative to an all-zero baseline every error is infinitely worse, so a
//! second, one-sample sequential test asks whether the canary's ratio is above
//! an absolute `floor` (a mixture of Bernoulli likelihood ratios). `worse`
//! needs both tests to reject (an intersection-union test: no multiplicity
//! cost). `not-worse` is reached by either the relative test in the other
//! direction or the canary being confidently below the floor; the union
//! costs a factor 2 on its threshold (Bonferroni).
//!
//! # Guarantees (under continuous monitoring, every tick, forever)
//!
//! - If the canary's event probability never exceeds `1 + margin` times the
//!   baseline's at the same time, or never exceeds the floor, `worse` is ever
//!   reached with probability at most `1 - confidence`.
//! - If it always exceeds both `1 + not_worse_margin` times the baseline's
//!   and the floor, `not-worse` is ever reached with probability at most
//!   `1 - confidence`.
//!
//! The conditioning treats the events of a tick as independent coin flips,
//! which is exact for Poisson arrivals and conservative otherwise (sampling
//! without replacement is less spread than with, Hoeffding 1963).

use super::codec::Codec;
use super::evidence::{log_mixture, log_term, log_threshold, Component};
use super::verdict::{MetricVerdict, Verdict};

/// About how many recent requests the traffic share is estimated from.
pub const SHARE_MEMORY: f64 = 200.0;

const fn c(value: f64, weight: f64) -> Component {
    Component { value, weight }
}

/// Alternatives for `worse`, as multiples of `1 + margin`. The gross one
/// (a version failing everything) weighs half, so a broken canary is stopped
/// after a few failed requests; the rest share the other half evenly.
const WORSE: [Component; 8] = [
    c(1.25, 0.5 / 7.0),
    c(1.5, 0.5 / 7.0),
    c(2.0, 0.5 / 7.0),
    c(3.0, 0.5 / 7.0),
    c(5.0, 0.5 / 7.0),
    c(10.0, 0.5 / 7.0),
    c(100.0, 0.5 / 7.0),
    c(1e6, 0.5),
];
/// Alternatives for `not-worse`, as multiples of `1 + not_worse_margin`.
const NOT_WORSE: [Component; 5] = [
    c(0.8, 0.2),
    c(0.6, 0.2),
    c(0.4, 0.2),
    c(0.2, 0.2),
    c(0.05, 0.2),
];
/// Alternatives above the floor, as multiples of it (capped at [`GROSS`]).
const FLOOR_WORSE: [Component; 5] = [
    c(1.5, 0.2),
    c(3.0, 0.2),
    c(10.0, 0.2),
    c(100.0, 0.2),
    c(f64::INFINITY, 0.2),
];
/// Alternatives below the floor, as multiples of it.
const FLOOR_OK: [Component; 3] = [c(0.5, 1.0 / 3.0), c(0.2, 1.0 / 3.0), c(0.0, 1.0 / 3.0)];
/// The largest event probability an alternative above the floor assumes.
const GROSS: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioConfig {
    /// Confidence of each verdict; `1 - confidence` bounds its error rate.
    pub confidence: f64,
    /// `worse` means a ratio above `(1 + margin)` times the baseline's.
    pub margin: f64,
    /// `not-worse` means a ratio below `(1 + not_worse_margin)` times the
    /// baseline's.
    pub not_worse_margin: f64,
    /// Ratios at or below this never count as `worse`; a canary confidently
    /// below it is `not-worse`. 0 turns the floor off. Must be below 0.5.
    pub floor: f64,
}

impl RatioConfig {
    /// Errors: 99 % confidence, `worse` above 1.2x the baseline's ratio,
    /// `not-worse` below 2x, 0.01 % floor.
    pub const ERRORS: RatioConfig = RatioConfig {
        confidence: 0.99,
        margin: 0.2,
        not_worse_margin: 1.0,
        floor: 1e-4,
    };
}

impl Default for RatioConfig {
    fn default() -> Self {
        RatioConfig::ERRORS
    }
}

/// Requests and events (errors, or slow requests) of one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    pub events: u64,
}

impl Tally {
    pub fn new(requests: u64, events: u64) -> Tally {
        Tally {
            requests,
            events: events.min(requests),
        }
    }

    fn add(&mut self, o: Tally) {
        self.requests = self.requests.saturating_add(o.requests);
        self.events = self.events.saturating_add(o.events.min(o.requests));
    }

    /// Events per request; 0 when nothing is seen.
    pub fn ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.events as f64 / self.requests as f64
        }
    }
}

/// What the test keeps between ticks: totals, the recent traffic share and
/// one log likelihood ratio per alternative (216 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RatioTest {
    pub canary: Tally,
    pub baseline: Tally,
    /// Recent canary requests and recent requests of both, decayed so their
    /// sum stays near [`SHARE_MEMORY`].
    recent: (f64, f64),
    worse: [f64; WORSE.len()],
    not_worse: [f64; NOT_WORSE.len()],
    floor_worse: Above,
    floor_ok: [f64; FLOOR_OK.len()],
}

/// A one-sample sequential test that a version's event probability is above
/// a level `x`: a mixture of Bernoulli likelihood ratios over alternatives
/// 1.5, 3, 10 and 100 times `x` and [`GROSS`] (each capped at `GROSS`), equal
/// weights. If the probability never exceeds `x`, [`Above::log_e`] ever
/// reaches `ln(1/alpha)` with probability at most `alpha`. It serves as the
/// errors test's floor and as the sequential form of a ratio rollback limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Above([f64; FLOOR_WORSE.len()]);

impl Above {
    /// Whether a test against `x` can run: a level in (0, [`GROSS`]).
    pub fn applies(x: f64) -> bool {
        x > 0.0 && x < GROSS
    }

    /// Adds `requests`, of which `events` were events, against level `x`.
    pub fn update(&mut self, x: f64, requests: u64, events: u64) {
        if !Self::applies(x) || requests == 0 {
            return;
        }
        let events = events.min(requests);
        let ok = requests - events;
        for (l, comp) in self.0.iter_mut().zip(&FLOOR_WORSE) {
            let p1 = (comp.value * x).min(GROSS);
            *l += log_term(events, p1 / x) + log_term(ok, (1.0 - p1) / (1.0 - x));
        }
    }

    /// The log e-value that the probability is above the level.
    pub fn log_e(&self) -> f64 {
        log_mixture(&FLOOR_WORSE, &self.0)
    }

    pub(crate) fn codec(&mut self, c: &mut impl Codec) -> Option<()> {
        c.f64s(&mut self.0)
    }
}

/// Chance that an event came from the canary, for share `s` and ratio `k`.
fn theta(s: f64, k: f64) -> f64 {
    let a = k * s;
    let d = a + (1.0 - s);
    if d <= 0.0 {
        0.0
    } else {
        a / d
    }
}

impl RatioTest {
    /// Adds one tick's new requests and events of each version.
    pub fn update(&mut self, cfg: &RatioConfig, canary: Tally, baseline: Tally) {
        let canary = Tally::new(canary.requests, canary.events);
        let baseline = Tally::new(baseline.requests, baseline.events);
        self.canary.add(canary);
        self.baseline.add(baseline);
        let (c, t) = &mut self.recent;
        *c += canary.requests as f64;
        *t += canary.requests as f64 + baseline.requests as f64;
        if *t > SHARE_MEMORY {
            *c *= SHARE_MEMORY / *t;
            *t = SHARE_MEMORY;
        }
        self.update_relative(cfg, canary, baseline);
        self.update_floor(cfg, canary);
    }

    fn update_relative(&mut self, cfg: &RatioConfig, canary: Tally, baseline: Tally) {
        let (c, t) = self.recent;
        if c >= t || canary.events + baseline.events == 0 {
            return;
        }
        let s = c / t;
        let score = |margin: f64, mult: f64| {
            let k = 1.0 + margin.max(0.0);
            let (t0, t1) = (theta(s, k), theta(s, k * mult));
            log_term(canary.events, t1 / t0) + log_term(baseline.events, (1.0 - t1) / (1.0 - t0))
        };
        for (l, comp) in self.worse.iter_mut().zip(&WORSE) {
            *l += score(cfg.margin, comp.value);
        }
        for (l, comp) in self.not_worse.iter_mut().zip(&NOT_WORSE) {
            *l += score(cfg.not_worse_margin, comp.value);
        }
    }

    fn update_floor(&mut self, cfg: &RatioConfig, canary: Tally) {
        let f = cfg.floor;
        if !(f > 0.0 && f < GROSS) || canary.requests == 0 {
            return;
        }
        let ok = canary.requests - canary.events;
        let score =
            |p1: f64| log_term(canary.events, p1 / f) + log_term(ok, (1.0 - p1) / (1.0 - f));
        self.floor_worse.update(f, canary.requests, canary.events);
        for (l, comp) in self.floor_ok.iter_mut().zip(&FLOOR_OK) {
            *l += score(comp.value * f);
        }
    }

    /// 64-bit words [`Self::codec`] reads or writes.
    pub(crate) const WORDS: usize =
        6 + WORSE.len() + NOT_WORSE.len() + FLOOR_WORSE.len() + FLOOR_OK.len();

    /// The state's fields, in encoding order.
    pub(crate) fn codec(&mut self, c: &mut impl Codec) -> Option<()> {
        for t in [&mut self.canary, &mut self.baseline] {
            c.u64(&mut t.requests)?;
            c.u64(&mut t.events)?;
        }
        c.f64(&mut self.recent.0)?;
        c.f64(&mut self.recent.1)?;
        c.f64s(&mut self.worse)?;
        c.f64s(&mut self.not_worse)?;
        self.floor_worse.codec(c)?;
        c.f64s(&mut self.floor_ok)
    }

    fn floor_on(cfg: &RatioConfig) -> bool {
        cfg.floor > 0.0 && cfg.floor < GROSS
    }

    /// Log e-value for `worse`: the weaker of the relative and floor tests.
    pub fn log_e_worse(&self, cfg: &RatioConfig) -> f64 {
        let rel = log_mixture(&WORSE, &self.worse);
        if Self::floor_on(cfg) {
            rel.min(self.floor_worse.log_e())
        } else {
            rel
        }
    }

    /// Log e-value for `not-worse`, less `ln 2` when the floor offers a
    /// second way there, so it compares with the same threshold.
    pub fn log_e_not_worse(&self, cfg: &RatioConfig) -> f64 {
        let rel = log_mixture(&NOT_WORSE, &self.not_worse);
        if Self::floor_on(cfg) {
            rel.max(log_mixture(&FLOOR_OK, &self.floor_ok)) - std::f64::consts::LN_2
        } else {
            rel
        }
    }

    pub fn verdict(&self, cfg: &RatioConfig) -> MetricVerdict {
        let threshold = log_threshold(cfg.confidence);
        let worse = self.log_e_worse(cfg);
        let not_worse = self.log_e_not_worse(cfg);
        MetricVerdict {
            verdict: Verdict::from_evidence(worse, not_worse, threshold),
            log_e_worse: worse,
            log_e_not_worse: not_worse,
            threshold,
            canary_samples: self.canary.requests,
            baseline_samples: self.baseline.requests,
            canary_estimate: self.canary.ratio(),
            baseline_estimate: self.baseline.ratio(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn run(cfg: &RatioConfig, ticks: &[(u64, u64, u64, u64)]) -> RatioTest {
        let mut t = RatioTest::default();
        for (cr, ce, br, be) in ticks {
            t.update(cfg, Tally::new(*cr, *ce), Tally::new(*br, *be));
        }
        t
    }

    #[test]
    fn nothing_seen_is_inconclusive() {
        let cfg = RatioConfig::ERRORS;
        let v = RatioTest::default().verdict(&cfg);
        assert_eq!(v.verdict, Verdict::Inconclusive);
        assert_eq!((v.canary_samples, v.baseline_samples), (0, 0));
    }

    #[test]
    fn a_few_errors_against_an_all_zero_baseline_become_worse() {
        // Kayenta#426: the canary errs 5 times in 1,000, the baseline never in 9,000.
        let cfg = RatioConfig::ERRORS;
        let mut t = RatioTest::default();
        for i in 0..100u64 {
            t.update(
                &cfg,
                Tally::new(10, u64::from(i % 20 == 0)),
                Tally::new(90, 0),
            );
        }
        let v = t.verdict(&cfg);
        assert_eq!(v.verdict, Verdict::Worse, "{v:?}");
        // One error alone is not enough evidence.
        let one = run(&cfg, &[(1_000, 1, 9_000, 0)]);
        assert_eq!(one.verdict(&cfg).verdict, Verdict::Inconclusive);
    }

    #[test]
    fn equal_ratios_never_read_worse_and_reach_not_worse() {
        let cfg = RatioConfig::ERRORS;
        // 1 % errors on both, 20 % canary share, 2,000 ticks.
        let mut t = RatioTest::default();
        for i in 0..2_000u64 {
            let ce = u64::from(i % 5 == 0);
            t.update(&cfg, Tally::new(20, ce), Tally::new(80, 1));
        }
        let v = t.verdict(&cfg);
        assert_eq!(v.verdict, Verdict::NotWorse, "{v:?}");
    }

    #[test]
    fn a_canary_below_the_floor_is_not_worse_even_against_a_perfect_baseline() {
        let cfg = RatioConfig::ERRORS;
        let t = run(&cfg, &[(100_000, 0, 100_000, 0)]);
        assert_eq!(t.verdict(&cfg).verdict, Verdict::NotWorse);
    }

    #[test]
    fn ratios_under_the_floor_never_count_as_worse() {
        // 20 errors in 1,000,000 against none: relatively damning, absolutely negligible.
        let cfg = RatioConfig::ERRORS;
        let t = run(&cfg, &[(1_000_000, 20, 1_000_000, 0)]);
        assert!(t.log_e_worse(&cfg) < t.verdict(&cfg).threshold);
        let no_floor = RatioConfig { floor: 0.0, ..cfg };
        let t = run(&no_floor, &[(1_000_000, 20, 1_000_000, 0)]);
        assert_eq!(t.verdict(&no_floor).verdict, Verdict::Worse);
    }

    #[test]
    fn a_canary_failing_everything_is_worse_within_a_few_requests() {
        let cfg = RatioConfig::ERRORS;
        let mut t = RatioTest::default();
        let mut failed = 0;
        // One request per tick, 10 % to the canary, the baseline healthy.
        for i in 0..1_000u64 {
            if i % 10 == 0 {
                failed += 1;
                t.update(&cfg, Tally::new(1, 1), Tally::default());
            } else {
                t.update(&cfg, Tally::default(), Tally::new(1, 0));
            }
            if t.verdict(&cfg).verdict == Verdict::Worse {
                break;
            }
        }
        assert!(failed <= 10, "{failed} failed requests");
    }

    #[test]
    fn events_beyond_requests_are_clamped() {
        let cfg = RatioConfig::ERRORS;
        let t = run(&cfg, &[(1, 5, 1, 0)]);
        assert_eq!(
            t.canary,
            Tally {
                requests: 1,
                events: 1
            }
        );
    }
}
