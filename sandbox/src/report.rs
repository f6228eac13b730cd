//! The sandbox's self-contained HTML report: inline SVG charts (traffic share
//! per version over time, error ratio against the thresholds, gate states),
//! blast radius and the business view. No scripts, no external assets; the
//! markup is well-formed XML so tests (and tools) can parse it.

use std::fmt::Write as _;

use crate::options::Options;
use crate::recorder::Sample;
use crate::results::Results;

const COLORS: [(&str, &str); 3] = [("v1", "#4C78A8"), ("v2", "#54A24B"), ("v3", "#E45756")];
const GATE_COLORS: [&str; 4] = ["#bbbbbb", "#54A24B", "#F2B701", "#E45756"];

fn color(v: &str) -> &'static str {
    COLORS
        .iter()
        .find(|(n, _)| *n == v)
        .map_or("#888888", |(_, c)| c)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What one version did in one interval: (version, requests, errors).
type VersionDelta = (String, f64, f64);

/// Per-interval deltas: (t seconds at the interval's end, per version).
fn intervals(samples: &[Sample]) -> Vec<(f64, Vec<VersionDelta>)> {
    samples
        .windows(2)
        .map(|w| {
            let versions: Vec<(String, f64, f64)> = w[1]
                .requests
                .iter()
                .map(|(v, n)| {
                    let dn = n - w[0].requests.get(v).copied().unwrap_or(0.0);
                    let de = w[1].errors.get(v).copied().unwrap_or(0.0)
                        - w[0].errors.get(v).copied().unwrap_or(0.0);
                    (v.clone(), dn.max(0.0), de.max(0.0))
                })
                .collect();
            (w[1].t_ms as f64 / 1000.0, versions)
        })
        .collect()
}

const W: f64 = 640.0;
const H: f64 = 140.0;
const PAD: f64 = 36.0;
/// Room above the plot for the top axis label.
const TOP: f64 = 8.0;

fn axes(out: &mut String, t_max: f64, labels: &[(f64, &str)]) {
    let _ = write!(
        out,
        r##"<line x1="{PAD}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        H, W, H
    );
    let _ = write!(
        out,
        r##"<line x1="{PAD}" y1="0" x2="{PAD}" y2="{H}" stroke="#333"/>"##
    );
    for (y, label) in labels {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
            PAD - 4.0,
            y + 3.0,
            esc(label)
        );
    }
    let _ = write!(
        out,
        r##"<text x="{W}" y="{}" font-size="10" text-anchor="end">{t_max:.0} s</text>"##,
        H + 12.0
    );
}

fn share_chart(samples: &[Sample]) -> String {
    let iv = intervals(samples);
    let t_max = iv.last().map_or(1.0, |(t, _)| *t).max(1.0);
    let x = |t: f64| PAD + (W - PAD) * t / t_max;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" role="img"><g transform="translate(0 {TOP})">"#,
        H + 16.0 + TOP
    );
    let mut prev_t = 0.0;
    for (t, vs) in &iv {
        let total: f64 = vs.iter().map(|(_, n, _)| n).sum();
        if total <= 0.0 {
            prev_t = *t;
            continue;
        }
        let mut y = 0.0;
        for (v, n, _) in vs {
            let h = H * n / total;
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {:.0} %</title></rect>"#,
                x(prev_t),
                y,
                (x(*t) - x(prev_t)).max(0.5),
                h,
                color(v),
                esc(v),
                100.0 * n / total
            );
            y += h;
        }
        prev_t = *t;
    }
    axes(
        &mut out,
        t_max,
        &[(0.0, "100%"), (H / 2.0, "50%"), (H, "0%")],
    );
    out.push_str("</g></svg>");
    out
}

