//! `make soak`: a bounded soak of the filter on a real Envoy (see
//! `canary_e2e::soak`). Prints a table per phase and ends with one line:
//! `soak OK: ...` (exit 0) or `soak FAILED: ...` (exit 1).

use canary_e2e::soak::args::{Args, USAGE};
use canary_e2e::soak::run::{run, write, Report};

fn print(r: &Report) {
    println!(
        "{} requests at {}/s to {} distinct users; {} config updates applied, {} invalid ones rejected",
        r.requests, r.rate, r.distinct_users, r.updates.applied, r.updates.rejected
    );
    println!(
        "{:<8} {:>13} {:>17} {:>17} {:>19} {:>17} {:>6}",
        "phase", "seconds", "stats exported", "filter series", "RSS KiB", "largest VM KiB", "gate"
    );
    for p in &r.phases {
        println!(
            "{:<8} {:>6.0}-{:<6.0} {:>8} -> {:<6} {:>8} -> {:<6} {:>9} -> {:<7} {:>8} -> {:<6} {:>6}",
            p.name,
            p.from_s,
            p.to_s,
            p.stats.0,
            p.stats.1,
            p.canary_stats.0,
            p.canary_stats.1,
            p.rss_kib.0,
            p.rss_kib.1,
            p.largest_vm_kib.0,
            p.largest_vm_kib.1,
            p.gate_transitions
        );
    }
    if let Some(s) = r.samples.last() {
        let vms: Vec<String> = s
            .vms
            .iter()
            .map(|m| format!("{}/{}", m.size_kib, m.rss_kib))
            .collect();
        println!(
            "VM linear memory at the end (size/resident KiB): {}",
            vms.join(", ")
        );
    }
    println!(
        "requests by class, sent / counted: {}",
        r.accounting
            .sent
            .iter()
            .map(|(c, n)| format!(
                "{c} {n} / {}",
                r.accounting.counted.get(c).copied().unwrap_or(0)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for p in &r.problems {
        println!("problem: {p}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("canary-soak: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "soak: {:?} at {}/s over {} users, config update every {:?}, canary fails from {:?}",
        args.duration,
        args.rate,
        args.users,
        args.update_every,
        args.duration / 2
    );
    // Stopped early (Ctrl-C, kill): drop the run, which stops its Envoy.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let report = tokio::select! {
        r = run(&args) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
    };
    let Some(report) = report else {
        println!("soak FAILED: interrupted before the end of the run");
        std::process::exit(130);
    };
    print(&report);
    if let Err(e) = write(&report, &args.out) {
        eprintln!("canary-soak: cannot write {}: {e}", args.out.display());
    }
    match report.problems.first() {
        None => println!(
            "soak OK: {} requests all counted, no growth after warm-up (details in {})",
            report.requests,
            args.out.join("soak.json").display()
        ),
        Some(p) => {
            let more = report.problems.len() - 1;
            let more = if more > 0 {
                format!(" (+{more} more above)")
            } else {
                String::new()
            };
            println!("soak FAILED: {p}{more}");
            std::process::exit(1);
        }
    }
}
