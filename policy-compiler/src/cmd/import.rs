//! `serin import nginx-ingress FILE`: another system's canary configuration as a Serin policy.
//! The policy goes to standard output (or `-o`); what could not be carried over exactly goes to
//! standard error. The policy is compiled before it is written.

use std::path::PathBuf;

use serin_compiler::compile_str;
use serin_compiler::import::nginx;

use super::emit::write;
use super::{EXIT_ERRORS, read, report};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub from: From,
}

#[derive(clap::Subcommand)]
pub enum From {
    /// ingress-nginx canary annotations (canary-weight, -by-header, -by-cookie, ...) on an Ingress.
    NginxIngress(NginxArgs),
}

#[derive(clap::Args)]
pub struct NginxArgs {
    /// The Ingress manifests (YAML): the canary Ingress, and the main one for its host.
    pub file: PathBuf,
    /// Which canary Ingress, when the file has several (its `metadata.name`).
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the policy; standard output when absent or `-`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let From::NginxIngress(a) = args.from;
    let text = match read(&a.file) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let imported = match nginx::import(&text, a.name.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {}: {e}", a.file.display());
            return EXIT_ERRORS;
        }
    };
    for n in &imported.notes {
        eprintln!("note: {n}");
    }
    if let Err(d) = compile_str(&imported.toml, "imported.toml") {
        report(&d);
        eprintln!("error: the imported policy does not compile (a bug in `serin import`)");
        return EXIT_ERRORS;
    }
    write(a.output.as_deref(), &imported.toml)
}
