//! `canaryctl`'s command line (clap derive) and what each command does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::http::Http;
use crate::kubeops::{Kind, Kube, DEPLOY_MANAGER, ROLLOUT_MANAGER};
use crate::objects::{FailStrategy, Mode, Phase, PluginSpec, PullPolicy, RouteSpec, TargetRef};
use crate::oci::{Built, ImageRef, Registry};
use crate::rollout::{apply_step, current_step, next_step, StepMode};
use crate::stats;

#[derive(Debug, Parser)]
#[command(
    name = "canaryctl",
    version,
    about = "Ship the canary filter to Istio sidecars and drive the rollout."
)]
pub struct Cli {
    /// Kubeconfig context (default: the current one, or in-cluster config).
    #[arg(long, global = true)]
    pub context: Option<String>,
    #[arg(short = 'n', long, global = true, default_value = "default")]
    pub namespace: String,
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// Validate and show what would change; the API server runs the request with dryRun=All.
    #[arg(long, global = true)]
    pub dry_run: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Yaml,
    Json,
    Table,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the WasmPlugin and VirtualService for GitOps; applies nothing.
    Render(RenderArgs),
    /// Push the module to an OCI registry (Istio's compat format) and print the pinned reference.
    Push(PushArgs),
    /// Validate the pluginConfig, deliver the module, and server-side apply the WasmPlugin.
    Deploy(DeployArgs),
    /// Change the live rollout (percent, cohorts, gates) without rebuilding.
    Set(SetArgs),
    /// Move to the next step (0 -> 10 -> 50 -> 100) if the canary's gate reads pass.
    Promote(PromoteArgs),
    /// Move back to a step (default 0: everyone on stable).
    Rollback(RollbackArgs),
    /// Show the WasmPlugin and the pods its selector matches.
    Status(NameArgs),
    /// Requests, error ratio, P99 and gate state per version x cohort.
    Stats(StatsArgs),
    /// Delete the WasmPlugin deploy created, and nothing else.
    Remove(NameArgs),
    /// Check a pluginConfig file with the filter's own config code.
    ValidateConfig { file: PathBuf },
}

