//! The floor's promise (`policy/src/guard/sprt.rs`, "the floor"): good evidence is not banked
//! without limit, so a regression that starts after a long healthy stretch is caught after a
//! bounded climb. (The detection bench's late-breach table measures it for three guards.)
//!
//! The bound. After an hour of a canary equal to stable, every component sits at (or just above)
//! its floor, `-2·ln(1/α)`: the late mixture is the fresh one's mixture of the same increments
//! shifted down by `2·ln(1/α)`, until a component touches the floor again, which only lifts it.
//! A fresh breach is called when that mixture reaches `ln(1/α)`, a late one when it reaches
//! `3·ln(1/α)`. With `c ≥ 0` the prior's cost (the gap between the mixture and its best
//! component, at most `ln 2` at the design effect) and `o ≥ 0` the overshoot, Wald's identity puts
//! the mean sub-windows at `(ln(1/α) + c + o) / μ` fresh and at most `(3·ln(1/α) + c + o) / μ`
//! late, for the same drift `μ`: the late climb takes at most three times the fresh one, on
//! average. (Medians are not bounded so: a fresh climb's time is more skewed than a late one's.)
//! A floor of `-3·ln(1/α)` would make the ratio near 3.6, and no floor, hours.

use serin_policy::guard::Params;
use serin_policy::guard::power::{Slots, Traffic, Trial, first_breach, slots_to_breach};
use serin_policy::guard::sprt::Model;

const HOUR: u64 = 3_600;
const RUNS: u64 = 1_000;

/// Mean and standard error of the mean.
fn mean_and_error(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn a_doubling_after_an_hour_at_stables_rate_is_caught_within_three_times_a_fresh_ones_climb() {
    // The bench's error-rate guard: `max_ratio = 1.5`, stable failing 1%, 5% of 100 requests a
    // second, one-second sub-windows.
    let params = Params::default();
    let trial = Trial {
        model: Model::Ratio { rho0: 1.5 },
        design: params.detect,
        min_samples: 500,
        bounds: params.bounds(),
    };
    let traffic = Traffic {
        watched: 5.0,
        other: 95.0,
        base_rate: 0.01,
    };
    let (stable, doubled) = (
        traffic.rates(&trial.model, 1.0 / 1.5),
        traffic.rates(&trial.model, 2.0),
    );
    // Horizons far past any climb: every run must end in a breach.
    let fresh: Vec<f64> = (1..=RUNS)
        .map(|seed| {
            slots_to_breach(&trial, traffic, 2.0, 100 * HOUR, seed).expect("a fresh catch") as f64
        })
        .collect();
    let mut false_rollbacks = 0;
    let late: Vec<f64> = (1..=RUNS)
        .filter_map(|seed| {
            let slots = Slots::new(traffic, stable, seed).changing_at(HOUR, doubled);
            let at = first_breach(&trial, slots.take((100 * HOUR) as usize)).expect("a late catch");
            if at <= HOUR {
                false_rollbacks += 1;
                None
            } else {
                Some((at - HOUR) as f64)
            }
        })
        .collect();
    // The healthy hour is an A/A hour: Ville's bound, within three standard errors.
    let a = params.alpha;
    let bound = a + 3.0 * (a * (1.0 - a) / RUNS as f64).sqrt();
    assert!(
        false_rollbacks as f64 / RUNS as f64 <= bound,
        "{false_rollbacks} of {RUNS} rolled back in the healthy hour"
    );
    let ((f, f_se), (l, l_se)) = (mean_and_error(&fresh), mean_and_error(&late));
    let ratio = l / f;
    // The bound is on expectations: allow three standard errors of the ratio of the means (the
    // two samples are independent draws).
    let se = ratio * ((f_se / f).powi(2) + (l_se / l).powi(2)).sqrt();
    assert!(
        ratio <= 3.0 + 3.0 * se,
        "late climb {l:.0} sub-windows on average, fresh {f:.0}: {ratio:.2} times (s.e. {se:.2})"
    );
}
