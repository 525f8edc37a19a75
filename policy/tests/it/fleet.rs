//! Fleet mode in virtual time: N proxies sharing the traffic, a Prometheus scraping them, and the
//! engine's fleet query and answer (`serin_policy::sim::fleet`).

use serde_json::json;
use serin_policy::Plan;
use serin_policy::fleet::Fleet;
use serin_policy::guard::Params;
use serin_policy::sim::Scenario;
use serin_policy::sim::fleet::{self, FleetReport, FleetScenario, Restart};

use crate::fixture;

/// The fraud example's error guard on a 5% canary that stays at its first step.
fn plan(fleet_mode: bool, interval_ms: u32) -> Plan {
    let mut plan = fixture::plan_with(
        json!([{ "name": "error rate", "arms": [1],
                 "metric": { "kind": "error_rate", "max_ratio_ppm": 1_500_000 },
                 "window_seconds": 600, "min_samples": 500, "on_breach": "rollback" }]),
        json!([{ "weight": 500, "min_duration_seconds": 86_400, "gates": ["healthy"],
                 "lanes": fixture::lanes(500) }]),
    );
    plan.fleet = fleet_mode.then(|| Fleet {
        interval_ms,
        ..Fleet::new("prometheus", "prometheus:9090")
    });
    plan
}

/// Errors 1% -> 4% on the canary, `rps` requests per second over the whole fleet.
fn errors_quadrupled(runs: u32, rps: f64) -> Scenario {
    let mut s = fixture::errors_doubled(runs, 1);
    s.canary.error_rate = 0.04;
    s.requests_per_second = rps;
    s.max_seconds = 7_200;
    s
}

fn run(proxies: u32, fleet_mode: bool, interval_ms: u32, scenario: &Scenario) -> FleetReport {
    let fleet = FleetScenario {
        proxies,
        scrape_ms: interval_ms,
        ..FleetScenario::default()
    };
    let r = fleet::run(
        &plan(fleet_mode, interval_ms),
        &Params::default(),
        scenario,
        &fleet,
    );
    eprintln!(
        "{proxies} proxies, fleet mode {fleet_mode}, {interval_ms} ms: first {:?} last {:?} spread {:?} after {:?}",
        r.seconds_to_first_rollback.map(|s| s.median),
        r.seconds_to_last_rollback.map(|s| s.median),
        r.spread_seconds.map(|s| s.median),
        r.canary_after_first_rollback.map(|s| s.median),
    );
    r
}

#[test]
fn twenty_proxies_in_fleet_mode_catch_a_regression_nearly_as_soon_as_one_proxy_with_all_the_traffic()
 {
    let scenario = errors_quadrupled(20, 200.0);
    let alone = run(1, false, 5_000, &scenario);
    let fleet = run(20, true, 5_000, &scenario);
    // Without fleet mode a proxy needs about twenty times as long: a few runs show it.
    let mut short = errors_quadrupled(4, 200.0);
    short.max_seconds = 900;
    let apart = run(20, false, 5_000, &short);
    let one = alone.seconds_to_first_rollback.unwrap().median;
    let together = fleet
        .seconds_to_last_rollback
        .expect("every proxy rolls back")
        .median;
    assert_eq!(fleet.all_rolled_back, 20);
    // Within 1.5x a single proxy's time, plus a scrape and a query interval.
    assert!(
        together <= 1.5 * one + 10.0,
        "fleet {together} s against one proxy's {one} s"
    );
    // Alone, each proxy has a twentieth of the evidence.
    let slow = apart
        .seconds_to_first_rollback
        .map_or(f64::INFINITY, |s| s.median);
    assert!(
        slow > 5.0 * one,
        "without fleet mode {slow} s against {one} s"
    );
}

#[test]
fn a_proxy_that_restarts_after_the_fleet_rolled_back_sends_nothing_to_the_canary() {
    let scenario = errors_quadrupled(10, 200.0);
    let fleet = FleetScenario {
        proxies: 5,
        scrape_ms: 5_000,
        restarts: (0..5)
            .map(|proxy| Restart {
                proxy,
                at_seconds: 900.0,
            })
            .collect(),
        ..FleetScenario::default()
    };
    let plan = plan(true, 5_000);
    for seed in 1..=10 {
        let r = fleet::run_once(&plan, &Params::default(), &scenario, &fleet, seed);
        eprintln!("{r:?}");
        assert!(r.first_rollback.is_some_and(|t| t < 900.0), "{r:?}");
        assert_eq!(r.canary_after_first_by_restarted, 0, "{r:?}");
    }
}

#[test]
fn a_refused_answer_is_counted_and_changes_nothing() {
    use serin_policy::{Engine, InMemory, Update};
    let mut engine = Engine::new(plan(true, 5_000), Params::default());
    let mut shared = InMemory::default();
    let answer = engine.fleet_answer(0, Ok(b"<html>502</html>"), &mut shared);
    assert!(answer.refused.is_some() && answer.transition.is_none());
    assert!(engine.joining(), "a refused answer does not join the fleet");
    let refused = engine
        .catalogue()
        .fleet_refused()
        .expect("fleet mode counts refusals");
    let mut counted = 0;
    engine.flush(|series, update| {
        if let (true, Update::Add(n)) = (series == refused, update) {
            counted += n;
        }
    });
    assert_eq!(counted, 1);
    // A plan without [fleet] has no such series.
    let alone = Engine::new(plan(false, 5_000), Params::default());
    assert_eq!(alone.catalogue().fleet_refused(), None);
}

/// A distribution guard judged on the fleet's buckets (`serin_distribution_total`, summed by
/// Prometheus): twenty proxies, each with a twentieth of the traffic, catch a score drift about
/// as soon as one proxy with all of it would, and long before they do alone; equal scores roll
/// nothing back.
#[test]
fn a_score_drift_is_judged_on_the_fleet_s_buckets() {
    let fleet_plan = |on: bool| {
        let mut plan = fixture::score_plan();
        plan.fleet = on.then(|| Fleet {
            interval_ms: 5_000,
            ..Fleet::new("prometheus", "prometheus:9090")
        });
        plan
    };
    let twenty = FleetScenario {
        proxies: 20,
        scrape_ms: 5_000,
        ..FleetScenario::default()
    };
    let mut shifted = fixture::scores_shifted(10, 1);
    shifted.max_seconds = 1_200;
    let run = |on: bool, scenario: &Scenario| {
        let r = fleet::run(&fleet_plan(on), &Params::default(), scenario, &twenty);
        eprintln!(
            "fleet mode {on}: all {} of {}, first {:?} last {:?}",
            r.all_rolled_back,
            r.runs,
            r.seconds_to_first_rollback.map(|s| s.median),
            r.seconds_to_last_rollback.map(|s| s.median),
        );
        r
    };
    let together = run(true, &shifted);
    let apart = run(false, &shifted);
    assert_eq!(together.all_rolled_back, 10, "{together:?}");
    let last = together.seconds_to_last_rollback.unwrap().median;
    let first_alone = apart
        .seconds_to_first_rollback
        .map_or(f64::INFINITY, |s| s.median);
    assert!(
        last * 3.0 < first_alone,
        "fleet {last} s, alone {first_alone} s"
    );
    let mut equal = fixture::scores_equal(10, 2);
    equal.max_seconds = 1_200;
    let calm = run(true, &equal);
    assert!(
        calm.seconds_to_first_rollback.is_none(),
        "equal scores rolled back: {calm:?}"
    );
}
