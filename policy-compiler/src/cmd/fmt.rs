//! `serin fmt POLICY...`: rewrite policies in canonical layout, keeping comments.

use std::path::PathBuf;

use serin_compiler::Diagnostics;
use serin_compiler::format::format;

use super::{EXIT_ERRORS, EXIT_OK, file_name, read, report};

#[derive(clap::Args)]
pub struct Args {
    /// Policy files (TOML).
    #[arg(required = true)]
    pub policies: Vec<PathBuf>,
    /// Write nothing; exit 1 when a file is not formatted.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: Args) -> u8 {
    let mut code = EXIT_OK;
    for path in &args.policies {
        let source = match read(path) {
            Ok(s) => s,
            Err(c) => return c,
        };
        let formatted = match format(&source) {
            Ok(f) => f,
            Err(d) => {
                report(&Diagnostics::new(&file_name(path), &source, vec![d]));
                code = EXIT_ERRORS;
                continue;
            }
        };
        if formatted == source {
            continue;
        }
        if args.check {
            eprintln!(
                "{}: not formatted (run `serin fmt {}`)",
                path.display(),
                path.display()
            );
            code = EXIT_ERRORS;
        } else if let Err(e) = std::fs::write(path, formatted) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            code = EXIT_ERRORS;
        }
    }
    code
}
