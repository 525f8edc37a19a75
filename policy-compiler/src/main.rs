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
    };
    ExitCode::from(code)
}
