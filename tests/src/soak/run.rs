//! One soak run: Envoy with the filter through ECDS, steady traffic, config
//! updates, a sampler, and the canary's failure at half time; then the
//! filter's counters are read once they have settled.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use canary_core::outcome::CodeClass;
use serde::Serialize;

use super::args::Args;
use super::memory;
use super::verdict::{phases, problems, Accounting, Phase, Plan, Sample, Transition};
use crate::traffic::{log_time, steady, Population, Record};
use crate::{Behaviour, Envoy, FilterSpec, Sidecar, Upstream};

/// The rollout the updates step through: the sticky canary moves between
/// these percentages (each a new configuration for the gates).
const STEPS: [u32; 2] = [10, 20];
/// Every this many updates one is invalid and must be rejected.
const INVALID_EVERY: u32 = 10;
const INVALID: &str = r#"{"sticky": {"percent": 120}}"#;
/// Share of the canary's answers that fail from half time, per mille.
const CANARY_ERRORS_PERMILLE: u32 = 300;

/// The soak's pluginConfig at a rollout step: internal and beta cohorts,
/// sticky users by `x-user-id`, gates on v2 with short windows.
pub fn plugin_config(percent: u32) -> String {
    format!(
        r#"{{
  "cohorts": [
    {{"name": "internal", "match": [{{"header": "user-type", "exact": "internal"}}]}},
    {{"name": "beta", "match": [{{"header": "beta-user", "exact": "true"}}]}}
  ],
  "sticky": {{"percent": {percent}, "salt": "soak", "userKey": {{"header": "x-user-id"}}}},
  "version": {{"known": ["v1", "v2"]}},
  "gates": {{
    "canaryVersion": "v2", "tick": "1s", "bucket": "1s", "minSamples": 20,
    "promotion": [{{"atPercent": 10, "maxErrorPercent": 1, "holdFor": "10s", "window": "30s"}}],
    "rollback": [{{"errorPercentAbove": 5, "window": "10s", "for": "2s"}}]
  }}
}}"#
    )
}

#[derive(Debug, Default, Serialize)]
pub struct Updates {
    pub applied: u32,
    pub rejected: u32,
    /// Updates Envoy answered otherwise than expected.
    pub unexpected: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub plan: Plan,
    pub rate: f64,
    pub requests: usize,
    pub distinct_users: usize,
    pub updates: Updates,
    pub accounting: Accounting,
    pub phases: Vec<Phase>,
    pub transitions: Vec<Transition>,
    pub samples: Vec<Sample>,
    pub problems: Vec<String>,
    #[serde(skip)]
    pub records: Vec<Record>,
    #[serde(skip)]
    pub t0: Option<SystemTime>,
}

fn since(t0: SystemTime, t: SystemTime) -> f64 {
    t.duration_since(t0).unwrap_or_default().as_secs_f64()
}

/// `/stats` as lines `name: value`.
async fn stats_text(envoy: &Envoy) -> String {
    envoy.admin_get("/stats").await
}

fn stat_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

async fn sample(envoy: &Envoy, at_s: f64, seen: &mut BTreeSet<String>) -> Sample {
    let (rss_kib, vms) = memory::read(envoy.pid());
    let text = stats_text(envoy).await;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let canary: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("wasmcustom."))
        .filter_map(|l| l.split_once(": ").map(|(n, _)| n))
        .collect();
    let new_series = canary
        .iter()
        .filter(|n| seen.insert(n.to_string()))
        .map(|n| n.to_string())
        .collect();
    Sample {
        at_s,
        rss_kib,
        vms,
        stats: lines.len(),
        canary_stats: canary.len(),
        connections: stat_value(&text, "http.reviews.downstream_cx_active").unwrap_or(0),
        new_series,
        gate_state: stat_value(&text, "wasmcustom.canary_version=.=v2;.;canary_gate_state"),
        withdrawn: stat_value(&text, "wasmcustom.canary_gate_withdrawn"),
    }
}

/// The filter's request counters by code class.
async fn counted(envoy: &Envoy) -> BTreeMap<String, u64> {
    let s = envoy.stats().await;
    CodeClass::ALL
        .iter()
        .map(|c| {
            let n = s.sum("canary_requests_total", &[("canary_code_class", c.label())]);
            (c.label().to_string(), n as u64)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Counters are bumped at the stream's end, after the client has its answer: wait
/// until they reach `sent` or stop moving.
async fn settled_counts(envoy: &Envoy, sent: u64) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = counted(envoy).await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = counted(envoy).await;
        let total: u64 = now.values().sum();
        if total == sent || (now == last && Instant::now() > deadline) {
            return now;
        }
        last = now;
    }
}

fn class(status: u16) -> &'static str {
    CodeClass::of(i64::from(status)).label()
}

