//! Integration tests of the rollout engine: the state machine through its public API, and
//! detection quality through the simulator (fixed seeds, so every number is reproducible).

mod fixture;
mod fleet;
mod floor;
mod guarantee;
mod plan_json;
mod vectors;

use serde_json::json;
use serin_policy::guard::{Params, Phase, Role, Rollout, RolloutState, Verdict, Window};
use serin_policy::sim::{self, RunEnd};

// ---- the state machine ----

fn error_guard(on_breach: &str) -> serde_json::Value {
    json!([{ "name": "errors", "arms": [1], "metric": { "kind": "error_rate", "max_ppm": 10_000 },
             "window_seconds": 60, "min_samples": 50, "on_breach": on_breach }])
}

fn steps(min_seconds: u32) -> serde_json::Value {
    let step = |w: u32| json!({ "weight": w, "min_duration_seconds": min_seconds, "gates": ["healthy"], "lanes": fixture::lanes(w) });
    json!([step(500), step(5000)])
}

/// `n` canary and `n` stable responses at `at_ms`, `bad` of the canary's failing.
fn traffic(w: &mut Window, at_ms: u64, n: u32, bad: u32) {
    for i in 0..n {
        w.record_response(
            at_ms,
            Role::Canary,
            if i < bad { 503 } else { 200 },
            40_000,
            false,
        );
        w.record_response(at_ms, Role::Stable, 200, 40_000, false);
    }
}

#[test]
fn rollback_happens_at_the_first_tick_after_the_evidence_not_before() {
    let rollout = Rollout::from_plan(
        &fixture::plan_with(error_guard("rollback"), steps(60)),
        Params::default(),
    );
    let mut state = rollout.fresh();
    let mut w = rollout.window();
    assert_eq!(rollout.tick(&mut state, 0, &w), None);
    assert_eq!(rollout.canary_weight(&state), Some(500));
    // Sub-window 0 (0..1000 ms) shows 20 failures in 100: decisive, but only once it has ended.
    traffic(&mut w, 10, 100, 20);
    assert_eq!(rollout.tick(&mut state, 999, &w), None);
    assert_eq!(state.phase, Phase::Ramping { step: 0 });
    let t = rollout.tick(&mut state, 1000, &w).expect("a transition");
    assert_eq!(t.to, Phase::RolledBack { guard: 0 });
    assert_eq!(t.cause, "errors");
    assert_eq!(t.canary_weight, Some(0));
    let e = &t.evidence[0];
    assert_eq!(
        (e.verdict, e.canary_events, e.canary_samples),
        (Verdict::Breach, 20, 100)
    );
    assert!(e.llr >= e.breach_at);
    assert!(t.log_line().starts_with('{') && t.log_line().contains("\"rolled_back\""));
    // Terminal: nothing moves it, and the canary gets nothing.
    traffic(&mut w, 1500, 1000, 0);
    assert_eq!(rollout.tick(&mut state, 60_000, &w), None);
    assert_eq!(rollout.canary_weight(&state), Some(0));
    assert_eq!(state.gauge(), 4);
}

#[test]
fn min_samples_gate_a_breach() {
    let rollout = Rollout::from_plan(
        &fixture::plan_with(error_guard("rollback"), steps(60)),
        Params::default(),
    );
    let mut state = rollout.fresh();
    let mut w = rollout.window();
    rollout.tick(&mut state, 0, &w);
    traffic(&mut w, 10, 40, 30); // decisive, but 40 < min_samples 50
    assert_eq!(rollout.tick(&mut state, 1000, &w), None);
    traffic(&mut w, 1010, 10, 0);
    assert_eq!(
        rollout.tick(&mut state, 2000, &w).map(|t| t.to),
        Some(Phase::RolledBack { guard: 0 })
    );
}

