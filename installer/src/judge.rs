//! `canaryctl judge`: the canary against its baseline over the whole fleet,
//! from Prometheus. Each sidecar judges only the traffic it serves; here every
//! pod's counters and latency buckets are read per series, each series' growth
//! per step is taken the way `increase` takes it (a reset or an ending series
//! concerns that series alone), the growths are summed over all pods, and the
//! steps of a range query become the judge's ticks, through the same code as
//! the sidecars (`canary_core::judge`). This file builds the queries and reads
//! their answers; fetching them is the caller's (one GET of
//! `/api/v1/query_range` per query, with `start`, `end` and `step`).

use std::collections::BTreeMap;

use canary_core::judge::fleet::{add_growth, judge_range, FleetError, Growth};
use canary_core::judge::{decide, Decision, JudgeConfig, Metric, PolicyConfig, Verdicts};
use canary_core::metrics::{DURATION, ERRORS, REQUESTS, TAG_VERSION};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("Prometheus answer for `{query}`: {message}")]
    Answer { query: String, message: String },
    #[error("no step where both {canary} and {baseline} have data")]
    NoOverlap { canary: String, baseline: String },
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// The three range queries for `version`: requests, errors, and latency
/// buckets, each series by itself (one per pod, cohort and `le`). Summing in
/// PromQL first would read a pod leaving mid-range as a drop of the sums
/// (a counter reset) and count its whole history again.
pub fn range_queries(version: &str) -> [String; 3] {
    let sel = format!("{{{TAG_VERSION}=\"{version}\"}}");
    [
        format!("{REQUESTS}{sel}"),
        format!("{ERRORS}{sel}"),
        format!("{DURATION}_bucket{sel}"),
    ]
}

/// One version's growth per step time (seconds), summed over its series:
/// present at a step where any of its request series has a sample.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Series {
    pub requests: BTreeMap<i64, f64>,
    pub errors: BTreeMap<i64, f64>,
    /// Growth of the cumulative counts per `le`, ascending, `+Inf` last.
    pub buckets: BTreeMap<i64, Vec<f64>>,
}

/// One series of a range query: `(time, value)` per step.
type Points = Vec<(i64, f64)>;

/// The `(labels, points)` of a `query_range` answer.
fn matrix(query: &str, answer: &Value) -> Result<Vec<(Value, Points)>, JudgeError> {
    let err = |message: &str| JudgeError::Answer {
        query: query.to_string(),
        message: message.to_string(),
    };
    if answer["status"] != "success" {
        return Err(err(answer["error"].as_str().unwrap_or("query failed")));
    }
    if answer["data"]["resultType"] != "matrix" {
        return Err(err("not a range-query answer (resultType is not matrix)"));
    }
    let mut out = vec![];
    for item in answer["data"]["result"].as_array().into_iter().flatten() {
        let mut points = vec![];
        for p in item["values"].as_array().into_iter().flatten() {
            let t = p[0].as_f64().ok_or_else(|| err("a step without a time"))?;
            let v = p[1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| err("a value that is not a number"))?;
            points.push((t.round() as i64, v));
        }
        out.push((item["metric"].clone(), points));
    }
    Ok(out)
}

fn le(labels: &Value) -> f64 {
    match labels["le"].as_str() {
        Some("+Inf") => f64::INFINITY,
        Some(s) => s.parse().unwrap_or(f64::NAN),
        None => f64::NAN,
    }
}

/// The step times of all `series`, ascending, without repeats.
fn step_times<'a>(series: impl IntoIterator<Item = &'a (Value, Points)>) -> Vec<i64> {
    let mut times: Vec<i64> = series
        .into_iter()
        .flat_map(|(_, points)| points.iter().map(|(t, _)| *t))
        .collect();
    times.sort_unstable();
    times.dedup();
    times
}

