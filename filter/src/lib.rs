//! The proxy-wasm glue: thin adapters from the SDK's contexts to
//! [`canary_core`]. `CanaryRoot` parses the config once per `on_configure` and
//! builds a `CanaryHttp` per request; all decisions live in the core crate.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use canary_core::config::QuotedList;
use canary_core::gates::Engine;
use canary_core::host::{Http, MetricKind, Metrics, SharedStore};
use canary_core::labels::VersionLabels;
use canary_core::liveness::{self, Liveness};
use canary_core::pending::{Batched, PendingCounts};
use canary_core::stream::{Plugin, Stream, Vm};
use canary_core::Config;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};

mod test_trap;

#[allow(unsafe_code)]
mod entry {
    use super::*;

    proxy_wasm::main! {{
        // A panic aborts the VM (a trap); its message is the one clue an
        // operator gets, so it goes to Envoy's log first. (The SDK installs
        // such a hook only through the `log` crate, which the module leaves out.)
        std::panic::set_hook(Box::new(|info| log(LogLevel::Critical, &info.to_string())));
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(CanaryRoot::default()) });
    }}
}

// Per VM, not per root context: a configuration update starts a new root
// context in the same VM, which keeps its worker slot and stays serving.
thread_local! {
    /// Set once this VM has created an HTTP context. The main thread's VM
    /// never does, so it never beats.
    static SERVING: Cell<bool> = const { Cell::new(false) };
    static LIVENESS: RefCell<Liveness> = RefCell::new(Liveness::new(slot_id()));
    /// Counter bumps of every request in this VM since the last tick.
    static PENDING: RefCell<PendingCounts> = RefCell::new(PendingCounts::default());
}

/// Hands the held counter bumps to Envoy.
fn flush_counts() {
    PENDING.with_borrow_mut(|p| p.flush(&mut HostMetrics));
}

/// An id for this VM's liveness slot: 32 random bits from the host. Two
/// workers' VMs start within microseconds of each other, and Envoy's clock
/// reads in whole microseconds, so an id taken from the clock could repeat
/// and two workers would share one slot (the count then reads one worker
/// short). The clock is the fallback only if the host refuses `random_get`.
fn slot_id() -> u32 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_ok() {
        return u32::from_le_bytes(b);
    }
    let ns = Host.now_nanos();
    (ns ^ (ns >> 32)) as u32
}
#[derive(Default)]
struct CanaryRoot {
    plugin: Option<Rc<Plugin>>,
    vm: Rc<RefCell<Vm>>,
}

impl Context for CanaryRoot {}

/// A stopping plugin hands its held counter bumps over as Envoy deletes its
/// root context. Not in `on_done`: the module does not export
/// `proxy_on_done` (filter/wasm-exports.json), because Envoy would call it
/// for every request too, only to find nothing to do. (When the whole VM
/// stops, its stats appear to go with it: bumps flushed then did not show in
/// `/stats` in a test that moved the filter to a new VM. They count where
/// another root in the same VM, or another VM, carries the stat names on.)
impl Drop for CanaryRoot {
    fn drop(&mut self) {
        flush_counts();
    }
}

fn now_ms() -> u64 {
    Host.now_nanos() / 1_000_000
}