#[test]
fn healthy_steps_advance_after_their_duration_and_then_promote() {
    let rollout = Rollout::from_plan(
        &fixture::plan_with(error_guard("rollback"), steps(10)),
        Params::default(),
    );
    let mut state = rollout.fresh();
    let mut w = rollout.window();
    rollout.tick(&mut state, 0, &w);
    let mut seen = Vec::new();
    for s in 0..40u64 {
        traffic(&mut w, s * 1000 + 1, 100, 0);
        if let Some(t) = rollout.tick(&mut state, (s + 1) * 1000, &w) {
            seen.push((s + 1, t.to, t.canary_weight));
        }
    }
    assert_eq!(
        seen,
        vec![
            (10, Phase::Ramping { step: 1 }, Some(5000)),
            (20, Phase::Promoted, Some(10_000))
        ],
        "each step lasts its 10 s minimum, healthy all along"
    );
    assert_eq!(state.gauge(), 3);
}

#[test]
fn hold_waits_for_recovery() {
    let rollout = Rollout::from_plan(
        &fixture::plan_with(error_guard("hold"), steps(1)),
        Params::default(),
    );
    let mut state = rollout.fresh();
    let mut w = rollout.window();
    rollout.tick(&mut state, 0, &w);
    traffic(&mut w, 10, 100, 10);
    let t = rollout.tick(&mut state, 1000, &w).unwrap();
    assert_eq!(t.to, Phase::Held { step: 0, guard: 0 });
    assert_eq!(rollout.canary_weight(&state), Some(500));
    let mut recovered = None;
    for s in 1..60u64 {
        traffic(&mut w, s * 1000 + 1, 200, 0);
        if let Some(t) = rollout.tick(&mut state, (s + 1) * 1000, &w) {
            recovered = Some(t);
            break;
        }
    }
    let t = recovered.expect("clean traffic ends the hold");
    assert_eq!(
        (t.to, t.cause.as_str()),
        (Phase::Ramping { step: 0 }, "recovered")
    );
}

#[test]
fn state_round_trips_and_survives_a_reload_of_the_same_digest_only() {
    let plan = fixture::plan_with(error_guard("rollback"), steps(60));
    let rollout = Rollout::from_plan(&plan, Params::default());
    let mut state = rollout.fresh();
    let mut w = rollout.window();
    rollout.tick(&mut state, 0, &w);
    traffic(&mut w, 10, 100, 1);
    rollout.tick(&mut state, 1000, &w);
    let bytes = state.to_bytes();
    assert_eq!(RolloutState::from_bytes(&bytes), Some(state.clone()));
    assert_eq!(rollout.restore(&bytes), state);
    // Garbage and truncations decode to nothing, and restore to a fresh state.
    for cut in 0..bytes.len() {
        assert_eq!(RolloutState::from_bytes(&bytes[..cut]), None);
    }
    assert_eq!(rollout.restore(b"not a state"), rollout.fresh());
    // A new policy starts over.
    let mut other = plan.clone();
    other.digest = "sha256:ffff".into();
    let reloaded = Rollout::from_plan(&other, Params::default());
    assert_eq!(reloaded.restore(&bytes), reloaded.fresh());
}

// ---- detection quality (the numbers in BENCHMARKS.md come from benches/detection.rs) ----

#[test]
fn false_rollbacks_over_1000_aa_runs_are_at_most_one_percent() {
    let report = sim::run(&fixture::plan(), &Params::default(), &fixture::aa(1000, 1));
    eprintln!("{}", report.table());
    assert_eq!(report.runs, 1000);
    assert_eq!(report.false_rollback_rate, Some(report.rollback_rate));
    assert!(
        report.rolled_back <= 10,
        "{} false rollbacks in 1000 A/A runs",
        report.rolled_back
    );
    assert!(
        report.promoted >= 980,
        "only {} of 1000 A/A runs promoted",
        report.promoted
    );
    assert!(
        report.split_relative_error.abs() < 0.01,
        "split off by {}",
        report.split_relative_error
    );
}

#[test]
fn errors_doubling_from_1_to_2_percent_rolls_back_within_1600_canary_requests_median() {
    let report = sim::run(
        &fixture::plan(),
        &Params::default(),
        &fixture::errors_doubled(201, 1),
    );
    eprintln!("{}", report.table());
    assert_eq!(
        report.rollbacks_by_guard.get("errors").copied(),
        Some(report.runs)
    );
    let median = report.canary_requests_to_rollback.unwrap().median;
    assert!(
        median <= 1600.0,
        "median {median} canary requests to rollback"
    );
}

