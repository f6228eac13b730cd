//! Prometheus text exposition, as Envoy's `/stats/prometheus` writes it, read
//! into flat labelled samples (`_bucket` lines keep their `le` label).
//!
//! Why not the `prometheus-parse` crate: it splits label pairs on `,` and `=`
//! without honouring quotes or escapes (a value such as `a="x=y"` or
//! `route="a,b"` is silently mangled), its line pattern stops at the first
//! `}`, and it folds histogram buckets into per-series values in hash order,
//! while `canaryctl stats` and the test harness want the flat samples. This
//! reader is one small quote-aware scanner.

use std::collections::BTreeMap;

/// One exposition line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of one scrape, in the order they were written.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub samples: Vec<Sample>,
}

impl Stats {
    /// Reads an exposition text. Comments (`# HELP`, `# TYPE`) and lines that
    /// are not samples are skipped: a scrape is read for what it measures.
    pub fn parse(text: &str) -> Stats {
        Stats {
            samples: text.lines().filter_map(sample).collect(),
        }
    }

    /// Sum of `name` over all samples whose labels include every pair in `want`.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.matching(name, want).map(|s| s.value).sum()
    }

    /// Samples of `name` whose labels include every pair in `want`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        want: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Upper bound (`le`) of the bucket holding quantile `q` of histogram
    /// `name`, its buckets summed over every series matching `want`.
    pub fn quantile_bucket(&self, name: &str, want: &[(&str, &str)], q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = vec![];
        for s in self.matching(&bucket, want) {
            let bound = parse_value(s.labels.get("le")?)?;
            match buckets.iter_mut().find(|(b, _)| *b == bound) {
                Some(e) => e.1 += s.value,
                None => buckets.push((bound, s.value)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        buckets
            .into_iter()
            .find(|(_, c)| *c >= q * total)
            .map(|(b, _)| b)
    }
}

/// Go's float spellings as Prometheus writes them (`+Inf`, `-Inf`, `NaN`).
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    // The value, then an optional timestamp.
    let value = parse_value(rest.split_whitespace().next()?)?;
    (!name.is_empty()).then(|| Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"}` → the labels and what follows the closing brace.
fn label_set(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after_key) = s.split_once('=')?;
        let mut chars = after_key.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_string(), value);
        s = &after_key[1 + end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_lines_become_labelled_samples() {
        let s = Stats::parse(
            "# TYPE canary_requests_total counter\n\
             canary_requests_total{canary_version=\"v2\",canary_cohort=\"beta\"} 3\n\
             plain 1.5\n\
             h_bucket{a=\"x\",le=\"10\"} 1\nh_bucket{a=\"x\",le=\"100\"} 9\nh_bucket{a=\"x\",le=\"+Inf\"} 10\n",
        );
        assert_eq!(
            s.sum("canary_requests_total", &[("canary_cohort", "beta")]),
            3.0
        );
        assert_eq!(
            s.sum("canary_requests_total", &[("canary_cohort", "stable")]),
            0.0
        );
        assert_eq!(s.sum("plain", &[]), 1.5);
        assert_eq!(s.quantile_bucket("h", &[], 0.5), Some(100.0));
        assert_eq!(s.quantile_bucket("h", &[], 0.05), Some(10.0));
    }

    #[test]
    fn quoted_label_values_keep_commas_equals_braces_and_escapes() {
        let s = Stats::parse(
            "envoy_x{route=\"a,b=c}\",msg=\"say \\\"hi\\\"\\n\",empty=\"\"} 7 1700000000\n",
        );
        let x = &s.samples[0];
        assert_eq!(x.labels["route"], "a,b=c}");
        assert_eq!(x.labels["msg"], "say \"hi\"\n");
        assert_eq!(x.labels["empty"], "");
        assert_eq!(x.value, 7.0);
    }

    #[test]
    fn lines_that_are_not_samples_are_skipped() {
        let s = Stats::parse("no_value\nbad{a=\"x} 1\nok 2\nnan NaN\n");
        let names: Vec<&str> = s.samples.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["ok", "nan"]);
    }
}
