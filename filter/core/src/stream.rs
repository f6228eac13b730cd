//! One HTTP request's life in the filter, written against the [`Http`] and
//! [`Metrics`] traits so all of it runs in unit tests. Each callback gathers
//! what its phase knows and hands the decisions to their own modules:
//! [`Trust`](crate::trust::Trust) and [`cohort::choose`] on the request,
//! [`version`](crate::version) on the response, [`outcome::classify`] and
//! the metrics and gates at the end.

use crate::cohort::{self, HeaderClaims};
use crate::config::{Cohort, Config};
use crate::gates::window::Outcome;
use crate::gates::Engine;
use crate::host::{Http, Metrics, SharedStore};
use crate::identity;
use crate::labels::VersionLabels;
use crate::metrics::{Registry, Sample};
use crate::outcome;
use crate::property;
use crate::version::{Label, UNKNOWN};

/// What the root context knows once per configuration.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub config: Config,
    /// SERVER mode version label: `version.value`, else the pod label, else `unknown`.
    pub own_version: Label,
}

/// Mutable per-VM state the requests share: defined metrics, the proxy's
/// version labels and the gates.
#[derive(Debug, Default)]
pub struct Vm {
    pub registry: Registry,
    pub labels: VersionLabels,
    pub engine: Option<Engine>,
}

impl Vm {
    /// Whether the gates have withdrawn this configuration's canary cohorts.
    pub fn withdrawn(&self) -> bool {
        self.engine.as_ref().is_some_and(Engine::withdrawn)
    }
}

impl Plugin {
    /// `node_version` is the `xds.node.metadata.LABELS.version` attribute.
    pub fn new(config: Config, node_version: Option<&[u8]>) -> Self {
        let own_version = config.version.own_version(node_version);
        Plugin {
            config,
            own_version,
        }
    }
}

/// Per-request state: what was decided at request time and learnt on the way
/// back. Plain values only, so a request allocates nothing.
#[derive(Debug, Default)]
pub struct Stream {
    started_ns: Option<u64>,
    cohort: Cohort,
    version: Option<Label>,
    /// `:status` as the response headers passed this filter.
    status: Option<i64>,
    grpc_status: Option<u32>,
    /// The response reached its end (headers, body or trailers with end of stream).
    response_complete: bool,
}

impl Stream {
    /// The cohort chosen for this request.
    pub fn cohort(&self) -> Cohort {
        self.cohort
    }

    /// Decides the cohort, drops untrusted routing headers and writes the
    /// cohort header.
    pub fn on_request_headers(&mut self, p: &Plugin, vm: &Vm, host: &mut impl Http) {
        let cfg = &p.config;
        // The start time only serves the duration (metrics, gates) and
        // `server-timing`: without them the clock is not read.
        let timed = cfg.counts_outcomes() || cfg.response_headers.server_timing.is_some();
        let now = timed.then(|| host.now_nanos());
        self.started_ns = now;

        let read = HeaderClaims::read(&cfg.cohorts, host);
        let trusted = cfg.trust.screen(&cfg.cohorts.headers, read.sent, host);
        // A cohort signed where the caller's identity was verified wins.
        self.cohort = identity::carried(cfg.identity.baggage.as_ref(), &cfg.cohorts, host)
            .unwrap_or_else(|| cohort::choose(cfg, host, read.believed(trusted), now));
        // A withdrawn canary takes no new users: they route to stable, and the
        // response shows the cohort actually used.
        if vm.withdrawn()
            && cfg
                .gates
                .as_ref()
                .is_some_and(|g| g.withdraw.contains(&self.cohort))
        {
            self.cohort = Cohort::STABLE;
        }
        identity::carry(
            cfg.identity.baggage.as_ref(),
            &cfg.cohorts,
            host,
            self.cohort,
        );
        // Replaces whatever the client sent under this name. Envoy selects the
        // route again after a Wasm filter changes request headers, so
        // VirtualService matches on the cohort header see the new value: the
        // SDK (proxy-wasm 0.2.5) exports ABI 0.2.1, for which Envoy still
        // clears the route cache on a header change (it stops doing so by
        // default above 0.2.1, but Envoy 1.40 loads no module of a later
        // ABI). A newer SDK would need the cache cleared explicitly; the e2e
        // routing tests fail if that is missed.
        host.set_request_header(&cfg.cohort_header, cfg.cohort_label(self.cohort).as_bytes());
    }

