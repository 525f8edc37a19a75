//! Detection quality: the numbers behind BENCHMARKS.md ("Detection quality").
//! Run with `cargo bench -p serin-policy --bench detection` (optionally `-- RUNS`, default 1000).
//!
//! Three guards written the way the examples write them, at 100 requests per second with a 5%
//! canary, one-second sub-windows. For each, the canary at several true values, as multiples of
//! the limit, and four tests on the same synthetic traffic (same seeds):
//! - **mixture**: the engine's test ([`serin_policy::guard::power`] plays the engine's code);
//! - **fixed SPRT**: the test it replaced, Wald's SPRT against 2× the limit (2.5× the tail share
//!   for latency), floored, as the engine ran it before;
//! - **oracle**: a one-sided SPRT against the true value, at the same α, without a floor: the
//!   information limit, which no test that does not know the true value can beat;
//! - **fixed threshold**: Flagger's analysis: every minute, the minute's measured value against
//!   the limit, and a rollback at the fifth failed check.
//!
//! Every test waits for the guard's `min_samples`. Breach cells run each seed up to five times the
//! oracle's mean sample count; cells at or under the limit run one hour.
//!
//! Then the same guards, with the fraud model example's others, through the whole engine
//! (`serin_policy::sim`: routing, windows, workers' merge, the state machine) at 100 requests/s
//! and a 5% canary: false rollbacks of the whole policy over an hour with identical arms, and
//! the example's modest breach.
#[path = "../tests/it/fixture.rs"]
mod fixture;

use serde_json::json;
use serin_policy::guard::Params;
use serin_policy::guard::power::{DriftTraffic, Power, Slots, Traffic, Trial, slots_to_drift};
use serin_policy::guard::sprt::{Model, bernoulli_llr, split_llr};
use serin_policy::sim::{self, RunEnd};

/// A guard as users write them, and the traffic it sees per one-second sub-window.
struct Guard {
    name: &'static str,
    trial: Trial,
    traffic: Traffic,
    /// The true value, as a multiple of the limit, of a canary that behaves like stable.
    equal_to_stable: f64,
    /// Canary requests per sub-window (a segment guard watches a share of them).
    canary_per_slot: f64,
}

const HOUR: u64 = 3_600;
const MINUTE: u64 = 60;

fn guards(params: &Params) -> Vec<Guard> {
    let bounds = params.bounds();
    let trial = |model, design, min_samples| Trial {
        model,
        design,
        min_samples,
        bounds,
    };
    // The p99 latency guard, `max_ratio = 1.2`: the canary's share above 1.2× stable's p99,
    // against 1%. A canary like stable (lognormal, σ = 0.5) puts P(Z > z99 + ln 1.2 / 0.5)
    // above it.
    let tail_of_equal = upper_normal_tail(2.326_348 + 1.2f64.ln() / 0.5) / 0.01;
    vec![
        Guard {
            name: "error rate, max_ratio 1.5 (stable 1%)",
            trial: trial(Model::Ratio { rho0: 1.5 }, params.detect, 500),
            traffic: Traffic {
                watched: 5.0,
                other: 95.0,
                base_rate: 0.01,
            },
            equal_to_stable: 1.0 / 1.5,
            canary_per_slot: 5.0,
        },
        Guard {
            name: "p99 latency, max_ratio 1.2 (tail share 1%)",
            trial: trial(Model::rate(0.01, false), params.latency_detect, 500),
            traffic: Traffic {
                watched: 5.0,
                other: 95.0,
                base_rate: 0.0,
            },
            equal_to_stable: tail_of_equal,
            canary_per_slot: 5.0,
        },
        Guard {
            name: "outcome in a 20% segment, max_ratio 1.5 (stable 5%)",
            trial: trial(Model::Ratio { rho0: 1.5 }, params.detect, 200),
            traffic: Traffic {
                watched: 1.0,
                other: 19.0,
                base_rate: 0.05,
            },
            equal_to_stable: 1.0 / 1.5,
            canary_per_slot: 5.0,
        },
    ]
}

