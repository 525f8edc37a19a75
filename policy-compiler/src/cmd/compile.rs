//! `serin compile POLICY -o plan.json`: write the plan, or dump a stage with `--emit`.

use std::path::PathBuf;

use serin_compiler::{Diagnostics, compile_str, parse_str};

use super::{EXIT_ERRORS, EXIT_OK, file_name, read, report};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// The typed policy model after `lower`.
    Ast,
    /// The plan (the default).
    #[default]
    Plan,
}

#[derive(clap::Args)]
pub struct Args {
    /// The policy file (TOML).
    pub policy: PathBuf,
    /// Where to write the output; standard output when absent or `-`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Which stage's output to write.
    #[arg(long, value_enum, default_value_t)]
    pub emit: Emit,
}

pub fn run(args: Args) -> u8 {
    let source = match read(&args.policy) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let name = file_name(&args.policy);
    let text = match args.emit {
        Emit::Ast => match parse_str(&source, &name) {
            Ok(ast) => serde_json::to_string_pretty(&ast).unwrap_or_default(),
            Err(d) => {
                report(&d);
                return EXIT_ERRORS;
            }
        },
        Emit::Plan => match compile_str(&source, &name) {
            Ok(c) => {
                report(&Diagnostics::new(&name, &source, c.warnings));
                c.plan.to_json()
            }
            Err(d) => {
                report(&d);
                return EXIT_ERRORS;
            }
        },
    };
    match args.output.as_deref() {
        None => println!("{text}"),
        Some(p) if p.as_os_str() == "-" => println!("{text}"),
        Some(p) => {
            if let Err(e) = std::fs::write(p, format!("{text}\n")) {
                eprintln!("error: cannot write `{}`: {e}", p.display());
                return EXIT_ERRORS;
            }
        }
    }
    EXIT_OK
}
