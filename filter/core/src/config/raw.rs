//! The serde shapes of `pluginConfig`, exactly as operators write them.
//! Everything is optional and unknown fields are refused; the typed values and
//! their rules come from the `TryFrom` conversions next to each section.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawConfig {
    pub cohort_header: Option<String>,
    pub cohorts: Option<Vec<RawCohort>>,
    pub sticky: Option<RawSticky>,
    pub trust: Option<RawTrust>,
    pub version: Option<RawVersion>,
    pub response_headers: Option<RawResponseHeaders>,
    pub metrics: Option<RawMetrics>,
    pub gates: Option<RawGates>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawCohort {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Vec<RawMatch>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawMatch {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub query: Option<String>,
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub present: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawSticky {
    pub percent: Option<f64>,
    pub user_key: Option<RawUserKey>,
    pub salt: Option<String>,
    pub missing_key: Option<MissingKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawUserKey {
    pub header: Option<String>,
    pub cookie: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTrust {
    pub routing_headers: Option<Vec<String>>,
    pub source_cidrs: Option<Vec<String>>,
    pub peer_principals: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawVersion {
    pub direction: Option<Direction>,
    pub value: Option<String>,
    pub known: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawResponseHeaders {
    pub version: Option<Toggle>,
    pub cohort: Option<Toggle>,
    pub server_timing: Option<Toggle>,
}

/// `true` (default name), `false` (off) or a header name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Toggle {
    On(bool),
    Name(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawMetrics {
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawGates {
    pub canary_version: Option<String>,
    pub tick: Option<String>,
    pub bucket: Option<String>,
    pub min_samples: Option<u32>,
    pub objectives: Option<RawObjectives>,
    pub promotion: Option<Vec<RawPromotion>>,
    pub rollback: Option<Vec<RawTrigger>>,
    pub burn_rate: Option<RawBurn>,
    pub withdraw: Option<Vec<String>>,
    pub judgment: Option<RawJudgment>,
}

/// `gates.judgment`: the canary judged against a baseline. Field names
/// match the judge's own (`errors.margin`), so its range errors name them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawJudgment {
    pub baseline_version: Option<String>,
    pub baseline_failing: Option<RawBaselineFailing>,
    pub errors: Option<RawRatio>,
    pub shift: Option<RawShift>,
    pub tail: Option<RawTail>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum RawBaselineFailing {
    Hold,
    Withdraw,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawRatio {
    pub confidence: Option<f64>,
    pub margin: Option<f64>,
    pub not_worse_margin: Option<f64>,
    pub floor: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawShift {
    pub confidence: Option<f64>,
    pub min_effect: Option<f64>,
    pub min_samples: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTail {
    pub confidence: Option<f64>,
    pub margin: Option<f64>,
    pub not_worse_margin: Option<f64>,
    pub floor: Option<f64>,
    pub quantile: Option<f64>,
    pub min_baseline: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawObjectives {
    pub availability_percent: Option<f64>,
    pub latency_p99: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawPromotion {
    pub at_percent: f64,
    pub max_error_percent: Option<f64>,
    pub max_p99: Option<String>,
    #[serde(rename = "max5xx")]
    pub max_5xx: Option<u32>,
    pub objectives: Option<bool>,
    pub hold_for: Option<String>,
    pub window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawTrigger {
    pub error_percent_above: Option<f64>,
    pub p99_above: Option<String>,
    #[serde(rename = "http5xxPercentAbove")]
    pub http_5xx_percent_above: Option<f64>,
    pub window: Option<String>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawBurn {
    pub windows: Option<Vec<RawBurnPair>>,
    pub rollback: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawBurnPair {
    pub long: String,
    pub short: String,
    pub factor: f64,
}

/// What to do with a request whose user key (header or cookie) is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingKey {
    /// Keyless requests stay on stable: nobody anonymous meets the canary.
    #[default]
    Stable,
    /// Keyless requests are split per request at the same percentage.
    PerRequest,
}

/// Which side of the workload the filter sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Direction {
    /// Ask Envoy per request (`xds.listener_direction`); outbound if unknown.
    #[default]
    #[serde(alias = "AUTO")]
    #[serde(rename = "auto")]
    Auto,
    /// Istio CLIENT mode: sidecar outbound or gateway; the version is the routed subset.
    #[serde(alias = "CLIENT")]
    #[serde(rename = "client")]
    Client,
    /// Istio SERVER mode: sidecar inbound; the version is the workload's own.
    #[serde(alias = "SERVER")]
    #[serde(rename = "server")]
    Server,
}