fn main() {
    let runs: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let params = Params::default();
    println!(
        "{runs} seeds per cell; α = {}, β = {}; canary requests to rollback, median (95th percentile)\n",
        params.alpha, params.beta
    );
    for g in guards(&params) {
        println!("== {}", g.name);
        println!(
            "{:>9} | {:>24} | {:>24} | {:>16} | {:>16} | {:>7}",
            "true", "mixture", "fixed SPRT (2x)", "oracle", "fixed threshold", "mix/orc"
        );
        let requests = |slots: Option<u64>| match slots {
            Some(s) => format!("{:.0}", s as f64 * g.canary_per_slot),
            None => "-".into(),
        };
        let cell = |p: &Power| {
            format!(
                "{:>5.1}% {:>8} ({:>7})",
                100.0 * p.rate(),
                requests(p.quantile(0.5)),
                requests(p.quantile(0.95))
            )
        };
        for (label, multiple) in [
            ("= stable", g.equal_to_stable),
            ("1x limit", 1.0),
            ("1.1x", 1.1),
            ("1.33x", 4.0 / 3.0),
            ("2x", 2.0),
            ("4x", 4.0),
        ] {
            let breach = multiple > 1.0;
            let oracle = breach.then(|| {
                Power::of(runs, |seed| {
                    fixed_sprt(
                        &g,
                        multiple,
                        multiple,
                        g.trial.bounds.breach,
                        None,
                        u64::MAX,
                        seed,
                    )
                })
            });
            let horizon = oracle.as_ref().map_or(HOUR, |o| {
                (5.0 * o.mean().unwrap_or(HOUR as f64)).ceil() as u64
            });
            let mixture = Power::measure(&g.trial, g.traffic, multiple, horizon, runs, 1);
            let today = Power::of(runs, |seed| {
                let wald = ((1.0 - 0.2) / 0.0025f64).ln();
                fixed_sprt(
                    &g,
                    multiple,
                    g.trial.design,
                    wald,
                    Some(-wald),
                    horizon,
                    seed,
                )
            });
            let flagger = Power::of(runs, |seed| fixed_threshold(&g, multiple, horizon, seed));
            let ratio = match (
                mixture.quantile(0.5),
                oracle.as_ref().and_then(|o| o.quantile(0.5)),
            ) {
                (Some(m), Some(o)) => format!("{:.2}", m as f64 / o as f64),
                _ => "-".into(),
            };
            println!(
                "{label:>9} | {} | {} | {:>16} | {:>16} | {ratio:>7}",
                cell(&mixture),
                cell(&today),
                oracle.as_ref().map_or("-".into(), |o| format!(
                    "{} ({})",
                    requests(o.quantile(0.5)),
                    requests(o.quantile(0.95))
                )),
                format!(
                    "{:.1}% {}",
                    100.0 * flagger.rate(),
                    requests(flagger.quantile(0.5))
                ),
            );
            if breach {
                println!(
                    "{:>9}   within 5x the oracle's mean ({} canary requests)",
                    "",
                    requests(Some(horizon))
                );
            }
        }
        println!();
    }
    let g = &guards(&params)[0];
    let within = 20_000 / 5;
    let example = Power::measure(&g.trial, g.traffic, 2.0 / 1.5, within, runs, 1);
    let oracle = Power::of(runs, |seed| {
        fixed_sprt(
            g,
            2.0 / 1.5,
            2.0 / 1.5,
            g.trial.bounds.breach,
            None,
            within,
            seed,
        )
    });
    println!(
        "The example, errors 1% -> 2% against max_ratio 1.5, rolled back within 20,000 canary requests: mixture {:.1}%, oracle {:.1}%",
        100.0 * example.rate(),
        100.0 * oracle.rate()
    );
    distribution(runs, &params);
    through_the_engine(runs);
}

