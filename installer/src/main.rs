//! The `canaryctl` binary: parse, run, print the result or one error line.

use std::io::IsTerminal as _;

use canary_installer::cli::{self, Cli};
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CANARYCTL_LOG")
                // Quiet by default: failures are reported as one line below, and
                // libraries (kube, hyper) would otherwise log the same failure again.
                .unwrap_or_else(|_| "off".into()),
        )
        // Colour only for a person at a terminal, never into a pipe or a log.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match cli::run(&Cli::parse()).await {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", canary_installer::report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
