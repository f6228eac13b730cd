//! Counter increments held in the VM between ticks.
//!
//! A counter bump is a hostcall, and a request's counters are bumped at its
//! end ([`crate::stream::Stream::on_end`]). Holding the bumps in the VM and handing Envoy one increment per
//! series on each tick takes that hostcall off every request. Nothing is
//! lost that Envoy would have kept: the table belongs to the VM, not to one
//! configuration, and the glue flushes it on every tick, before a new
//! configuration takes over and when the plugin stops. Readers of the stats
//! see counts at most one tick late, which Prometheus scrapes (15 s or more)
//! and the tick-driven gates never notice.
//!
//! Histograms and gauges still go straight to the host: a histogram keeps
//! every value, and Envoy has no call that records a value many times.

use crate::host::{MetricKind, Metrics};

/// Per stat id, the increments not yet handed to the host. Sorted by id; an
/// entry stays once made, so after a VM has met its series no request
/// allocates.
#[derive(Debug, Default)]
pub struct PendingCounts {
    deltas: Vec<(u32, i64)>,
}

impl PendingCounts {
    pub fn add(&mut self, id: u32, by: i64) {
        match self.deltas.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(at) => {
                if let Some((_, d)) = self.deltas.get_mut(at) {
                    *d = d.saturating_add(by);
                }
            }
            Err(at) => self.deltas.insert(at, (id, by)),
        }
    }

    /// Hands every non-zero delta to `sink`; returns how many it handed.
    pub fn flush(&mut self, sink: &mut impl Metrics) -> usize {
        let mut handed = 0;
        for (id, d) in &mut self.deltas {
            // Envoy refuses an increment of 0 or less.
            if *d > 0 {
                sink.increment(*id, *d);
                handed += 1;
            }
            *d = 0;
        }
        handed
    }
}

/// [`Metrics`] for the request path: counter bumps go to `pending`,
/// everything else to `sink`.
pub struct Batched<'a, M> {
    pub pending: &'a mut PendingCounts,
    pub sink: &'a mut M,
}

impl<M: Metrics> Metrics for Batched<'_, M> {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.sink.define(kind, name)
    }
    fn increment(&mut self, id: u32, by: i64) {
        self.pending.add(id, by);
    }
    fn record(&mut self, id: u32, value: u64) {
        self.sink.record(id, value);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::testing::FakeMetrics;

    #[test]
    fn bumps_reach_the_host_only_at_the_flush_and_all_of_them() {
        let mut m = FakeMetrics::default();
        let mut pending = PendingCounts::default();
        let b = {
            let mut batched = Batched {
                pending: &mut pending,
                sink: &mut m,
            };
            let a = batched.define(MetricKind::Counter, "a").unwrap();
            let b = batched.define(MetricKind::Counter, "b").unwrap();
            let h = batched.define(MetricKind::Histogram, "h").unwrap();
            for _ in 0..5 {
                batched.increment(a, 1);
                batched.record(h, 7);
            }
            batched.increment(b, 3);
            b
        };
        assert_eq!(m.counter("a"), 0, "a bump went to the host");
        assert_eq!(m.histogram("h"), vec![7; 5], "values are not held");
        assert_eq!(pending.flush(&mut m), 2);
        assert_eq!((m.counter("a"), m.counter("b")), (5, 3));
        // Nothing new: a flush hands nothing, not a zero increment.
        assert_eq!(pending.flush(&mut m), 0);
        pending.add(b, 1);
        assert_eq!(pending.flush(&mut m), 1);
        assert_eq!((m.counter("a"), m.counter("b")), (5, 4));
    }
}
