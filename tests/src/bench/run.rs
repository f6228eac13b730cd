//! The measurement: every variant's Envoy started up front, then rounds in
//! which every case (a variant with one header set) runs once, so a change
//! in the machine's state during the run touches all cases alike instead of
//! the ones that happened to run at that moment.

use std::time::Instant;

use super::callgrind;
use super::load;
use super::probe::{self, LinearMemory};
use super::topology;
use super::variants::{HeaderSet, Variant};
use crate::Envoy;

#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: usize,
    pub requests: u64,
    pub variants: Vec<Variant>,
    pub meter: Meter,
}

/// What a run counts per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meter {
    /// Envoy's CPU time: what the targets are stated in.
    CpuTime,
    /// Instructions Envoy executes, counted by callgrind (see
    /// [`callgrind`]): nearly the same figure from run to run.
    Instructions,
}

impl Meter {
    /// Whether the run reads the wasm linear memories after its last round.
    /// Under callgrind V8 lays out its memories differently (one of three
    /// VMs showed the usual mapping pair): no figure rather than a wrong one.
    pub fn reads_memory(self) -> bool {
        self == Meter::CpuTime
    }

    /// The unit of a cost per request, as the report writes it.
    pub fn unit(self) -> &'static str {
        match self {
            Meter::CpuTime => "µs",
            Meter::Instructions => "instructions",
        }
    }
}

/// One case measured once.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sample {
    /// The run's [`Meter`] per request answered: Envoy CPU time in µs (its
    /// threads' scheduler run time), or the instructions it executed.
    pub cost_per_request: f64,
    pub requests: u64,
    pub requests_per_second: f64,
    /// CPU used during the run by anything but this Envoy and h2load, in %
    /// of one CPU: the noise a reader should know about.
    pub other_cpu_percent: f64,
}

#[derive(Debug, Clone)]
pub struct Case {
    /// Index into [`Run::variants`].
    pub variant: usize,
    pub headers: HeaderSet,
    /// One per round, in round order.
    pub samples: Vec<Sample>,
}

/// The machine and build the figures belong to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub measured_at: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub envoy_version: String,
    pub filter_wasm_bytes: u64,
    pub noop_wasm_bytes: u64,
}

impl Machine {
    pub fn now() -> Machine {
        let size = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
        Machine {
            measured_at: probe::utc_now(),
            cpus: probe::cpus(),
            cpu_model: probe::cpu_model(),
            envoy_version: probe::envoy_version(&crate::paths::envoy_bin()),
            filter_wasm_bytes: size(crate::paths::filter_wasm()),
            noop_wasm_bytes: size(crate::paths::noop_wasm()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Run {
    pub rounds: usize,
    pub requests: u64,
    pub meter: Meter,
    pub machine: Machine,
    pub variants: Vec<Variant>,
    pub cases: Vec<Case>,
    /// Per variant (same index): its wasm linear memories after the run;
    /// none under the instruction meter.
    pub memory: Vec<Vec<LinearMemory>>,
}

/// Measures `opts`; `progress` gets one line per step. Panics (test tooling)
/// when a config is refused, an Envoy does not start or answer as expected,
/// or a request fails during a measurement.
pub async fn run(opts: &Options, mut progress: impl FnMut(&str)) -> Run {
    for v in &opts.variants {
        if let Err(e) = v.check_config() {
            panic!("{e}");
        }
    }
    let machine = Machine::now();
    let envoys = start_all(
        &opts.variants,
        opts.meter == Meter::Instructions,
        &mut progress,
    )
    .await;
    let mut cases: Vec<Case> = vec![];
    for (i, v) in opts.variants.iter().enumerate() {
        for set in &v.header_sets {
            cases.push(Case {
                variant: i,
                headers: *set,
                samples: vec![],
            });
        }
    }
    // Warm-up: connections, V8's optimising tier, first-use allocations.
    progress(&format!("warming up {} cases", cases.len()));
    let warm = (opts.requests / 10).max(2_000);
    for c in &cases {
        let envoy = &envoys[c.variant];
        if let Err(e) = load::run(envoy.listener, c.headers, warm).await {
            panic!("{} ({}): {e}", opts.variants[c.variant].id, c.headers.id());
        }
    }
    let frozen = Frozen::all(&envoys);
    for round in 0..opts.rounds {
        let t = Instant::now();
        let n = cases.len();
        let start = first_case(round, opts.rounds, n);
        for k in 0..n {
            let c = &mut cases[(start + k) % n];
            let envoy = &envoys[c.variant];
            frozen.thaw(envoy).await;
            let sample = measure(envoy, c.headers, opts.requests, opts.meter).await;
            frozen.freeze(envoy);
            match sample {
                Ok(s) => c.samples.push(s),
                Err(e) => panic!("{} ({}): {e}", opts.variants[c.variant].id, c.headers.id()),
            }
        }
        progress(&format!(
            "round {}/{} done in {:.0} s",
            round + 1,
            opts.rounds,
            t.elapsed().as_secs_f64()
        ));
    }
    drop(frozen);
    let memory = envoys
        .iter()
        .map(|e| {
            if opts.meter.reads_memory() {
                probe::wasm_memories(e.pid())
            } else {
                vec![]
            }
        })
        .collect();
    Run {
        rounds: opts.rounds,
        requests: opts.requests,
        meter: opts.meter,
        machine,
        variants: opts.variants.clone(),
        cases,
        memory,
    }
}

/// Starts the variants' Envoys (under callgrind for the instruction meter),
/// as many at once as there are CPUs: under callgrind each one's start is a
/// minute or two of V8 compiling on one thread (valgrind runs one thread at
/// a time), which one after another on CPU 0 made most of a run's time.
/// [`topology::start`] pins each to CPU 0 once it serves.
async fn start_all(
    variants: &[Variant],
    callgrind: bool,
    progress: &mut impl FnMut(&str),
) -> Vec<Envoy> {
    let at_once = probe::cpus().max(1);
    progress(&format!(
        "starting {} Envoys{}, {at_once} at a time",
        variants.len(),
        if callgrind { " under callgrind" } else { "" }
    ));
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut starting = tokio::task::JoinSet::new();
    for (i, v) in variants.iter().cloned().enumerate() {
        let permits = permits.clone();
        starting.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, topology::start(&v, callgrind).await)
        });
    }
    let mut started: Vec<Option<Envoy>> = variants.iter().map(|_| None).collect();
    while let Some(done) = starting.join_next().await {
        match done {
            Ok((i, envoy)) => {
                progress(&format!(
                    "started {} ({})",
                    variants[i].id, variants[i].label
                ));
                started[i] = Some(envoy);
            }
            // A variant that did not start stops the bench with its message;
            // the other starts are dropped with the set.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("starting an Envoy: {e}"),
        }
    }
    started.into_iter().flatten().collect()
}

/// The variants' Envoys stopped (SIGSTOP) while another one is measured.
/// All of them are pinned to CPU 0, and an idle Envoy is not idle: its
/// timers, stats flushes and the filter's ticks ran on the measured Envoy's
/// CPU and made its cost per request swing by tens of percent between
/// rounds (a run of all variants read bare Envoy at 102-196 µs, bare Envoy
/// alone at 86-99). They are resumed when this guard drops, also on a panic.
struct Frozen<'a>(&'a [Envoy]);