fn parse_kv(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    /// WasmPlugin name.
    #[arg(long, default_value = "canary")]
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct PluginArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// Workload label to select, key=value (repeatable); or use --target-ref.
    #[arg(long = "selector", value_parser = parse_kv)]
    pub selector: Vec<(String, String)>,
    /// Kind/name to attach to, e.g. Service/reviews or Gateway/ingress (repeatable).
    #[arg(long = "target-ref")]
    pub target_refs: Vec<TargetRef>,
    #[arg(long, value_enum, default_value = "client")]
    pub mode: Mode,
    /// Only these listener ports (repeatable).
    #[arg(long = "port")]
    pub ports: Vec<u16>,
    #[arg(long, value_enum, default_value = "AUTHN")]
    pub phase: Phase,
    #[arg(long)]
    pub priority: Option<i32>,
    /// FAIL_RELOAD by default: a crash costs one request and the VM restarts,
    /// while the plugin never silently stops stripping spoofed headers.
    #[arg(long, value_enum, default_value = "FAIL_RELOAD")]
    pub fail_strategy: FailStrategy,
    #[arg(long, value_enum)]
    pub pull_policy: Option<PullPolicy>,
    #[arg(long)]
    pub pull_secret: Option<String>,
    /// vmConfig environment variable, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_kv)]
    pub env: Vec<(String, String)>,
    /// pluginConfig file (JSON or YAML). Deploy keeps the live one when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ModuleArgs {
    /// OCI reference, e.g. oci://localhost:5001/canary/filter:v1 (pushed first when --wasm is given).
    #[arg(long, conflicts_with_all = ["url", "file"])]
    pub image: Option<String>,
    /// http(s):// URL the sidecars download the module from.
    #[arg(long, conflicts_with = "file")]
    pub url: Option<String>,
    /// Path of the module inside the sidecar (file://).
    #[arg(long)]
    pub file: Option<String>,
    /// The local module, to push and/or to compute sha256 from.
    #[arg(long)]
    pub wasm: Option<PathBuf>,
    /// sha256 to pin when no local module is given.
    #[arg(long)]
    pub sha256: Option<String>,
    /// The registry speaks plain HTTP (local clusters).
    #[arg(long)]
    pub plain_http: bool,
    /// The reference the sidecars pull, when it differs from where --image is
    /// pushed (kind: push to localhost:5001, pull from kind-registry:5000).
    #[arg(long, requires = "image")]
    pub pull_image: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RouteArgs {
    /// The VirtualService promote/rollback manage.
    #[arg(long, default_value = "reviews-canary")]
    pub virtual_service: String,
    #[arg(long, default_value = "reviews")]
    pub host: String,
    #[arg(long, default_value = "v1")]
    pub stable: String,
    #[arg(long, default_value = "v2")]
    pub canary: String,
    /// Cohorts routed to the canary subset.
    #[arg(long, value_delimiter = ',', default_value = "internal,beta,canary")]
    pub canary_cohorts: Vec<String>,
    #[arg(long, value_enum, default_value = "sticky")]
    pub step_mode: StepMode,
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub plugin: PluginArgs,
    #[command(flatten)]
    pub module: ModuleArgs,
    #[command(flatten)]
    pub route: RouteArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    #[arg(long)]
    pub wasm: PathBuf,
    #[arg(long)]
    pub image: String,
    #[arg(long)]
    pub plain_http: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub plugin: PluginArgs,
    #[command(flatten)]
    pub module: ModuleArgs,
    /// Take over fields another field manager owns.
    #[arg(long)]
    pub force_conflicts: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// Sticky canary percentage, 0-100.
    #[arg(long)]
    pub percent: Option<f64>,
    /// Sticky salt (change it per release).
    #[arg(long)]
    pub salt: Option<String>,
    /// Cohort rules, a JSON/YAML file holding the `cohorts` array.
    #[arg(long)]
    pub cohorts: Option<PathBuf>,
    /// Gate policy, a JSON/YAML file holding the `gates` object.
    #[arg(long)]
    pub gates: Option<PathBuf>,
    /// A whole pluginConfig file replacing the live one.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct GateSource {
    /// Read metrics from this Prometheus instead of the sidecars.
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Window for Prometheus queries.
    #[arg(long, default_value = "5m")]
    pub window: String,
    /// Pods whose sidecars to read when no Prometheus is given (label selector).
    #[arg(long, default_value = "app=productpage")]
    pub pods: String,
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub name: NameArgs,
    #[command(flatten)]
    pub route: RouteArgs,
    #[command(flatten)]
    pub source: GateSource,
    /// Promote even if the gate does not read pass.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub name: NameArgs,
    #[command(flatten)]
    pub route: RouteArgs,
    #[arg(long, default_value_t = 0)]
    pub to: u32,
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub source: GateSource,
}

/// Reads a JSON or YAML file into a value.
pub fn read_value(path: &std::path::Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let docs = crate::schema::parse_yaml_docs(&text).map_err(|e| Error::File {
        path: path.display().to_string(),
        message: e,
    })?;
    match docs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Ok(json!({})),
        _ => Err(Error::File {
            path: path.display().to_string(),
            message: "more than one document".into(),
        }),
    }
}

/// Validates a pluginConfig with the filter's own code, as Istio will deliver
/// it (JSON text).
pub fn validate_plugin_config(v: &Value) -> Result<canary_core::Config> {
    let text = serde_json::to_vec(v).map_err(|e| Error::Usage(e.to_string()))?;
    Ok(canary_core::Config::from_json(&text)?)
}

fn read_wasm(path: &std::path::Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    if !bytes.starts_with(b"\0asm") {
        return Err(Error::File {
            path: path.display().to_string(),
            message: "not a WebAssembly module".into(),
        });
    }
    Ok(bytes)
}

/// Where the sidecars get the module, and what (if anything) to push first.
struct ModuleRef {
    url: String,
    sha256: Option<String>,
    push: Option<(ImageRef, Vec<u8>)>,
}