    /// Learns the status and the version, and stamps the canary headers.
    /// `end_of_stream` says the headers end the response: that is the only
    /// case where gRPC carries its status in headers (a trailers-only
    /// response), so a plain response costs no extra lookup.
    pub fn on_response_headers(&mut self, p: &Plugin, host: &mut impl Http, end_of_stream: bool) {
        self.response_complete |= end_of_stream;
        let cfg = &p.config;
        let rh = &cfg.response_headers;
        let counting = cfg.counts_outcomes();
        if counting {
            // The status the client gets, read where it passes by: a header
            // read is cheaper than the `response.code` property at the end.
            self.status = host.response_header(":status", |v| v.and_then(outcome::http_status));
            if end_of_stream {
                self.grpc_status =
                    host.response_header("grpc-status", |v| v.map(outcome::grpc_status));
            }
        }
        if counting || rh.version.is_some() {
            self.resolve_version(p, host);
        }
        if let (Some(name), Some(v)) = (&rh.version, &self.version) {
            host.set_response_header(name, v.as_str().as_bytes());
        }
        if let Some(name) = &rh.cohort {
            host.set_response_header(name, cfg.cohort_label(self.cohort).as_bytes());
        }
        if let (Some(name), Some(start)) = (&rh.server_timing, self.started_ns) {
            let mut buf = [0; SERVER_TIMING_MAX];
            let us = host.now_nanos().saturating_sub(start) / 1000;
            host.add_response_header(name, server_timing(us, &mut buf));
        }
    }

    /// A body chunk: only whether it ends the response matters. Envoy calls
    /// the filter for every chunk anyway, so knowing this costs no hostcall.
    pub fn on_response_body(&mut self, end_of_stream: bool) {
        self.response_complete |= end_of_stream;
    }

    /// gRPC status normally arrives in trailers; only gRPC sends `grpc-status`.
    pub fn on_response_trailers(&mut self, p: &Plugin, host: &mut impl Http) {
        self.response_complete = true;
        if p.config.counts_outcomes() {
            if let Some(v) = host.response_trailer("grpc-status", |v| v.map(outcome::grpc_status)) {
                self.grpc_status = Some(v);
            }
        }
    }

    /// End of stream: classify the outcome and count it. The glue calls this
    /// as Envoy deletes the stream's context, after logging it.
    pub fn on_end(
        &mut self,
        p: &Plugin,
        vm: &mut Vm,
        sink: &mut impl Metrics,
        host: &mut impl Http,
        store: &mut impl SharedStore,
    ) {
        let cfg = &p.config;
        if !cfg.counts_outcomes() {
            return;
        }
        let Some(start) = self.started_ns else {
            return;
        };
        self.resolve_version(p, host);
        let int = |path: &[&str]| host.property(path, |b| b.and_then(property::int).unwrap_or(0));
        // No response headers passed this filter (the client left, or a
        // reply bypassed it): ask Envoy what, if anything, was sent.
        let code = match self.status {
            Some(code) => code,
            None => int(&["response", "code"]),
        };
        // A response that ended normally below 500 carries no reset or
        // timeout: skip the flags lookup on the common path. (This also keeps
        // a request that succeeded on retry from counting as a reset.)
        let flags = if self.response_complete && (100..500).contains(&code) {
            0
        } else {
            int(&["response", "flags"])
        };
        let (class, error) = outcome::classify(
            code,
            flags,
            self.response_complete,
            self.grpc_status,
            || host.property(&["response", "code_details"], outcome::Details::of),
        );
        let now = host.now_nanos();
        let duration_us = now.saturating_sub(start) / 1000;
        // Under a label the proxy admits: `store` is read only for a version
        // this VM has not met while the proxy's list still has room.
        let version = vm
            .labels
            .admit(store, self.version.as_ref().map_or(UNKNOWN, Label::as_str));
        if cfg.metrics_enabled {
            let sample = Sample {
                version,
                cohort: self.cohort,
                class,
                error,
                duration_us: Some(duration_us),
            };
            vm.registry.record(sink, cfg, sample);
        }
        if let (Some(g), Some(engine)) = (&cfg.gates, vm.engine.as_mut()) {
            let outcome = Outcome {
                error,
                status_5xx: class == outcome::CodeClass::C5xx,
                latency_us: duration_us,
            };
            engine.finish(g, version, now / 1_000_000, outcome, store);
        }
    }

