//! Parsing Prometheus text exposition (Envoy's `/stats/prometheus`) into labelled
//! samples. Shared by the e2e harness and `canaryctl stats`, which reads sidecars.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub samples: Vec<Sample>,
}

impl Stats {
    pub fn parse(text: &str) -> Stats {
        let mut samples = vec![];
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Stats { samples }
    }

    /// Sum of `name` over all samples whose labels include every pair in `want`.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.matching(name, want).map(|s| s.value).sum()
    }

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

    /// Upper bound (`le`) of the bucket holding quantile `q` of a histogram.
    pub fn quantile_bucket(&self, name: &str, want: &[(&str, &str)], q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.matching(&bucket, want) {
            let le = s.labels.get("le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let e = buckets.entry(bound.to_bits()).or_insert((bound, 0.0));
            e.1 += s.value;
        }
        let mut list: Vec<(f64, f64)> = buckets.into_values().collect();
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = list.last()?.1;
        list.into_iter()
            .find(|(_, c)| *c >= q * total)
            .map(|(b, _)| b)
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 2..];
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key, value);
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
}
