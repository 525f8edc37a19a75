//! `serin explain POLICY --header NAME=VALUE ...`: the decision for one request, step by step.

use std::net::IpAddr;
use std::path::PathBuf;

use serin_compiler::compile_str;
use serin_compiler::explain::{RequestSpec, explain, render};

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, Format, file_name, read, report};

#[derive(clap::Args)]
pub struct Args {
    /// The policy file (TOML).
    pub policy: PathBuf,
    /// A request header, `NAME=VALUE` (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// A cookie, `NAME=VALUE` (repeatable).
    #[arg(long = "cookie", value_name = "NAME=VALUE")]
    pub cookies: Vec<String>,
    /// A query parameter, `NAME=VALUE` (repeatable).
    #[arg(long = "query", value_name = "NAME=VALUE")]
    pub query: Vec<String>,
    /// The request path. Default `/`.
    #[arg(long)]
    pub path: Option<String>,
    /// The method. Default `GET`.
    #[arg(long)]
    pub method: Option<String>,
    /// The client's address.
    #[arg(long)]
    pub source_ip: Option<IpAddr>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

fn pairs(items: &[String], flag: &str) -> Result<Vec<(String, String)>, u8> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => {
                eprintln!("error: `--{flag} {s}` must be `NAME=VALUE`");
                Err(EXIT_USAGE)
            }
        })
        .collect()
}

pub fn run(args: Args) -> u8 {
    let req = match (|| {
        Ok::<_, u8>(RequestSpec {
            headers: pairs(&args.headers, "header")?,
            cookies: pairs(&args.cookies, "cookie")?,
            query: pairs(&args.query, "query")?,
            path: args.path.clone(),
            method: args.method.clone(),
            source_ip: args.source_ip,
        })
    })() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let source = match read(&args.policy) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let compiled = match compile_str(&source, &file_name(&args.policy)) {
        Ok(c) => c,
        Err(d) => {
            report(&d);
            return EXIT_ERRORS;
        }
    };
    let trace = explain(&compiled.plan, &req);
    match args.format {
        Format::Human => print!("{}", render(&compiled.plan, &trace)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&trace).unwrap_or_default()
        ),
    }
    EXIT_OK
}
