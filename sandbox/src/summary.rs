//! The summary table `make demo` prints at the end: one line per measured
//! outcome.

use crate::options::Options;
use crate::results::Results;

/// The summary table printed at the end.
pub fn table(r: &Results, o: &Options) -> String {
    let mut s = format!(
        "\n== Summary ({:.0} s, {} users, {} req/s)\n",
        r.seconds, r.users, r.rate
    );
    if let Some(e) = &r.all_at_once {
        s.push_str(&format!(
            "  all-or-nothing        : {:.0} % of {} users exposed to v2 at once\n",
            r.all_at_once_on_v2 * 100.0,
            e.users
        ));
    }
    for st in &r.steps {
        s.push_str(&format!(
            "  step {:>3} %            : weights flipped {:>3} users, sticky flipped {} (left canary: {})\n",
            st.percent, st.weighted_flipped, st.sticky_flipped, st.sticky_left
        ));
    }
    if let Some(c) = &r.cohorts {
        s.push_str(&format!(
            "  spoofed header        : {} of {} reached v2\n",
            c.spoofed_on_v2, c.spoofed
        ));
    }
    if let (Some(a), Some(g)) = (&r.outlier_only, &r.gated) {
        s.push_str(&format!(
            "  broken v3, outliers   : {} errors, {:.1} % of users hit\n",
            a.errors,
            a.blast_radius() * 100.0
        ));
        s.push_str(&format!(
            "  broken v3, gate       : {} errors, {:.1} % of users hit, withdrawn {} (after {} ms)\n",
            g.errors,
            g.blast_radius() * 100.0,
            if r.v3_withdrawn { "yes" } else { "NO" },
            g.time_to_withdrawal_ms.map_or("-".into(), |t| t.to_string())
        ));
    }
    if let (Some(g), Some(j)) = (&r.gated, &r.judged_gate) {
        s.push_str(&format!(
            "  broken v3, judge      : {} errors, {:.1} % of users hit, withdrawn {} (after {} ms)\n",
            j.errors,
            j.blast_radius() * 100.0,
            if r.v3_withdrawn_by_judge { "yes" } else { "NO" },
            j.time_to_withdrawal_ms.map_or("-".into(), |t| t.to_string())
        ));
        s.push_str(&format!(
            "  failed before withdrawal: fixed minSamples 20 {}, sequential judge {}\n",
            g.errors, j.errors
        ));
    }
    for p in &r.promotion {
        s.push_str(&format!(
            "  promotion {:>3} %       : {}\n",
            p.percent,
            p.outcome()
        ));
    }
    if let Some(i) = &r.identity {
        s.push_str(&format!(
            "  verified identity     : beta testers on v2 {:.0} %, others on v1 {:.0} %; forged {} of {} reached v2; expired tokens refused {} of {}\n",
            i.beta_on_v2 * 100.0, i.others_on_v1 * 100.0, i.spoofed_on_v2, i.spoofed, i.expired_refused, i.expired
        ));
    }
    for j in &r.judged {
        let (c, b) = j.error_percents();
        s.push_str(&format!(
            "  {:<21} : v2 {c:.2} % errors ({} of {}), v1 {b:.2} % ({} of {}); {}; judge {}, gate {}, {}\n",
            format!("judged, {}", j.scenario),
            j.canary_errors,
            j.canary_requests,
            j.baseline_errors,
            j.baseline_requests,
            j.verdict_line(),
            j.decision,
            j.gate,
            match (j.withdrawn_after_s, j.requests_to_withdrawal) {
                (Some(t), Some(n)) => format!("withdrawn after {t:.1} s, {n} requests ({})", j.reason()),
                _ => format!("not withdrawn ({})", j.reason()),
            }
        ));
    }
    if let Some(b) = &r.business {
        s.push_str(&format!(
            "  business (Exercise 8) : per bad deploy ${:.0} before, ${:.2} with outlier detection + {} s manual rollback, ${:.2} with the gate; ${:.0}/month saved\n",
            b.before_per_deploy, b.manual_per_deploy, o.business.rollback_manual_s, b.gate_per_deploy, b.saved_per_month
        ));
    }
    s
}