/// Error ratio per version on a log scale from 0.01 % to 100 %, with the
/// module's objective (0.1 %), rollback trigger (0.2 %) and 5xx trigger (1 %).
fn error_chart(samples: &[Sample]) -> String {
    let iv = intervals(samples);
    let t_max = iv.last().map_or(1.0, |(t, _)| *t).max(1.0);
    let x = |t: f64| PAD + (W - PAD) * t / t_max;
    let y = |ratio: f64| {
        let l = ratio.max(1e-4).log10(); // -4 .. 0
        H * (-l) / 4.0
    };
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" role="img"><g transform="translate(0 {TOP})">"#,
        H + 16.0 + TOP
    );
    for (ratio, label, c) in [
        (0.001, "objective 0.1 %", "#888888"),
        (0.002, "rollback 0.2 %", "#F2B701"),
        (0.01, "5xx trigger 1 %", "#E45756"),
    ] {
        let _ = write!(
            out,
            r#"<line x1="{PAD}" y1="{0:.1}" x2="{W}" y2="{0:.1}" stroke="{c}" stroke-dasharray="4 3"/><text x="{W}" y="{1:.1}" font-size="9" text-anchor="end" fill="{c}">{label}</text>"#,
            y(ratio),
            y(ratio) - 2.0
        );
    }
    let mut versions: Vec<String> = iv
        .iter()
        .flat_map(|(_, vs)| vs.iter().map(|(v, _, _)| v.clone()))
        .collect();
    versions.sort();
    versions.dedup();
    for v in versions {
        let pts: Vec<String> = iv
            .iter()
            .filter_map(|(t, vs)| {
                vs.iter()
                    .find(|(n, r, _)| *n == v && *r > 0.0)
                    .map(|(_, r, e)| format!("{:.1},{:.1}", x(*t), y(e / r)))
            })
            .collect();
        if !pts.is_empty() {
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
                color(&v),
                pts.join(" "),
                esc(&v)
            );
        }
    }
    axes(
        &mut out,
        t_max,
        &[
            (0.0, "100%"),
            (y(0.01), "1%"),
            (y(0.001), "0.1%"),
            (H, "0.01%"),
        ],
    );
    out.push_str("</g></svg>");
    out
}

fn gate_chart(samples: &[Sample]) -> String {
    let t_max = samples
        .last()
        .map_or(1.0, |s| s.t_ms as f64 / 1000.0)
        .max(1.0);
    let x = |t: f64| PAD + (W - PAD) * t / t_max;
    let mut versions: Vec<String> = samples
        .iter()
        .flat_map(|s| s.gates.keys().cloned())
        .collect();
    versions.sort();
    versions.dedup();
    let row = 18.0;
    let height = row * (versions.len() as f64 + 1.0) + 4.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" role="img">"#
    );
    for (i, v) in versions.iter().enumerate() {
        let y0 = i as f64 * row;
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"#,
            PAD - 4.0,
            y0 + 12.0,
            esc(v)
        );
        for w in samples.windows(2) {
            let g = w[0].gates.get(v).copied().unwrap_or(0.0) as usize;
            let t0 = w[0].t_ms as f64 / 1000.0;
            let t1 = w[1].t_ms as f64 / 1000.0;
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{y0}" width="{:.1}" height="{}" fill="{}"/>"#,
                x(t0),
                (x(t1) - x(t0)).max(0.5),
                row - 4.0,
                GATE_COLORS.get(g).copied().unwrap_or("#000000")
            );
        }
    }
    let withdrawn: Vec<&Sample> = samples.iter().filter(|s| s.withdrawn).collect();
    if let Some(first) = withdrawn.first() {
        let xw = x(first.t_ms as f64 / 1000.0);
        let _ = write!(
            out,
            r##"<line x1="{xw:.1}" y1="0" x2="{xw:.1}" y2="{height}" stroke="#000"/><text x="{:.1}" y="{}" font-size="10">canary withdrawn</text>"##,
            xw + 3.0,
            height - 6.0
        );
    }
    out.push_str("</svg>");
    out
}

/// Colours of the judge's gauges: verdicts (not-worse, inconclusive, worse)
/// and decisions (wait, promote, hold, withdraw).
const VERDICT_COLORS: [&str; 3] = ["#54A24B", "#bbbbbb", "#E45756"];
const DECISION_COLORS: [&str; 4] = ["#bbbbbb", "#54A24B", "#F2B701", "#E45756"];

