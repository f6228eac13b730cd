//! The local sandbox's short mode, as `make demo` plays it: the outcomes the
//! workshop module promises, measured on real Envoy processes, and a
//! well-formed report.

use canary_sandbox::{report, run, Options};

/// A minimal well-formedness check: every tag opened is closed, in order.
fn well_formed(html: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = vec![];
    let mut count = 0;
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        count += 1;
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
        } else if !tag.ends_with('/') {
            let name = tag
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            if name == "script" {
                // JSON data: skip to its end tag.
                let close = rest.find("</script>").ok_or("unterminated script")?;
                rest = &rest[close + "</script>".len()..];
                continue;
            }
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(count)
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn the_well_formedness_check_catches_broken_markup() {
    assert!(well_formed("<a><b/></a>").is_ok());
    assert!(well_formed("<a><b></a>").is_err());
    assert!(well_formed("<a>").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_short_sandbox_shows_what_the_workshop_module_promises() {
    let o = Options::short();
    let r = run(&o).await.unwrap();

    // 1. All-or-nothing exposes everyone to v2.
    assert_eq!(r.all_at_once_on_v2, 1.0);

    // 2. Sticky users never flip and never leave the canary as it grows;
    //    per-request weights flip many at 10 % and 50 %.
    for st in &r.steps {
        assert_eq!(
            st.sticky_flipped, 0,
            "step {}: sticky users flipped",
            st.percent
        );
        assert_eq!(
            st.sticky_left, 0,
            "step {}: sticky users left the canary",
            st.percent
        );
    }
    assert!(
        r.steps
            .iter()
            .filter(|s| s.percent < 100)
            .all(|s| s.weighted_flipped > 0),
        "{:?}",
        r.steps
    );

    // 3. Internal and beta first; a spoofed header from outside never reaches v2.
    let c = r.cohorts.as_ref().unwrap();
    assert_eq!(
        (c.internal_on_v2, c.beta_on_v2, c.regular_on_v1),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(c.spoofed_on_v2, 0);

    // 4. The broken v3 is withdrawn automatically, and its blast radius is
    //    smaller than with outlier detection alone.
    assert!(r.v3_withdrawn, "v3 was not withdrawn");
    let (outlier, gated) = (r.outlier_only.as_ref().unwrap(), r.gated.as_ref().unwrap());
    assert_eq!(
        gated.canary_requests_after_trigger,
        Some(0),
        "sticky users still reached v3 two ticks after the trigger"
    );
    assert!(
        gated.time_to_withdrawal_ms.unwrap() < 5_000,
        "{:?}",
        gated.time_to_withdrawal_ms
    );
    assert!(
        gated.blast_radius() < 0.35,
        "gate blast radius {:.2}",
        gated.blast_radius()
    );
    assert!(
        gated.errors < outlier.errors,
        "gate {} errors vs outlier detection {}",
        gated.errors,
        outlier.errors
    );

    //    With the sequential judge against v2 on top, fewer requests fail
    //    before the withdrawal than with the fixed minSamples of 20.
    assert!(r.v3_withdrawn_by_judge, "v3 was not withdrawn by the judge");
    let judged = r.judged_gate.as_ref().unwrap();
    assert!(
        judged.errors <= 10 && judged.errors < gated.errors,
        "sequential judge {} failed requests, minSamples gate {}",
        judged.errors,
        gated.errors
    );
    assert_eq!(judged.canary_requests_after_trigger, Some(0));

    // 5. Gated promotion reaches 100 %, each step only after a pass.
    let steps: Vec<u32> = r.promotion.iter().map(|p| p.percent).collect();
    assert_eq!(steps, [10, 50, 100]);
    assert!(
        r.promotion[..2]
            .iter()
            .all(|p| p.state == "pass" && p.seconds_to_pass.unwrap() >= 1.0),
        "{:?}",
        r.promotion
    );

    // 6. Beta testers by verified JWT group reach v2 across productpage's
    //    hop; spoofed headers and forged baggage never do; expired tokens are refused.
    let i = r.identity.as_ref().unwrap();
    assert_eq!((i.beta_on_v2, i.others_on_v1), (1.0, 1.0));
    assert_eq!(i.spoofed_on_v2, 0);
    assert_eq!(i.expired_refused, i.expired);

    // 7. The subtle regression (0.15 % against 0.01 %) is withdrawn by the
    //    errors verdict, no absolute limit named.
    let [subtle, incident] = &r.judged[..] else {
        panic!("{:?}", r.judged)
    };
    let (c, b) = subtle.error_percents();
    assert!((0.14..0.16).contains(&c) && b < 0.02, "{c} % vs {b} %");
    assert!(subtle.withdrawn_after_s.is_some(), "{subtle:?}");
    assert_eq!(subtle.verdict("errors"), "worse", "{subtle:?}");
    assert_eq!(
        (subtle.decision.as_str(), subtle.gate.as_str()),
        ("withdraw", "rollback")
    );
    assert_eq!(
        subtle.reason(),
        "canary significantly worse than baseline: errors",
        "{:?}",
        subtle.log
    );
    assert!(
        !subtle.log.iter().any(|l| l.contains("canary breaks")),
        "{:?}",
        subtle.log
    );

    // 8. The shared incident (both at 5 %) holds, baseline failing too, and
    //    is not withdrawn.
    let (c, b) = incident.error_percents();
    assert!(
        (4.9..5.1).contains(&c) && (4.9..5.1).contains(&b),
        "{c} % vs {b} %"
    );
    assert_eq!(incident.withdrawn_after_s, None, "{incident:?}");
    assert_eq!(
        (incident.decision.as_str(), incident.gate.as_str()),
        ("hold", "hold")
    );
    assert!(
        incident
            .reason()
            .starts_with("baseline failing too: both break "),
        "{incident:?}"
    );
    assert_ne!(incident.verdict("errors"), "worse");

    // The business view follows from what was measured.
    let b = r.business.as_ref().unwrap();
    assert!(b.gate_per_deploy < b.manual_per_deploy && b.manual_per_deploy < b.before_per_deploy);

    // The report is written, self-contained and well formed.
    let html = report::html(&r, &o);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    std::fs::write(&path, &html).unwrap();
    let tags = well_formed(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(tags > 200, "{tags} tags");
    for section in [
        "id=\"summary\"",
        "id=\"blast-radius\"",
        "id=\"business\"",
        "id=\"timelines\"",
        "id=\"judged\"",
        "baseline failing too",
        "<svg",
        "canary withdrawn",
    ] {
        assert!(html.contains(section), "report lacks {section}");
    }
    // Self-contained: nothing is loaded from anywhere.
    assert!(
        !html.contains(" src=") && !html.contains(" href="),
        "the report links an external asset"
    );
    let data_start = html.find("id=\"data\">").unwrap() + "id=\"data\">".len();
    let data_end = html[data_start..].find("</script>").unwrap() + data_start;
    let data = html[data_start..data_end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let v: serde_json::Value = serde_json::from_str(&data.replace("<\\/", "</")).unwrap();
    assert_eq!(v["v3_withdrawn"], true);
    assert_eq!(v["judged"][0]["verdicts"][0][1], "worse");
}
