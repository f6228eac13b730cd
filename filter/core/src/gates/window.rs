//! Rolling windows of fixed-size time buckets.
//!
//! A [`Cell`] holds what one bucket saw for one version: requests, errors by
//! kind and a latency histogram. A [`Ring`] keeps the last N buckets, indexed
//! by absolute bucket number (`time / width`), so rings from different worker
//! VMs merge bucket by bucket, and a late or early timestamp lands where it
//! belongs or is dropped — never in the wrong bucket.

use crate::outcome::ErrorKind;

/// Upper bounds (microseconds, inclusive) of the latency bins. The workshop module's
/// thresholds (50, 100, 200 ms) are bounds, and bins are at most ~25 % wide
/// above 1 ms, so a P99 is within one bin of the truth.
pub const BOUNDS_US: [u64; 35] = [
    100, 250, 500, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 12_000, 15_000, 20_000,
    25_000, 30_000, 40_000, 50_000, 60_000, 75_000, 100_000, 125_000, 150_000, 200_000, 250_000,
    300_000, 400_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000, 5_000_000,
    10_000_000,
];
/// One more bin for everything above the last bound.
pub const BINS: usize = BOUNDS_US.len() + 1;
pub const KINDS: usize = ErrorKind::ALL.len();

/// The bin a latency falls in.
pub fn bin(us: u64) -> usize {
    BOUNDS_US.partition_point(|b| *b < us)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub requests: u32,
    /// Responses with a 5xx status, whoever sent them.
    pub status_5xx: u32,
    pub errors: [u32; KINDS],
    pub latency: [u32; BINS],
}

impl Default for Cell {
    fn default() -> Self {
        Cell {
            requests: 0,
            status_5xx: 0,
            errors: [0; KINDS],
            latency: [0; BINS],
        }
    }
}

/// One finished request as the gates see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub error: Option<ErrorKind>,
    pub status_5xx: bool,
    pub latency_us: u64,
}

impl Cell {
    pub fn record(&mut self, o: Outcome) {
        let Outcome {
            error,
            status_5xx,
            latency_us,
        } = o;
        self.requests = self.requests.saturating_add(1);
        if status_5xx {
            self.status_5xx = self.status_5xx.saturating_add(1);
        }
        if let Some(k) = error {
            let e = &mut self.errors[usize::from(k.index())];
            *e = e.saturating_add(1);
        }
        let b = &mut self.latency[bin(latency_us)];
        *b = b.saturating_add(1);
    }

    pub fn add(&mut self, o: &Cell) {
        self.requests = self.requests.saturating_add(o.requests);
        self.status_5xx = self.status_5xx.saturating_add(o.status_5xx);
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.latency.iter_mut().zip(o.latency) {
            *a = a.saturating_add(b);
        }
    }

    pub fn error_total(&self) -> u32 {
        self.errors.iter().fold(0u32, |a, b| a.saturating_add(*b))
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }

    /// Quantile `q` of the latency, in microseconds, interpolated linearly
    /// inside its bin as Prometheus' `histogram_quantile` does. `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|c| u64::from(*c)).sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, c) in self.latency.iter().enumerate() {
            let c = u64::from(*c);
            if c > 0 && (below + c) as f64 >= rank {
                let lower = if i == 0 { 0 } else { BOUNDS_US[i - 1] } as f64;
                // The overflow bin has no upper bound: report its lower edge.
                let Some(upper) = BOUNDS_US.get(i) else {
                    return Some(lower);
                };
                let into = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
                return Some(lower + (*upper as f64 - lower) * into);
            }
            below += c;
        }
        BOUNDS_US.last().map(|b| *b as f64)
    }
}

/// What a ring bucket holds: a full [`Cell`], or just [`Counts`] for the
/// long burn-rate windows, where a latency histogram per bucket would cost
/// tens of kilobytes per version for nothing.
pub trait Bucket: Default + Clone {
    fn add(&mut self, other: &Self);
    fn is_empty(&self) -> bool;
}

impl Bucket for Cell {
    fn add(&mut self, o: &Cell) {
        Cell::add(self, o);
    }
    fn is_empty(&self) -> bool {
        Cell::is_empty(self)
    }
}

/// Requests and errors only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u32,
    pub errors: u32,
}

impl From<&Cell> for Counts {
    fn from(c: &Cell) -> Self {
        Counts {
            requests: c.requests,
            errors: c.error_total(),
        }
    }
}

impl Bucket for Counts {
    fn add(&mut self, o: &Counts) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors = self.errors.saturating_add(o.errors);
    }
    fn is_empty(&self) -> bool {
        self.requests == 0
    }
}

/// The last `len` buckets of `width_ms`, keyed by absolute bucket number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring<T: Bucket = Cell> {
    pub width_ms: u64,
    /// Absolute number of the newest bucket held.
    pub head: u64,
    pub cells: Vec<T>,
}