/// The distribution guard: a model score on six buckets (the bounds a policy writes as
/// `buckets = [0.2, 0.3, 0.4, 0.5, 0.6]`), stable's score N(0.4, 0.15), 100 requests per
/// second, 5% canary, `min_samples = 100`. (a) equal arms for an hour: the false-rollback
/// rate; (b) the canary's mean moved until the PSI on these buckets is 0.1: the share caught
/// within 2,000 canary requests and the median. Played by `guard::power::slots_to_drift`,
/// which feeds the engine's own test.
fn distribution(runs: u32, params: &Params) {
    const BOUNDS: [f64; 5] = [0.2, 0.3, 0.4, 0.5, 0.6];
    const CANARY_PER_SLOT: f64 = 5.0;
    let (mean, sd) = (0.4, 0.15);
    let stable = bucket_probabilities(&BOUNDS, mean, sd);
    // The mean shift whose PSI on the buckets is 0.1 (PSI grows with the shift).
    let (mut lo, mut hi) = (0.0, sd);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if psi(&bucket_probabilities(&BOUNDS, mean + mid, sd), &stable) < 0.1 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let shifted = bucket_probabilities(&BOUNDS, mean + lo, sd);
    let traffic = |canary_buckets: Vec<f64>| DriftTraffic {
        canary: CANARY_PER_SLOT,
        stable: 95.0,
        canary_buckets,
        stable_buckets: stable.clone(),
    };
    let bounds = params.bounds();
    println!(
        "\n== distribution: score N({mean}, {sd}) on buckets {BOUNDS:?}, 100 req/s, 5% canary, min_samples 100"
    );
    let equal = traffic(stable.clone());
    let aa = Power::of(runs, |seed| {
        slots_to_drift(100, &bounds, &equal, HOUR, seed)
    });
    println!(
        "  equal arms, one hour: false rollbacks {:.2}% of runs",
        100.0 * aa.rate()
    );
    let drift = traffic(shifted.clone());
    let caught = Power::of(runs, |seed| {
        slots_to_drift(100, &bounds, &drift, HOUR, seed)
    });
    let within = caught
        .caught
        .iter()
        .filter(|s| **s as f64 * CANARY_PER_SLOT <= 2_000.0)
        .count();
    let requests =
        |s: Option<u64>| s.map_or("-".into(), |s| format!("{:.0}", s as f64 * CANARY_PER_SLOT));
    println!(
        "  canary mean +{lo:.4} (PSI {:.4} on the buckets): caught within 2,000 canary requests in {:.1}% of runs; canary requests to rollback median {} (95th percentile {})",
        psi(&shifted, &stable),
        100.0 * within as f64 / f64::from(runs),
        requests(caught.quantile(0.5)),
        requests(caught.quantile(0.95)),
    );
}

/// The probability of each bucket (upper bounds `bounds`, the last open) under N(mean, sd).
fn bucket_probabilities(bounds: &[f64], mean: f64, sd: f64) -> Vec<f64> {
    let cdf = |x: f64| {
        let z = (x - mean) / sd;
        if z >= 0.0 {
            1.0 - upper_normal_tail(z)
        } else {
            upper_normal_tail(-z)
        }
    };
    let mut below = 0.0;
    let mut out: Vec<f64> = bounds
        .iter()
        .map(|b| {
            let c = cdf(*b);
            let p = c - below;
            below = c;
            p
        })
        .collect();
    out.push(1.0 - below);
    out
}

/// `Σ (p - q) ln(p / q)`: the population stability index of `p` against `q`.
fn psi(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).map(|(p, q)| (p - q) * (p / q).ln()).sum()
}

/// Wald's SPRT of the limit against `alternative` times it, breach at `threshold`, with an
/// optional floor, on the same traffic as the engine's test: sub-windows to a breach.
fn fixed_sprt(
    g: &Guard,
    multiple: f64,
    alternative: f64,
    threshold: f64,
    floor: Option<f64>,
    max_slots: u64,
    seed: u64,
) -> Option<u64> {
    let model = g.trial.model;
    let rates = g.traffic.rates(&model, multiple);
    let (null, alt) = (model.null(), model.alternative(alternative));
    let (mut llr, mut samples) = (0.0, 0u64);
    for (slot, (x_w, n_w, x_o, n_o)) in Slots::new(g.traffic, rates, seed).enumerate() {
        if slot as u64 >= max_slots {
            return None;
        }
        llr += match model {
            Model::Rate { .. } => bernoulli_llr(x_w, n_w, null, alt),
            Model::Ratio { .. } => split_llr(x_w, x_o, n_w, n_o, null, alt),
        };
        if let Some(f) = floor {
            llr = llr.max(f);
        }
        samples += n_w;
        if samples >= g.trial.min_samples && llr >= threshold {
            return Some(slot as u64 + 1);
        }
    }
    None
}