/// One row per judge gauge (each metric's verdict and the decision) over
/// time, each change labelled, and the moment of withdrawal.
fn verdict_chart(samples: &[Sample]) -> String {
    let t_max = samples
        .last()
        .map_or(1.0, |s| s.t_ms as f64 / 1000.0)
        .max(1.0);
    let x = |t: f64| PAD + 40.0 + (W - PAD - 40.0) * t / t_max;
    let rows = ["errors", "latency-shift", "latency-tail", "decision"];
    let row = 18.0;
    let height = row * (rows.len() as f64 + 1.0) + 4.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" role="img">"#
    );
    for (i, key) in rows.iter().enumerate() {
        let y0 = i as f64 * row;
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{key}</text>"#,
            PAD + 36.0,
            y0 + 12.0
        );
        let colors: &[&str] = if *key == "decision" {
            &DECISION_COLORS
        } else {
            &VERDICT_COLORS
        };
        let mut last: Option<usize> = None;
        for w in samples.windows(2) {
            let Some(v) = w[0].judge.get(*key).map(|v| *v as usize) else {
                continue;
            };
            let (t0, t1) = (w[0].t_ms as f64 / 1000.0, w[1].t_ms as f64 / 1000.0);
            let name = crate::recorder::judge_name(key, v as f64);
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{y0}" width="{:.1}" height="{}" fill="{}"><title>{key} {name} at {t0:.1} s</title></rect>"#,
                x(t0),
                (x(t1) - x(t0)).max(0.5),
                row - 4.0,
                colors.get(v).copied().unwrap_or("#000000")
            );
            if last != Some(v) {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{}" font-size="9">{name}</text>"#,
                    x(t0) + 2.0,
                    y0 + 11.0
                );
                last = Some(v);
            }
        }
    }
    if let Some(first) = samples.iter().find(|s| s.withdrawn) {
        let xw = x(first.t_ms as f64 / 1000.0);
        let _ = write!(
            out,
            r##"<line x1="{xw:.1}" y1="0" x2="{xw:.1}" y2="{height}" stroke="#000"/><text x="{:.1}" y="{}" font-size="10">canary withdrawn at {:.1} s</text>"##,
            xw + 3.0,
            height - 6.0,
            first.t_ms as f64 / 1000.0
        );
    }
    out.push_str("</svg>");
    out
}

/// Requests per second per version over time.
fn rate_chart(samples: &[Sample]) -> String {
    let iv = intervals(samples);
    let t_max = iv.last().map_or(1.0, |(t, _)| *t).max(1.0);
    let x = |t: f64| PAD + (W - PAD) * t / t_max;
    let mut prev = 0.0;
    let rates: Vec<(f64, Vec<(String, f64)>)> = iv
        .iter()
        .map(|(t, vs)| {
            let dt = (t - prev).max(0.05);
            prev = *t;
            (*t, vs.iter().map(|(v, n, _)| (v.clone(), n / dt)).collect())
        })
        .collect();
    let top = rates
        .iter()
        .flat_map(|(_, vs)| vs.iter().map(|(_, r)| *r))
        .fold(1.0, f64::max);
    let y = |r: f64| H - H * r / top;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" role="img"><g transform="translate(0 {TOP})">"#,
        H + 16.0 + TOP
    );
    let mut versions: Vec<&String> = rates
        .iter()
        .flat_map(|(_, vs)| vs.iter().map(|(v, _)| v))
        .collect();
    versions.sort();
    versions.dedup();
    for v in versions {
        let pts: Vec<String> = rates
            .iter()
            .filter_map(|(t, vs)| {
                let (_, r) = vs.iter().find(|(n, _)| n == v)?;
                Some(format!("{:.1},{:.1}", x(*t), y(*r)))
            })
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            color(v),
            pts.join(" "),
            esc(v)
        );
    }
    let label = format!("{top:.0}/s");
    axes(&mut out, t_max, &[(0.0, &label), (H, "0")]);
    out.push_str("</g></svg>");
    out
}