/// The WasmPlugin `url` and `sha256` for the chosen delivery, computed offline.
fn module_ref(m: &ModuleArgs) -> Result<ModuleRef> {
    if let Some(s) = &m.sha256 {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::Usage(format!(
                "--sha256 {s:?} must be 64 lowercase hex digits"
            )));
        }
    }
    let wasm = m.wasm.as_deref().map(read_wasm).transpose()?;
    if let Some(image) = &m.image {
        let r: ImageRef = image.parse()?;
        let pull: ImageRef = match &m.pull_image {
            Some(p) => p.parse()?,
            None => r.clone(),
        };
        let url = format!("oci://{pull}");
        return Ok(match wasm {
            Some(w) => {
                let digest = Built::new(&w)?.digest();
                let sha256 = Some(digest.trim_start_matches("sha256:").to_string());
                ModuleRef {
                    url,
                    sha256,
                    push: Some((r, w)),
                }
            }
            None => ModuleRef {
                url,
                sha256: m.sha256.clone(),
                push: None,
            },
        });
    }
    let sha = match (&wasm, &m.sha256) {
        (Some(w), _) => Some(crate::oci::sha256_hex(w)),
        (None, Some(s)) => Some(s.clone()),
        (None, None) => None,
    };
    if let Some(url) = &m.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Usage(format!(
                "--url {url:?} must be http:// or https://"
            )));
        }
        return Ok(ModuleRef {
            url: url.clone(),
            sha256: sha,
            push: None,
        });
    }
    if let Some(file) = &m.file {
        let path = file.strip_prefix("file://").unwrap_or(file);
        return Ok(ModuleRef {
            url: format!("file://{path}"),
            sha256: sha,
            push: None,
        });
    }
    Err(Error::Usage(
        "say where the module comes from: --image, --url or --file".into(),
    ))
}

fn plugin_spec(
    ns: &str,
    p: &PluginArgs,
    url: String,
    sha256: Option<String>,
    config: Value,
) -> Result<PluginSpec> {
    if !p.selector.is_empty() && !p.target_refs.is_empty() {
        return Err(Error::Usage(
            "use --selector or --target-ref, not both".into(),
        ));
    }
    Ok(PluginSpec {
        name: p.name.name.clone(),
        namespace: ns.to_string(),
        url,
        sha256,
        selector: p.selector.clone(),
        target_refs: p.target_refs.clone(),
        mode: p.mode,
        ports: p.ports.clone(),
        phase: p.phase,
        priority: p.priority,
        fail_strategy: p.fail_strategy,
        pull_policy: p.pull_policy,
        pull_secret: p.pull_secret.clone(),
        env: p.env.clone(),
        plugin_config: config,
    })
}

/// The pluginConfig to ship: the file's, with `version.direction` filled in
/// from the match mode when the file does not say.
fn config_for(p: &PluginArgs, base: Option<Value>) -> Result<Value> {
    let mut cfg = match (&p.config, base) {
        (Some(path), _) => read_value(path)?,
        (None, Some(live)) => live,
        (None, None) => json!({}),
    };
    if let Some(obj) = cfg.as_object_mut() {
        let version = obj.entry("version").or_insert_with(|| json!({}));
        if let Some(v) = version.as_object_mut() {
            v.entry("direction")
                .or_insert_with(|| json!(p.mode.direction()));
        }
    }
    validate_plugin_config(&cfg)?;
    Ok(cfg)
}

fn route_spec(ns: &str, r: &RouteArgs, cohort_header: &str, weights: (u32, u32)) -> RouteSpec {
    RouteSpec {
        name: r.virtual_service.clone(),
        namespace: ns.to_string(),
        host: r.host.clone(),
        stable: r.stable.clone(),
        canary: r.canary.clone(),
        cohort_header: cohort_header.to_string(),
        canary_cohorts: r.canary_cohorts.clone(),
        weights,
    }
}

fn print(out: Output, values: &[Value], table: impl FnOnce() -> String) -> Result<String> {
    let ser = |e: String| Error::Usage(e);
    match out {
        Output::Json => {
            let v = if values.len() == 1 {
                values[0].clone()
            } else {
                json!(values)
            };
            serde_json::to_string_pretty(&v)
                .map(|s| s + "\n")
                .map_err(|e| ser(e.to_string()))
        }
        Output::Yaml => {
            let mut s = String::new();
            for v in values {
                s.push_str("---\n");
                s.push_str(&serde_yaml::to_string(v).map_err(|e| ser(e.to_string()))?);
            }
            Ok(s)
        }
        Output::Table => Ok(table()),
    }
}

/// Commands that need no cluster.
pub async fn run_offline(cli: &Cli, http: &Http) -> Option<Result<String>> {
    Some(match &cli.command {
        Command::Render(a) => render(cli, a),
        Command::Push(a) => push(cli, a, http).await,
        Command::ValidateConfig { file } => read_value(file)
            .and_then(|v| validate_plugin_config(&v))
            .map(|c| {
                format!(
                    "{}: valid ({} cohorts, sticky {} %, gates {})\n",
                    file.display(),
                    c.cohorts.len(),
                    f64::from(c.sticky.basis_points) / 100.0,
                    if c.gates.is_some() { "on" } else { "off" }
                )
            }),
        _ => return None,
    })
}

