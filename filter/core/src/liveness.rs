//! Which worker VMs are alive, as the heartbeat and the alive count say.
//!
//! Envoy runs a plugin in one VM per worker thread and in one more on the main
//! thread. That one configures and ticks but never serves a request, so a
//! heartbeat it wrote would say nothing about the workers. Here only a VM that
//! has served traffic beats: on each tick it stamps its own slot in a
//! shared-data list and writes the heartbeat. A VM names its slot with an
//! id of its own (random, from the glue) rather than one handed out by the
//! list: proxy-wasm can only create a shared key without a compare-and-swap,
//! so two VMs that find the list absent at the same tick both write it, and a
//! counter kept in the list would give them the same slot (one worker then
//! looks dead). Should two VMs still hold one id, the one that finds its
//! slot stamped with a time it did not write moves to another id. Every VM,
//! the main thread's too, then reports how many slots were stamped within
//! the last [`STALE_TICKS`] ticks. When every worker stalls or its VM is
//! gone, the heartbeat stops and the count (still written by the main thread)
//! reads 0: no data shows as no data, not as the last good value.

use crate::config::Config;
use crate::hash::murmur3_x86_32;
use crate::host::{MetricKind, Metrics, SharedStore};

pub const HEARTBEAT: &str = "canary_heartbeat_timestamp_seconds";
pub const WORKERS_ALIVE: &str = "canary_workers_alive";
pub const TICKS: &str = "canary_ticks_total";

/// The tick when no gates set one: the heartbeat alone needs no faster beat.
pub const HEARTBEAT_TICK_MS: u64 = 1_000;
/// A slot not stamped for this many ticks is not alive.
pub const STALE_TICKS: u64 = 3;
/// A slot not stamped for this many ticks is dropped from the list.
const FORGET_TICKS: u64 = 60;
/// Bounds the list if VMs come and go faster than they are forgotten.
const MAX_SLOTS: usize = 256;
const CAS_ATTEMPTS: usize = 8;
const KEY: &str = "canary/workers";
const MAGIC: &[u8; 4] = b"CWL2";

/// The tick period a configuration asks for: the gates' tick, else the
/// heartbeat's while metrics are on; `None` = no tick at all.
pub fn tick_ms(cfg: &Config) -> Option<u64> {
    match &cfg.gates {
        Some(g) => Some(g.tick_ms),
        None if cfg.metrics_enabled => Some(HEARTBEAT_TICK_MS),
        None => None,
    }
}

/// The shared list: per slot, its id and its last stamp (ms).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Beats {
    pub slots: Vec<(u32, u64)>,
}

impl Beats {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(8 + 12 * self.slots.len());
        w.extend_from_slice(MAGIC);
        w.extend_from_slice(&(self.slots.len() as u32).to_le_bytes());
        for (id, at) in &self.slots {
            w.extend_from_slice(&id.to_le_bytes());
            w.extend_from_slice(&at.to_le_bytes());
        }
        w
    }

    /// `None` for anything that is not a complete list.
    pub fn decode(bytes: &[u8]) -> Option<Beats> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (n, mut rest) = rest.split_first_chunk::<4>()?;
        let n = u32::from_le_bytes(*n) as usize;
        if rest.len() != n.checked_mul(12)? {
            return None;
        }
        let mut slots = Vec::with_capacity(n);
        while let Some((id, r)) = rest.split_first_chunk::<4>() {
            let (at, r) = r.split_first_chunk::<8>()?;
            slots.push((u32::from_le_bytes(*id), u64::from_le_bytes(*at)));
            rest = r;
        }
        Some(Beats { slots })
    }

    /// Slots stamped within `stale_ms` of `now_ms`.
    pub fn alive(&self, now_ms: u64, stale_ms: u64) -> u32 {
        self.slots
            .iter()
            .filter(|(_, at)| now_ms.saturating_sub(*at) <= stale_ms)
            .count() as u32
    }

    /// Stamps slot `id`, adding it when it is not (or no longer) listed.
    fn stamp(&mut self, id: u32, now_ms: u64) {
        if let Some(e) = self.slots.iter_mut().find(|(s, _)| *s == id) {
            e.1 = now_ms;
            return;
        }
        if self.slots.len() >= MAX_SLOTS {
            if let Some(oldest) = (0..self.slots.len()).min_by_key(|i| self.slots[*i].1) {
                self.slots.swap_remove(oldest);
            }
        }
        self.slots.push((id, now_ms));
    }
}

/// One VM's side: its slot in the list and its stat ids. It lives for the
/// VM, not for one configuration, so an update keeps the VM's slot.
#[derive(Debug)]
pub struct Liveness {
    slot: u32,
    /// The stamp this VM last wrote into its slot.
    last: Option<u64>,
    heartbeat: Option<u32>,
    alive: Option<u32>,
    ticks: Option<u32>,
}

impl Liveness {
    /// `slot`: an id no other VM of the proxy is likely to use; the glue
    /// draws it at random.
    pub fn new(slot: u32) -> Self {
        Liveness {
            slot,
            last: None,
            heartbeat: None,
            alive: None,
            ticks: None,
        }
    }

