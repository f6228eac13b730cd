//! The fleet view: the same judge, fed from Prometheus instead of one
//! sidecar's ticks. A range query gives each counter series (one per pod,
//! cohort and, for latency, `le`) at every step; [`add_growth`] turns one
//! series into its growth per step, the way Prometheus's `increase` reads a
//! counter: per series, a drop is a reset of that series alone, and a series
//! counts only between two of its own samples. The growth of all series of a
//! version, summed per step, makes the judge's ticks. A pod that leaves (its
//! series ends) or joins (its series starts) mid-range thus neither subtracts
//! nor counts twice, which summing the counters first and differencing the
//! sums would. A sidecar sees only its own slice of the traffic; this sees
//! all of it, through the same tests and the same guarantees (they hold for
//! ticks of any size).

use super::pair::{Judge, JudgeConfig, Tick, Verdicts};

/// Most latency buckets a range query may carry (the shipped bucket settings
/// have 18 with `+Inf`; the gates' own histogram 36).
pub const FLEET_BINS: usize = 40;

/// What one version served during one step of a range query, summed over
/// all its series (see [`add_growth`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth<'a> {
    pub requests: f64,
    pub errors: f64,
    /// Growth of the cumulative bucket counts, in ascending `le` order,
    /// `+Inf` last; both versions must use the same bounds.
    pub buckets: &'a [f64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("the canary and the baseline have a different number of steps or latency buckets")]
    Mismatch,
    #[error("{0} latency buckets; at most {FLEET_BINS}")]
    TooManyBuckets(usize),
}

/// How much one counter series grew between two of its samples; a counter
/// that went down was reset (its pod restarted), so all of its new value is
/// growth.
fn growth(now: f64, before: f64) -> f64 {
    let d = if now >= before { now - before } else { now };
    if d.is_finite() && d > 0.0 {
        d
    } else {
        0.0
    }
}

/// Adds one counter series' growth per step to `out`: `samples` are its
/// `(step, value)` pairs in ascending step order, with the steps where it has
/// no sample (not yet started, gone, or a missed scrape) left out. Each
/// sample adds its growth since the series' previous sample to its own step;
/// the first sample adds nothing. Steps past the end of `out` are ignored.
pub fn add_growth(samples: impl IntoIterator<Item = (usize, f64)>, out: &mut [f64]) {
    let mut before: Option<f64> = None;
    for (step, value) in samples {
        if let (Some(b), Some(o)) = (before, out.get_mut(step)) {
            *o += growth(value, b);
        }
        before = Some(value);
    }
}

/// A count from a sum of growths, whole and never negative.
fn count(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

struct Step {
    requests: u64,
    errors: u64,
    latency: [u64; FLEET_BINS],
}

impl Step {
    fn of(g: &Growth<'_>) -> Step {
        // The requests in each bucket, from the growth of the cumulative `le` counts.
        let mut latency = [0; FLEET_BINS];
        let mut below = 0.0;
        for (o, n) in latency.iter_mut().zip(g.buckets) {
            *o = count(n - below);
            below = n.max(below);
        }
        let requests = count(g.requests);
        Step {
            requests,
            // Counters are scraped at different moments: never more errors than requests.
            errors: count(g.errors).min(requests),
            latency,
        }
    }

    fn tick(&self) -> Tick<'_> {
        Tick {
            requests: self.requests,
            errors: self.errors,
            latency: &self.latency,
        }
    }
}

