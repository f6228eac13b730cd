//! The gate state all worker VMs of a proxy share: per version, the rolling
//! rings, the timers and the last state, plus which configuration (if any) has
//! been withdrawn. Stored as one proxy-wasm shared-data value, encoded in a
//! small little-endian format; anything unreadable starts fresh.

use super::eval::{GateState, Timers};
use super::window::{Cell, Counts, Ring, BINS, KINDS};
use crate::config::Gates;
use crate::judge::codec::{self, Writer};
use crate::judge::ratio::Above;
use crate::judge::{Judge, Metric, Verdict};

const MAGIC: &[u8; 4] = b"CGS4";
const NONE: u64 = u64::MAX;

#[derive(Debug, Clone, PartialEq)]
pub struct VersionState {
    pub name: String,
    pub fine: Ring,
    pub burn: Ring<Counts>,
    pub timers: Timers,
    pub state: GateState,
}

impl VersionState {
    pub fn new(g: &Gates, name: &str) -> Self {
        VersionState {
            name: name.to_string(),
            fine: Ring::new(g.bucket_ms, g.fine_len),
            burn: Ring::new(g.burn_width_ms, g.burn_len),
            timers: Timers::default(),
            state: GateState::Unknown,
        }
    }

    /// Fits the shape and rolls the rings forward to `now_ms`, so idle
    /// versions age out of their windows.
    pub fn fit_now(&mut self, g: &Gates, now_ms: u64) {
        self.fit(g);
        self.fine.advance(now_ms / self.fine.width_ms);
        self.burn.advance(now_ms / self.burn.width_ms);
    }

    /// Rings of another shape (the bucket or windows changed) start fresh.
    fn fit(&mut self, g: &Gates) {
        if self.fine.width_ms != g.bucket_ms || self.fine.cells.len() != g.fine_len {
            self.fine = Ring::new(g.bucket_ms, g.fine_len);
        }
        if self.burn.width_ms != g.burn_width_ms || self.burn.cells.len() != g.burn_len {
            self.burn = Ring::new(g.burn_width_ms, g.burn_len);
        }
        if self.timers.triggers.len() != g.triggers.len() {
            self.timers = Timers::default();
        }
    }
}

/// The judge's state for the canary and its baseline, kept with the gates so
/// every worker VM feeds the same evidence and each request counts once.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub baseline: String,
    pub judge: Judge<BINS>,
    /// The verdicts last logged, so each change is logged once per proxy.
    pub last: [Verdict; 3],
    /// The decision last logged, as its gauge value (see `gates::judging`).
    pub decision: u8,
}

impl Pair {
    pub fn new(baseline: &str) -> Pair {
        Pair {
            baseline: baseline.to_string(),
            judge: Judge::default(),
            last: [Verdict::Inconclusive; 3],
            decision: 0,
        }
    }
}

