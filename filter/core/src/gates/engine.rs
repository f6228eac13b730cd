//! The per-VM side of the gates: record requests into a local delta on the hot
//! path (no allocation, no hostcall), and on each tick merge the delta into
//! the shared state with compare-and-swap, evaluate, export gauges, and decide
//! withdrawal.

use super::eval::{evaluate, GateState, Verdict};
use super::judging::{self, Judged};
use super::shared::SharedState;
use super::window::{Counts, Delta, Outcome};
use crate::config::{Gates, QuotedList};
use crate::host::{MetricKind, Metrics, SharedStore};
use crate::judge::{Metric, Verdict as JudgeVerdict};
use crate::metrics::{tagged, MAX_VERSIONS, TAG_METRIC, TAG_VERSION, TAG_WINDOW};

/// Attempts per tick before leaving the delta for the next tick.
const CAS_ATTEMPTS: usize = 8;
/// The judge's decision to withdraw, as its gauge value.
const WITHDRAW: u8 = 3;
/// The judge's decision while the baseline fails too.
const HOLD: u8 = 2;

pub const STATE: &str = "canary_gate_state";
pub const WITHDRAWN: &str = "canary_gate_withdrawn";
pub const REQUESTS: &str = "canary_gate_requests";
pub const ERROR_RATIO: &str = "canary_gate_error_ratio_ppm";
pub const BURN_RATE: &str = "canary_gate_burn_rate_milli";
pub const P99: &str = "canary_gate_p99_microseconds";
pub const JUDGE_VERDICT: &str = "canary_judge_verdict";
pub const JUDGE_EVIDENCE_WORSE: &str = "canary_judge_evidence_worse_milli";
pub const JUDGE_EVIDENCE_NOT_WORSE: &str = "canary_judge_evidence_not_worse_milli";
pub const JUDGE_CANARY_SAMPLES: &str = "canary_judge_canary_samples";
pub const JUDGE_BASELINE_SAMPLES: &str = "canary_judge_baseline_samples";
pub const JUDGE_DECISION: &str = "canary_judge_decision";

#[derive(Debug)]
pub struct Engine {
    key: String,
    config_hash: u64,
    deltas: Vec<(String, Delta)>,
    withdrawn: bool,
    /// Gauge ids by name, sorted by name.
    gauges: Vec<(String, u32)>,
    /// The verdicts of the last successful tick, by version.
    pub last: Vec<(String, Verdict)>,
    /// The judge's verdicts of the last successful tick, when judgment is on.
    pub judged: Option<Judged>,
    /// The step the last tick evaluated (`sticky.percent`), for decisions
    /// taken between ticks.
    step_bp: u32,
    /// Log lines of decisions taken on the request path, until the glue takes
    /// them ([`Engine::take_log`]) or, failing that, the next tick reports them.
    decided: Vec<String>,
}

/// What a tick did, for the root context to log.
#[derive(Debug, Default, PartialEq)]
pub struct TickReport {
    pub merged: bool,
    pub log: Vec<String>,
}

impl Engine {
    /// `key` names the shared-data entry (one per plugin); `config_hash`
    /// identifies the rollout step a withdrawal applies to.
    pub fn new(key: &str, config_hash: u64) -> Self {
        Engine {
            key: key.to_string(),
            config_hash: config_hash.max(1),
            deltas: Vec::new(),
            withdrawn: false,
            gauges: Vec::new(),
            last: Vec::new(),
            judged: None,
            step_bp: 0,
            decided: Vec::new(),
        }
    }

    /// Creates the shared entry if it is missing. Creating a key is not
    /// CAS-protected, so this runs in `on_configure`, before any traffic.
    pub fn init(&mut self, store: &mut impl SharedStore) {
        match store
            .get(&self.key)
            .and_then(|(b, _)| SharedState::decode(&b))
        {
            Some(st) => self.withdrawn = st.withdrawn_for == self.config_hash,
            None => {
                store.set(&self.key, &SharedState::default().encode(), None);
            }
        }
    }

    /// Whether this configuration's canary cohorts are withdrawn.
    pub fn withdrawn(&self) -> bool {
        self.withdrawn
    }

    /// Hot path: counts one finished request of `version`.
    pub fn record(&mut self, g: &Gates, version: &str, now_ms: u64, o: Outcome) {
        let bucket = now_ms / g.bucket_ms;
        if let Some((_, d)) = self.deltas.iter_mut().find(|(v, _)| v == version) {
            d.record(bucket, o);
            return;
        }
        if self.deltas.len() < MAX_VERSIONS {
            let mut d = Delta::default();
            d.record(bucket, o);
            self.deltas.push((version.to_string(), d));
        }
    }