impl<T: Bucket> Ring<T> {
    pub fn new(width_ms: u64, len: usize) -> Ring<T> {
        Ring {
            width_ms: width_ms.max(1),
            head: 0,
            cells: vec![T::default(); len.max(1)],
        }
    }

    pub fn bucket_of(&self, now_ms: u64) -> u64 {
        now_ms / self.width_ms
    }

    fn len(&self) -> u64 {
        self.cells.len() as u64
    }

    fn slot(&self, bucket: u64) -> usize {
        (bucket % self.len()) as usize
    }

    /// Moves the head forward to `bucket`, clearing the buckets it passes.
    pub fn advance(&mut self, bucket: u64) {
        if bucket <= self.head {
            return;
        }
        let steps = (bucket - self.head).min(self.len());
        for b in (bucket - steps + 1)..=bucket {
            let s = self.slot(b);
            self.cells[s] = T::default();
        }
        self.head = bucket;
    }

    /// The cell for `bucket`, advancing the ring if it is newer; `None` when it
    /// is older than the ring holds (a clock that jumped back too far).
    pub fn cell_mut(&mut self, bucket: u64) -> Option<&mut T> {
        self.advance(bucket);
        if bucket + self.len() <= self.head {
            return None;
        }
        let s = self.slot(bucket);
        self.cells.get_mut(s)
    }

    /// Adds `cell` into `bucket`.
    pub fn add(&mut self, bucket: u64, cell: &T) {
        if let Some(c) = self.cell_mut(bucket) {
            c.add(cell);
        }
    }

    /// Sum of the buckets covering the last `window_ms` up to `now_ms`,
    /// the current (partial) bucket included.
    pub fn sum(&self, now_ms: u64, window_ms: u64) -> T {
        let now_b = self.bucket_of(now_ms);
        let n = window_ms.div_ceil(self.width_ms).clamp(1, self.len());
        let mut out = T::default();
        for b in (now_b + 1).saturating_sub(n)..=now_b {
            if b <= self.head && b + self.len() > self.head {
                out.add(&self.cells[self.slot(b)]);
            }
        }
        out
    }

    /// Adds another ring of the same shape bucket by bucket.
    pub fn merge(&mut self, other: &Ring<T>) {
        for b in other.head.saturating_sub(other.len() - 1)..=other.head {
            let c = &other.cells[other.slot(b)];
            if !c.is_empty() {
                self.add(b, c);
            }
        }
    }
}

/// What a worker VM recorded since its last tick: a few buckets at most, kept
/// in a fixed array so the hot path never allocates.
#[derive(Debug, Clone, Default)]
pub struct Delta {
    slots: [(u64, Cell); 4],
    used: usize,
}