fn verdict_from_u8(v: u8) -> Verdict {
    match v {
        1 => Verdict::NotWorse,
        2 => Verdict::Worse,
        _ => Verdict::Inconclusive,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedState {
    /// Hash of the configuration whose canary was withdrawn; 0 = none.
    pub withdrawn_for: u64,
    /// Hash of the configuration the timers and states were evaluated under.
    pub config_hash: u64,
    pub versions: Vec<VersionState>,
    /// The canary judged against its baseline, when judgment is on.
    pub pair: Option<Pair>,
    /// With judgment on, per rollback trigger, the sequential tests that the
    /// canary's and the baseline's ratios are above the trigger's level, fed
    /// every request of the step (see `gates::judging::sequential_level`).
    pub limits: Vec<[Above; 2]>,
}

impl SharedState {
    /// A new configuration (a new rollout step) starts its gates afresh: hold
    /// times and trigger clocks restart, states go back to unknown. The
    /// windows keep their data, which is about traffic, not configuration;
    /// the judge starts from no evidence, as its guarantees are per step.
    pub fn adopt(&mut self, config_hash: u64) -> bool {
        if self.config_hash == config_hash {
            return false;
        }
        self.config_hash = config_hash;
        self.pair = None;
        self.limits.clear();
        for v in self.versions.iter_mut() {
            v.timers = Timers::default();
            v.state = GateState::Unknown;
        }
        true
    }

    /// The state of `name`, created when new and there is room.
    pub fn version_mut(&mut self, g: &Gates, name: &str, max: usize) -> Option<&mut VersionState> {
        let i = match self.versions.iter().position(|v| v.name == name) {
            Some(i) => i,
            None if self.versions.len() < max => {
                self.versions.push(VersionState::new(g, name));
                self.versions.len() - 1
            }
            None => return None,
        };
        let v = self.versions.get_mut(i)?;
        v.fit(g);
        Some(v)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(64 + self.versions.len() * 8_192);
        w.extend_from_slice(MAGIC);
        put64(&mut w, self.withdrawn_for);
        put64(&mut w, self.config_hash);
        put32(&mut w, self.versions.len() as u32);
        for v in &self.versions {
            let name = v.name.as_bytes();
            put32(&mut w, name.len() as u32);
            w.extend_from_slice(name);
            w.push(v.state as u8);
            put64(&mut w, v.timers.held_since.unwrap_or(NONE));
            put32(&mut w, v.timers.triggers.len() as u32);
            for t in &v.timers.triggers {
                put64(&mut w, t.unwrap_or(NONE));
            }
            put64(&mut w, v.fine.width_ms);
            put64(&mut w, v.fine.head);
            put32(&mut w, v.fine.cells.len() as u32);
            for c in &v.fine.cells {
                put32(&mut w, c.requests);
                put32(&mut w, c.status_5xx);
                c.errors.iter().for_each(|x| put32(&mut w, *x));
                c.latency.iter().for_each(|x| put32(&mut w, *x));
            }
            put64(&mut w, v.burn.width_ms);
            put64(&mut w, v.burn.head);
            put32(&mut w, v.burn.cells.len() as u32);
            for c in &v.burn.cells {
                put32(&mut w, c.requests);
                put32(&mut w, c.errors);
            }
        }
        match &self.pair {
            None => w.push(0),
            Some(p) => {
                w.push(1);
                put32(&mut w, p.baseline.len() as u32);
                w.extend_from_slice(p.baseline.as_bytes());
                w.extend(p.last.map(|v| v as u8));
                w.push(p.decision);
                p.judge.encode(&mut w);
            }
        }
        put32(&mut w, self.limits.len() as u32);
        let mut words = Writer(&mut w);
        for t in self.limits.iter().flatten() {
            let _ = { *t }.codec(&mut words);
        }
        w
    }

    /// `None` for anything that is not a complete, well-formed state.
    pub fn decode(bytes: &[u8]) -> Option<SharedState> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return None;
        }
        let withdrawn_for = r.u64()?;
        let config_hash = r.u64()?;
        let n = r.u32()?;
        let mut versions = Vec::new();
        for _ in 0..n {
            let len = r.u32()? as usize;
            let name = String::from_utf8(r.take(len)?.to_vec()).ok()?;
            let state = GateState::from_u8(r.take(1)?[0]);
            let held = r.u64()?;
            let nt = r.u32()? as usize;
            let mut triggers = Vec::new();
            for _ in 0..nt {
                let t = r.u64()?;
                triggers.push((t != NONE).then_some(t));
            }
            let (width, head, len) = (r.u64()?, r.u64()?, r.u32()? as usize);
            // Bound what a corrupt length can make us allocate.
            if len > 4_096 {
                return None;
            }
            let mut fine: Ring = Ring::new(width, len);
            fine.head = head;
            for c in fine.cells.iter_mut() {
                c.requests = r.u32()?;
                c.status_5xx = r.u32()?;
                for e in c.errors.iter_mut().take(KINDS) {
                    *e = r.u32()?;
                }
                for l in c.latency.iter_mut().take(BINS) {
                    *l = r.u32()?;
                }
            }
            let (width, head, len) = (r.u64()?, r.u64()?, r.u32()? as usize);
            if len > 4_096 {
                return None;
            }
            let mut burn: Ring<Counts> = Ring::new(width, len);
            burn.head = head;
            for c in burn.cells.iter_mut() {
                c.requests = r.u32()?;
                c.errors = r.u32()?;
            }
            versions.push(VersionState {
                name,
                fine,
                burn,
                timers: Timers {
                    triggers,
                    held_since: (held != NONE).then_some(held),
                },
                state,
            });
        }
        let pair = match r.take(1)?[0] {
            0 => None,
            _ => {
                let len = r.u32()? as usize;
                let baseline = String::from_utf8(r.take(len)?.to_vec()).ok()?;
                let last = r.take(Metric::ALL.len())?;
                let last = [
                    verdict_from_u8(last[0]),
                    verdict_from_u8(last[1]),
                    verdict_from_u8(last[2]),
                ];
                let decision = r.take(1)?[0];
                let (judge, rest) = Judge::decode(r.0)?;
                r.0 = rest;
                Some(Pair {
                    baseline,
                    judge,
                    last,
                    decision,
                })
            }
        };
        let n = r.u32()? as usize;
        if n > 64 {
            return None;
        }
        let mut limits = vec![[Above::default(); 2]; n];
        let mut words = codec::Reader(r.0);
        for t in limits.iter_mut().flatten() {
            t.codec(&mut words)?;
        }
        r.0 = words.0;
        r.0.is_empty().then_some(SharedState {
            withdrawn_for,
            config_hash,
            versions,
            pair,
            limits,
        })
    }
}

fn put32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_le_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

/// Keeps `Cell` in the encoder's shape: a new field must be encoded too.
const _: () = assert!(std::mem::size_of::<Cell>() == 4 * (2 + KINDS + BINS));
