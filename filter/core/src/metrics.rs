//! Metric names and the per-VM registry of defined stats.
//!
//! Labels travel inside the stat name in the `tag=.=value;.;` form Istio's own
//! stats use, and Envoy's `stats_tags` regexes (or Istio's `extraStatTags`) turn
//! them into Prometheus labels. Every label value comes from a bounded set —
//! declared cohorts, code classes, error kinds, and the at most [`MAX_VERSIONS`]
//! versions a proxy admits for its life (`labels`) — so a client can never
//! mint new series.

use crate::config::{Cohort, Config};
use crate::host::{MetricKind, Metrics};
use crate::outcome::{CodeClass, ErrorKind};

pub const TAG_VERSION: &str = "canary_version";
pub const TAG_COHORT: &str = "canary_cohort";
pub const TAG_CODE_CLASS: &str = "canary_code_class";
pub const TAG_ERROR_KIND: &str = "canary_error_kind";
pub const TAG_WINDOW: &str = "canary_window";
/// What the judge compares: `errors`, `latency-shift` or `latency-tail`.
pub const TAG_METRIC: &str = "canary_metric";
/// Every tag the filter emits, for `stats_tags` / `extraStatTags`.
pub const TAGS: [&str; 6] = [
    TAG_VERSION,
    TAG_COHORT,
    TAG_CODE_CLASS,
    TAG_ERROR_KIND,
    TAG_WINDOW,
    TAG_METRIC,
];

pub const REQUESTS: &str = "canary_requests_total";
pub const ERRORS: &str = "canary_errors_total";
/// Microseconds, because Envoy histograms take integers and the SLOs need
/// sub-millisecond resolution for fast services.
pub const DURATION: &str = "canary_request_duration_microseconds";

pub use crate::labels::MAX_VERSIONS;
pub use crate::version::{OTHER, UNKNOWN};

/// The regex Envoy's `stats_tags` needs for `tag` (the same one Istio's
/// `extraStatTags` generates).
pub fn tag_regex(tag: &str) -> String {
    format!("({tag}=\\.=(.*?);\\.;)")
}

/// `canary_version=.=v2;.;canary_cohort=.=beta;.;<extra>canary_requests_total`.
pub fn stat_name(version: &str, cohort: &str, extra: Option<(&str, &str)>, family: &str) -> String {
    match extra {
        Some(e) => tagged(&[(TAG_VERSION, version), (TAG_COHORT, cohort), e], family),
        None => tagged(&[(TAG_VERSION, version), (TAG_COHORT, cohort)], family),
    }
}

/// A stat name carrying `tags` in Istio's `tag=.=value;.;` form.
pub fn tagged(tags: &[(&str, &str)], family: &str) -> String {
    let mut s = String::with_capacity(family.len() + 48 * tags.len());
    for (tag, value) in tags {
        s.push_str(tag);
        s.push_str("=.=");
        s.push_str(value);
        s.push_str(";.;");
    }
    s.push_str(family);
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Requests,
    Errors,
    Duration,
}

/// Stat ids defined so far in this VM, so each name is built and defined once.
#[derive(Debug, Default)]
pub struct Registry {
    versions: Vec<String>,
    /// Sorted by key: a binary search finds a series' id without hashing.
    ids: Vec<((Family, u8, Cohort, u8), u32)>,
}

/// One finished request, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub version: &'a str,
    pub cohort: Cohort,
    pub class: CodeClass,
    pub error: Option<ErrorKind>,
    pub duration_us: Option<u64>,
}

impl Registry {
    /// Index of a version label. The labels come from `labels`, so at most
    /// [`MAX_VERSIONS`] and `other` arrive; the fold here only guards that.
    fn version_index(&mut self, version: &str) -> u8 {
        if let Some(i) = self.versions.iter().position(|v| v == version) {
            return i as u8;
        }
        let label = if self.versions.len() < MAX_VERSIONS {
            version
        } else {
            OTHER
        };
        if let Some(i) = self.versions.iter().position(|v| v == label) {
            return i as u8;
        }
        self.versions.push(label.to_string());
        (self.versions.len() - 1) as u8
    }