/// The summed growth of `series` at each of `times` (which hold all of
/// their step times).
fn summed_growth<'a>(times: &[i64], series: impl IntoIterator<Item = &'a Points>) -> Vec<f64> {
    let mut out = vec![0.0; times.len()];
    for points in series {
        let at = points
            .iter()
            .filter_map(|(t, v)| Some((times.binary_search(t).ok()?, *v)));
        add_growth(at, &mut out);
    }
    out
}

impl Series {
    /// Reads the answers to [`range_queries`], in the same order. A version
    /// that never erred has no errors series: its errors are 0.
    pub fn from_answers(queries: &[String; 3], answers: [&Value; 3]) -> Result<Series, JudgeError> {
        let requests = matrix(&queries[0], answers[0])?;
        let errors = matrix(&queries[1], answers[1])?;
        let buckets = matrix(&queries[2], answers[2])?;
        let times = step_times(requests.iter().chain(&errors).chain(&buckets));
        let present = step_times(&requests);
        let at_present = |growth: Vec<f64>| -> BTreeMap<i64, f64> {
            times
                .iter()
                .zip(growth)
                .filter(|(t, _)| present.binary_search(t).is_ok())
                .map(|(t, g)| (*t, g))
                .collect()
        };
        let mut s = Series {
            requests: at_present(summed_growth(&times, requests.iter().map(|(_, p)| p))),
            errors: at_present(summed_growth(&times, errors.iter().map(|(_, p)| p))),
            buckets: BTreeMap::new(),
        };
        let mut bounds: Vec<f64> = buckets
            .iter()
            .map(|(labels, _)| le(labels))
            .filter(|b| !b.is_nan())
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let by_le: Vec<Vec<f64>> = bounds
            .iter()
            .map(|b| {
                let of_b = buckets.iter().filter(|(labels, _)| le(labels) == *b);
                summed_growth(&times, of_b.map(|(_, p)| p))
            })
            .collect();
        for (i, t) in times.iter().enumerate() {
            if present.binary_search(t).is_ok() && !by_le.is_empty() {
                s.buckets.insert(*t, by_le.iter().map(|g| g[i]).collect());
            }
        }
        Ok(s)
    }

    fn growth_at(&self, t: i64) -> Option<Growth<'_>> {
        Some(Growth {
            requests: *self.requests.get(&t)?,
            errors: self.errors.get(&t).copied().unwrap_or(0.0),
            buckets: self.buckets.get(&t).map_or(&[], Vec::as_slice),
        })
    }
}

/// The fleet's verdicts: the canary judged against the baseline over the
/// steps where both have data.
pub fn judge(
    cfg: &JudgeConfig,
    canary: (&str, &Series),
    baseline: (&str, &Series),
) -> Result<Verdicts, JudgeError> {
    let (c, b): (Vec<_>, Vec<_>) = canary
        .1
        .requests
        .keys()
        .filter_map(|t| Some((canary.1.growth_at(*t)?, baseline.1.growth_at(*t)?)))
        .unzip();
    if c.len() < 2 {
        return Err(JudgeError::NoOverlap {
            canary: canary.0.to_string(),
            baseline: baseline.0.to_string(),
        });
    }
    Ok(judge_range(cfg, &c, &b)?)
}

