//! The `canaryctl` binary: parse, connect if needed, run, print one line on error.

use anyhow::Context as _;
use canary_installer::cli::{self, Cli};
use canary_installer::http::Http;
use canary_installer::kubeops::Kube;
use clap::Parser;

async fn client(cli: &Cli) -> anyhow::Result<kube::Client> {
    let config = match &cli.context {
        Some(ctx) => {
            let opts = kube::config::KubeConfigOptions {
                context: Some(ctx.clone()),
                ..Default::default()
            };
            kube::Config::from_kubeconfig(&opts)
                .await
                .with_context(|| format!("kubeconfig context {ctx:?}"))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not in a cluster")?,
    };
    Ok(kube::Client::try_from(config)?)
}

async fn run(cli: Cli) -> anyhow::Result<String> {
    let http = Http::new()?;
    if let Some(out) = cli::run_offline(&cli, &http).await {
        return Ok(out?);
    }
    let kube = Kube {
        client: client(&cli).await?,
        namespace: cli.namespace.clone(),
        dry_run: cli.dry_run,
    };
    Ok(cli::run(&cli, &kube, &http).await?)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CANARYCTL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