    /// One tick. `serving`: this VM has created an HTTP context. Returns the
    /// alive count written, `None` when the list could not be read or
    /// stamped this tick.
    pub fn tick(
        &mut self,
        serving: bool,
        tick_ms: u64,
        store: &mut impl SharedStore,
        sink: &mut impl Metrics,
        now_ms: u64,
    ) -> Option<u32> {
        let stale = STALE_TICKS.saturating_mul(tick_ms);
        let forget = FORGET_TICKS.saturating_mul(tick_ms);
        let mut alive = None;
        for _ in 0..CAS_ATTEMPTS {
            let (bytes, cas) = store.get(KEY).unwrap_or_default();
            let mut beats = Beats::decode(&bytes).unwrap_or_default();
            if !serving {
                alive = Some(beats.alive(now_ms, stale));
                break;
            }
            beats
                .slots
                .retain(|(_, at)| now_ms.saturating_sub(*at) <= forget);
            if let Some((_, at)) = beats.slots.iter().find(|(s, _)| *s == self.slot) {
                if Some(*at) != self.last {
                    // Another VM stamps this slot too: leave it to that one.
                    self.slot = another_id(self.slot, now_ms, &beats);
                }
            }
            beats.stamp(self.slot, now_ms);
            if store.set(KEY, &beats.encode(), cas) {
                self.last = Some(now_ms);
                alive = Some(beats.alive(now_ms, stale));
                break;
            }
        }
        if serving {
            set(
                sink,
                &mut self.heartbeat,
                MetricKind::Gauge,
                HEARTBEAT,
                now_ms / 1_000,
            );
            if let Some(id) = define(sink, &mut self.ticks, MetricKind::Counter, TICKS) {
                sink.increment(id, 1);
            }
        }
        if let Some(n) = alive {
            set(
                sink,
                &mut self.alive,
                MetricKind::Gauge,
                WORKERS_ALIVE,
                u64::from(n),
            );
        }
        alive
    }
}

/// An id no slot in `beats` holds, hashed from the taken one and the time
/// with the sticky bucket's hash, so that two VMs that both move rarely meet
/// again. Should every try be taken, the id stays until the clash is seen again.
fn another_id(taken: u32, now_ms: u64, beats: &Beats) -> u32 {
    let mut id = taken;
    for _ in 0..=MAX_SLOTS {
        id = murmur3_x86_32(&now_ms.to_le_bytes(), id);
        if beats.slots.iter().all(|(s, _)| *s != id) {
            return id;
        }
    }
    taken
}

fn define(
    sink: &mut impl Metrics,
    id: &mut Option<u32>,
    kind: MetricKind,
    name: &str,
) -> Option<u32> {
    if id.is_none() {
        *id = sink.define(kind, name);
    }
    *id
}