impl RootContext for CanaryRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        // The new configuration may tick at another period, or not at all.
        flush_counts();
        let bytes = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let mut config = match Config::from_json(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("canary: rejected configuration: {e}"),
                );
                return false;
            }
        };
        // WASI gives the VM the variables of the plugin's `vm_config`.
        if let Err(e) = config.identity.resolve_key(|name| std::env::var(name).ok()) {
            log(
                LogLevel::Error,
                &format!("canary: rejected configuration: {e}"),
            );
            return false;
        }
        if config.trust.trusts_everyone() && !config.trust.routing_headers.is_empty() {
            log(
                LogLevel::Warn,
                &format!(
                    "canary: no trust policy: routing headers {} are believed from any caller",
                    QuotedList(&config.trust.routing_headers)
                ),
            );
        }
        let node_version =
            hostcalls::get_property(vec!["xds", "node", "metadata", "LABELS", "version"])
                .ok()
                .flatten();
        let plugin = Plugin::new(config, node_version.as_deref());
        // Cohort indices may mean other names now: start fresh metrics and
        // gates. The version labels are the proxy's, kept in shared data.
        let mut vm = Vm {
            labels: VersionLabels::load(&mut HostStore),
            ..Vm::default()
        };
        if plugin.config.gates.is_some() {
            // One shared entry per plugin; a withdrawal is remembered per
            // configuration, so a new rollout step starts un-withdrawn.
            let name = hostcalls::get_property(vec!["plugin_name"])
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_else(|| "canary".into());
            let mut engine = Engine::new(
                &format!("canary-gates/{name}"),
                canary_core::hash::config_hash(&bytes),
            );
            engine.init(&mut HostStore);
            vm.engine = Some(engine);
        }
        let tick = liveness::tick_ms(&plugin.config).unwrap_or(0);
        let _ = hostcalls::set_tick_period(std::time::Duration::from_millis(tick));
        log(
            LogLevel::Info,
            &format!(
                "canary: configured: {} cohorts, sticky {}.{:02} %, own version {}",
                plugin.config.cohorts.len(),
                plugin.config.sticky.basis_points / 100,
                plugin.config.sticky.basis_points % 100,
                plugin.own_version
            ),
        );
        self.plugin = Some(Rc::new(plugin));
        self.vm = Rc::new(RefCell::new(vm));
        true
    }

    fn on_tick(&mut self) {
        flush_counts();
        let Some(plugin) = &self.plugin else { return };
        if let Some(tick_ms) = liveness::tick_ms(&plugin.config) {
            LIVENESS.with_borrow_mut(|l| {
                l.tick(
                    SERVING.get(),
                    tick_ms,
                    &mut HostStore,
                    &mut HostMetrics,
                    now_ms(),
                )
            });
        }
        let Some(g) = &plugin.config.gates else {
            return;
        };
        let Ok(mut vm) = self.vm.try_borrow_mut() else {
            return;
        };
        let Some(engine) = vm.engine.as_mut() else {
            return;
        };
        let report = engine.tick(
            g,
            plugin.config.sticky.basis_points,
            &mut HostStore,
            &mut HostMetrics,
            now_ms(),
        );
        for line in report.log {
            log(LogLevel::Warn, &line);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plugin = self.plugin.clone()?;
        SERVING.set(true);
        Some(Box::new(CanaryHttp {
            plugin,
            vm: self.vm.clone(),
            stream: Stream::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct CanaryHttp {
    plugin: Rc<Plugin>,
    vm: Rc<RefCell<Vm>>,
    stream: Stream,
}

impl Context for CanaryHttp {}

impl HttpContext for CanaryHttp {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        test_trap::on_request_headers();
        if let Ok(vm) = self.vm.try_borrow() {
            self.stream.on_request_headers(&self.plugin, &vm, &mut Host);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        self.stream
            .on_response_headers(&self.plugin, &mut Host, end_of_stream);
        Action::Continue
    }

    fn on_http_response_body(&mut self, _body_size: usize, end_of_stream: bool) -> Action {
        self.stream.on_response_body(end_of_stream);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        self.stream.on_response_trailers(&self.plugin, &mut Host);
        Action::Continue
    }
}

/// The end of the stream: its outcome is counted as the SDK drops the
/// context, in `proxy_on_delete`, which Envoy calls right after logging the
/// stream, with its stream info still at hand. The module does not export
/// `proxy_on_log` (filter/wasm-exports.json): Envoy would enter the VM once
/// more per request for it, which `make bench-instructions` put at about
/// 1,900 instructions (2.4 % of the filter's cost).
impl Drop for CanaryHttp {
    fn drop(&mut self) {
        let Ok(mut vm) = self.vm.try_borrow_mut() else {
            return;
        };
        // Counter bumps wait for the tick: no hostcall per request for them.
        PENDING.with_borrow_mut(|pending| {
            let mut metrics = Batched {
                pending,
                sink: &mut HostMetrics,
            };
            self.stream.on_end(
                &self.plugin,
                &mut vm,
                &mut metrics,
                &mut Host,
                &mut HostStore,
            );
        });
        // A decision taken on this request (rare) is logged now, with it.
        if let Some(engine) = vm.engine.as_mut() {
            for line in engine.take_log() {
                log(LogLevel::Warn, &line);
            }
        }
    }
}

/// Envoy's log, straight through the hostcall: the `log` facade would add a
/// logger and its formatting to the module for five lines.
fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Hostcalls of the current HTTP context. Only `_bytes` map getters are used:
/// the SDK's `String` getters panic on non-UTF-8 header values. A value lives
/// only while the core's closure looks at it.
struct Host;

impl Host {
    fn get<R>(map: MapType, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        read(Host::map_value(map, name).as_deref())
    }

    /// The hostcall half of [`Host::get`] and [`Http::property`], kept out of
    /// the generic getters so it exists once in the module, not once per
    /// closure that reads a value.
    #[inline(never)]
    fn map_value(map: MapType, name: &str) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(map, name).ok().flatten()
    }

    #[inline(never)]
    fn property_value(path: &[&str]) -> Option<Vec<u8>> {
        // The free function returns a Result; `Context::get_property` unwraps it.
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }
}

impl Http for Host {
    fn request_header<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        Host::get(MapType::HttpRequestHeaders, name, read)
    }
    fn set_request_header(&mut self, name: &str, value: &[u8]) {
        let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, Some(value));
    }
    fn remove_request_header(&mut self, name: &str) {
        let _ = hostcalls::set_map_value_bytes(MapType::HttpRequestHeaders, name, None);
    }
    fn response_header<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        Host::get(MapType::HttpResponseHeaders, name, read)
    }
    fn set_response_header(&mut self, name: &str, value: &[u8]) {
        let _ = hostcalls::set_map_value_bytes(MapType::HttpResponseHeaders, name, Some(value));
    }
    fn add_response_header(&mut self, name: &str, value: &[u8]) {
        let _ = hostcalls::add_map_value_bytes(MapType::HttpResponseHeaders, name, value);
    }
    fn response_trailer<R>(&self, name: &str, read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        Host::get(MapType::HttpResponseTrailers, name, read)
    }
    fn property<R>(&self, path: &[&str], read: impl FnOnce(Option<&[u8]>) -> R) -> R {
        read(Host::property_value(path).as_deref())
    }
    fn now_nanos(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

struct HostMetrics;

impl Metrics for HostMetrics {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let t = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(t, name).ok()
    }
    fn increment(&mut self, id: u32, by: i64) {
        let _ = hostcalls::increment_metric(id, by);
    }
    fn record(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
}

/// proxy-wasm shared data: one store per VM id, shared by the worker VMs.
struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, Option<u32>)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(v), cas)) => Some((v, cas)),
            _ => None,
        }
    }
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }
}