/// How long a resumed Envoy gets to run the timers that fell due while it
/// was stopped, before its CPU time is read.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

impl<'a> Frozen<'a> {
    fn all(envoys: &'a [Envoy]) -> Frozen<'a> {
        for e in envoys {
            must_signal(e, "STOP");
        }
        Frozen(envoys)
    }

    async fn thaw(&self, envoy: &Envoy) {
        must_signal(envoy, "CONT");
        tokio::time::sleep(SETTLE).await;
    }

    fn freeze(&self, envoy: &Envoy) {
        must_signal(envoy, "STOP");
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        // No assert here: this also runs while a panic unwinds, and a
        // second panic would abort before the Envoys are cleaned up.
        for e in self.0 {
            signal(e.pid(), "CONT");
        }
    }
}

/// Sends `sig` (a name `kill -s` knows) to process `pid`; says whether it
/// was delivered.
pub fn signal(pid: u32, sig: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// [`signal`], stopping the bench when it fails: a variant left running, or
/// left stopped, would distort or stall every later figure.
fn must_signal(envoy: &Envoy, sig: &str) {
    assert!(
        signal(envoy.pid(), sig),
        "kill -s {sig} {} failed",
        envoy.pid()
    );
}

/// The case a round starts with. The starts are spread evenly over the
/// cases, so over the rounds every case is measured early, midway and late
/// in a round: the machine's speed drifts by tens of percent within a run of
/// several minutes here, and a rotation by one case per round would leave
/// most cases at nearly the same place in every round.
fn first_case(round: usize, rounds: usize, cases: usize) -> usize {
    if rounds == 0 {
        return 0;
    }
    round * cases / rounds % cases.max(1)
}

/// One h2load run of `n` requests with `set` against `envoy`, and what it
/// cost per request by `meter`. Under the instruction meter callgrind's
/// counters are zeroed before the load and dumped after it.
async fn measure(envoy: &Envoy, set: HeaderSet, n: u64, meter: Meter) -> Result<Sample, String> {
    let pid = envoy.pid();
    if meter == Meter::Instructions {
        callgrind::zero(pid)?;
    }
    let (envoy0, children0, busy0) = (
        probe::process_cpu(pid),
        probe::children_cpu(),
        probe::machine_busy(),
    );
    let t = Instant::now();
    let load = load::run(envoy.listener, set, n).await?;
    let wall = t.elapsed().as_secs_f64();
    let envoy_cpu = probe::process_cpu(pid) - envoy0;
    let h2load_cpu = probe::children_cpu() - children0;
    let other = (probe::machine_busy() - busy0 - envoy_cpu - h2load_cpu).max(0.0);
    let cost = match meter {
        Meter::CpuTime => envoy_cpu * 1e6,
        Meter::Instructions => callgrind::dump(pid, &envoy.dir())? as f64,
    };
    Ok(Sample {
        cost_per_request: cost / load.ok as f64,
        requests: load.ok,
        requests_per_second: load.ok as f64 / wall,
        other_cpu_percent: other / wall * 100.0,
    })
}

#[cfg(test)]
mod tests {
    use super::first_case;

    #[test]
    fn over_the_rounds_each_case_runs_early_midway_and_late_in_a_round() {
        let (rounds, n) = (5, 27);
        for case in 0..n {
            let mut places: Vec<usize> = (0..rounds)
                .map(|r| (case + n - first_case(r, rounds, n)) % n)
                .collect();
            places.sort();
            assert!(places[0] < n / 4, "case {case}: {places:?}");
            assert!(places[rounds - 1] >= 3 * n / 4, "case {case}: {places:?}");
        }
    }
}
