//! One module per subcommand. Each returns the process exit code.

pub mod check;
pub mod compile;
pub mod emit;
pub mod explain;
pub mod fmt;
pub mod import;
pub mod package;
pub mod schema;
pub mod simulate;

use std::io::IsTerminal;
use std::path::Path;

use serin_compiler::Diagnostics;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERRORS: u8 = 1;
pub const EXIT_WARNINGS_DENIED: u8 = 2;
pub const EXIT_USAGE: u8 = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// Read a policy file, reporting a failure the way every subcommand does.
pub fn read(path: &Path) -> Result<String, u8> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", path.display());
        EXIT_ERRORS
    })
}

pub fn file_name(path: &Path) -> String {
    path.display().to_string()
}

/// Print findings to stderr, in colour when it is a terminal.
pub fn report(diags: &Diagnostics) {
    if diags.items.is_empty() {
        return;
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", diags.render(color));
}

/// `--expect-rps`: a rate of requests per second above zero.
pub fn expect_rps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("`{s}` is not a rate above 0")),
    }
}