fn render(cli: &Cli, a: &RenderArgs) -> Result<String> {
    let config = config_for(&a.plugin, None)?;
    let cfg = validate_plugin_config(&config)?;
    let ModuleRef {
        url, sha256: sha, ..
    } = module_ref(&a.module)?;
    let step = current_step(&config) as u32;
    let mut probe = config.clone();
    let weights = apply_step(&mut probe, step, a.route.step_mode)?;
    let plugin = plugin_spec(&cli.namespace, &a.plugin, url, sha, config)?.render();
    let route = route_spec(&cli.namespace, &a.route, &cfg.cohort_header, weights).render();
    let out = if cli.output == Output::Table {
        Output::Yaml
    } else {
        cli.output
    };
    print(out, &[plugin, route], String::new)
}

async fn push(cli: &Cli, a: &PushArgs, http: &Http) -> Result<String> {
    let wasm = read_wasm(&a.wasm)?;
    let image: ImageRef = a.image.parse()?;
    let auth = std::env::var("CANARYCTL_REGISTRY_AUTH").ok();
    let pushed = Registry::new(http, &image, a.plain_http, auth.as_deref())
        .push(&image, &wasm)
        .await?;
    let v = json!({"image": image.to_string(), "digest": pushed.manifest_digest, "pinned": image.pinned(&pushed.manifest_digest)});
    print(cli.output, &[v], || {
        format!(
            "pushed {image}\npinned oci://{}\n",
            image.pinned(&pushed.manifest_digest)
        )
    })
}

/// Commands that talk to the cluster.
pub async fn run(cli: &Cli, kube: &Kube, http: &Http) -> Result<String> {
    if let Some(r) = run_offline(cli, http).await {
        return r;
    }
    match &cli.command {
        Command::Deploy(a) => deploy(cli, a, kube, http).await,
        Command::Set(a) => set(cli, a, kube).await,
        Command::Promote(a) => promote(cli, a, kube, http).await,
        Command::Rollback(a) => {
            let live = live_config(kube, &a.name.name).await?;
            let (cfg, vs) = step_to(cli, &a.name.name, &a.route, kube, live, a.to).await?;
            print(cli.output, &[cfg, vs], || {
                format!("rolled back to step {} %\n", a.to)
            })
        }
        Command::Status(a) => status(cli, a, kube).await,
        Command::Stats(a) => {
            let rows = rows(&a.source, kube, http).await?;
            let values: Vec<Value> = rows.iter().map(|r| json!(r)).collect();
            print(cli.output, &values, || stats::table(&rows))
        }
        Command::Remove(a) => {
            let deleted = kube.delete_ours(Kind::WasmPlugin, &a.name).await?;
            let msg = match (deleted, kube.dry_run) {
                (false, _) => format!(
                    "WasmPlugin {}/{} not found: nothing to remove\n",
                    cli.namespace, a.name
                ),
                (true, true) => format!(
                    "WasmPlugin {}/{} would be deleted (dry run)\n",
                    cli.namespace, a.name
                ),
                (true, false) => format!("WasmPlugin {}/{} deleted\n", cli.namespace, a.name),
            };
            Ok(msg)
        }
        Command::Render(_) | Command::Push(_) | Command::ValidateConfig { .. } => {
            Err(Error::Usage("unreachable".into()))
        }
    }
}

fn live_plugin_config(obj: &kube::api::DynamicObject) -> Option<Value> {
    obj.data.pointer("/spec/pluginConfig").cloned()
}