fn set(sink: &mut impl Metrics, id: &mut Option<u32>, kind: MetricKind, name: &str, v: u64) {
    if let Some(id) = define(sink, id, kind, name) {
        sink.record(id, v);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::testing::{FakeMetrics, FakeStore};

    fn gauge(m: &FakeMetrics, name: &str) -> Option<u64> {
        m.histogram(name).last().copied()
    }

    #[test]
    fn a_vm_that_never_served_writes_no_heartbeat_and_counts_nobody() {
        let (mut store, mut m) = (FakeStore::default(), FakeMetrics::default());
        let mut main = Liveness::new(9);
        for t in 0..5 {
            assert_eq!(
                main.tick(false, 1_000, &mut store, &mut m, t * 1_000),
                Some(0)
            );
        }
        assert_eq!(gauge(&m, HEARTBEAT), None);
        assert_eq!(m.counter(TICKS), 0);
        assert_eq!(gauge(&m, WORKERS_ALIVE), Some(0));
        assert!(
            store.data.is_empty(),
            "the main thread's VM writes nothing shared"
        );
    }

    #[test]
    fn serving_vms_beat_and_are_counted_until_they_stop() {
        let (mut store, mut m) = (FakeStore::default(), FakeMetrics::default());
        let (mut main, mut w0, mut w1) = (Liveness::new(9), Liveness::new(10), Liveness::new(11));
        for t in 1..=4u64 {
            let now = t * 1_000;
            w0.tick(true, 1_000, &mut store, &mut m, now);
            w1.tick(true, 1_000, &mut store, &mut m, now + 10);
            assert_eq!(
                main.tick(false, 1_000, &mut store, &mut m, now + 20),
                Some(2)
            );
        }
        assert_eq!(gauge(&m, HEARTBEAT), Some(4));
        assert_eq!(m.counter(TICKS), 8);
        // w1 stalls: after three missed ticks only w0 is alive.
        for t in 5..=8u64 {
            w0.tick(true, 1_000, &mut store, &mut m, t * 1_000);
        }
        assert_eq!(gauge(&m, WORKERS_ALIVE), Some(1));
        // Both stall: the heartbeat stays where it was, the main thread reads 0.
        assert_eq!(main.tick(false, 1_000, &mut store, &mut m, 12_000), Some(0));
        assert_eq!(gauge(&m, HEARTBEAT), Some(8));
        // w1 comes back in its old slot.
        w1.tick(true, 1_000, &mut store, &mut m, 13_000);
        assert_eq!(
            Beats::decode(&store.data[KEY].0).map(|b| b.slots.len()),
            Some(2)
        );
        assert_eq!(gauge(&m, WORKERS_ALIVE), Some(1));
    }

    #[test]
    fn a_lost_compare_and_swap_is_retried_and_long_gone_slots_are_forgotten() {
        let (mut store, mut m) = (FakeStore::default(), FakeMetrics::default());
        let mut gone = Liveness::new(1);
        gone.tick(true, 100, &mut store, &mut m, 1_000);
        let mut w = Liveness::new(2);
        store.fail_next = 3;
        assert_eq!(w.tick(true, 100, &mut store, &mut m, 1_050), Some(2));
        // 60 ticks later the silent slot is dropped from the list.
        w.tick(true, 100, &mut store, &mut m, 4_000);
        w.tick(true, 100, &mut store, &mut m, 1_000 + 6_100);
        let beats = Beats::decode(&store.data[KEY].0).unwrap();
        assert_eq!(beats.slots.len(), 1);
        assert_eq!(beats.slots[0].0, 2);
    }

    /// Both reads see no list, both creating writes land: proxy-wasm has no
    /// compare-and-swap for a key that does not exist yet.
    struct RacingStore {
        inner: FakeStore,
        blind_reads: usize,
    }

    impl SharedStore for RacingStore {
        fn get(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)> {
            if self.blind_reads > 0 {
                return None;
            }
            self.inner.get(key)
        }
        fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
            self.blind_reads = self.blind_reads.saturating_sub(1);
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn two_workers_that_create_the_list_at_the_same_tick_are_both_counted() {
        let mut store = RacingStore {
            inner: FakeStore::default(),
            blind_reads: 2,
        };
        let mut m = FakeMetrics::default();
        let (mut w0, mut w1) = (Liveness::new(40), Liveness::new(41));
        w0.tick(true, 1_000, &mut store, &mut m, 1_000);
        // w1 read before w0's write landed: its write replaces w0's list.
        w1.tick(true, 1_000, &mut store, &mut m, 1_001);
        w0.tick(true, 1_000, &mut store, &mut m, 2_000);
        assert_eq!(w1.tick(true, 1_000, &mut store, &mut m, 2_001), Some(2));
        assert_eq!(w0.tick(true, 1_000, &mut store, &mut m, 3_000), Some(2));
    }

    #[test]
    fn two_workers_that_drew_the_same_id_end_up_in_two_slots() {
        let (mut store, mut m) = (FakeStore::default(), FakeMetrics::default());
        let (mut main, mut w0, mut w1) = (Liveness::new(9), Liveness::new(7), Liveness::new(7));
        for t in 1..=3u64 {
            let now = t * 1_000;
            w0.tick(true, 1_000, &mut store, &mut m, now);
            w1.tick(true, 1_000, &mut store, &mut m, now + 10);
        }
        assert_eq!(main.tick(false, 1_000, &mut store, &mut m, 3_020), Some(2));
        assert_eq!(w0.tick(true, 1_000, &mut store, &mut m, 4_000), Some(2));
        let beats = Beats::decode(&store.data[KEY].0).unwrap();
        assert_eq!(beats.slots.len(), 2);
        assert!(beats.slots.iter().any(|(s, _)| *s == 7));
        // A VM that stamped its slot and finds its own stamp stays put.
        assert_eq!(w1.tick(true, 1_000, &mut store, &mut m, 4_010), Some(2));
        assert_eq!(Beats::decode(&store.data[KEY].0).unwrap(), {
            let mut b = beats.clone();
            b.stamp(w1.slot, 4_010);
            b
        });
    }

    #[test]
    fn the_list_round_trips_and_refuses_anything_else() {
        let b = Beats {
            slots: vec![(3, 10), (6, u64::MAX)],
        };
        assert_eq!(Beats::decode(&b.encode()), Some(b.clone()));
        let bytes = b.encode();
        for cut in 0..bytes.len() {
            assert_eq!(Beats::decode(&bytes[..cut]), None, "{cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Beats::decode(&long), None);
    }

    #[test]
    fn the_tick_follows_the_gates_else_the_heartbeat_while_metrics_are_on() {
        let cfg = |s: &str| Config::from_json(s.as_bytes()).unwrap();
        assert_eq!(tick_ms(&cfg("{}")), Some(HEARTBEAT_TICK_MS));
        assert_eq!(
            tick_ms(&cfg(
                r#"{"gates": {"canaryVersion": "v2", "tick": "200ms"}}"#
            )),
            Some(200)
        );
        assert_eq!(tick_ms(&cfg(r#"{"metrics": {"enabled": false}}"#)), None);
    }
}
