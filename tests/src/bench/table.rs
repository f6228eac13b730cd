//! What a run says: medians and ranges per case, the cost over bare Envoy,
//! the targets as pass/fail lines (ratios within this one run), as
//! a markdown report and as JSON.

use serde_json::{json, Value};

use super::run::{Case, Run};
use super::variants::{Filter, HeaderSet};

/// Median of a non-empty slice (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn cpu(c: &Case) -> Vec<f64> {
    c.samples.iter().map(|s| s.cpu_us_per_request).collect()
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

impl Run {
    /// The case of variant `id` with header set `set`, if it was measured.
    pub fn case(&self, id: &str, set: HeaderSet) -> Option<&Case> {
        self.cases
            .iter()
            .find(|c| self.variants[c.variant].id == id && c.headers == set)
    }

    /// Bare Envoy on the same path with the same headers.
    fn baseline(&self, c: &Case) -> Option<&Case> {
        let path = self.variants[c.variant].path;
        self.cases.iter().find(|b| {
            let v = &self.variants[b.variant];
            v.filter == Filter::None && v.path == path && b.headers == c.headers
        })
    }

    /// Microseconds of Envoy CPU per request over bare Envoy: the median of
    /// the per-round differences, so both figures of a pair were measured
    /// minutes apart at most.
    pub fn over_bare(&self, c: &Case) -> Option<f64> {
        let b = self.baseline(c)?;
        let d: Vec<f64> = c
            .samples
            .iter()
            .zip(&b.samples)
            .map(|(x, y)| x.cpu_us_per_request - y.cpu_us_per_request)
            .collect();
        (!d.is_empty()).then(|| median(&d))
    }

    fn over(&self, id: &str, set: HeaderSet) -> Option<f64> {
        self.over_bare(self.case(id, set)?)
    }

    /// CPU used by other processes during the measurements, in % of one
    /// CPU: (median, max).
    pub fn other_cpu(&self) -> (f64, f64) {
        let all: Vec<f64> = self
            .cases
            .iter()
            .flat_map(|c| c.samples.iter().map(|s| s.other_cpu_percent))
            .collect();
        (median(&all), min_max(&all).1)
    }

    /// The targets, evaluated on this run.
    pub fn targets(&self) -> Vec<Target> {
        use HeaderSet::{Minimal, Realistic};
        let mut t = vec![];
        let (f, noop, lua, shipped) = (
            self.over("filter", Minimal),
            self.over("noop", Minimal),
            self.over("lua", Minimal),
            self.over("shipped", Minimal),
        );
        t.push(Target::new(
            "filter `{}` overhead / empty module overhead",
            "at most 2x",
            &["filter", "noop"],
            f.zip(noop).map(|(f, n)| {
                (
                    format!("{:.2}x ({f:+.2} / {n:+.2} µs)", f / n),
                    f <= 2.0 * n,
                )
            }),
        ));
        t.push(Target::new(
            "filter `{}` overhead vs Lua doing the same work",
            "no more than Lua",
            &["filter", "lua"],
            f.zip(lua)
                .map(|(f, l)| (format!("{f:+.2} vs {l:+.2} µs"), f <= l)),
        ));
        t.push(Target::new(
            "shipped config overhead vs `{}`",
            "at most +15 %",
            &["shipped", "filter"],
            shipped.zip(f).map(|(s, f)| {
                (
                    format!("{:+.1} % ({s:+.2} vs {f:+.2} µs)", (s / f - 1.0) * 100.0),
                    s <= 1.15 * f,
                )
            }),
        ));
        let real = self.over("filter", Realistic);
        t.push(Target::new(
            "filter `{}` overhead, realistic vs minimal headers",
            "no growth beyond 10 %",
            &["filter", "bare"],
            real.zip(f).map(|(r, f)| {
                (
                    format!("{:+.1} % ({r:+.2} vs {f:+.2} µs)", (r / f - 1.0) * 100.0),
                    r <= 1.10 * f,
                )
            }),
        ));
        let bytes = self.machine.filter_wasm_bytes;
        t.push(Target::new(
            "release module size",
            "at most 200 KiB (204,800 bytes)",
            &[],
            Some((format!("{} bytes", thousands(bytes)), bytes <= 200 * 1024)),
        ));
        t
    }
}

/// A target from the issue, checked on one run. Never asserted: the bench
/// reports, it does not fail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: Option<String>,
    pub pass: Option<bool>,
    #[serde(skip)]
    needs: Vec<&'static str>,
}