#[test]
fn a_20_percent_p99_regression_rolls_back() {
    let report = sim::run(
        &fixture::plan(),
        &Params::default(),
        &fixture::latency_plus_20(201, 1),
    );
    eprintln!("{}", report.table());
    let by_latency = report
        .rollbacks_by_guard
        .get("latency")
        .copied()
        .unwrap_or(0);
    assert!(
        by_latency >= 195,
        "{by_latency} of 201 rolled back by latency"
    );
    let median = report.canary_requests_to_rollback.unwrap().median;
    assert!(
        median <= 1600.0,
        "median {median} canary requests to rollback"
    );
}

#[test]
fn a_segment_outcome_regression_rolls_back_while_the_overall_rate_is_within_bounds() {
    let report = sim::run(
        &fixture::plan(),
        &Params::default(),
        &fixture::elderly_flagged_twice(201, 1),
    );
    eprintln!("{}", report.table());
    let by_segment = report
        .rollbacks_by_guard
        .get("elderly-flags")
        .copied()
        .unwrap_or(0);
    assert!(
        by_segment >= 180,
        "{by_segment} of 201 rolled back by the 65+ guard"
    );
    assert_eq!(
        report.rollbacks_by_guard.get("flag-rate"),
        None,
        "the overall guard stays quiet"
    );
    assert!(
        report.results.iter().all(
            |r| !matches!(r.end, RunEnd::Undecided | RunEnd::Held { .. }) || r.seconds >= 900.0
        )
    );
}

#[test]
fn latency_spikes_that_hit_both_arms_do_not_roll_back() {
    // A busy host: once every two minutes, both arms answer ten times slower for a second
    // (too rarely to move the stable p99 the guard compares with). Nothing is the
    // canary's fault, so the p99-ratio guard must not fire (it did before the stable arm's
    // own rate in the sub-window became the bar).
    let plan = fixture::plan_with(
        json!([{ "name": "latency", "arms": [1],
                 "metric": { "kind": "latency", "quantile_ppm": 990_000, "max_ratio_ppm": 1_200_000 },
                 "window_seconds": 60, "min_samples": 500, "on_breach": "rollback" }]),
        steps(3_600),
    );
    let rollout = Rollout::from_plan(&plan, Params::default());
    let mut state = rollout.fresh();
    let mut window = rollout.window();
    for second in 0..300u64 {
        let at = second * 1_000;
        let slow = second % 120 == 119;
        for i in 0..400u64 {
            // A spread of latencies around 40 ms; 10× on a slow second.
            let base = 30_000 + (i * 7_919 % 20_000);
            let micros = if slow { base * 10 } else { base };
            window.record_response(at, Role::Stable, 200, micros, false);
            if i % 4 == 0 {
                window.record_response(at, Role::Canary, 200, micros, false);
            }
        }
        rollout.tick(&mut state, at + 999, &window);
        assert!(
            !matches!(state.phase(), Phase::RolledBack { .. }),
            "rolled back at second {second}: {:?}",
            rollout.report(&state, at + 999, &window)
        );
    }
}

/// The whole path: the simulator writes each response's score into its JSON body, the engine
/// reads it through the outcome's path, buckets it into the window, and the distribution
/// guard's test rolls a shifted canary back and leaves an equal one alone.
#[test]
fn a_shifted_score_distribution_rolls_back_and_an_equal_one_does_not() {
    let plan = fixture::score_plan();
    let shifted = sim::run(&plan, &Params::default(), &fixture::scores_shifted(40, 1));
    eprintln!("{}", shifted.table());
    let caught = shifted
        .rollbacks_by_guard
        .get("score drift")
        .copied()
        .unwrap_or(0);
    // Within five minutes at 20 canary requests a second: the bench puts the median near a
    // few hundred canary requests, so a miss in more than 4 of 40 runs would be a defect.
    assert!(caught >= 36, "{caught} of 40 rolled back");
    let equal = sim::run(&plan, &Params::default(), &fixture::scores_equal(40, 1));
    eprintln!("{}", equal.table());
    // α = 0.3% per test: more than 2 of 40 (5%) would be far past it.
    assert!(
        equal.rolled_back <= 2,
        "{} of 40 rolled back",
        equal.rolled_back
    );
    assert_eq!(
        equal.false_rollback_rate,
        Some(f64::from(equal.rolled_back) / 40.0)
    );
}