impl Delta {
    pub fn record(&mut self, bucket: u64, o: Outcome) {
        if let Some((_, c)) = self.slots[..self.used]
            .iter_mut()
            .find(|(b, _)| *b == bucket)
        {
            c.record(o);
            return;
        }
        if self.used < self.slots.len() {
            self.slots[self.used] = (bucket, Cell::default());
            self.slots[self.used].1.record(o);
            self.used += 1;
        } else if let Some((_, c)) = self.slots.last_mut() {
            // A tick is overdue: keep counting in the newest slot, so no request is lost.
            c.record(o);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    pub fn entries(&self) -> &[(u64, Cell)] {
        &self.slots[..self.used]
    }

    pub fn clear(&mut self) {
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn ok(latency_us: u64) -> Outcome {
        Outcome {
            error: None,
            status_5xx: false,
            latency_us,
        }
    }

    #[test]
    fn latencies_land_in_upper_inclusive_bins() {
        assert_eq!(bin(0), 0);
        assert_eq!(bin(100), 0);
        assert_eq!(bin(101), 1);
        assert_eq!(
            bin(200_000),
            BOUNDS_US.iter().position(|b| *b == 200_000).unwrap()
        );
        assert_eq!(bin(u64::MAX), BINS - 1);
    }

    #[test]
    fn the_p99_is_within_one_bin_of_the_truth() {
        let mut c = Cell::default();
        for i in 0..1000u64 {
            c.record(ok(1_000 + i * 100)); // 1 ms .. 100.9 ms, uniform
        }
        let truth = 1_000.0 + 989.0 * 100.0;
        let p99 = c.quantile_us(0.99).unwrap();
        let b = bin(truth as u64);
        let lower = BOUNDS_US[b - 1] as f64;
        let upper = BOUNDS_US[b] as f64;
        assert!(
            p99 >= lower && p99 <= upper,
            "p99 {p99} vs truth {truth} in ({lower}, {upper}]"
        );
        assert_eq!(Cell::default().quantile_us(0.99), None);
    }

    #[test]
    fn a_quantile_in_the_overflow_bin_reports_the_last_bound() {
        let mut c = Cell::default();
        c.record(ok(60_000_000));
        assert_eq!(c.quantile_us(0.99), Some(10_000_000.0));
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let mut c = Cell::default();
        c.record(Outcome {
            error: Some(ErrorKind::Http5xx),
            status_5xx: true,
            latency_us: 10,
        });
        c.record(Outcome {
            error: Some(ErrorKind::Grpc),
            status_5xx: false,
            latency_us: 10,
        });
        c.record(ok(10));
        assert_eq!((c.requests, c.error_total(), c.status_5xx), (3, 2, 1));
        assert_eq!(c.errors[usize::from(ErrorKind::Http5xx.index())], 1);
    }

    fn one(requests: u32) -> Cell {
        Cell {
            requests,
            ..Cell::default()
        }
    }

    #[test]
    fn windows_sum_the_buckets_they_cover() {
        let mut r: Ring = Ring::new(1_000, 10);
        for s in 0..10u64 {
            r.add(s, &one(1));
        }
        assert_eq!(r.sum(9_500, 3_000).requests, 3);
        assert_eq!(r.sum(9_500, 2_500).requests, 3, "partial buckets round up");
        assert_eq!(r.sum(9_500, 60_000).requests, 10, "capped at the ring");
        assert_eq!(r.sum(11_000, 3_000).requests, 1, "buckets 10-11 are empty");
        assert_eq!(r.sum(12_000, 3_000).requests, 0, "buckets 10-12 are empty");
    }

    #[test]
    fn an_empty_window_sums_to_nothing() {
        let r: Ring = Ring::new(1_000, 5);
        assert!(r.sum(100_000, 5_000).is_empty());
    }

    #[test]
    fn roll_over_clears_old_buckets() {
        let mut r: Ring = Ring::new(1_000, 3);
        r.add(1, &one(5));
        r.add(4, &one(1));
        assert_eq!(r.sum(4_000, 3_000).requests, 1);
        assert_eq!(r.cells.iter().map(|c| c.requests).sum::<u32>(), 1);
    }

    #[test]
    fn a_clock_that_jumps_back_within_the_ring_counts_in_the_older_bucket() {
        let mut r: Ring = Ring::new(1_000, 5);
        r.add(10, &one(1));
        r.add(8, &one(1));
        assert_eq!(r.head, 10);
        assert_eq!(r.sum(10_000, 5_000).requests, 2);
        // Too far back: dropped, not misfiled.
        r.add(2, &one(7));
        assert_eq!(r.sum(10_000, 5_000).requests, 2);
    }

    #[test]
    fn a_clock_that_jumps_far_forward_empties_the_ring() {
        let mut r: Ring = Ring::new(1_000, 5);
        r.add(10, &one(3));
        r.add(1_000_000, &one(1));
        assert_eq!(r.sum(1_000_000_000, 5_000).requests, 1);
        assert_eq!(r.cells.iter().map(|c| c.requests).sum::<u32>(), 1);
    }

    #[test]
    fn rings_from_two_workers_merge_bucket_by_bucket() {
        let mut a: Ring = Ring::new(1_000, 4);
        let mut b: Ring = Ring::new(1_000, 4);
        a.add(5, &one(1));
        a.add(6, &one(2));
        b.add(6, &one(4));
        b.add(7, &one(8));
        a.merge(&b);
        assert_eq!(a.head, 7);
        assert_eq!(a.sum(7_000, 4_000).requests, 15);
        assert_eq!(a.sum(7_000, 1_000).requests, 8);
    }

    #[test]
    fn a_counts_ring_keeps_only_requests_and_errors() {
        let mut r: Ring<Counts> = Ring::new(60_000, 360);
        r.add(
            10,
            &Counts {
                requests: 5,
                errors: 1,
            },
        );
        r.add(
            11,
            &Counts::from(&Cell {
                requests: 2,
                errors: [1, 0, 0, 1, 0],
                ..Cell::default()
            }),
        );
        assert_eq!(
            r.sum(11 * 60_000, 3_600_000),
            Counts {
                requests: 7,
                errors: 3
            }
        );
    }

    #[test]
    fn a_delta_keeps_a_few_buckets_without_allocating_and_never_drops() {
        let mut d = Delta::default();
        for b in 0..6 {
            d.record(b, ok(10));
        }
        d.record(
            0,
            Outcome {
                error: Some(ErrorKind::Reset),
                status_5xx: true,
                latency_us: 10,
            },
        );
        assert_eq!(d.entries().len(), 4);
        assert_eq!(d.entries().iter().map(|(_, c)| c.requests).sum::<u32>(), 7);
        d.clear();
        assert!(d.is_empty());
    }
}
