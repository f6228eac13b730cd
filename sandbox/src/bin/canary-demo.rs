//! `make demo`: the workshop module's canary exercises (1-8), and the canary judged against its baseline, played on local
//! Envoy processes with the canary filter: live progress, a summary table and
//! a self-contained HTML report. See `canary-demo --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use canary_sandbox::{report, run, summary, Options};

const HELP: &str = "canary-demo [options]
  --steps 1,2,...,8     phases to play (default: all)
                        1 all-or-nothing, 2 canary steps (weights vs sticky),
                        3 internal/beta first and a spoofed header,
                        4 broken v3: outlier detection vs the gate, 5 SLO-gated promotion,
                        6 verified identity: beta testers by JWT group, forged headers and baggage,
                        7 subtle regression judged against the baseline, 8 shared incident
  --short               the shortened scenario `make test` runs
  --rate N              requests per second (default 150)
  --users N             user population (default 300)
  --phase-secs S        seconds per phase (default 6)
  --v2-delay-ms N       v2's added latency (default 2)
  --v3-error-permille N v3's failing share (default 1000: broken, as in Exercise 6)
  --report PATH         HTML report (default out/sandbox-report.html)
  --json PATH           the measurements as JSON too
  --quiet               no live progress
  business inputs (Exercise 8 defaults):
  --outage-cost USD     per bad deployment before (50000)
  --rollback-before S   rollback time before (7200)
  --rollback-manual S   manual rollback with mesh metrics (30)
  --bad-deploys-before N  per month (2)
  --bad-deploys-after N   per month (1)";

/// What the command line asks for.
struct Args {
    options: Options,
    report: PathBuf,
    json: Option<PathBuf>,
}

/// `Ok(None)` for `--help`; `Err` is the one line that names the bad argument.
fn parse(args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut o = Options::demo();
    let mut report = PathBuf::from("out/sandbox-report.html");
    let mut json = None;
    let mut it = args;
    let num = |v: Option<String>, flag: &str| -> Result<f64, String> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number; see --help"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--steps" => {
                let v = it.next().unwrap_or_default();
                o.steps = v
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .filter(|s| (1..=8).contains(s))
                    .collect();
                if o.steps.is_empty() {
                    return Err("--steps takes phases 1-8, e.g. 1,4".into());
                }
            }
            "--short" => {
                let steps = o.steps.clone();
                o = Options {
                    steps,
                    live: o.live,
                    business: o.business,
                    ..Options::short()
                };
            }
            "--rate" => o.rate = num(it.next(), "--rate")?,
            "--users" => o.users = num(it.next(), "--users")? as usize,
            "--phase-secs" => o.phase_secs = num(it.next(), "--phase-secs")?,
            "--v2-delay-ms" => o.v2_delay_ms = num(it.next(), "--v2-delay-ms")? as u64,
            "--v3-error-permille" => {
                o.v3_error_permille = num(it.next(), "--v3-error-permille")? as u32
            }
            "--report" => report = it.next().map(PathBuf::from).unwrap_or(report),
            "--json" => json = it.next().map(PathBuf::from),
            "--quiet" => o.live = false,
            "--outage-cost" => o.business.outage_cost = num(it.next(), "--outage-cost")?,
            "--rollback-before" => {
                o.business.rollback_before_s = num(it.next(), "--rollback-before")?
            }
            "--rollback-manual" => {
                o.business.rollback_manual_s = num(it.next(), "--rollback-manual")?
            }
            "--bad-deploys-before" => {
                o.business.bad_deploys_before = num(it.next(), "--bad-deploys-before")?
            }
            "--bad-deploys-after" => {
                o.business.bad_deploys_after = num(it.next(), "--bad-deploys-after")?
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other}; see --help")),
        }
    }
    if o.rate <= 0.0 || o.users == 0 || o.phase_secs <= 0.0 {
        return Err("--rate, --users and --phase-secs must be above 0".into());
    }
    Ok(Some(Args {
        options: o,
        report,
        json,
    }))
}

/// Writes `text` to `path`, creating its directory; `Err` names the file.
fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Plays the scenario, prints the summary and writes the report (and JSON).
fn demo(a: &Args) -> Result<(), String> {
    let o = &a.options;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let r = rt.block_on(run(o))?;
    print!("{}", summary::table(&r, o));
    write(&a.report, &report::html(&r, o))?;
    println!("\nreport: {}", a.report.display());
    if let Some(j) = &a.json {
        let text = serde_json::to_string_pretty(&r).map_err(|e| format!("json: {e}"))?;
        write(j, &text)?;
        println!("json:   {}", j.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => match demo(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("canary-demo: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