    /// Counts one finished request, as [`Engine::record`], and when it is a
    /// failed canary request under judgment, decides at once: the same merge
    /// and evaluation as a tick ([`Engine::sync`]), so the decision rests on
    /// the shared data as the last tick of any worker left it plus this VM's
    /// requests since, and a withdrawal reaches shared data at once. A
    /// request that did not fail costs nothing more than `record`.
    pub fn finish(
        &mut self,
        g: &Gates,
        version: &str,
        now_ms: u64,
        o: Outcome,
        store: &mut impl SharedStore,
    ) {
        self.record(g, version, now_ms, o);
        if o.error.is_none() || self.withdrawn || g.judgment.is_none() {
            return;
        }
        // The judge holds because the baseline fails too: a shared incident,
        // in which canary requests may fail by the hundred. Deciding on each
        // would cost a shared-data round trip per failure for as long as the
        // incident lasts; the ticks keep judging meanwhile.
        if self.judged.as_ref().is_some_and(|j| j.decision == HOLD) {
            return;
        }
        if g.canary_version.as_deref() == Some(version) {
            let report = self.sync(g, self.step_bp, store, now_ms, true);
            self.decided.extend(report.log);
        }
    }

    /// The log lines of decisions [`Engine::finish`] took, for the glue to
    /// write right after the request: an operator's timeline then shows the
    /// withdrawal at the moment it happened, not one tick later, and a reader
    /// who saw the withdrawal in the stats finds its reason in the log.
    /// Empty (and allocation-free) on every request that decided nothing.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.decided)
    }

    /// One tick: [`Engine::sync`], then the gauges. The report carries the
    /// log lines of decisions taken on the request path that nobody took.
    pub fn tick(
        &mut self,
        g: &Gates,
        step_bp: u32,
        store: &mut impl SharedStore,
        sink: &mut impl Metrics,
        now_ms: u64,
    ) -> TickReport {
        self.step_bp = step_bp;
        let mut report = self.sync(g, step_bp, store, now_ms, false);
        if !self.decided.is_empty() {
            let mut log = std::mem::take(&mut self.decided);
            log.append(&mut report.log);
            report.log = log;
        }
        self.export(sink);
        report
    }

    /// Merges this VM's delta into the shared state, evaluates every version
    /// and updates the withdrawal. On CAS contention the delta is kept for the
    /// next attempt, so no request is lost or counted twice.
    ///
    /// `on_failure`: called right after a canary request failed. Then only
    /// the decisions that stay valid when taken at such a moment may act: the
    /// judge's sequential verdicts and the sequential form of the ratio
    /// triggers. A windowed limit read just after a canary failure would
    /// favour the canary breaking it first, so windows decide on ticks only,
    /// and nothing but a withdrawal is written back as a state.
    pub fn sync(
        &mut self,
        g: &Gates,
        step_bp: u32,
        store: &mut impl SharedStore,
        now_ms: u64,
        on_failure: bool,
    ) -> TickReport {
        let mut report = TickReport::default();
        for _ in 0..CAS_ATTEMPTS {
            let (bytes, cas) = store.get(&self.key).unwrap_or_default();
            let mut st = SharedState::decode(&bytes).unwrap_or_default();
            st.adopt(self.config_hash);
            for (version, delta) in &self.deltas {
                let Some(vs) = st.version_mut(g, version, MAX_VERSIONS) else {
                    continue;
                };
                for (bucket, cell) in delta.entries() {
                    vs.fine.add(*bucket, cell);
                    vs.burn
                        .add(bucket * g.bucket_ms / g.burn_width_ms, &Counts::from(cell));
                }
            }
            let mut log = Vec::new();
            let mut verdicts = Vec::with_capacity(st.versions.len());
            for vs in st.versions.iter_mut() {
                vs.fit_now(g, now_ms);
                let v = evaluate(g, step_bp, &vs.fine, &vs.burn, now_ms, &mut vs.timers);
                verdicts.push((vs.name.clone(), v));
            }
            let judged = self.judge(g, &mut st, &mut verdicts, now_ms, &mut log, on_failure);
            let judged_withdraw = judged.as_ref().is_some_and(|j| j.decision == WITHDRAW);
            for (vs, (_, v)) in st.versions.iter_mut().zip(&verdicts) {
                if on_failure && !judged_withdraw {
                    break;
                }
                if v.state != vs.state {
                    log.push(format!(
                        "canary gate {}: {} -> {} ({})",
                        vs.name,
                        vs.state.label(),
                        v.state.label(),
                        v.reason
                    ));
                    vs.state = v.state;
                }
            }
            let canary_rolled_back = judged_withdraw
                || !on_failure
                    && g.canary_version.as_ref().is_some_and(|c| {
                        verdicts
                            .iter()
                            .any(|(n, v)| n == c && v.state == GateState::Rollback)
                    });
            if canary_rolled_back && st.withdrawn_for != self.config_hash {
                st.withdrawn_for = self.config_hash;
                log.push(format!(
                    "canary gate: withdrawing cohorts {} from {} until the configuration changes",
                    QuotedList(&g.withdraw_names),
                    g.canary_version.as_deref().unwrap_or("?")
                ));
            }
            if store.set(&self.key, &st.encode(), cas) {
                self.deltas.iter_mut().for_each(|(_, d)| d.clear());
                self.withdrawn = st.withdrawn_for == self.config_hash;
                self.last = verdicts;
                self.judged = judged;
                report.merged = true;
                report.log = log;
                break;
            }
        }
        report
    }

    /// Judges the canary against its baseline and folds the decision into
    /// the canary's verdict; `None` when judgment is off.
    fn judge(
        &self,
        g: &Gates,
        st: &mut SharedState,
        verdicts: &mut [(String, Verdict)],
        now_ms: u64,
        log: &mut Vec<String>,
        on_failure: bool,
    ) -> Option<Judged> {
        let (j, canary) = (g.judgment.as_ref()?, g.canary_version.as_deref()?);
        let baseline = judging::baseline(j, canary, st, g, now_ms);
        let v = judging::judge(g, j, st, baseline.as_deref(), canary, &self.deltas, log);
        let gate = |name: &str| verdicts.iter().position(|(n, _)| n == name);
        let decision = match gate(canary) {
            Some(ci) => {
                let b = baseline
                    .as_deref()
                    .and_then(gate)
                    .map(|bi| verdicts[bi].1.clone());
                let c = (canary, &mut verdicts[ci].1);
                judging::apply(g, j, st, &v, c, b.as_ref(), log, on_failure)
            }
            None => 0,
        };
        Some(Judged {
            canary: canary.to_string(),
            baseline,
            verdicts: v,
            decision,
        })
    }

    fn gauge(&mut self, sink: &mut impl Metrics, kind: MetricKind, name: String) -> Option<u32> {
        match self.gauges.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.gauges.get(i).map(|(_, id)| *id),
            Err(i) => {
                let id = sink.define(kind, &name)?;
                self.gauges.insert(i, (name, id));
                Some(id)
            }
        }
    }

    fn set(&mut self, sink: &mut impl Metrics, name: String, value: u64) {
        if let Some(id) = self.gauge(sink, MetricKind::Gauge, name) {
            sink.record(id, value);
        }
    }

    fn export(&mut self, sink: &mut impl Metrics) {
        self.set(sink, WITHDRAWN.to_string(), u64::from(self.withdrawn));
        let last = std::mem::take(&mut self.last);
        for (version, v) in &last {
            self.set(
                sink,
                tagged(&[(TAG_VERSION, version)], STATE),
                v.state as u64,
            );
            for w in &v.windows {
                let tags = [
                    (TAG_VERSION, version.as_str()),
                    (TAG_WINDOW, w.label.as_str()),
                ];
                self.set(sink, tagged(&tags, REQUESTS), u64::from(w.requests));
                let ppm = w.error_ratio.map_or(0, |r| (r * 1e6).round() as u64);
                self.set(sink, tagged(&tags, ERROR_RATIO), ppm);
                let milli = w.burn_rate.map_or(0, |b| (b * 1e3).round() as u64);
                self.set(sink, tagged(&tags, BURN_RATE), milli);
                if let Some(p) = w.p99_us {
                    self.set(sink, tagged(&tags, P99), p.round() as u64);
                }
            }
        }
        self.last = last;
        if let Some(j) = self.judged.take() {
            self.export_judged(sink, &j);
            self.judged = Some(j);
        }
    }

    fn export_judged(&mut self, sink: &mut impl Metrics, j: &Judged) {
        let canary = [(TAG_VERSION, j.canary.as_str())];
        self.set(sink, tagged(&canary, JUDGE_DECISION), u64::from(j.decision));
        let milli = |x: f64| (x * 1e3).round().max(0.0) as u64;
        for m in Metric::ALL {
            let tags = [(TAG_VERSION, j.canary.as_str()), (TAG_METRIC, m.label())];
            let v = j.verdicts.get(m);
            let code = match v.verdict {
                JudgeVerdict::NotWorse => 0,
                JudgeVerdict::Inconclusive => 1,
                JudgeVerdict::Worse => 2,
            };
            self.set(sink, tagged(&tags, JUDGE_VERDICT), code);
            self.set(
                sink,
                tagged(&tags, JUDGE_EVIDENCE_WORSE),
                milli(v.log_e_worse),
            );
            self.set(
                sink,
                tagged(&tags, JUDGE_EVIDENCE_NOT_WORSE),
                milli(v.log_e_not_worse),
            );
            self.set(sink, tagged(&tags, JUDGE_CANARY_SAMPLES), v.canary_samples);
            self.set(
                sink,
                tagged(&tags, JUDGE_BASELINE_SAMPLES),
                v.baseline_samples,
            );
        }
    }
}