impl Target {
    fn new(
        name: &str,
        target: &str,
        needs: &[&'static str],
        result: Option<(String, bool)>,
    ) -> Target {
        Target {
            name: name.into(),
            target: target.into(),
            measured: result.as_ref().map(|r| r.0.clone()),
            pass: result.map(|r| r.1),
            needs: needs.to_vec(),
        }
    }

    pub fn line(&self) -> String {
        match (&self.measured, self.pass) {
            (Some(m), Some(p)) => format!(
                "- {}: {m} (target: {}): **{}**",
                self.name,
                self.target,
                if p { "pass" } else { "FAIL" }
            ),
            _ => format!(
                "- {}: not measured (needs variants {})",
                self.name,
                self.needs.join(", ")
            ),
        }
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The report as markdown: machine, method, the table, memory, targets.
pub fn markdown(run: &Run) -> String {
    let m = &run.machine;
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line(&format!(
        "Measured {} on {} CPUs ({}), Envoy {}; filter module {} bytes, empty module {} bytes.",
        m.measured_at,
        m.cpus,
        m.cpu_model,
        m.envoy_version,
        thousands(m.filter_wasm_bytes),
        thousands(m.noop_wasm_bytes)
    ));
    let (other_median, other_max) = run.other_cpu();
    line(&format!(
        "{} interleaved rounds of {} requests per case. Envoy CPU (utime+stime) per request: median and \
         min-max over the rounds; \"over bare\" is the median per-round difference to bare Envoy on the \
         same path with the same request headers. Other processes used {other_median:.1} % of one CPU \
         during the measurements (median; max {other_max:.1} %).",
        run.rounds,
        thousands(run.requests)
    ));
    line("");
    line("| variant | request headers | CPU µs/request | min-max | over bare | requests/s |");
    line("|---|---|---:|---:|---:|---:|");
    for c in &run.cases {
        let v = cpu(c);
        let (lo, hi) = min_max(&v);
        let rps: Vec<f64> = c.samples.iter().map(|s| s.requests_per_second).collect();
        let over = match run.over_bare(c) {
            Some(d) if run.variants[c.variant].filter != Filter::None => format!("{d:+.2}"),
            _ => "-".into(),
        };
        line(&format!(
            "| {} | {} | {:.2} | {lo:.2}-{hi:.2} | {over} | {} |",
            run.variants[c.variant].label,
            c.headers.id(),
            median(&v),
            thousands(median(&rps).round() as u64)
        ));
    }
    let wasm: Vec<usize> = (0..run.variants.len())
        .filter(|i| run.variants[*i].filter.is_wasm())
        .collect();
    if !wasm.is_empty() {
        line("");
        line("| wasm variant | VMs | linear memory per VM (KiB) | resident per VM (KiB) |");
        line("|---|---:|---:|---:|");
        for i in wasm {
            let mem = &run.memory[i];
            let sizes: Vec<String> = mem.iter().map(|x| x.size_kib.to_string()).collect();
            let rss: Vec<String> = mem.iter().map(|x| x.rss_kib.to_string()).collect();
            line(&format!(
                "| {} | {} | {} | {} |",
                run.variants[i].label,
                mem.len(),
                sizes.join(" / "),
                rss.join(" / ")
            ));
        }
    }
    let lookalikes: usize = (0..run.variants.len())
        .filter(|i| !run.variants[*i].filter.is_wasm())
        .map(|i| run.memory[i].len())
        .sum();
    if lookalikes > 0 {
        line("");
        line(&format!(
            "Warning: Envoy without a wasm module shows {lookalikes} mappings that look like wasm memories: the memory figures are not to be trusted."
        ));
    }
    line("");
    line("Targets (ratios within this run; proxied path, minimal request headers unless said):");
    line("");
    for t in run.targets() {
        line(&t.line());
    }
    out
}

/// The report as JSON: every round's sample, the summaries and the targets.
pub fn json(run: &Run) -> Value {
    let cases: Vec<Value> = run
        .cases
        .iter()
        .map(|c| {
            let v = &run.variants[c.variant];
            let cpu = cpu(c);
            let (lo, hi) = min_max(&cpu);
            json!({
                "variant": v.id,
                "label": v.label,
                "path": v.path.id(),
                "plugin_config": match &v.filter { Filter::Canary(cfg) => Some(cfg), _ => None },
                "headers": c.headers.id(),
                "cpu_us_per_request": {"median": median(&cpu), "min": lo, "max": hi},
                "over_bare_us": run.over_bare(c),
                "rounds": c.samples,
            })
        })
        .collect();
    let memory: Vec<Value> = run
        .variants
        .iter()
        .zip(&run.memory)
        .filter(|(v, _)| v.filter.is_wasm())
        .map(|(v, m)| json!({"variant": v.id, "linear_memories": m}))
        .collect();
    let (other_median, other_max) = run.other_cpu();
    json!({
        "machine": run.machine,
        "method": {
            "envoy": "one process per variant, --concurrency 1, pinned to CPU 0; proxied variants route to Istio-named clusters whose endpoint is a second listener of the same Envoy (direct response)",
            "load": "h2load --h1 -c 16 -t 1, pinned to CPU 1",
            "cpu": "Envoy utime+stime from /proc/<pid>/stat over one h2load run, divided by the requests answered 2xx",
            "order": "all variants started up front; every round measures every case once, rotating the order",
            "over_bare": "median of per-round differences to bare Envoy on the same path with the same request headers",
            "memory": "wasm linear memories from /proc/<pid>/smaps after the last round",
        },
        "rounds": run.rounds,
        "requests_per_round": run.requests,
        "other_cpu_percent": {"median": other_median, "max": other_max},
        "cases": cases,
        "wasm_memory_kib": memory,
        "targets": run.targets(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn thousands_are_separated_by_commas() {
        assert_eq!(thousands(407_054), "407,054");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
