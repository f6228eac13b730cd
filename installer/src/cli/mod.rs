//! `canaryctl`'s commands: [`args`] defines the command line, [`output`]
//! prints, and one file per command group does the work ([`module`]:
//! render, push, deploy, remove, validate-config; [`rollout`]: set, promote,
//! rollback; [`inspect`]: status, stats).

pub mod args;
mod inspect;
mod module;
pub mod output;
mod rollout;

pub use args::{Cli, Command};

use crate::cli::args::RouteArgs;
use crate::connect::connect;
use crate::error::Result;
use crate::kubeops::Kube;
use crate::objects::RouteSpec;

/// The VirtualService promote/rollback manage, at the given weights.
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

/// The HTTP client for Prometheus with the command's timeout.
fn http_for(cmd: &Command) -> Result<crate::http::Http> {
    let timeout = match cmd {
        Command::Promote(a) => a.change.net.request_timeout,
        Command::Stats(a) => a.net.request_timeout,
        _ => std::time::Duration::from_secs(30),
    };
    crate::http::Http::new(timeout)
}

/// Runs a command, connecting to the cluster only when it needs one.
pub async fn run(cli: &Cli) -> Result<String> {
    cli.command.precheck()?;
    match cli.command.cluster() {
        Some((k, net, dry_run)) => {
            let kube = connect(
                k.kubeconfig.as_deref(),
                k.context.as_deref(),
                k.namespace.as_deref(),
                net.request_timeout,
                dry_run,
            )
            .await?;
            run_on(cli, Some(&kube)).await
        }
        None => run_on(cli, None).await,
    }
}

/// Runs a command against a given cluster client (`None`: the command needs
/// none). Tests pass a client on a mock API server here.
pub async fn run_on(cli: &Cli, kube: Option<&Kube>) -> Result<String> {
    let need = || kube.ok_or_else(|| crate::Error::Usage("this command needs a cluster".into()));
    match &cli.command {
        Command::Render(a) => module::render(a),
        Command::Push(a) => module::push(a).await,
        Command::ValidateConfig(a) => module::validate_config(a),
        Command::Deploy(a) => module::deploy(a, need()?).await,
        Command::Remove(a) => module::remove(a, need()?).await,
        Command::Set(a) => rollout::set(a, need()?).await,
        Command::Promote(a) => rollout::promote(a, need()?, &http_for(&cli.command)?).await,
        Command::Rollback(a) => rollout::rollback(a, need()?).await,
        Command::Status(a) => inspect::status(a, need()?).await,
        Command::Stats(a) => inspect::stats(a, kube, &http_for(&cli.command)?).await,
    }
}
