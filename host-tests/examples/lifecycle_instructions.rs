//! The lifecycle bench's requests, counted in instructions rather than timed: on a machine
//! shared with other work, wall-clock medians move by tens of percent between runs, while the
//! instructions a request executes (host and JIT-compiled module together) repeat exactly.
//!
//! ```text
//! cargo build --release -p serin-host-tests --example lifecycle_instructions
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/release/examples/lifecycle_instructions fraud_model 1000
//! ```
//!
//! Callgrind counts only inside `measured`: divide its total by the request count.

#[path = "../benches/workload/mod.rs"]
mod workload;

use serin_host_tests::{Host, Worker};
use workload::{
    empty_filter_wasm, filter_worker, fraud_plan, get, predict, predict_no_body, split_plan,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = args.first().map_or("fraud_model", String::as_str);
    let requests: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let (mut worker, send): (Worker, fn(&mut Worker, u64)) = match case {
        "fraud_model" => (filter_worker(fraud_plan()), predict),
        "fraud_model_no_body" => (filter_worker(fraud_plan()), predict_no_body),
        "split_only" => (filter_worker(split_plan()), get),
        "empty_filter" => {
            let wasm = empty_filter_wasm().expect("build bench/empty-filter first");
            let host = Host::new(&wasm).expect("the empty filter compiles");
            (
                host.configured_worker("").expect("it takes any config"),
                predict,
            )
        }
        other => panic!(
            "unknown case `{other}`: fraud_model, fraud_model_no_body, split_only or empty_filter"
        ),
    };
    // Warm up: first requests fault in pages and grow the module's heap.
    for user in 0..100 {
        send(&mut worker, user);
    }
    measured(&mut worker, send, requests);
    eprintln!("{case}: {requests} requests measured");
}

#[inline(never)]
fn measured(worker: &mut Worker, send: fn(&mut Worker, u64), requests: u64) {
    for user in 1_000..1_000 + requests {
        send(worker, user);
    }
}
