//! The decide bench's decisions, counted in instructions rather than timed: on a machine shared
//! with other work, wall-clock medians move by tens of percent between runs, while the
//! instructions a decision executes repeat exactly.
//!
//! ```text
//! cargo build --release -p serin-policy --example decide_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.decide --toggle-collect='*measured*' \
//!     target/release/examples/decide_instructions whole 100000
//! ```
//!
//! Cases: `whole` (the bench's whole request, 10-rule plan), `fetched` (only the headers the
//! filter fetches for that plan), `split_only` (the plan without its rules, whole request).
//! Callgrind counts only inside `measured`: divide its total by the decision count.
//! `callgrind_annotate --inclusive=yes /tmp/cg.decide` shows where they go.
//!
//! `cargo xtask budget` (a step of `cargo xtask test`, so of CI) runs the three cases this way
//! and fails when one executes more than its budget in `xtask/src/budget.rs`.

#[path = "../benches/workload/mod.rs"]
mod workload;

use std::hint::black_box;

use serin_policy::{HeaderList, Router};
use workload::{HEADERS, fetched_headers, split_only_plan, ten_rule_plan};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = args.first().map_or("whole", String::as_str);
    let decisions: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let plan = ten_rule_plan();
    let fetched = fetched_headers(&plan);
    let (router, headers): (Router, &[(&str, &str)]) = match case {
        "whole" => (Router::new(plan), &HEADERS),
        "fetched" => (Router::new(plan), &fetched),
        "split_only" => (Router::new(split_only_plan()), &HEADERS),
        other => panic!("unknown case `{other}`: whole, fetched or split_only"),
    };
    // Warm up outside `measured`: the first decisions fault in pages and fill caches.
    for _ in 0..100 {
        black_box(router.decide(black_box(&HeaderList::new(headers))));
    }
    let canary = measured(&router, headers, decisions);
    eprintln!("{case}: {decisions} decisions measured ({canary} canary)");
}

/// Decide `decisions` times; the count of canary decisions keeps them from being optimised away.
#[inline(never)]
fn measured(router: &Router, headers: &[(&str, &str)], decisions: u64) -> u64 {
    let mut canary = 0;
    for _ in 0..decisions {
        let decision = router.decide(black_box(&HeaderList::new(headers)));
        canary += u64::from(black_box(decision).arm == 1);
    }
    canary
}
