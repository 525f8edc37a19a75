//! `serin simulate POLICY --scenario FILE`: drive the rollout engine that the filter runs through
//! a synthetic scenario in virtual time, over many seeds: split accuracy, time and canary
//! requests to rollback or promotion, and the false-rollback rate of an A/A scenario.

use std::path::PathBuf;

use serin_compiler::{Diagnostics, compile_str};
use serin_policy::fleet::Fleet;
use serin_policy::guard::Params;
use serin_policy::guard::power::{self, CheckPower};
use serin_policy::sim::fleet::{FleetReport, FleetScenario};
use serin_policy::sim::{self, Report, Scenario, Summary};

use super::{EXIT_ERRORS, EXIT_OK, Format, file_name, read, report};

#[derive(clap::Args)]
pub struct Args {
    /// The policy file (TOML).
    pub policy: PathBuf,
    /// The scenario (TOML): arrival rate, per-arm error rates, latency and outcome rates,
    /// segment mix; see examples/scenarios/.
    #[arg(long)]
    pub scenario: PathBuf,
    /// Override the scenario's number of runs (one seed each).
    #[arg(long)]
    pub runs: Option<u32>,
    /// Override the scenario's first seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Play N proxies sharing the traffic, each judging alone and then in fleet mode through a
    /// simulated Prometheus, beside one proxy with all the traffic (the scenario's `[fleet]`
    /// adds restarts and outages).
    #[arg(long, value_name = "N")]
    pub proxies: Option<u32>,
    /// With `--proxies`: Prometheus's scrape interval and the proxies' query interval, in
    /// seconds (default 5; the plan's own `[fleet] interval` wins for the query).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub interval: u32,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn run(args: Args) -> u8 {
    let (Ok(policy), Ok(scenario)) = (read(&args.policy), read(&args.scenario)) else {
        return EXIT_ERRORS;
    };
    let mut scenario: Scenario = match toml::from_str(&scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: scenario `{}`: {e}", args.scenario.display());
            return EXIT_ERRORS;
        }
    };
    scenario.runs = args.runs.unwrap_or(scenario.runs);
    scenario.seed = args.seed.unwrap_or(scenario.seed);
    let name = file_name(&args.policy);
    if let Some(n) = args.proxies {
        let fleet = scenario.fleet.clone().unwrap_or_default();
        let fleet = FleetScenario {
            proxies: n.max(1),
            scrape_ms: args.interval.max(1) * 1000,
            ..fleet
        };
        return match simulate_fleet(&policy, &name, &scenario, &fleet, args.interval) {
            Ok(rows) => {
                match args.format {
                    Format::Human => print!("{}", fleet_table(&rows)),
                    Format::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&rows).unwrap_or_default()
                    ),
                }
                EXIT_OK
            }
            Err(d) => {
                report(&d);
                EXIT_ERRORS
            }
        };
    }
    let report_ = match simulate(&policy, &name, &scenario) {
        Ok(r) => r,
        Err(d) => {
            report(&d);
            return EXIT_ERRORS;
        }
    };
    match args.format {
        Format::Human => {
            print!("{}", report_.runs.table());
            println!(
                "\nWhat each guard catches at this traffic, with the canary at its first share (200 runs of its test each):"
            );
            print!("{}", power::render(&report_.power, &Params::default()));
        }
        Format::Json => {
            let mut summary = serde_json::to_value(&report_.runs).unwrap_or_default();
            // Per-run rows are for --format json consumers that want them; keep them.
            if let Some(obj) = summary.as_object_mut() {
                obj.insert(
                    "scenario".into(),
                    serde_json::to_value(&scenario).unwrap_or_default(),
                );
                obj.insert(
                    "power".into(),
                    serde_json::to_value(&report_.power).unwrap_or_default(),
                );
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
        }
    }
    EXIT_OK
}

/// A simulation's runs and its guards' power table.
pub struct Simulated {
    pub runs: Report,
    pub power: Vec<CheckPower>,
}

/// Compile the policy and run the scenario with the engine's default tuning (the filter's),
/// and play each guard's test at the scenario's traffic.
pub fn simulate(policy: &str, name: &str, scenario: &Scenario) -> Result<Simulated, Diagnostics> {
    let compiled = compile_str(policy, name)?;
    let params = Params::default();
    Ok(Simulated {
        runs: sim::run(&compiled.plan, &params, scenario),
        power: sim::power_table(&compiled.plan, &params, scenario, 200),
    })
}