fn legend() -> String {
    let mut s = String::from(r#"<p class="legend">"#);
    for (v, c) in COLORS {
        let _ = write!(s, r#"<span style="color:{c}">&#9632; {v}</span> "#);
    }
    s.push_str(" gate: ");
    for (i, c) in GATE_COLORS.iter().enumerate() {
        let name = canary_core::gates::GateState::from_u8(i as u8).label();
        let _ = write!(s, r#"<span style="color:{c}">&#9632; {name}</span> "#);
    }
    s.push_str("</p>");
    s
}

fn money(v: f64) -> String {
    if v >= 100.0 {
        format!("${v:.0}")
    } else {
        format!("${v:.2}")
    }
}

/// The whole report as one self-contained XHTML page, its data embedded as JSON.
pub fn html(r: &Results, o: &Options) -> String {
    let mut s = String::new();
    s.push_str(r#"<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/><title>Canary sandbox report</title>
<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.legend span{margin-right:1em}h2{margin-top:2em}.bar{height:14px;display:inline-block}</style>
</head><body>
<h1>Canary sandbox: the traffic-management module, measured</h1>
"#);
    let _ = write!(
        s,
        "<p>{} users at {} requests/s through a productpage sidecar running the filter (CLIENT mode); reviews v1, v2 and v3 (broken, two replicas) behind SERVER-mode sidecars. Ran {:.0} s.</p>",
        r.users, r.rate, r.seconds
    );
    s.push_str("<h2 id=\"summary\">Summary</h2><table><tr><th>What</th><th>Measured</th></tr>");
    let mut row = |what: &str, v: String| {
        let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(what), esc(&v));
    };
    if let Some(e) = &r.all_at_once {
        row(
            "All-or-nothing: users exposed to v2 at once",
            format!("{:.0} % of {} users", r.all_at_once_on_v2 * 100.0, e.users),
        );
    }
    for st in &r.steps {
        row(
            &format!("Step {} %: users flipping between versions", st.percent),
            format!(
                "weights {} of {}, sticky {} (left the canary: {})",
                st.weighted_flipped, st.users, st.sticky_flipped, st.sticky_left
            ),
        );
    }
    if let Some(c) = &r.cohorts {
        row(
            "Internal / beta users on v2",
            format!(
                "{:.0} % / {:.0} %",
                c.internal_on_v2 * 100.0,
                c.beta_on_v2 * 100.0
            ),
        );
        row(
            "Spoofed routing headers from outside that reached v2",
            format!("{} of {}", c.spoofed_on_v2, c.spoofed),
        );
    }
    if let Some(i) = &r.identity {
        row(
            "Verified identity: beta testers (JWT group) on v2 / others on v1",
            format!(
                "{:.0} % / {:.0} %",
                i.beta_on_v2 * 100.0,
                i.others_on_v1 * 100.0
            ),
        );
        row(
            "Spoofed headers and forged baggage that reached v2",
            format!("{} of {}", i.spoofed_on_v2, i.spoofed),
        );
    }
    if let (Some(a), Some(g)) = (&r.outlier_only, &r.gated) {
        row(
            "Broken v3, outlier detection alone: errors / users hit",
            format!("{} / {:.1} %", a.errors, a.blast_radius() * 100.0),
        );
        row(
            "Broken v3, filter gate: errors / users hit",
            format!("{} / {:.1} %", g.errors, g.blast_radius() * 100.0),
        );
        row(
            "Time from the first error to withdrawal",
            g.time_to_withdrawal_ms
                .map_or("not withdrawn".into(), |t| format!("{t} ms")),
        );
        row(
            "Sticky requests on v3 two ticks after the trigger",
            g.canary_requests_after_trigger
                .map_or("-".into(), |n| n.to_string()),
        );
    }
    if let (Some(g), Some(j)) = (&r.gated, &r.judged_gate) {
        row(
            "Broken v3, failed requests before withdrawal: fixed minSamples 20 / sequential judge",
            format!("{} / {}", g.errors, j.errors),
        );
    }
    for p in &r.promotion {
        row(&format!("Gated promotion at {} %", p.percent), p.outcome());
    }
    for j in &r.judged {
        let (c, b) = j.error_percents();
        row(
            &format!(
                "Judged against the baseline, {}: v2 / v1 errors",
                j.scenario
            ),
            format!("{c:.2} % / {b:.2} %"),
        );
        row(
            &format!("Judged, {}: verdicts, judge and gate", j.scenario),
            format!(
                "{}; judge {}, gate {}",
                j.verdict_line(),
                j.decision,
                j.gate
            ),
        );
        row(
            &format!("Judged, {}: outcome", j.scenario),
            match (j.withdrawn_after_s, j.requests_to_withdrawal) {
                (Some(t), Some(n)) => {
                    format!("withdrawn after {t:.1} s and {n} requests ({})", j.reason())
                }
                _ => format!("not withdrawn ({})", j.reason()),
            },
        );
    }
    s.push_str("</table>");

    if let (Some(a), Some(g)) = (&r.outlier_only, &r.gated) {
        s.push_str("<h2 id=\"blast-radius\">Blast radius of the broken v3</h2><table><tr><th>Protection</th><th>Requests failed</th><th>Users hit</th><th></th></tr>");
        let mut rows = vec![
            ("Outlier detection alone (per-request 20 %)", a, "#E45756"),
            (
                "Filter gate, absolute limits after minSamples 20 (sticky 20 %, automatic withdrawal)",
                g,
                "#F2B701",
            ),
        ];
        if let Some(j) = &r.judged_gate {
            rows.push((
                "Filter gate with the sequential judge against v2 (sticky 20 %, automatic withdrawal)",
                j,
                "#54A24B",
            ));
        }
        for (name, e, c) in rows {
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td>{} of {}</td><td>{} of {} ({:.1} %)</td><td style="text-align:left"><span class="bar" style="width:{:.0}px;background:{c}"></span></td></tr>"#,
                esc(name),
                e.errors,
                e.requests,
                e.users_with_error,
                e.users,
                e.blast_radius() * 100.0,
                300.0 * e.blast_radius()
            );
        }
        s.push_str("</table>");
    }

    if !r.judged.is_empty() {
        s.push_str("<h2 id=\"judged\">Judged against the baseline</h2><p>v2 (internal users) judged against v1 (everyone else) over the same ticks, each version's error ratio set by the client, closed-loop traffic until the outcome shows. Verdicts per metric, the judge's decision and the gate's state at the end; the judge's and the gate's log lines for v2.</p>");
        s.push_str("<table><tr><th>Scenario</th><th>v2 errors</th><th>v1 errors</th><th>Verdicts</th><th>Judge / gate</th><th>Outcome</th></tr>");
        for j in &r.judged {
            let (c, b) = j.error_percents();
            let outcome = match (j.withdrawn_after_s, j.requests_to_withdrawal) {
                (Some(t), Some(n)) => format!("withdrawn after {t:.1} s, {n} requests"),
                _ => "not withdrawn".to_string(),
            };
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{} of {} ({c:.2} %)</td><td>{} of {} ({b:.2} %)</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                esc(&j.scenario),
                j.canary_errors,
                j.canary_requests,
                j.baseline_errors,
                j.baseline_requests,
                esc(&j.verdict_line()),
                esc(&j.decision),
                esc(&j.gate),
                esc(&outcome)
            );
        }
        s.push_str("</table>");
        for j in &r.judged {
            let _ = write!(s, "<h3>{}: log</h3><pre>", esc(&j.scenario));
            for l in &j.log {
                s.push_str(&esc(l));
                s.push('\n');
            }
            s.push_str("</pre>");
        }
    }

    if let Some(b) = &r.business {
        let bz = &o.business;
        s.push_str("<h2 id=\"business\">Business view (Exercise 8)</h2>");
        let _ = write!(
            s,
            "<p>Calibrated on the module's inputs: {} per bad deployment when everyone is hit for {:.0} h; {} bad deployments a month before, {} after. Cost scales with the share of users hurt and how long they are hurt.</p>",
            money(bz.outage_cost), bz.rollback_before_s / 3600.0, bz.bad_deploys_before, bz.bad_deploys_after
        );
        s.push_str(
            "<table><tr><th>Scenario</th><th>Per bad deployment</th><th>Per month</th></tr>",
        );
        for (name, d, m) in [
            (
                "Before: all-or-nothing, 2 h rollback (module)",
                b.before_per_deploy,
                b.before_per_month,
            ),
            (
                &*format!(
                    "Outlier detection + {:.0} s manual rollback (measured blast radius)",
                    bz.rollback_manual_s
                ),
                b.manual_per_deploy,
                b.manual_per_month,
            ),
            (
                "Filter gate, automatic withdrawal (measured)",
                b.gate_per_deploy,
                b.gate_per_month,
            ),
        ] {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                money(d),
                money(m)
            );
        }
        let _ = write!(
            s,
            "</table><p>Risk reduction: <b>{} per month</b>.</p>",
            money(b.saved_per_month)
        );
    }

    s.push_str("<h2 id=\"timelines\">Timelines</h2>");
    s.push_str(&legend());
    for (name, samples) in &r.timelines {
        let _ = write!(
            s,
            "<h3>{}</h3><p>Traffic share per version</p>{}",
            esc(name),
            share_chart(samples)
        );
        let _ = write!(
            s,
            "<p>Error ratio per version (log scale)</p>{}",
            error_chart(samples)
        );
        if samples.iter().any(|x| !x.judge.is_empty()) {
            let _ = write!(
                s,
                "<p>Requests per second per version</p>{}",
                rate_chart(samples)
            );
        }
        if samples.iter().any(|x| !x.gates.is_empty()) {
            let _ = write!(s, "<p>Gate state</p>{}", gate_chart(samples));
        }
        if samples.iter().any(|x| !x.judge.is_empty()) {
            let _ = write!(
                s,
                "<p>The judge: each metric's verdict and the decision</p>{}",
                verdict_chart(samples)
            );
        }
    }
    let data = serde_json::to_string(r)
        .unwrap_or_default()
        .replace("</", "<\\/");
    let _ = write!(
        s,
        r#"<script type="application/json" id="data">{}</script>"#,
        esc(&data)
    );
    s.push_str("</body></html>\n");
    s
}
