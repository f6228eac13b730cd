//! The fleet view: the same judge, fed from Prometheus instead of one
//! sidecar's ticks. A range query gives, per step, each version's counters
//! summed over all pods (cumulative over time, and over `le` for the latency
//! buckets); the increments between steps are the ticks. A sidecar sees only
//! its own slice of the traffic; this sees all of it, through the same tests
//! and the same guarantees (they hold for ticks of any size).

use super::pair::{Judge, JudgeConfig, Tick, Verdicts};

/// Most latency buckets a range query may carry (the shipped bucket settings
/// have 18 with `+Inf`; the gates' own histogram 36).
pub const FLEET_BINS: usize = 40;

/// One version at one step of a range query, summed over all pods.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Totals<'a> {
    pub requests: f64,
    pub errors: f64,
    /// Cumulative bucket counts in ascending `le` order, `+Inf` last; both
    /// versions must use the same bounds.
    pub buckets: &'a [f64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("the canary and the baseline have a different number of steps or latency buckets")]
    Mismatch,
    #[error("{0} latency buckets; at most {FLEET_BINS}")]
    TooManyBuckets(usize),
}

/// How much a counter grew between two steps; a counter that went down was
/// reset (a pod restarted), so all of its new value is growth.
fn growth(now: f64, before: f64) -> u64 {
    let d = if now >= before { now - before } else { now };
    if d.is_finite() && d > 0.0 {
        d.round() as u64
    } else {
        0
    }
}

/// The requests in each bucket between two steps, from cumulative `le` counts.
fn bins(now: &[f64], before: &[f64], out: &mut [u64; FLEET_BINS]) {
    *out = [0; FLEET_BINS];
    let (mut below_now, mut below_before) = (0.0, 0.0);
    for ((o, n), b) in out.iter_mut().zip(now).zip(before) {
        *o = growth(n - below_now, b - below_before);
        (below_now, below_before) = (*n, *b);
    }
}

struct Step {
    requests: u64,
    errors: u64,
    latency: [u64; FLEET_BINS],
}

impl Step {
    fn between(now: &Totals<'_>, before: &Totals<'_>) -> Step {
        let mut latency = [0; FLEET_BINS];
        bins(now.buckets, before.buckets, &mut latency);
        Step {
            requests: growth(now.requests, before.requests),
            errors: growth(now.errors, before.errors),
            latency,
        }
    }

    fn tick(&self) -> Tick<'_> {
        Tick {
            requests: self.requests,
            // Counters are scraped at different moments: never more errors than requests.
            errors: self.errors.min(self.requests),
            latency: &self.latency,
        }
    }
}

/// Judges the canary against its baseline over the steps of a range query
/// (`canary[i]` and `baseline[i]` at the same time), from no evidence, and
/// returns the verdicts after the last step. The caller combines them with
/// the limits through [`super::decide`].
pub fn judge_range(
    cfg: &JudgeConfig,
    canary: &[Totals<'_>],
    baseline: &[Totals<'_>],
) -> Result<Verdicts, FleetError> {
    if canary.len() != baseline.len()
        || canary
            .iter()
            .chain(baseline)
            .any(|t| t.buckets.len() != canary[0].buckets.len())
    {
        return Err(FleetError::Mismatch);
    }
    if let Some(t) = canary.first().filter(|t| t.buckets.len() > FLEET_BINS) {
        return Err(FleetError::TooManyBuckets(t.buckets.len()));
    }
    let mut judge: Judge<FLEET_BINS> = Judge::default();
    let mut verdicts = judge.verdicts(cfg);
    for (c, b) in canary.windows(2).zip(baseline.windows(2)) {
        let (c, b) = (Step::between(&c[1], &c[0]), Step::between(&b[1], &b[0]));
        verdicts = judge.tick(cfg, c.tick(), b.tick());
    }
    Ok(verdicts)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::judge::Verdict;

    /// Cumulative series of a version sending `per_step` requests a step,
    /// one error in `error_every`, one in `slow_every` in the slow bucket.
    struct Series {
        requests: Vec<f64>,
        errors: Vec<f64>,
        buckets: Vec<[f64; 3]>,
    }

    fn series(steps: usize, per_step: u64, error_every: u64, slow_every: u64) -> Series {
        let mut s = Series {
            requests: vec![0.0],
            errors: vec![0.0],
            buckets: vec![[0.0; 3]],
        };
        let (mut n, mut e, mut slow) = (0u64, 0u64, 0u64);
        for _ in 0..steps {
            for _ in 0..per_step {
                n += 1;
                e += u64::from(error_every > 0 && n % error_every == 0);
                slow += u64::from(slow_every > 0 && n % slow_every == 0);
            }
            s.requests.push(n as f64);
            s.errors.push(e as f64);
            // le="10ms", le="100ms", le="+Inf": nothing above 100 ms.
            s.buckets.push([(n - slow) as f64, n as f64, n as f64]);
        }
        s
    }

    fn totals(s: &Series) -> Vec<Totals<'_>> {
        (0..s.requests.len())
            .map(|i| Totals {
                requests: s.requests[i],
                errors: s.errors[i],
                buckets: &s.buckets[i],
            })
            .collect()
    }

    #[test]
    fn a_subtle_regression_summed_over_the_fleet_is_worse() {
        let (c, b) = (series(60, 1_000, 667, 100), series(60, 1_000, 10_000, 100));
        let v = judge_range(&JudgeConfig::default(), &totals(&c), &totals(&b)).unwrap();
        assert_eq!(v.errors.verdict, Verdict::Worse, "{}", v.errors);
        assert_eq!(v.errors.canary_samples, 60_000);
        assert_ne!(v.shift.verdict, Verdict::Worse);
    }

    #[test]
    fn two_identical_versions_are_not_worse() {
        let s = series(120, 1_000, 1_000, 100);
        let v = judge_range(&JudgeConfig::default(), &totals(&s), &totals(&s)).unwrap();
        assert_eq!(
            v.by_metric().map(|(_, v)| v),
            [Verdict::NotWorse; 3],
            "{} / {} / {}",
            v.errors,
            v.shift,
            v.tail
        );
    }

    #[test]
    fn a_tail_regression_shows_in_the_fleet_buckets() {
        let (c, b) = (series(30, 1_000, 0, 20), series(30, 1_000, 0, 200));
        let v = judge_range(&JudgeConfig::default(), &totals(&c), &totals(&b)).unwrap();
        assert_eq!(v.tail.verdict, Verdict::Worse, "{}", v.tail);
    }

    #[test]
    fn a_counter_reset_counts_the_new_value_as_growth() {
        assert_eq!(growth(30.0, 1_000.0), 30);
        assert_eq!(growth(1_010.0, 1_000.0), 10);
        assert_eq!(growth(f64::NAN, 0.0), 0);
        let mut out = [0; FLEET_BINS];
        bins(&[5.0, 9.0, 10.0], &[2.0, 3.0, 3.0], &mut out);
        assert_eq!(out[..3], [3, 3, 1]);
    }

    #[test]
    fn mismatched_series_are_refused() {
        let s = series(3, 10, 0, 0);
        let t = totals(&s);
        let cfg = JudgeConfig::default();
        assert_eq!(judge_range(&cfg, &t, &t[..2]), Err(FleetError::Mismatch));
        let wide = [0.0; FLEET_BINS + 1];
        let w = [Totals {
            requests: 0.0,
            errors: 0.0,
            buckets: &wide,
        }];
        assert_eq!(
            judge_range(&cfg, &w, &w),
            Err(FleetError::TooManyBuckets(FLEET_BINS + 1))
        );
    }
}