    fn resolve_version(&mut self, p: &Plugin, host: &impl Http) {
        if self.version.is_none() {
            self.version = Some(p.config.version.resolve(p.own_version, host));
        }
    }
}

/// Room for `upstream;dur=` and the largest `u64` of microseconds as milliseconds.
const SERVER_TIMING_MAX: usize = 40;

/// `upstream;dur=<ms>.<µs, 3 digits>`, written into `buf` by hand: no
/// allocation and no formatting machinery on the response path.
fn server_timing(us: u64, buf: &mut [u8; SERVER_TIMING_MAX]) -> &[u8] {
    const PREFIX: &[u8] = b"upstream;dur=";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 20];
    let mut n = us / 1000;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut end = PREFIX.len();
    for d in digits[..len].iter().rev() {
        buf[end] = *d;
        end += 1;
    }
    let frac = us % 1000;
    buf[end] = b'.';
    buf[end + 1] = b'0' + (frac / 100) as u8;
    buf[end + 2] = b'0' + (frac / 10 % 10) as u8;
    buf[end + 3] = b'0' + (frac % 10) as u8;
    &buf[..end + 4]
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::testing::{FakeHost, FakeMetrics, FakeStore};

    fn plugin(json: &str) -> Plugin {
        Plugin::new(Config::from_json(json.as_bytes()).unwrap(), Some(b"v9"))
    }

    fn cohort_of(p: &Plugin, headers: &[(&str, &[u8])]) -> (String, FakeHost) {
        let mut host = FakeHost::with_request(headers).prop("source.address", b"10.1.2.3:5555");
        let mut s = Stream::default();
        s.on_request_headers(p, &Vm::default(), &mut host);
        (host.req(&p.config.cohort_header).unwrap(), host)
    }

    #[test]
    fn the_module_headers_pick_internal_and_beta_and_nothing_else_is_stable() {
        let p = plugin("");
        assert_eq!(cohort_of(&p, &[("user-type", b"internal")]).0, "internal");
        assert_eq!(cohort_of(&p, &[("beta-user", b"true")]).0, "beta");
        assert_eq!(cohort_of(&p, &[("beta-user", b"TRUE")]).0, "stable");
        assert_eq!(cohort_of(&p, &[]).0, "stable");
        // First match wins.
        assert_eq!(
            cohort_of(&p, &[("beta-user", b"true"), ("user-type", b"internal")]).0,
            "internal"
        );
    }

    #[test]
    fn a_client_sent_cohort_header_is_always_replaced() {
        let p = plugin("");
        let (c, host) = cohort_of(&p, &[("x-canary-cohort", b"internal")]);
        assert_eq!(c, "stable");
        assert_eq!(
            host.request
                .iter()
                .filter(|(k, _)| k == "x-canary-cohort")
                .count(),
            1
        );
    }

    #[test]
    fn cookie_and_query_rules_match_exactly() {
        let p = plugin(
            r#"{"cohorts": [{"name": "qa", "match": [{"query": "canary", "exact": "yes"}]},
                            {"name": "beta", "match": [{"cookie": "beta", "exact": "1"}]}]}"#,
        );
        assert_eq!(cohort_of(&p, &[(":path", b"/r?canary=yes")]).0, "qa");
        assert_eq!(cohort_of(&p, &[(":path", b"/r?canary=yess")]).0, "stable");
        assert_eq!(cohort_of(&p, &[("cookie", b"x=1; beta=1")]).0, "beta");
        assert_eq!(cohort_of(&p, &[("cookie", b"beta=10")]).0, "stable");
        assert_eq!(
            cohort_of(
                &p,
                &[
                    ("cookie", b"\xff\xfe; beta=\xc3\x28"),
                    (":path", b"/\xff?\xfe")
                ]
            )
            .0,
            "stable"
        );
    }

    #[test]
    fn untrusted_callers_lose_their_routing_headers() {
        let p = plugin(r#"{"trust": {"sourceCidrs": ["127.0.0.2/32"]}}"#);
        let (c, host) = cohort_of(&p, &[("user-type", b"internal"), ("beta-user", b"true")]);
        assert_eq!(c, "stable");
        assert_eq!(host.req("user-type"), None);
        assert_eq!(host.req("beta-user"), None);
    }

    #[test]
    fn trusted_addresses_and_peers_keep_their_routing_headers() {
        let p = plugin(r#"{"trust": {"sourceCidrs": ["10.0.0.0/8"]}}"#);
        let (c, host) = cohort_of(&p, &[("user-type", b"internal")]);
        assert_eq!(c, "internal");
        assert_eq!(host.req("user-type").as_deref(), Some("internal"));

        let p = plugin(
            r#"{"trust": {"peerPrincipals": ["spiffe://cluster.local/ns/default/sa/productpage"]}}"#,
        );
        let mut host = FakeHost::with_request(&[("beta-user", b"true")]).prop(
            "connection.uri_san_peer_certificate",
            b"spiffe://cluster.local/ns/default/sa/productpage",
        );
        Stream::default().on_request_headers(&p, &Vm::default(), &mut host);
        assert_eq!(host.req("x-canary-cohort").as_deref(), Some("beta"));

        let mut host = FakeHost::with_request(&[("beta-user", b"true")]).prop(
            "connection.uri_san_peer_certificate",
            b"spiffe://cluster.local/ns/default/sa/attacker",
        );
        Stream::default().on_request_headers(&p, &Vm::default(), &mut host);
        assert_eq!(host.req("x-canary-cohort").as_deref(), Some("stable"));
    }

    #[test]
    fn trust_is_not_evaluated_when_no_routing_header_was_sent() {
        let p = plugin(r#"{"trust": {"sourceCidrs": ["10.0.0.0/8"]}}"#);
        let mut host = FakeHost::with_request(&[]);
        Stream::default().on_request_headers(&p, &Vm::default(), &mut host);
        // now + two rule headers + set cohort: no property lookups.
        assert_eq!(host.calls.get(), 4);
    }

    #[test]
    fn extra_routing_headers_are_stripped_from_untrusted_callers() {
        let p = plugin(
            r#"{"trust": {"sourceCidrs": ["10.9.0.0/16"], "routingHeaders": ["user-type", "x-debug-route"]}}"#,
        );
        let (c, host) = cohort_of(&p, &[("x-debug-route", b"v2"), ("beta-user", b"true")]);
        assert_eq!(host.req("x-debug-route"), None);
        // beta-user is not a routing header in this config: honoured from anyone.
        assert_eq!(c, "beta");
    }

    #[test]
    fn sticky_users_keep_their_cohort_and_stay_in_as_the_percent_grows() {
        let p10 = plugin(r#"{"sticky": {"percent": 10, "salt": "reviews"}}"#);
        let p50 = plugin(r#"{"sticky": {"percent": 50, "salt": "reviews"}}"#);
        let mut in10 = 0;
        let mut in50 = 0;
        for i in 0..2000 {
            let id = format!("user-{i}");
            let a = cohort_of(&p10, &[("x-user-id", id.as_bytes())]).0;
            let b = cohort_of(&p50, &[("x-user-id", id.as_bytes())]).0;
            assert_eq!(a, cohort_of(&p10, &[("x-user-id", id.as_bytes())]).0);
            if a == "canary" {
                in10 += 1;
                assert_eq!(b, "canary", "{id} left the canary when the percent grew");
            }
            if b == "canary" {
                in50 += 1;
            }
        }
        assert!((140..=260).contains(&in10), "{in10}");
        assert!((940..=1060).contains(&in50), "{in50}");
    }

    #[test]
    fn rules_win_over_the_sticky_percentage() {
        let p = plugin(r#"{"sticky": {"percent": 100}}"#);
        assert_eq!(
            cohort_of(&p, &[("x-user-id", b"u1"), ("beta-user", b"true")]).0,
            "beta"
        );
        assert_eq!(cohort_of(&p, &[("x-user-id", b"u1")]).0, "canary");
    }

    #[test]
    fn a_missing_user_key_means_stable_or_a_per_request_split() {
        let p = plugin(r#"{"sticky": {"percent": 100}}"#);
        assert_eq!(cohort_of(&p, &[]).0, "stable");
        assert_eq!(cohort_of(&p, &[("x-user-id", b"  ")]).0, "stable");
        let p = plugin(r#"{"sticky": {"percent": 30, "missingKey": "perRequest"}}"#);
        let canary = (0..1000)
            .filter(|i| {
                cohort_of(&p, &[("x-request-id", format!("req-{i}").as_bytes())]).0 == "canary"
            })
            .count();
        assert!((230..=370).contains(&canary), "{canary}");
    }

    #[test]
    fn a_cookie_can_be_the_user_key() {
        let p = plugin(r#"{"sticky": {"percent": 100, "userKey": {"cookie": "uid"}}}"#);
        assert_eq!(cohort_of(&p, &[("cookie", b"a=b; uid=42")]).0, "canary");
        assert_eq!(cohort_of(&p, &[("cookie", b"a=b")]).0, "stable");
    }

    fn finish(p: &Plugin, host: &mut FakeHost, vm: &mut Vm, m: &mut FakeMetrics) {
        let mut s = Stream::default();
        host.now.set(1_000_000);
        s.on_request_headers(p, vm, host);
        host.now.set(3_500_000);
        let headers_only =
            host.trailers.is_empty() && host.response.iter().any(|(k, _)| k == "grpc-status");
        s.on_response_headers(p, host, headers_only);
        if !host.trailers.is_empty() {
            s.on_response_trailers(p, host);
        } else if !headers_only {
            s.on_response_body(true);
        }
        host.now.set(4_000_000);
        s.on_end(p, vm, m, host, &mut FakeStore::default());
    }

    #[test]
    fn client_mode_reads_the_version_from_the_routed_subset_and_stamps_headers() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[("beta-user", b"true")])
            .prop_int("xds.listener_direction", 2)
            .prop(
                "xds.cluster_name",
                b"outbound|9080|v2|reviews.default.svc.cluster.local",
            )
            .status(200);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(host.resp_all("x-canary-version"), vec!["v2"]);
        assert_eq!(host.resp_all("x-canary-cohort"), vec!["beta"]);
        assert!(host.resp_all("server-timing").is_empty());
        assert_eq!(m.counter("canary_version=.=v2;.;canary_cohort=.=beta;.;canary_code_class=.=2xx;.;canary_requests_total"), 1);
        assert_eq!(
            m.histogram(
                "canary_version=.=v2;.;canary_cohort=.=beta;.;canary_request_duration_microseconds"
            ),
            vec![3000]
        );
    }

    #[test]
    fn server_mode_reports_the_workloads_own_version() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[])
            .prop("xds.cluster_name", b"inbound|9080||")
            .status(200);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(host.resp_all("x-canary-version"), vec!["v9"]);
        let p = plugin(r#"{"version": {"value": "v3"}}"#);
        assert_eq!(p.own_version, "v3");
        assert_eq!(Plugin::new(Config::default(), None).own_version, "unknown");
    }

    #[test]
    fn versions_outside_the_known_list_are_reported_as_other() {
        let p = plugin(r#"{"version": {"known": ["v1", "v2"], "direction": "client"}}"#);
        let mut host = FakeHost::with_request(&[])
            .prop("xds.cluster_name", b"outbound|80|v7|reviews")
            .status(200);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(host.resp_all("x-canary-version"), vec!["other"]);
        assert_eq!(p.config.version.label(b"\xff"), "other");
        assert_eq!(Config::default().version.label(b"v1;.;x"), "other");
    }

    #[test]
    fn response_headers_can_be_renamed_or_turned_off() {
        let p = plugin(
            r#"{"responseHeaders": {"version": "x-v", "cohort": false, "serverTiming": false}}"#,
        );
        let mut host = FakeHost::with_request(&[])
            .prop("xds.cluster_name", b"outbound|80|v1|reviews")
            .status(200);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(host.resp_all("x-v"), vec!["v1"]);
        assert!(host.resp_all("x-canary-cohort").is_empty());
        assert!(host.resp_all("server-timing").is_empty());
    }

    #[test]
    fn server_timing_when_turned_on_gives_the_upstream_time_under_its_name() {
        for (config, name) in [
            (
                r#"{"responseHeaders": {"serverTiming": true}}"#,
                "server-timing",
            ),
            (
                r#"{"responseHeaders": {"serverTiming": "x-timing"}}"#,
                "x-timing",
            ),
        ] {
            let p = plugin(config);
            let mut host = FakeHost::with_request(&[])
                .prop("xds.cluster_name", b"outbound|80|v1|reviews")
                .status(200);
            let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
            finish(&p, &mut host, &mut reg, &mut m);
            assert_eq!(host.resp_all(name), vec!["upstream;dur=2.500"], "{config}");
            assert_eq!(host.resp_all("x-canary-version"), vec!["v1"]);
        }
        // Without metrics or gates the clock is read for it alone.
        let p =
            plugin(r#"{"metrics": {"enabled": false}, "responseHeaders": {"serverTiming": true}}"#);
        let mut host = FakeHost::with_request(&[]).status(200);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(host.resp_all("server-timing"), vec!["upstream;dur=2.500"]);
    }

    #[test]
    fn a_grpc_error_in_trailers_counts_as_an_error() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[])
            .prop("xds.cluster_name", b"outbound|80|v2|reviews")
            .status(200);
        host.response
            .push(("content-type".into(), b"application/grpc".to_vec()));
        host.trailers.push(("grpc-status".into(), b"14".to_vec()));
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(m.sum("canary_errors_total", "canary_error_kind=.=grpc"), 1);
    }

    #[test]
    fn a_trailers_only_grpc_error_counts_as_an_error() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[]).status(200);
        host.response.push(("grpc-status".into(), b"13".to_vec()));
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(m.sum("canary_errors_total", "canary_error_kind=.=grpc"), 1);
    }

    #[test]
    fn a_grpc_status_header_before_a_body_is_not_read() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[]).status(200);
        host.response.push(("grpc-status".into(), b"13".to_vec()));
        let mut s = Stream::default();
        s.on_request_headers(&p, &Vm::default(), &mut host);
        s.on_response_headers(&p, &mut host, false);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        s.on_end(&p, &mut reg, &mut m, &mut host, &mut FakeStore::default());
        assert_eq!(m.sum("canary_errors_total", ""), 0);
        assert_eq!(
            m.sum("canary_requests_total", "canary_version=.=unknown"),
            1
        );
    }

    #[test]
    fn auto_mode_asks_the_listener_only_for_non_istio_cluster_names() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[])
            .prop_int("xds.listener_direction", 1)
            .prop("xds.cluster_name", b"local_app")
            .status(200);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(host.resp_all("x-canary-version"), vec!["v9"]);
        let p = plugin(r#"{"version": {"direction": "client"}}"#);
        let mut host = FakeHost::with_request(&[]).prop("xds.cluster_name", b"inbound|9080||");
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(host.resp_all("x-canary-version"), vec!["unknown"]);
    }

    #[test]
    fn an_upstream_503_counts_once_as_5xx() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[])
            .prop("xds.cluster_name", b"outbound|80|v3|reviews")
            .status(503)
            .prop("response.code_details", b"via_upstream");
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(m.counter("canary_version=.=v3;.;canary_cohort=.=stable;.;canary_error_kind=.=5xx;.;canary_errors_total"), 1);
        assert_eq!(m.sum("canary_errors_total", ""), 1);
    }

    #[test]
    fn metrics_off_means_no_metric_hostcalls() {
        let p = plugin(
            r#"{"metrics": {"enabled": false}, "responseHeaders": {"version": false, "cohort": false, "serverTiming": false}}"#,
        );
        let mut host = FakeHost::with_request(&[]);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        finish(&p, &mut host, &mut reg, &mut m);
        assert_eq!(m.defines, 0);
        assert!(host.properties.is_empty());
    }

    #[test]
    fn cookies_on_any_line_count() {
        let p = plugin(
            r#"{"cohorts": [{"name": "beta", "match": [{"cookie": "beta", "exact": "1"}]}]}"#,
        );
        let two_lines: &[(&str, &[u8])] = &[("cookie", b"x=1"), ("cookie", b"beta=1")];
        assert_eq!(cohort_of(&p, two_lines).0, "beta");
        let p = plugin(r#"{"sticky": {"percent": 100, "userKey": {"cookie": "uid"}}}"#);
        let two_lines: &[(&str, &[u8])] = &[("cookie", b"a=b"), ("cookie", b"uid=42")];
        assert_eq!(cohort_of(&p, two_lines).0, "canary");
    }

    #[test]
    fn a_repeated_rule_header_matches_only_when_its_lines_agree() {
        let p = plugin("");
        let spoof: &[(&str, &[u8])] = &[("user-type", b"internal"), ("user-type", b"external")];
        assert_eq!(cohort_of(&p, spoof).0, "stable");
        let same: &[(&str, &[u8])] = &[("user-type", b"internal"), ("user-type", b"internal")];
        assert_eq!(cohort_of(&p, same).0, "internal");
        // An untrusted caller loses every line.
        let p = plugin(r#"{"trust": {"sourceCidrs": ["127.0.0.2/32"]}}"#);
        let (c, host) = cohort_of(&p, spoof);
        assert_eq!(c, "stable");
        assert!(!host.request.iter().any(|(k, _)| k == "user-type"));
    }

    #[test]
    fn a_present_rule_header_costs_one_lookup_for_its_other_lines() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[("user-type", b"internal")]);
        Stream::default().on_request_headers(&p, &Vm::default(), &mut host);
        // now + two rule headers + all lines of user-type + set cohort.
        assert_eq!(host.calls.get(), 5);
        assert_eq!(host.properties_read.take(), ["request.headers.user-type"]);
    }

    #[test]
    fn a_response_that_never_passed_the_filter_takes_its_code_from_envoy() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[])
            .prop_int("response.code", 503)
            .prop("response.code_details", b"via_upstream");
        let (mut vm, mut m) = (Vm::default(), FakeMetrics::default());
        let mut s = Stream::default();
        s.on_request_headers(&p, &vm, &mut host);
        s.on_end(&p, &mut vm, &mut m, &mut host, &mut FakeStore::default());
        assert_eq!(m.sum("canary_errors_total", "canary_error_kind=.=5xx"), 1);
    }

    #[test]
    fn server_timing_is_milliseconds_with_three_decimals() {
        let mut buf = [0; SERVER_TIMING_MAX];
        assert_eq!(server_timing(0, &mut buf), b"upstream;dur=0.000");
        assert_eq!(server_timing(2_500, &mut buf), b"upstream;dur=2.500");
        assert_eq!(server_timing(1_234_007, &mut buf), b"upstream;dur=1234.007");
        let max = format!("upstream;dur={}.{:03}", u64::MAX / 1000, u64::MAX % 1000);
        assert_eq!(server_timing(u64::MAX, &mut buf), max.as_bytes());
    }

    #[test]
    fn a_response_cut_off_after_its_headers_is_a_reset_even_with_status_200() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[])
            .prop("xds.cluster_name", b"outbound|80|v2|reviews")
            .status(200)
            .prop_int(
                "response.flags",
                crate::outcome::flags::UPSTREAM_REMOTE_RESET,
            );
        let mut s = Stream::default();
        let (mut vm, mut m) = (Vm::default(), FakeMetrics::default());
        s.on_request_headers(&p, &vm, &mut host);
        s.on_response_headers(&p, &mut host, false);
        s.on_response_body(false);
        s.on_end(&p, &mut vm, &mut m, &mut host, &mut FakeStore::default());
        assert_eq!(m.sum("canary_errors_total", "canary_error_kind=.=reset"), 1);
        // The same flags on a completed response are not read: it succeeded (on retry).
        let mut s = Stream::default();
        s.on_request_headers(&p, &vm, &mut host);
        s.on_response_headers(&p, &mut host, false);
        s.on_response_body(true);
        s.on_end(&p, &mut vm, &mut m, &mut host, &mut FakeStore::default());
        assert_eq!(m.sum("canary_errors_total", ""), 1);
    }

    #[test]
    fn a_stream_that_ends_without_request_headers_records_nothing() {
        let p = plugin("");
        let mut host = FakeHost::with_request(&[]);
        let (mut reg, mut m) = (Vm::default(), FakeMetrics::default());
        Stream::default().on_end(&p, &mut reg, &mut m, &mut host, &mut FakeStore::default());
        assert_eq!(m.defines, 0);
    }
}
