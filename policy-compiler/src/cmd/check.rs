//! `serin check POLICY`: every stage but writing the plan.

use std::path::PathBuf;

use serin_compiler::{Diagnostics, Options, compile_with};

use super::{
    EXIT_ERRORS, EXIT_OK, EXIT_WARNINGS_DENIED, Format, expect_rps, file_name, read, report,
};

#[derive(clap::Args)]
pub struct Args {
    /// The policy file (TOML).
    pub policy: PathBuf,
    /// Fail (exit 2) when there are warnings.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Requests per second one proxy expects: checks that each guard can decide within its
    /// window and each step can reach its samples (overrides the ramp's `expected_rps`).
    #[arg(long, value_name = "RPS", value_parser = expect_rps)]
    pub expect_rps: Option<f64>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn run(args: Args) -> u8 {
    let source = match read(&args.policy) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let name = file_name(&args.policy);
    let options = Options {
        expect_rps: args.expect_rps,
    };
    let (diags, code) = match compile_with(&source, &name, &options) {
        Ok(c) => {
            let code = if args.deny_warnings && !c.warnings.is_empty() {
                EXIT_WARNINGS_DENIED
            } else {
                EXIT_OK
            };
            (Diagnostics::new(&name, &source, c.warnings), code)
        }
        Err(d) => (d, EXIT_ERRORS),
    };
    match args.format {
        Format::Human => {
            report(&diags);
            let errors = diags.errors().count();
            let warnings = diags.warnings().count();
            if code == EXIT_OK {
                eprintln!(
                    "{name}: ok ({warnings} warning{})",
                    if warnings == 1 { "" } else { "s" }
                );
            } else {
                eprintln!(
                    "{name}: {errors} error{}, {warnings} warning{}",
                    plural(errors),
                    plural(warnings)
                );
            }
        }
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&diags.to_json()).unwrap_or_default()
        ),
    }
    code
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
