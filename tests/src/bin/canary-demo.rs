//! `make demo`: the module's Exercises 4 and 5 played on local Envoy processes
//! with the canary filter, printing what each user population actually got.

use std::collections::{BTreeMap, BTreeSet};

use canary_e2e::{Client, Envoy, FilterSpec, Req, Sidecar, Stats, Upstream};

const USERS: usize = 1000;
const REQUESTS_PER_USER: usize = 3;

fn sticky(percent: u32) -> String {
    format!(r#"{{"sticky": {{"percent": {percent}, "salt": "reviews"}}}}"#)
}

/// Sends every user's requests; returns per-user versions seen and totals.
async fn users(c: &Client, with_key: bool) -> (usize, BTreeMap<String, usize>) {
    let mut flipped = 0;
    let mut totals = BTreeMap::new();
    for u in 0..USERS {
        let mut seen = BTreeSet::new();
        for _ in 0..REQUESTS_PER_USER {
            let mut req = Req::get("/");
            if with_key {
                req = req.header("x-user-id", format!("user-{u}"));
            }
            let v = c.send(&req).await.upstream().unwrap_or("?").to_string();
            *totals.entry(v.clone()).or_insert(0) += 1;
            seen.insert(v);
        }
        if seen.len() > 1 {
            flipped += 1;
        }
    }
    (flipped, totals)
}

fn share(totals: &BTreeMap<String, usize>) -> String {
    let all: usize = totals.values().sum();
    totals
        .iter()
        .map(|(v, n)| format!("{v} {:.1} %", *n as f64 * 100.0 / all as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_metrics(s: &Stats) {
    println!(
        "  {:<8} {:<9} {:>6} {:>6}",
        "version", "cohort", "reqs", "errors"
    );
    let mut rows: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for x in s.matching("canary_requests_total", &[]) {
        let key = (
            x.labels["canary_version"].clone(),
            x.labels["canary_cohort"].clone(),
        );
        rows.entry(key).or_default().0 += x.value;
    }
    for x in s.matching("canary_errors_total", &[]) {
        let key = (
            x.labels["canary_version"].clone(),
            x.labels["canary_cohort"].clone(),
        );
        rows.entry(key).or_default().1 += x.value;
    }
    for ((v, c), (n, e)) in rows {
        println!("  {v:<8} {c:<9} {n:>6} {e:>6}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let ups = [("v1", v1.addr), ("v2", v2.addr)];

    println!("== Exercise 5: header-based testing, with the filter deciding the cohort");
    let envoy = Envoy::start(&Sidecar::outbound(
        FilterSpec::CanaryEcds(sticky(0)),
        &ups,
        &[("v1", 100), ("v2", 0)],
    ))
    .await;
    let c = envoy.client();
    for (who, req) in [
        (
            "internal user (user-type: internal)",
            Req::get("/").header("user-type", "internal"),
        ),
        (
            "beta user (beta-user: true)",
            Req::get("/").header("beta-user", "true"),
        ),
        ("regular user", Req::get("/")),
        (
            "spoofer (x-canary-cohort: internal)",
            Req::get("/").header("x-canary-cohort", "internal"),
        ),
    ] {
        let mut versions = BTreeMap::new();
        let mut cohort = String::new();
        for _ in 0..10 {
            let r = c.send(&req).await;
            *versions
                .entry(r.upstream().unwrap_or("?").to_string())
                .or_insert(0) += 1;
            cohort = r.header("x-canary-cohort").unwrap_or("?").to_string();
        }
        println!("  {who:<38} cohort {cohort:<9} -> {versions:?}");
    }

    println!("\n== Exercise 4: 10 % then 50 % to v2, {USERS} users x {REQUESTS_PER_USER} requests");
    for percent in [10, 50] {
        let per_request = Envoy::start(&Sidecar::outbound(
            FilterSpec::CanaryEcds(sticky(0)),
            &ups,
            &[("v1", 100 - percent), ("v2", percent)],
        ))
        .await;
        let (flipped, totals) = users(&per_request.client(), true).await;
        println!("  {percent:>2} % per-request weights : {}; {flipped} of {USERS} users saw both versions", share(&totals));
        envoy.update_filter(&sticky(percent)).await.unwrap();
        let (flipped, totals) = users(&c, true).await;
        println!("  {percent:>2} % sticky cohort       : {}; {flipped} of {USERS} users saw both versions", share(&totals));
    }

    println!("\n== Metrics on the sticky sidecar's /stats/prometheus (canary_requests_total, canary_errors_total)");
    // Histograms and counters are read after Envoy's next stats flush.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    print_metrics(&envoy.stats().await);
    println!("\nDone. `make test` runs the assertions behind this; README.md explains the config.");
}