    fn id(
        &mut self,
        sink: &mut impl Metrics,
        cfg: &Config,
        key: (Family, u8, Cohort, u8),
        extra: Option<(&str, &str)>,
    ) -> Option<u32> {
        let at = match self.ids.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => return self.ids.get(i).map(|(_, id)| *id),
            Err(at) => at,
        };
        let version = self
            .versions
            .get(usize::from(key.1))
            .map_or(UNKNOWN, String::as_str);
        let cohort = cfg.cohort_label(key.2);
        let (kind, family) = match key.0 {
            Family::Requests => (MetricKind::Counter, REQUESTS),
            Family::Errors => (MetricKind::Counter, ERRORS),
            Family::Duration => (MetricKind::Histogram, DURATION),
        };
        let id = sink.define(kind, &stat_name(version, cohort, extra, family))?;
        self.ids.insert(at, (key, id));
        Some(id)
    }

    /// Counts one finished request.
    pub fn record(&mut self, sink: &mut impl Metrics, cfg: &Config, s: Sample<'_>) {
        let v = self.version_index(s.version);
        let c = s.cohort;
        let key = (Family::Requests, v, c, s.class.index());
        if let Some(id) = self.id(sink, cfg, key, Some((TAG_CODE_CLASS, s.class.label()))) {
            sink.increment(id, 1);
        }
        if let Some(kind) = s.error {
            let key = (Family::Errors, v, c, kind.index());
            if let Some(id) = self.id(sink, cfg, key, Some((TAG_ERROR_KIND, kind.label()))) {
                sink.increment(id, 1);
            }
        }
        if let Some(us) = s.duration_us {
            if let Some(id) = self.id(sink, cfg, (Family::Duration, v, c, 0), None) {
                sink.record(id, us);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::testing::FakeMetrics;

    #[test]
    fn stat_names_carry_tags_in_istio_form() {
        assert_eq!(
            stat_name("v2", "beta", Some((TAG_CODE_CLASS, "2xx")), REQUESTS),
            "canary_version=.=v2;.;canary_cohort=.=beta;.;canary_code_class=.=2xx;.;canary_requests_total"
        );
        assert_eq!(tag_regex("canary_cohort"), r"(canary_cohort=\.=(.*?);\.;)");
    }

    #[test]
    fn each_series_is_defined_once_and_counted_every_time() {
        let cfg = Config::default();
        let mut reg = Registry::default();
        let mut m = FakeMetrics::default();
        let ok = Sample {
            version: "v1",
            cohort: Cohort::STABLE,
            class: CodeClass::C2xx,
            error: None,
            duration_us: Some(1500),
        };
        for _ in 0..3 {
            reg.record(&mut m, &cfg, ok);
        }
        let bad = Sample {
            version: "v2",
            cohort: cfg.cohorts.named("beta").unwrap(),
            class: CodeClass::C5xx,
            error: Some(ErrorKind::Http5xx),
            duration_us: Some(10),
        };
        reg.record(&mut m, &cfg, bad);
        assert_eq!(m.defines, 5);
        assert_eq!(m.counter("canary_version=.=v1;.;canary_cohort=.=stable;.;canary_code_class=.=2xx;.;canary_requests_total"), 3);
        assert_eq!(m.counter("canary_version=.=v2;.;canary_cohort=.=beta;.;canary_error_kind=.=5xx;.;canary_errors_total"), 1);
        assert_eq!(m.histogram("canary_version=.=v1;.;canary_cohort=.=stable;.;canary_request_duration_microseconds"), vec![1500; 3]);
    }

    #[test]
    fn versions_beyond_the_cap_fold_into_other() {
        let cfg = Config::default();
        let mut reg = Registry::default();
        let mut m = FakeMetrics::default();
        for i in 0..40 {
            let v = format!("v{i}");
            reg.record(
                &mut m,
                &cfg,
                Sample {
                    version: &v,
                    cohort: Cohort::STABLE,
                    class: CodeClass::C2xx,
                    error: None,
                    duration_us: None,
                },
            );
        }
        assert_eq!(reg.versions.len(), MAX_VERSIONS + 1);
        let other = "canary_version=.=other;.;canary_cohort=.=stable;.;canary_code_class=.=2xx;.;canary_requests_total";
        assert_eq!(m.counter(other), 40 - MAX_VERSIONS as u64);
    }
}