async fn deploy(cli: &Cli, a: &DeployArgs, kube: &Kube, http: &Http) -> Result<String> {
    // Everything that can be checked locally is checked before anything is sent.
    if a.plugin.config.is_some() {
        config_for(&a.plugin, None)?;
    }
    let ModuleRef {
        url,
        sha256: sha,
        push: to_push,
    } = module_ref(&a.module)?;
    let live = kube.get(Kind::WasmPlugin, &a.plugin.name.name).await?;
    let config = config_for(&a.plugin, live.as_ref().and_then(live_plugin_config))?;
    let mut pushed_line = String::new();
    if let Some((image, wasm)) = to_push {
        if !kube.dry_run {
            let auth = std::env::var("CANARYCTL_REGISTRY_AUTH").ok();
            let pushed = Registry::new(http, &image, a.module.plain_http, auth.as_deref())
                .push(&image, &wasm)
                .await?;
            pushed_line = format!("pushed oci://{}\n", image.pinned(&pushed.manifest_digest));
        }
    }
    let obj = plugin_spec(&cli.namespace, &a.plugin, url, sha, config)?.render();
    let applied = kube
        .apply(
            Kind::WasmPlugin,
            &a.plugin.name.name,
            &obj,
            DEPLOY_MANAGER,
            a.force_conflicts,
        )
        .await?;
    let generation = applied.metadata.generation.unwrap_or_default();
    let verb = if kube.dry_run {
        "would be applied (dry run)"
    } else {
        "applied"
    };
    print(cli.output, &[obj], || {
        format!(
            "{pushed_line}WasmPlugin {}/{} {verb}, generation {generation}\n",
            cli.namespace, a.plugin.name.name
        )
    })
}

async fn live_config(kube: &Kube, name: &str) -> Result<Value> {
    let obj = kube
        .get(Kind::WasmPlugin, name)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "WasmPlugin".into(),
            namespace: kube.namespace.clone(),
            name: name.into(),
        })?;
    Ok(live_plugin_config(&obj).unwrap_or_else(|| json!({})))
}

fn plugin_config_patch(ns: &str, name: &str, config: &Value) -> Value {
    json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"pluginConfig": config},
    })
}

async fn set(cli: &Cli, a: &SetArgs, kube: &Kube) -> Result<String> {
    let mut config = match &a.config {
        Some(p) => read_value(p)?,
        None => live_config(kube, &a.name.name).await?,
    };
    let obj = config
        .as_object_mut()
        .ok_or_else(|| Error::Usage("the pluginConfig is not an object".into()))?;
    if a.percent.is_some() || a.salt.is_some() {
        let sticky = obj.entry("sticky").or_insert_with(|| json!({}));
        if let Some(s) = sticky.as_object_mut() {
            if let Some(p) = a.percent {
                s.insert("percent".into(), json!(p));
            }
            if let Some(salt) = &a.salt {
                s.insert("salt".into(), json!(salt));
            }
        }
    }
    if let Some(p) = &a.cohorts {
        obj.insert("cohorts".into(), read_value(p)?);
    }
    if let Some(p) = &a.gates {
        obj.insert("gates".into(), read_value(p)?);
    }
    validate_plugin_config(&config)?;
    let patch = plugin_config_patch(&cli.namespace, &a.name.name, &config);
    kube.apply(
        Kind::WasmPlugin,
        &a.name.name,
        &patch,
        ROLLOUT_MANAGER,
        true,
    )
    .await?;
    print(cli.output, &[config], || {
        format!(
            "pluginConfig of {}/{} updated\n",
            cli.namespace, a.name.name
        )
    })
}

/// Sets the filter's step and the VirtualService weights together.
async fn step_to(
    cli: &Cli,
    name: &str,
    route: &RouteArgs,
    kube: &Kube,
    mut config: Value,
    step: u32,
) -> Result<(Value, Value)> {
    let weights = apply_step(&mut config, step, route.step_mode)?;
    let cfg = validate_plugin_config(&config)?;
    let vs = route_spec(&cli.namespace, route, &cfg.cohort_header, weights).render();
    kube.apply(
        Kind::WasmPlugin,
        name,
        &plugin_config_patch(&cli.namespace, name, &config),
        ROLLOUT_MANAGER,
        true,
    )
    .await?;
    kube.apply(
        Kind::VirtualService,
        &route.virtual_service,
        &vs,
        ROLLOUT_MANAGER,
        true,
    )
    .await?;
    Ok((config, vs))
}

async fn scrapes(kube: &Kube, selector: &str) -> Result<Vec<canary_core::promtext::Stats>> {
    let mut out = vec![];
    for pod in kube.pods(selector).await? {
        let Some(name) = pod.metadata.name else {
            continue;
        };
        let text = kube.sidecar_stats(&name).await?;
        out.push(canary_core::promtext::Stats::parse(&text));
    }
    Ok(out)
}

