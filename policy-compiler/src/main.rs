//! `serin`: lint, compile and explain Serin policies. Exit codes are documented in
//! `docs/policy.md`: 0 ok, 1 errors, 2 warnings denied, 64 usage.
#![forbid(unsafe_code)]

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "serin",
    version,
    about = "Lint, compile and explain Serin canary policies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a policy: errors and lint warnings, nothing written.
    Check(cmd::check::Args),
    /// Compile a policy to its plan (JSON).
    Compile(cmd::compile::Args),
    /// Show how one request would be routed, step by step.
    Explain(cmd::explain::Args),
    /// Rewrite policies in canonical layout, keeping comments.
    Fmt(cmd::fmt::Args),
    /// Print the policy's JSON Schema, for editors.
    Schema(cmd::schema::Args),
    /// Write a policy's artefacts for Envoy, Istio, Prometheus, Grafana, Argo or Flagger.
    Emit(cmd::emit::Args),
    /// Package filter.wasm as a wasm OCI image (Istio's compat variant), without Docker.
    Package(cmd::package::Args),
    /// Turn another system's canary configuration into a Serin policy.
    Import(cmd::import::Args),
    /// Run the rollout engine on a synthetic scenario in virtual time, over many seeds.
    Simulate(cmd::simulate::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                cmd::EXIT_USAGE
            } else {
                cmd::EXIT_OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Compile(args) => cmd::compile::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Fmt(args) => cmd::fmt::run(args),
        Command::Schema(args) => cmd::schema::run(args),
        Command::Emit(args) => cmd::emit::run(args),
        Command::Package(args) => cmd::package::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
    };
    ExitCode::from(code)
}
