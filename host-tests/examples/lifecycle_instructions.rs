//! The lifecycle bench's requests, counted in instructions rather than timed: on a machine
//! shared with other work, wall-clock medians move by tens of percent between runs, while the
//! instructions a request executes (host and JIT-compiled module together) repeat exactly.
//!
//! ```text
//! cargo xtask wasm && cargo xtask wasm empty-filter
//! cargo build --release -p serin-host-tests --example lifecycle_instructions
//! target/release/examples/lifecycle_instructions [CASE|all] [REQUESTS]
//! ```
//!
//! For each case (`fraud_model`, the default; `fraud_model_no_body`; `split_only`) this runs
//! itself twice under valgrind's callgrind, once with the filter and once with the empty filter
//! (the floor: what the ABI's calls cost through this host when the module does nothing), on
//! the same requests, and prints instructions per request for both and their difference. The
//! difference is the filter's own cost; the filter's figure alone includes the host's.
//!
//! `lifecycle_instructions --run filter|floor CASE REQUESTS` runs one side without counting,
//! to point callgrind at by hand (`--toggle-collect='*measured*'`, then `callgrind_annotate`).

#[path = "../benches/workload/mod.rs"]
mod workload;

use std::process::Command;

use serin_host_tests::Worker;
use workload::{CASES, Case, empty_filter_wasm, filter_worker, floor_worker};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--run") {
        let side = args.get(1).map_or("", String::as_str);
        let case = find(args.get(2).map_or("", String::as_str));
        run(side, case, requests(args.get(3)));
        return;
    }
    let chosen = args.first().map_or("fraud_model", String::as_str);
    let requests = requests(args.get(1));
    let cases: Vec<&Case> = if chosen == "all" {
        CASES.iter().collect()
    } else {
        vec![find(chosen)]
    };
    println!("instructions per request, {requests} requests under callgrind:");
    println!(
        "{:<20} {:>10} {:>10} {:>16}",
        "case", "filter", "floor", "filter - floor"
    );
    for case in cases {
        let filter = count("filter", case, requests);
        let floor = count("floor", case, requests);
        println!(
            "{:<20} {filter:>10.0} {floor:>10.0} {:>16.0}",
            case.name,
            filter - floor
        );
    }
}

fn find(name: &str) -> &'static Case {
    CASES.iter().find(|c| c.name == name).unwrap_or_else(|| {
        let names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        panic!("unknown case `{name}`: {} or all", names.join(", "))
    })
}

fn requests(arg: Option<&String>) -> u64 {
    arg.map_or(1000, |n| n.parse().expect("REQUESTS is a number"))
}

/// Instructions per request of one side of `case`, counted by callgrind in this program run
/// with `--run`.
fn count(side: &str, case: &Case, requests: u64) -> f64 {
    let exe = std::env::current_exe().expect("the example's own path");
    let out = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            // Only the requests count: not compiling the module, not the warm-up.
            "--toggle-collect=*measured*",
            "--callgrind-out-file=/dev/null",
        ])
        .arg(exe)
        .args(["--run", side, case.name, &requests.to_string()])
        .output()
        .expect("valgrind runs (Debian: apt-get install valgrind)");
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!("{side} {}: {}\n{log}", case.name, out.status);
    }
    let collected: u64 = log
        .lines()
        .find_map(|l| l.split("Collected :").nth(1)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no callgrind total in its log:\n{log}"));
    collected as f64 / requests as f64
}

fn run(side: &str, case: &Case, requests: u64) {
    let mut worker = match side {
        "filter" => filter_worker((case.plan)()),
        "floor" => floor_worker(&empty_filter_wasm().unwrap_or_else(|e| panic!("{e}"))),
        other => panic!("unknown side `{other}`: filter or floor"),
    };
    // Warm up: first requests fault in pages and grow the module's heap.
    for user in 0..100 {
        (case.send)(&mut worker, user);
    }
    measured(&mut worker, case.send, requests);
    eprintln!("{side} {}: {requests} requests measured", case.name);
}

#[inline(never)]
fn measured(worker: &mut Worker, send: fn(&mut Worker, u64), requests: u64) {
    for user in 1_000..1_000 + requests {
        send(worker, user);
    }
}