async fn rows(src: &GateSource, kube: &Kube, http: &Http) -> Result<Vec<stats::Row>> {
    match &src.prometheus {
        Some(url) => stats::rows_from_prometheus(http, url, &src.window).await,
        None => Ok(stats::rows_from_scrapes(&scrapes(kube, &src.pods).await?)),
    }
}

/// The gate check behind `promote`, from Prometheus or the sidecars.
pub async fn gate_of(
    src: &GateSource,
    version: &str,
    kube: &Kube,
    http: &Http,
) -> Result<Option<String>> {
    match &src.prometheus {
        Some(url) => stats::gate_from_prometheus(http, url, version).await,
        None => Ok(stats::gate_from_scrapes(
            &scrapes(kube, &src.pods).await?,
            version,
        )),
    }
}

async fn promote(cli: &Cli, a: &PromoteArgs, kube: &Kube, http: &Http) -> Result<String> {
    let live = live_config(kube, &a.name.name).await?;
    let current = current_step(&live);
    let next = next_step(current)
        .ok_or_else(|| Error::Usage(format!("already at {current} %: nothing to promote")))?;
    let gate = gate_of(&a.source, &a.route.canary, kube, http).await?;
    let mut note = String::new();
    if gate.as_deref() != Some("pass") {
        let why = match &gate {
            None => format!(
                "no gate state for {} (are gates enabled and is traffic flowing?)",
                a.route.canary
            ),
            Some(g) => format!(
                "the gate for {} at step {current} % reads {g}, not pass",
                a.route.canary
            ),
        };
        if !a.force {
            return Err(Error::PromotionRefused(why));
        }
        note = format!("forced past: {why}\n");
    }
    let (cfg, vs) = step_to(cli, &a.name.name, &a.route, kube, live, next).await?;
    print(cli.output, &[cfg, vs], || {
        format!(
            "{note}promoted {} from {current} % to {next} %\n",
            a.route.canary
        )
    })
}

async fn status(cli: &Cli, a: &NameArgs, kube: &Kube) -> Result<String> {
    let obj = kube
        .get(Kind::WasmPlugin, &a.name)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "WasmPlugin".into(),
            namespace: cli.namespace.clone(),
            name: a.name.clone(),
        })?;
    let spec = obj.data.get("spec").cloned().unwrap_or_default();
    let selector: Vec<String> = spec
        .pointer("/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let pods = if selector.is_empty() {
        vec![]
    } else {
        kube.pods(&selector.join(",")).await?
    };
    let pod_rows: Vec<Value> = pods
        .iter()
        .map(|p| {
            let sidecar = p.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| c.name == "istio-proxy")
            });
            json!({
                "name": p.metadata.name,
                "phase": p.status.as_ref().and_then(|s| s.phase.clone()),
                "sidecar": sidecar,
            })
        })
        .collect();
    let v = json!({
        "name": a.name,
        "namespace": cli.namespace,
        "generation": obj.metadata.generation,
        "url": spec["url"],
        "sha256": spec["sha256"],
        "phase": spec["phase"],
        "failStrategy": spec["failStrategy"],
        "match": spec["match"],
        "step": current_step(spec.get("pluginConfig").unwrap_or(&Value::Null)),
        "status": obj.data.get("status").cloned().unwrap_or(Value::Null),
        "selector": selector.join(","),
        "pods": pod_rows,
    });
    print(cli.output, std::slice::from_ref(&v), || {
        let mut s = format!(
            "WasmPlugin {}/{}  generation {}\n  module  {}\n  sha256  {}\n  phase   {}  failStrategy {}  step {} %\n  pods    {} match {}\n",
            cli.namespace,
            a.name,
            v["generation"],
            v["url"].as_str().unwrap_or("-"),
            v["sha256"].as_str().unwrap_or("-"),
            v["phase"].as_str().unwrap_or("-"),
            v["failStrategy"].as_str().unwrap_or("-"),
            v["step"],
            pod_rows.len(),
            if selector.is_empty() { "(targetRefs)".to_string() } else { selector.join(",") },
        );
        if !v["status"].is_null() {
            s.push_str(&format!("  status  {}\n", v["status"]));
        }
        for p in &pod_rows {
            s.push_str(&format!(
                "    {}  {}  sidecar {}\n",
                p["name"].as_str().unwrap_or("?"),
                p["phase"].as_str().unwrap_or("?"),
                if p["sidecar"] == true { "yes" } else { "no" }
            ));
        }
        s
    })
}