/// Flagger's analysis: every minute, the minute's value against the limit; a rollback at the
/// fifth failed check. A minute without data is not a check.
fn fixed_threshold(g: &Guard, multiple: f64, max_slots: u64, seed: u64) -> Option<u64> {
    let model = g.trial.model;
    let rates = g.traffic.rates(&model, multiple);
    let mut minute = (0u64, 0u64, 0u64, 0u64);
    let mut failed = 0;
    for (slot, (x_w, n_w, x_o, n_o)) in Slots::new(g.traffic, rates, seed).enumerate() {
        let slot = slot as u64 + 1;
        if slot > max_slots {
            return None;
        }
        minute = (
            minute.0 + x_w,
            minute.1 + n_w,
            minute.2 + x_o,
            minute.3 + n_o,
        );
        if !slot.is_multiple_of(MINUTE) {
            continue;
        }
        let (xw, nw, xo, no) = std::mem::take(&mut minute);
        let value = match model {
            Model::Rate { .. } if nw > 0 => Some(xw as f64 / nw as f64),
            Model::Ratio { .. } if nw > 0 && no > 0 && xo > 0 => {
                Some((xw as f64 / nw as f64) / (xo as f64 / no as f64))
            }
            _ => None,
        };
        if value.is_some_and(|v| v > model.null()) {
            failed += 1;
            if failed == 5 {
                return Some(slot);
            }
        }
    }
    None
}

/// `P(Z > z)` for a standard normal (Abramowitz and Stegun 26.2.17, error below 1e-7).
fn upper_normal_tail(z: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.231_641_9 * z);
    let poly = t
        * (0.319_381_530
            + t * (-0.356_563_782
                + t * (1.781_477_937 + t * (-1.821_255_978 + t * 1.330_274_429))));
    (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt() * poly
}

/// The fraud model example's guards through the engine: one hour of identical arms, and the
/// example's doubling of errors.
fn through_the_engine(runs: u32) {
    let plan = fixture::plan_with(
        json!([
            { "name": "error rate", "arms": [1],
              "metric": { "kind": "error_rate", "max_ppm": 20_000, "max_ratio_ppm": 1_500_000 },
              "window_seconds": 600, "min_samples": 500, "on_breach": "rollback" },
            { "name": "p99 latency", "arms": [1],
              "metric": { "kind": "latency", "quantile_ppm": 990_000, "max_ratio_ppm": 1_200_000 },
              "window_seconds": 600, "min_samples": 500, "on_breach": "rollback" },
            { "name": "elderly customers flagged", "arms": [1],
              "metric": { "kind": "outcome_rate", "outcome": 0, "segment": 0, "segment_values": ["65+"],
                          "max_ratio_ppm": 1_200_000 },
              "window_seconds": 600, "min_samples": 200, "on_breach": "rollback" },
            { "name": "flag rate overall", "arms": [1],
              "metric": { "kind": "outcome_rate", "outcome": 0, "max_ratio_ppm": 1_500_000 },
              "window_seconds": 600, "min_samples": 500, "on_breach": "hold" }
        ]),
        // One step at 5% that outlasts the runs: the guards alone decide.
        json!([{ "weight": 500, "min_duration_seconds": 86_400, "gates": ["healthy"],
                 "lanes": fixture::lanes(500) }]),
    );
    let params = Params::default();
    let mut aa = fixture::aa(runs, 1);
    aa.requests_per_second = 100.0;
    aa.max_seconds = 3_600;
    let report = sim::run(&plan, &params, &aa);
    println!(
        "\nThrough the engine, {runs} runs: identical arms for an hour, rolled back (any guard): {:.1}%, held: {:.1}%",
        100.0 * report.rollback_rate,
        100.0 * f64::from(report.held) / f64::from(runs.max(1))
    );
    let mut errors = fixture::errors_doubled(runs, 1);
    errors.requests_per_second = 100.0;
    errors.max_seconds = 6_000;
    let report = sim::run(&plan, &params, &errors);
    let within = report
        .results
        .iter()
        .filter(|r| {
            matches!(&r.end, RunEnd::RolledBack { guard } if guard == "error rate")
                && r.canary_requests <= 20_000
        })
        .count();
    println!(
        "Through the engine: errors 1% -> 2%, rolled back by `error rate` within 20,000 canary requests: {:.1}%; median canary requests to rollback {}",
        100.0 * within as f64 / f64::from(runs.max(1)),
        report
            .canary_requests_to_rollback
            .map_or("-".into(), |s| format!("{:.0}", s.median))
    );
}
