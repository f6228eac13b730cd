//! `canaryctl`'s command line (clap derive). Flags follow kubectl's habits
//! and appear only on the commands they affect.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cli::output::Output;
use crate::input::Format;
use crate::kubeops::DryRun;
use crate::objects::{FailStrategy, Mode, Phase, PullPolicy, TargetRef};
use crate::rollout::StepMode;

#[derive(Debug, Parser)]
#[command(
    name = "canaryctl",
    version,
    about = "Ship the canary filter to Istio sidecars and drive the rollout."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    /// Move back down to a step (default 0: everyone on stable); never up.
    Rollback(RollbackArgs),
    /// Show the WasmPlugin and the pods its selector matches.
    Status(StatusArgs),
    /// Requests, error ratio, P99 and gate state per version x cohort.
    Stats(StatsArgs),
    /// Delete the WasmPlugin deploy created, and nothing else.
    Remove(RemoveArgs),
    /// Check a pluginConfig file with the filter's own config code.
    ValidateConfig(ValidateArgs),
}

/// `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'));
    let (num, unit) = s.split_at(split.unwrap_or(s.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 30s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("{s:?}: a timeout must be more than zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

/// Which cluster and namespace, as kubectl takes them.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, help_heading = "Cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, help_heading = "Cluster")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace, else "default").
    #[arg(short = 'n', long, help_heading = "Cluster")]
    pub namespace: Option<String>,
}

/// How long any one call to a server (API server, registry, Prometheus) may take.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Give up on a server that has not answered within this time (e.g. 30s, 2m).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Debug, Clone, Args)]
pub struct DryRunArgs {
    /// none: change things; client: send nothing, print what would be sent; server: dryRun=All.
    #[arg(long, value_enum, default_value = "none")]
    pub dry_run: DryRun,
}

/// The flags of a command that changes the cluster.
#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    #[command(flatten)]
    pub output: OutputArgs,
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
    /// Which side of the sidecar runs the filter.
    #[arg(long, value_enum, default_value = "client")]
    pub mode: Mode,
    /// Only these listener ports (repeatable).
    #[arg(long = "port")]
    pub ports: Vec<u16>,
    /// Where in the filter chain Istio inserts the plugin.
    #[arg(long, value_enum, default_value = "AUTHN")]
    pub phase: Phase,
    /// Order among plugins in the same phase (higher runs first).
    #[arg(long)]
    pub priority: Option<i32>,
    /// What a crashed VM does (FAIL_RELOAD: one failed request, then restart).
    // FAIL_RELOAD by default: the plugin never silently stops stripping spoofed headers.
    #[arg(long, value_enum, default_value = "FAIL_RELOAD")]
    pub fail_strategy: FailStrategy,
    /// When the sidecars pull the module again.
    #[arg(long, value_enum)]
    pub pull_policy: Option<PullPolicy>,
    /// Secret holding registry credentials for the sidecars' pull.
    #[arg(long)]
    pub pull_secret: Option<String>,
    /// vmConfig environment variable, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_kv)]
    pub env: Vec<(String, String)>,
    /// pluginConfig file (JSON; YAML if it ends in .yaml/.yml). Deploy keeps the live one when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ModuleArgs {
    /// OCI reference, e.g. oci://localhost:5001/canary/filter:v1 (pushed first when --wasm is given).
    #[arg(long, conflicts_with_all = ["url", "file"], help_heading = "Module")]
    pub image: Option<String>,
    /// http(s):// URL the sidecars download the module from.
    #[arg(long, conflicts_with = "file", help_heading = "Module")]
    pub url: Option<String>,
    /// Path of the module inside the sidecar (file://).
    #[arg(long, help_heading = "Module")]
    pub file: Option<String>,
    /// The local module, to push and/or to compute sha256 from.
    #[arg(long, help_heading = "Module")]
    pub wasm: Option<PathBuf>,
    /// sha256 to pin when no local module is given.
    #[arg(long, help_heading = "Module")]
    pub sha256: Option<String>,
    /// The registry speaks plain HTTP (local clusters).
    #[arg(long, help_heading = "Module")]
    pub plain_http: bool,
    /// The reference the sidecars pull when it differs from --image (kind: kind-registry:5000/...).
    #[arg(long, requires = "image", help_heading = "Module")]
    pub pull_image: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RouteArgs {
    /// The VirtualService promote/rollback manage.
    #[arg(long, default_value = "reviews-canary", help_heading = "Routing")]
    pub virtual_service: String,
    /// The service host the VirtualService routes.
    #[arg(long, default_value = "reviews", help_heading = "Routing")]
    pub host: String,
    /// Subset of the stable version.
    #[arg(long, default_value = "v1", help_heading = "Routing")]
    pub stable: String,
    /// Subset (and version label) of the canary.
    #[arg(long, default_value = "v2", help_heading = "Routing")]
    pub canary: String,
    /// Cohorts routed to the canary subset.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "internal,beta,canary",
        help_heading = "Routing"
    )]
    pub canary_cohorts: Vec<String>,
    /// What a step changes: the filter's sticky percent, or VirtualService weights.
    #[arg(long, value_enum, default_value = "sticky", help_heading = "Routing")]
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
    /// Namespace written into the objects.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The module to push.
    #[arg(long)]
    pub wasm: PathBuf,
    /// Where to push it, registry/repository:tag.
    #[arg(long)]
    pub image: String,
    /// The registry speaks plain HTTP (local clusters).
    #[arg(long)]
    pub plain_http: bool,
    #[command(flatten)]
    pub dry_run: DryRunArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub plugin: PluginArgs,
    /// Take over fields another field manager owns.
    #[arg(long)]
    pub force_conflicts: bool,
    #[command(flatten)]
    pub module: ModuleArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
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
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GateSource {
    /// Read metrics from this Prometheus (http://host:9090) instead of the sidecars.
    #[arg(long, help_heading = "Metrics")]
    pub prometheus: Option<String>,
    /// Window for Prometheus queries.
    #[arg(long, default_value = "5m", help_heading = "Metrics")]
    pub window: String,
    /// Pods whose sidecars to read when no Prometheus is given (label selector).
    #[arg(long, default_value = "app=productpage", help_heading = "Metrics")]
    pub pods: String,
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// Promote even if the gate does not read pass.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub route: RouteArgs,
    #[command(flatten)]
    pub source: GateSource,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub name: NameArgs,
    /// The step to go back to: 0 or a configured step below the current one.
    #[arg(long, default_value_t = 0)]
    pub to: u32,
    #[command(flatten)]
    pub route: RouteArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub name: NameArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub source: GateSource,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub name: NameArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub dry_run: DryRunArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// The pluginConfig file.
    pub file: PathBuf,
    /// Its syntax (default: YAML for .yaml/.yml, JSON otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

impl Command {
    /// Checks what needs no server, so bad flags are refused before connecting.
    pub fn precheck(&self) -> crate::Result<()> {
        match self {
            Command::Rollback(a) => crate::rollout::check_step(a.to).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The cluster flags of a command that talks to the API server.
    pub fn cluster(&self) -> Option<(&KubeArgs, &NetArgs, DryRun)> {
        match self {
            Command::Deploy(DeployArgs { change, .. })
            | Command::Set(SetArgs { change, .. })
            | Command::Promote(PromoteArgs { change, .. })
            | Command::Rollback(RollbackArgs { change, .. }) => {
                Some((&change.kube, &change.net, change.dry_run.dry_run))
            }
            Command::Remove(a) => Some((&a.kube, &a.net, a.dry_run.dry_run)),
            Command::Status(a) => Some((&a.kube, &a.net, DryRun::None)),
            // Stats from Prometheus needs no cluster.
            Command::Stats(a) if a.source.prometheus.is_none() => {
                Some((&a.kube, &a.net, DryRun::None))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubectl_writes_them() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn every_flag_has_a_description() {
        use clap::CommandFactory;
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                if arg.get_id() == "help" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "canaryctl {} --{}: no description",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn cluster_flags_show_only_on_cluster_commands() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let has = |cmd: &str, flag: &str| {
            cli.find_subcommand(cmd)
                .is_some_and(|c| c.get_arguments().any(|a| a.get_id() == flag))
        };
        for offline in ["render", "validate-config", "push"] {
            assert!(!has(offline, "kubeconfig"), "{offline}");
            assert!(!has(offline, "context"), "{offline}");
        }
        assert!(!has("validate-config", "output"));
        assert!(!has("status", "dry_run"));
        for online in [
            "deploy", "set", "promote", "rollback", "status", "stats", "remove",
        ] {
            assert!(
                has(online, "kubeconfig") && has(online, "namespace"),
                "{online}"
            );
        }
    }
}
