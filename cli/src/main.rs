//! `emberctl`: the operator CLI of ember. It talks only to the control plane's Admin gRPC
//! API; the control plane is the single source of truth for topology.
//!
//! Layout: [`args`] (clap definition and local validation), [`client`] (connection,
//! timeouts, error mapping and exit codes), [`model`] (replies as domain types),
//! [`output`] (tables and the JSON schema), [`progress`] (migration progress and its
//! formatting), `commands/` (one module per command family).

use std::process::ExitCode;

use clap::Parser;

mod args;
mod client;
mod commands;
mod model;
mod output;
mod progress;

fn main() -> ExitCode {
    // Usage errors and --help/--version exit here (code 2 / 0), before any I/O.
    let cli = args::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the control plane put in its message.
            let msg = e.to_string().replace(['\n', '\r'], " ");
            eprintln!("error: {msg}");
            ExitCode::from(e.exit_code())
        }
    }
}