/// One proxy with all the traffic, N proxies each alone, and N proxies in fleet mode.
pub fn simulate_fleet(
    policy: &str,
    name: &str,
    scenario: &Scenario,
    fleet: &FleetScenario,
    interval_s: u32,
) -> Result<Vec<FleetReport>, Diagnostics> {
    let compiled = compile_str(policy, name)?;
    let params = Params::default();
    let mut alone = compiled.plan.clone();
    alone.fleet = None;
    let mut together = compiled.plan.clone();
    together.fleet = Some(together.fleet.clone().unwrap_or(Fleet {
        interval_ms: interval_s.max(1) * 1000,
        timeout_ms: 1000,
        ..Fleet::new("prometheus", "prometheus:9090")
    }));
    let one = FleetScenario {
        proxies: 1,
        restarts: Vec::new(),
        ..fleet.clone()
    };
    Ok(vec![
        sim::fleet::run(&alone, &params, scenario, &one),
        sim::fleet::run(&alone, &params, scenario, fleet),
        sim::fleet::run(&together, &params, scenario, fleet),
    ])
}

/// The fleet comparison for people.
pub fn fleet_table(rows: &[FleetReport]) -> String {
    let median = |s: &Option<Summary>| s.map_or("-".to_owned(), |s| format!("{:.0}", s.median));
    let mut out = format!(
        "{:>8} {:>11} {:>10} {:>24} {:>23} {:>14} {:>30}\n",
        "proxies",
        "fleet mode",
        "runs",
        "first rollback (median s)",
        "last rollback (median s)",
        "spread (median s)",
        "canary requests after the first"
    );
    for r in rows {
        out.push_str(&format!(
            "{:>8} {:>11} {:>10} {:>24} {:>23} {:>14} {:>30}\n",
            r.proxies,
            if r.fleet_mode { "on" } else { "off" },
            format!("{}/{}", r.all_rolled_back, r.runs),
            median(&r.seconds_to_first_rollback),
            median(&r.seconds_to_last_rollback),
            median(&r.spread_seconds),
            median(&r.canary_after_first_rollback),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(file: &str) -> Scenario {
        let path = format!(
            "{}/../examples/scenarios/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn fraud_policy() -> String {
        std::fs::read_to_string(format!(
            "{}/../examples/fraud-model.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_drifted_score_is_rolled_back_by_the_distribution_guard() {
        let mut s = scenario("score-drift.toml");
        s.runs = 10;
        let r = simulate(&fraud_policy(), "fraud-model.toml", &s)
            .unwrap()
            .runs;
        assert_eq!(
            r.rollbacks_by_guard.get("score drift"),
            Some(&10),
            "{}",
            r.table()
        );
    }

    #[test]
    fn a_failing_canary_is_rolled_back_in_every_run() {
        let mut s = scenario("errors-up.toml");
        s.runs = 20;
        let r = simulate(&fraud_policy(), "fraud-model.toml", &s)
            .unwrap()
            .runs;
        assert_eq!(r.rolled_back, 20, "{}", r.table());
        assert!(r.canary_requests_to_rollback.is_some());
        assert!(r.split_relative_error.abs() < 0.05, "{}", r.table());
    }

    #[test]
    fn a_fleet_rolls_back_together_and_sooner_than_its_proxies_alone() {
        let mut s = scenario("errors-up.toml");
        s.runs = 3;
        s.max_seconds = 300;
        let fleet = FleetScenario {
            proxies: 5,
            ..FleetScenario::default()
        };
        let rows = simulate_fleet(&fraud_policy(), "fraud-model.toml", &s, &fleet, 5).unwrap();
        let [one, apart, together] = &rows[..] else {
            panic!("three rows: {}", fleet_table(&rows))
        };
        assert_eq!((one.proxies, apart.proxies, together.proxies), (1, 5, 5));
        assert!(!apart.fleet_mode && together.fleet_mode);
        assert_eq!(together.all_rolled_back, 3, "{}", fleet_table(&rows));
        let median = |r: &FleetReport| {
            r.seconds_to_last_rollback
                .map_or(f64::INFINITY, |s| s.median)
        };
        eprintln!("{}", fleet_table(&rows));
        assert!(median(together) < median(apart), "{}", fleet_table(&rows));
    }

    #[test]
    fn identical_arms_are_not_rolled_back() {
        let mut s = scenario("a-a.toml");
        s.runs = 20;
        let r = simulate(&fraud_policy(), "fraud-model.toml", &s)
            .unwrap()
            .runs;
        assert_eq!(r.rolled_back, 0, "{}", r.table());
        assert!(r.false_rollback_rate == Some(0.0));
    }
}
