//! The productpage sidecar's counters, sampled while a phase runs: the
//! timelines the report charts, and a progress line per second when live.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canary_e2e::{Client, Envoy, Req, Stats};
use serde::Serialize;

/// Per-version counters read from the productpage sidecar at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub t_ms: u64,
    pub requests: BTreeMap<String, f64>,
    /// Requests per "version/cohort", for the live view.
    pub by_cohort: BTreeMap<String, f64>,
    pub errors: BTreeMap<String, f64>,
    pub gates: BTreeMap<String, f64>,
    /// The judge's gauges: "errors", "latency-shift", "latency-tail" (0
    /// not-worse, 1 inconclusive, 2 worse) and "decision" (0 wait, 1
    /// promote, 2 hold, 3 withdraw), for a judged canary.
    pub judge: BTreeMap<String, f64>,
    pub withdrawn: bool,
}

impl Sample {
    /// The filter's counters and gate gauges in one scrape, `t_ms` into the phase.
    fn read(s: &Stats, t_ms: u64) -> Sample {
        let mut sample = Sample {
            t_ms,
            ..Default::default()
        };
        for x in s.matching("canary_requests_total", &[]) {
            let v = &x.labels["canary_version"];
            *sample.requests.entry(v.clone()).or_default() += x.value;
            let key = format!("{v}/{}", x.labels["canary_cohort"]);
            *sample.by_cohort.entry(key).or_default() += x.value;
        }
        for x in s.matching("canary_errors_total", &[]) {
            *sample
                .errors
                .entry(x.labels["canary_version"].clone())
                .or_default() += x.value;
        }
        for x in s.matching("canary_gate_state", &[]) {
            sample
                .gates
                .insert(x.labels["canary_version"].clone(), x.value);
        }
        for x in s.matching("canary_judge_verdict", &[]) {
            sample
                .judge
                .insert(x.labels["canary_metric"].clone(), x.value);
        }
        for x in s.matching("canary_judge_decision", &[]) {
            sample.judge.insert("decision".into(), x.value);
        }
        sample.withdrawn = s.sum("canary_gate_withdrawn", &[]) > 0.0;
        sample
    }
}

/// Polls the productpage sidecar while a phase runs: the timeline for the
/// report, and a progress line per second when `live`.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Recorder {
    pub fn start(envoy: &Envoy, phase: &str, live: bool) -> Recorder {
        let admin = envoy.admin;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let phase = phase.to_string();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let client = Client::new(admin);
            let mut out: Vec<Sample> = vec![];
            let mut last_print = 0u64;
            while !flag.load(Ordering::SeqCst) {
                if let Ok(r) = client.try_send(&Req::get("/stats/prometheus")).await {
                    let s = Stats::parse(&String::from_utf8_lossy(&r.body));
                    let sample = Sample::read(&s, t0.elapsed().as_millis() as u64);
                    if live && sample.t_ms >= last_print + 1000 {
                        last_print = sample.t_ms;
                        println!("{}", progress(&phase, out.last(), &sample, &s));
                    }
                    out.push(sample);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            out
        });
        Recorder { stop, task }
    }

    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or_default()
    }
}

/// A judge gauge's value (see [`Sample::judge`]) as its name.
pub fn judge_name(key: &str, v: f64) -> &'static str {
    const VERDICTS: [&str; 3] = ["not-worse", "inconclusive", "worse"];
    const DECISIONS: [&str; 4] = ["wait", "promote", "hold", "withdraw"];
    let names: &[&str] = if key == "decision" {
        &DECISIONS
    } else {
        &VERDICTS
    };
    names.get(v as usize).copied().unwrap_or("-")
}

/// A gate gauge's value as its state's name.
pub fn gate_name(v: f64) -> &'static str {
    canary_core::gates::GateState::from_u8(v as u8).label()
}

/// One live line: per version, requests/s (per cohort), error ratio, P99 and
/// gate state since the previous sample.
fn progress(phase: &str, prev: Option<&Sample>, now: &Sample, stats: &Stats) -> String {
    let mut line = format!("  [{phase} {:>4.1}s]", now.t_ms as f64 / 1000.0);
    let dt = prev.map_or(1.0, |p| ((now.t_ms - p.t_ms) as f64 / 1000.0).max(0.1));
    for (v, n) in &now.requests {
        let before = prev.and_then(|p| p.requests.get(v)).copied().unwrap_or(0.0);
        let e_now = now.errors.get(v).copied().unwrap_or(0.0);
        let e_before = prev.and_then(|p| p.errors.get(v)).copied().unwrap_or(0.0);
        let rps = (n - before) / dt;
        let er = if n - before > 0.0 {
            (e_now - e_before) / (n - before) * 100.0
        } else {
            0.0
        };
        let p99 = stats
            .matching(
                "canary_gate_p99_microseconds",
                &[("canary_version", v.as_str())],
            )
            .map(|x| x.value)
            .fold(None::<f64>, |a, b| Some(a.map_or(b, |a| a.min(b))));
        let gate = now.gates.get(v).map_or("-", |g| gate_name(*g));
        // Requests/s of each cohort on this version.
        let cohorts: Vec<String> = now
            .by_cohort
            .iter()
            .filter_map(|(k, n)| {
                let (kv, cohort) = k.split_once('/')?;
                let before = prev
                    .and_then(|p| p.by_cohort.get(k))
                    .copied()
                    .unwrap_or(0.0);
                (kv == v && n - before > 0.0).then(|| format!("{cohort} {:.0}", (n - before) / dt))
            })
            .collect();
        line.push_str(&format!(
            "  {v}: {rps:>4.0} rps ({}) {er:>5.1}% err p99 {} gate {gate}",
            cohorts.join(", "),
            p99.map_or("-".to_string(), |p| format!("{:.1}ms", p / 1000.0))
        ));
    }
    if now.withdrawn {
        line.push_str("  [canary withdrawn]");
    }
    line
}
