//! The guards' guarantee, as a property: whatever the traffic, the limit and the model, a
//! canary at or under its limit is rolled back in at most α of runs, within the confidence
//! bound of the runs played. (The detection bench measures the same at fixed, realistic
//! settings; this explores the settings.)

use proptest::prelude::*;
use serin_policy::guard::Params;
use serin_policy::guard::power::{Power, Traffic, Trial};
use serin_policy::guard::sprt::{Bounds, Model};

/// Runs per case, and sub-windows per run (one hour of one-second sub-windows).
const RUNS: u32 = 600;
const HOUR: u64 = 3_600;

/// The busiest case found by an unseeded run (1.17% of 600 runs with the floor at `-ln(1/α)`):
/// a rate at its limit, 15 samples per second, no minimum.
#[test]
fn a_busy_canary_at_its_limit_is_rolled_back_in_at_most_alpha_of_runs() {
    let params = Params::default();
    let trial = Trial {
        model: Model::rate(0.187, false),
        design: 2.5,
        min_samples: 0,
        bounds: params.bounds(),
    };
    let traffic = Traffic {
        watched: 15.5,
        other: 392.0,
        base_rate: 0.27,
    };
    let p = Power::measure(&trial, traffic, 1.0, HOUR, RUNS, 1);
    let a = params.alpha;
    let bound = a + 3.0 * (a * (1.0 - a) / f64::from(RUNS)).sqrt();
    assert!(
        p.rate() <= bound,
        "{:.2}% of runs rolled back",
        100.0 * p.rate()
    );
}

fn model() -> impl Strategy<Value = Model> {
    prop_oneof![
        (0.002f64..0.3, any::<bool>()).prop_map(|(limit, falling)| {
            // A lower bound on a positive rate sits high, an upper bound on an error rate low.
            Model::rate(if falling { 1.0 - limit } else { limit }, falling)
        }),
        (1.05f64..3.0).prop_map(|rho0| Model::Ratio { rho0 }),
    ]
}

proptest! {
    // A fixed seed: the same settings every run, so that the test is a measurement, not a
    // lottery; cases found to fail are added to `regressions` by hand, not by a file.
    #![proptest_config(ProptestConfig {
        cases: 10,
        rng_seed: proptest::test_runner::RngSeed::Fixed(18),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_canary_at_or_under_its_limit_is_rolled_back_in_at_most_alpha_of_runs(
        model in model(),
        design in prop_oneof![Just(2.0), Just(2.5)],
        min_samples in 0u64..1_000,
        watched in 0.5f64..40.0,
        other_per_watched in 1.0f64..40.0,
        base_rate in 0.002f64..0.3,
        multiple in prop_oneof![Just(1.0), 0.5f64..1.0],
    ) {
        let params = Params::default();
        let trial = Trial { model, design, min_samples, bounds: params.bounds() };
        let traffic = Traffic { watched, other: watched * other_per_watched, base_rate };
        let p = Power::measure(&trial, traffic, multiple, HOUR, RUNS, 1);
        let a = params.alpha;
        let bound = a + 3.0 * (a * (1.0 - a) / f64::from(RUNS)).sqrt();
        prop_assert!(
            p.rate() <= bound,
            "{:.2}% of runs rolled back, above {:.2}%",
            100.0 * p.rate(),
            100.0 * bound
        );
    }
}

/// The floor's horizon (`sprt.rs`, "the floor"): within `N` sub-windows a canary at its limit is
/// rolled back with probability at most `α + N·α³`, so at most 2α over `1/α²` of them. At the
/// engine's α that is 31 hours, too long to play here; at α = 2% it is 2,500 sub-windows. The
/// same busy canary with a floor at `-ln(1/α)` is promised 2α for only `1/α` sub-windows, and
/// breaks the longer promise: the measurement tells the two depths apart (0.8% and 16% of 2,000
/// runs, when this was written).
#[test]
fn a_busy_canary_at_its_limit_is_rolled_back_in_at_most_twice_alpha_over_the_floor_s_horizon() {
    const RUNS: u32 = 1_000;
    let params = Params {
        alpha: 0.02,
        ..Params::default()
    };
    let bounds = params.bounds();
    let horizon = (1.0 / (params.alpha * params.alpha)).round() as u64;
    let trial = Trial {
        model: Model::rate(0.187, false),
        design: 2.5,
        min_samples: 0,
        bounds,
    };
    let traffic = Traffic {
        watched: 15.5,
        other: 392.0,
        base_rate: 0.27,
    };
    let rate = |trial: &Trial| Power::measure(trial, traffic, 1.0, horizon, RUNS, 1).rate();
    let promised = 2.0 * params.alpha;
    let bound = promised + 3.0 * (promised * (1.0 - promised) / f64::from(RUNS)).sqrt();
    let deep = rate(&trial);
    let shallow = rate(&Trial {
        bounds: Bounds {
            floor: -bounds.breach,
            ..bounds
        },
        ..trial
    });
    assert!(
        deep <= bound,
        "{:.2}% of runs rolled back within {horizon} sub-windows, above {:.2}%",
        100.0 * deep,
        100.0 * bound
    );
    assert!(
        shallow > bound,
        "a floor at -ln(1/α): {:.2}% of runs, expected above {:.2}%",
        100.0 * shallow,
        100.0 * bound
    );
}