pub async fn run(a: &Args) -> Report {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let mut s = Sidecar::outbound(
        FilterSpec::CanaryEcds(plugin_config(STEPS[0])),
        &[("v1", v1.addr), ("v2", v2.addr)],
        &[("v1", 100)],
    );
    s.concurrency = 2;
    let envoy = Envoy::start(&s).await;
    let warmup = a.warmup();
    let plan = Plan {
        warmup_s: warmup.as_secs_f64(),
        half_s: a.duration.as_secs_f64() / 2.0,
        settle_s: warmup.as_secs_f64(),
        end_s: a.duration.as_secs_f64(),
        rss_slack_kib: a.rss_slack_mib * 1024,
    };
    let pop = Population {
        users: a.users,
        internal_every: 50,
        beta_every: 20,
    };

    let client = envoy.client();
    let start = Instant::now();
    let t0 = SystemTime::now();
    let traffic = steady(&client, &pop, a.rate, a.duration, 0);
    let sampler = async {
        let mut seen = BTreeSet::new();
        let mut out = vec![];
        while start.elapsed() < a.duration {
            out.push(sample(&envoy, start.elapsed().as_secs_f64(), &mut seen).await);
            tokio::time::sleep(a.sample_every).await;
        }
        out
    };
    let updater = async {
        let mut u = Updates::default();
        let mut n: u32 = 0;
        // The next update is due `update_every` after the last; none is
        // started that would end after the traffic.
        while start.elapsed() + a.update_every * 2 <= a.duration {
            tokio::time::sleep(a.update_every).await;
            n += 1;
            if n.is_multiple_of(INVALID_EVERY) {
                match envoy.update_filter(INVALID).await {
                    Err(_) => u.rejected += 1,
                    Ok(()) => u
                        .unexpected
                        .push(format!("update {n}: an invalid config was accepted")),
                }
            } else {
                let step = STEPS[n as usize % STEPS.len()];
                match envoy.update_filter(&plugin_config(step)).await {
                    Ok(()) => u.applied += 1,
                    Err(log) => u.unexpected.push(format!(
                        "update {n}: rejected: {}",
                        log.lines().last().unwrap_or("")
                    )),
                }
            }
        }
        u
    };
    let breaker = async {
        tokio::time::sleep(Duration::from_secs_f64(plan.half_s)).await;
        v2.set(Behaviour {
            error_permille: CANARY_ERRORS_PERMILLE,
            ..Behaviour::default()
        });
    };
    let (records, mut samples, updates, ()) = tokio::join!(traffic, sampler, updater, breaker);

    let mut acc = Accounting::default();
    for r in &records {
        *acc.sent.entry(class(r.status).to_string()).or_default() += 1;
        let at = since(t0, r.sent);
        if at < plan.half_s && !(200..300).contains(&r.status) {
            acc.failed_early.push((at, r.status));
        }
    }
    acc.counted = settled_counts(&envoy, records.len() as u64).await;
    let mut seen: BTreeSet<String> = samples
        .iter()
        .flat_map(|s| s.new_series.iter().cloned())
        .collect();
    samples.push(sample(&envoy, start.elapsed().as_secs_f64(), &mut seen).await);

    let transitions: Vec<Transition> = envoy
        .log()
        .lines()
        .filter(|l| l.contains("canary gate"))
        .filter_map(|l| {
            let at = since(t0, log_time(l)?);
            let line = l.split("canary gate").nth(1)?;
            Some(Transition {
                at_s: at,
                line: format!("canary gate{line}"),
            })
        })
        .collect();
    let mut problems = problems(&plan, &samples, &acc, &transitions);
    problems.extend(updates.unexpected.iter().cloned());
    Report {
        plan,
        rate: a.rate,
        requests: records.len(),
        distinct_users: records.iter().map(|r| r.user).collect::<HashSet<_>>().len(),
        updates,
        accounting: acc,
        phases: phases(&plan, &samples, &transitions),
        transitions,
        samples,
        problems,
        records,
        t0: Some(t0),
    }
}

/// `soak.json` (everything but the requests) and `soak-requests.csv` (one
/// line per request) in `dir`.
pub fn write(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("soak.json"), json)?;
    let t0 = report.t0.unwrap_or(SystemTime::UNIX_EPOCH);
    let mut csv = String::from("sent_ms,user,kind,status,upstream,cohort,latency_us\n");
    for r in &report.records {
        csv.push_str(&format!(
            "{},{},{:?},{},{},{},{}\n",
            (since(t0, r.sent) * 1000.0).round(),
            r.user,
            r.kind,
            r.status,
            r.upstream.as_deref().unwrap_or(""),
            r.cohort.as_deref().unwrap_or(""),
            r.latency.as_micros()
        ));
    }
    std::fs::write(dir.join("soak-requests.csv"), csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_of_the_soak_config_is_valid_and_the_invalid_one_is_not() {
        for p in STEPS {
            canary_core::Config::from_json(plugin_config(p).as_bytes()).unwrap();
        }
        assert!(canary_core::Config::from_json(INVALID.as_bytes()).is_err());
    }

    #[test]
    fn a_stat_value_is_read_by_its_full_name() {
        let text = "wasmcustom.canary_gate_withdrawn: 1\nwasmcustom.canary_version=.=v2;.;canary_gate_state: 3\n";
        assert_eq!(
            stat_value(text, "wasmcustom.canary_gate_withdrawn"),
            Some(1)
        );
        assert_eq!(
            stat_value(text, "wasmcustom.canary_version=.=v2;.;canary_gate_state"),
            Some(3)
        );
        assert_eq!(stat_value(text, "wasmcustom.canary_gate"), None);
    }
}
