//! `serin explain POLICY --header NAME=VALUE ...`: the decision for one request, step by step.
//! `serin explain POLICY --guards`: what each guard can catch, and how soon, before the rollout
//! starts.

use std::net::IpAddr;
use std::path::PathBuf;

use serin_compiler::explain::{RequestSpec, explain, render};
use serin_compiler::{Compiled, compile_str};
use serin_policy::guard::power::{
    self, ASSUMED_ERROR_RATE, ASSUMED_POSITIVE_RATE, TABLE_MULTIPLES,
};
use serin_policy::guard::{Params, Rollout};
use serin_policy::sim;

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, Format, expect_rps, file_name, read, report};

/// The rate `--guards` assumes when neither the flag nor the ramp states one.
const DEFAULT_RPS: f64 = 100.0;

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
    /// Instead of a request: each guard's median canary requests and time to catch a breach
    /// of 1.25x, 1.5x and 2x its limit, and its false-rollback rate at the limit.
    #[arg(long)]
    pub guards: bool,
    /// With `--guards`: requests per second at one proxy (default: the ramp's
    /// `expected_rps`, else 100).
    #[arg(long, value_name = "RPS", value_parser = expect_rps)]
    pub expect_rps: Option<f64>,
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
    if args.guards {
        return guards(&compiled, args.expect_rps, args.format);
    }
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

/// The power table under the assumed baseline (see [`power::assumed_baseline`]).
fn guards(compiled: &Compiled, flag: Option<f64>, format: Format) -> u8 {
    let plan = &compiled.plan;
    let rps = flag.or(compiled.expected_rps).unwrap_or(DEFAULT_RPS);
    let rollout = Rollout::from_plan(plan, Params::default());
    let share = sim::starting_share(plan, &rollout);
    let slots_per_day = rollout.slots_per_day();
    let baseline = power::assumed_baseline(plan, rps, share);
    let table = rollout.power_table(&baseline, &TABLE_MULTIPLES, 200, slots_per_day);
    match format {
        Format::Human => {
            println!(
                "{rps} requests per second at one proxy, {:.1}% on the canary; stable fails {}% and each outcome is positive for {}% (200 simulated runs each; `serin simulate` takes your own rates)\n",
                100.0 * share,
                100.0 * ASSUMED_ERROR_RATE,
                100.0 * ASSUMED_POSITIVE_RATE
            );
            print!("{}", power::render(&table, &Params::default()));
        }
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "rps": rps,
                "canary_share": share,
                "guards": table,
            }))
            .unwrap_or_default()
        ),
    }
    EXIT_OK
}