/// Judges the canary against its baseline over the steps of a range query
/// (`canary[i]` and `baseline[i]` over the same step), from no evidence,
/// and returns the verdicts after the last step. The caller combines them
/// with the limits through [`super::decide`].
pub fn judge_range(
    cfg: &JudgeConfig,
    canary: &[Growth<'_>],
    baseline: &[Growth<'_>],
) -> Result<Verdicts, FleetError> {
    let width = canary.first().map_or(0, |g| g.buckets.len());
    if canary.len() != baseline.len()
        || canary
            .iter()
            .chain(baseline)
            .any(|g| g.buckets.len() != width)
    {
        return Err(FleetError::Mismatch);
    }
    if width > FLEET_BINS {
        return Err(FleetError::TooManyBuckets(width));
    }
    let mut judge: Judge<FLEET_BINS> = Judge::default();
    let mut verdicts = judge.verdicts(cfg);
    for (c, b) in canary.iter().zip(baseline) {
        let (c, b) = (Step::of(c), Step::of(b));
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

    /// One step's growth summed over pods: requests, errors, buckets.
    type Summed = (f64, f64, [f64; 3]);

    /// The growth per step summed over `pods`, pod `p` having a sample at
    /// step `i` only where `alive(p, i)`, as a range query returns them.
    fn summed(pods: &[&Series], alive: impl Fn(usize, usize) -> bool) -> Vec<Summed> {
        let steps = pods[0].requests.len();
        let (mut r, mut e) = (vec![0.0; steps], vec![0.0; steps]);
        let mut le = [vec![0.0; steps], vec![0.0; steps], vec![0.0; steps]];
        for (p, pod) in pods.iter().enumerate() {
            let at = |i: &usize| alive(p, *i);
            add_growth((0..steps).filter(at).map(|i| (i, pod.requests[i])), &mut r);
            add_growth((0..steps).filter(at).map(|i| (i, pod.errors[i])), &mut e);
            for (j, out) in le.iter_mut().enumerate() {
                add_growth((0..steps).filter(at).map(|i| (i, pod.buckets[i][j])), out);
            }
        }
        (0..steps)
            .map(|i| (r[i], e[i], [le[0][i], le[1][i], le[2][i]]))
            .collect()
    }

    fn growths(s: &[Summed]) -> Vec<Growth<'_>> {
        s.iter()
            .map(|(r, e, b)| Growth {
                requests: *r,
                errors: *e,
                buckets: b,
            })
            .collect()
    }

    fn one(s: &Series) -> Vec<Summed> {
        summed(&[s], |_, _| true)
    }

    #[test]
    fn a_subtle_regression_summed_over_the_fleet_is_worse() {
        let (c, b) = (series(60, 1_000, 667, 100), series(60, 1_000, 10_000, 100));
        let (c, b) = (one(&c), one(&b));
        let v = judge_range(&JudgeConfig::default(), &growths(&c), &growths(&b)).unwrap();
        assert_eq!(v.errors.verdict, Verdict::Worse, "{}", v.errors);
        assert_eq!(v.errors.canary_samples, 60_000);
        assert_ne!(v.shift.verdict, Verdict::Worse);
    }

    #[test]
    fn two_identical_versions_are_not_worse() {
        let s = one(&series(120, 1_000, 1_000, 100));
        let v = judge_range(&JudgeConfig::default(), &growths(&s), &growths(&s)).unwrap();
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
        let (c, b) = (
            one(&series(30, 1_000, 0, 20)),
            one(&series(30, 1_000, 0, 200)),
        );
        let v = judge_range(&JudgeConfig::default(), &growths(&c), &growths(&b)).unwrap();
        assert_eq!(v.tail.verdict, Verdict::Worse, "{}", v.tail);
    }

    #[test]
    fn a_counter_reset_counts_the_new_value_as_growth_of_that_series_alone() {
        let mut out = [0.0; 5];
        // 0, 10, 25, reset to 4, 9: grew 10, 15, 4, 5.
        add_growth(
            [(0, 0.0), (1, 10.0), (2, 25.0), (3, 4.0), (4, 9.0)],
            &mut out,
        );
        assert_eq!(out, [0.0, 10.0, 15.0, 4.0, 5.0]);
        // A second series in the same sums is untouched by the first one's reset.
        add_growth((0..5).map(|i| (i, 100.0 + i as f64)), &mut out);
        assert_eq!(out, [0.0, 11.0, 16.0, 5.0, 6.0]);
        // A missed scrape: the growth lands on the next sample; NaN is no growth.
        let mut gap = [0.0; 4];
        add_growth([(0, 1.0), (2, 7.0), (3, f64::NAN)], &mut gap);
        assert_eq!(gap, [0.0, 0.0, 6.0, 0.0]);
    }

    #[test]
    fn a_pod_leaving_mid_range_neither_subtracts_nor_double_counts() {
        // Two canary pods with 1,000 requests a step each; the second one's
        // series ends after step 30 (the pod is gone), so the fleet served
        // 2,000 a step for 30 steps and 1,000 for the 30 after.
        let pod = series(60, 1_000, 1_000, 100);
        let canary = summed(&[&pod, &pod], |p, i| p == 0 || i <= 30);
        let base = one(&series(60, 2_000, 1_000, 100));
        let v = judge_range(&JudgeConfig::default(), &growths(&canary), &growths(&base)).unwrap();
        assert_eq!(v.errors.canary_samples, 2_000 * 30 + 1_000 * 30);
        assert_eq!(v.shift.canary_samples, 2_000 * 30 + 1_000 * 30);
    }

    #[test]
    fn a_pod_joining_mid_range_counts_from_its_first_sample() {
        // The second pod starts at step 20 with 20,000 requests already
        // counted by its first scrape: only its growth after that counts.
        let pod = series(60, 1_000, 1_000, 100);
        let canary = summed(&[&pod, &pod], |p, i| p == 0 || i >= 20);
        let base = one(&series(60, 2_000, 1_000, 100));
        let v = judge_range(&JudgeConfig::default(), &growths(&canary), &growths(&base)).unwrap();
        assert_eq!(v.errors.canary_samples, 1_000 * 20 + 2_000 * 40);
    }

    #[test]
    fn mismatched_series_are_refused() {
        let s = one(&series(3, 10, 0, 0));
        let t = growths(&s);
        let cfg = JudgeConfig::default();
        assert_eq!(judge_range(&cfg, &t, &t[..2]), Err(FleetError::Mismatch));
        let wide = [0.0; FLEET_BINS + 1];
        let w = [Growth {
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