/// The decision on the fleet's verdicts alone (the limits are the sidecars'
/// gates), and a table of the verdicts, as `canaryctl judge` prints them.
pub fn report(policy: &PolicyConfig, v: &Verdicts) -> (Decision<'static>, String) {
    let d = decide(policy, &v.by_metric(), &[]);
    let mut out = String::from("METRIC         VERDICT       CANARY  BASELINE  EVIDENCE(WORSE)\n");
    for m in Metric::ALL {
        let mv = v.get(m);
        out.push_str(&format!(
            "{:<14} {:<13} {:>7} {:>9} {:>16.2}\n",
            m.label(),
            mv.verdict.label(),
            mv.canary_samples,
            mv.baseline_samples,
            mv.log_e_worse
        ));
    }
    out.push_str(&format!("decision: {} ({})\n", d.label(), d.reason()));
    (d, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::judge::Verdict;
    use serde_json::json;

    /// A `query_range` answer with one series per `(labels, values)`, a step a minute.
    fn answer(series: &[(Value, Vec<f64>)]) -> Value {
        let result: Vec<Value> = series
            .iter()
            .map(|(labels, vs)| {
                let values: Vec<Value> = vs
                    .iter()
                    .enumerate()
                    .map(|(i, v)| json!([60 * i as i64, v.to_string()]))
                    .collect();
                json!({"metric": labels, "values": values})
            })
            .collect();
        json!({"status": "success", "data": {"resultType": "matrix", "result": result}})
    }

    /// `steps` minutes of `per_step` requests, one error in `error_every`.
    fn version(name: &str, steps: usize, per_step: f64, error_every: f64) -> Series {
        let requests: Vec<f64> = (0..=steps).map(|i| i as f64 * per_step).collect();
        let errors: Vec<f64> = requests.iter().map(|r| (r / error_every).floor()).collect();
        let buckets = vec![
            (json!({"le": "+Inf"}), requests.clone()),
            (
                json!({"le": "10000"}),
                requests.iter().map(|r| r * 0.99).collect(),
            ),
            (json!({"le": "100000"}), requests.clone()),
        ];
        let q = range_queries(name);
        Series::from_answers(
            &q,
            [
                &answer(&[(json!({}), requests.clone())]),
                &answer(&[(json!({}), errors)]),
                &answer(&buckets),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_queries_read_every_series_of_one_version() {
        let [r, e, b] = range_queries("v2");
        assert_eq!(r, r#"canary_requests_total{canary_version="v2"}"#);
        assert_eq!(e, r#"canary_errors_total{canary_version="v2"}"#);
        assert_eq!(
            b,
            r#"canary_request_duration_microseconds_bucket{canary_version="v2"}"#
        );
    }

    #[test]
    fn each_series_grows_by_itself_and_the_growths_are_summed() {
        // Two pods: one scraped all along, one gone after minute 2 and one
        // that restarted (reset) at minute 3.
        let requests = answer(&[
            (json!({"pod": "a"}), vec![0.0, 10.0, 20.0, 30.0, 40.0]),
            (json!({"pod": "b"}), vec![500.0, 510.0, 520.0]),
            (json!({"pod": "c"}), vec![0.0, 5.0, 10.0, 2.0, 7.0]),
        ]);
        let q = range_queries("v2");
        let none = answer(&[]);
        let s = Series::from_answers(&q, [&requests, &none, &none]).unwrap();
        let growth: Vec<f64> = s.requests.values().copied().collect();
        assert_eq!(growth, [0.0, 25.0, 25.0, 12.0, 15.0]);
    }

    #[test]
    fn buckets_are_ordered_by_bound_with_inf_last() {
        let s = version("v1", 2, 100.0, 1e9);
        assert_eq!(s.buckets[&60], vec![99.0, 100.0, 100.0]);
    }

    #[test]
    fn a_subtle_regression_over_the_fleet_is_withdrawn() {
        let c = version("v2", 60, 2_000.0, 667.0);
        let b = version("v1", 60, 10_000.0, 10_000.0);
        let v = judge(&JudgeConfig::default(), ("v2", &c), ("v1", &b)).unwrap();
        assert_eq!(v.errors.verdict, Verdict::Worse, "{}", v.errors);
        let (d, table) = report(&PolicyConfig::default(), &v);
        assert_eq!(d.label(), "withdraw");
        assert!(table.contains("errors         worse"), "{table}");
    }

    #[test]
    fn versions_without_common_steps_or_a_failed_query_say_so() {
        let c = version("v2", 3, 10.0, 1e9);
        let err = judge(
            &JudgeConfig::default(),
            ("v2", &c),
            ("v1", &Series::default()),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "no step where both v2 and v1 have data"
        );
        let bad = json!({"status": "error", "error": "bad_data: parse error"});
        let q = range_queries("v2");
        let e = Series::from_answers(&q, [&bad, &bad, &bad]).unwrap_err();
        assert!(e.to_string().ends_with("bad_data: parse error"), "{e}");
    }
}
