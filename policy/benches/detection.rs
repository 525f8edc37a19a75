//! Detection quality: the simulator's numbers behind BENCHMARKS.md ("Detection quality").
//! Run with `cargo bench -p serin-policy --bench detection` (optionally `-- RUNS`).

#[path = "../tests/it/fixture.rs"]
mod fixture;

use std::time::Instant;

use serin_policy::guard::Params;
use serin_policy::sim::{self, Scenario};

/// A scenario of `runs` runs from seed `seed`.
type MakeScenario = fn(u32, u64) -> Scenario;

fn main() {
    let runs: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let plan = fixture::plan();
    let params = Params::default();
    let scenarios: [(&str, MakeScenario); 4] = [
        ("A/A (identical arms)", fixture::aa),
        ("errors 1% -> 2%", fixture::errors_doubled),
        ("latency +20% (p99 +20%)", fixture::latency_plus_20),
        (
            "65+ flagged 2x (overall 1.2x)",
            fixture::elderly_flagged_twice,
        ),
    ];
    for (name, scenario) in scenarios {
        let started = Instant::now();
        let report = sim::run(&plan, &params, &scenario(runs, 1));
        println!("== {name} ({:.1} s)", started.elapsed().as_secs_f64());
        print!("{}", report.table());
    }
}
