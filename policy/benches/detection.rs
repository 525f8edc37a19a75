//! Detection quality: the numbers behind BENCHMARKS.md ("Detection quality").
//! Run with `cargo bench -p serin-policy --bench detection` (optionally `-- RUNS`, default 1000
//! seeds per cell, and `--engine-runs N`, runs through the engine at the end, default `RUNS`:
//! e.g. `-- 1000 --engine-runs 4000`).
//!
//! Three guards written the way the examples write them, at 100 requests per second with a 5%
//! canary, one-second sub-windows. For each, the canary at several true values, as multiples of
//! the limit, and four tests on the same synthetic traffic (the same seeds, paired seed by seed):
//! - **mixture**: the engine's test ([`serin_policy::guard::power`] plays the engine's code);
//! - **fixed SPRT**: the test it replaced, Wald's SPRT against 2× the limit (2.5× the tail share
//!   for latency), floored, as the engine ran it before;
//! - **oracle**: a one-sided SPRT against the true value, at the same α, without a floor: the
//!   information limit, which no test that does not know the true value can beat;
//! - **fixed threshold**: Flagger's analysis: every minute, the minute's measured value against
//!   the limit, and a rollback at the fifth failed check.
//!
//! Every test waits for the guard's `min_samples`. Breach cells run each seed up to five times the
//! oracle's mean sample count; cells at or under the limit run one hour. Under each breach row,
//! the mixture's median over the fixed SPRT's with a 95% paired bootstrap interval (the seeds
//! resampled with replacement, 2,000 times, a fixed RNG seed).
//!
//! A late breach: the canary equal to stable for an hour, then at 2× (and 1.33×) the limit;
//! for the mixture and the fixed SPRT, the share rolled back in the healthy hour (false), the
//! share rolled back within five times the oracle's fresh mean after the breach's start and the
//! median (95th percentile) canary requests from that start, beside the fresh medians. Each
//! component's floor bounds the climb (`policy/src/guard/sprt.rs`, "the floor"). Beside them,
//! the late breach's information limit: Page's CUSUM told the true value, its threshold
//! calibrated to α at the limit over the late run's length on 10,000 seeds of the same traffic.
//! Per guard, the false rollbacks at the limit over an hour (10,000 seeds) and over the floor's
//! horizon, `1/α²` sub-windows (31 hours), where the mixture is promised at most 2α.
//!
//! Then the same guards, with the fraud model example's others, through the whole engine
//! (`serin_policy::sim`: routing, windows, workers' merge, the state machine) at 100 requests/s
//! and a 5% canary: false rollbacks of the whole policy over an hour with identical arms, and
//! the example's modest breach.
#[path = "../tests/it/fixture.rs"]
mod fixture;

use serde_json::json;
use serin_policy::guard::Params;
use serin_policy::guard::power::{
    DriftTraffic, Power, Slots, Traffic, Trial, first_breach, slots_to_breach, slots_to_drift,
};
use serin_policy::guard::sprt::{Model, bernoulli_llr, split_llr};
use serin_policy::sim::{self, RunEnd, SplitMix64};

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

/// The seeds of every cell: `SEED..SEED + runs`, the same for every test, so the tests are
/// paired seed by seed.
const SEED: u64 = 1;
/// Paired bootstrap resamples for the mixture's median over the fixed SPRT's, and its RNG seed.
const RESAMPLES: u32 = 2_000;
const BOOTSTRAP_SEED: u64 = 0xB007_5742;

/// The breach sizes of the late-breach table.
const LATE: [(&str, f64); 2] = [("2x", 2.0), ("1.33x", 4.0 / 3.0)];

/// `RUNS` (seeds per cell) and `--engine-runs N` (runs through the engine; `RUNS` unless given).
fn args() -> (u32, u32) {
    let mut runs = None;
    let mut engine_runs = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--engine-runs" {
            engine_runs = args.next().and_then(|n| n.parse().ok());
        } else if let Ok(n) = a.parse() {
            runs = Some(n);
        }
    }
    let runs = runs.unwrap_or(1000);
    (runs, engine_runs.unwrap_or(runs))
}

fn main() {
    let (runs, engine_runs) = args();
    let params = Params::default();
    println!(
        "{runs} seeds per cell; α = {}, β = {}; canary requests to rollback, median (95th percentile)\n",
        params.alpha, params.beta
    );
    let mut late = Vec::new();
    for g in guards(&params) {
        println!("== {}", g.name);
        println!(
            "{:>9} | {:>24} | {:>24} | {:>16} | {:>16} | {:>7}",
            "true", "mixture", "fixed SPRT (2x)", "oracle", "fixed threshold", "mix/orc"
        );
        let requests = |slots: Option<u64>| requests(&g, slots);
        let cell = |p: &Power| cell(&g, p);
        let mut fresh = Vec::new();
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
                Power::of(runs, |i| {
                    let slots = slots(&g, multiple, SEED + i);
                    fixed_sprt(&g, multiple, g.trial.bounds.breach, None, slots)
                })
            });
            let horizon = oracle.as_ref().map_or(HOUR, |o| {
                (5.0 * o.mean().unwrap_or(HOUR as f64)).ceil() as u64
            });
            let within = |seed| slots(&g, multiple, seed).take(horizon as usize);
            let mixture_runs = per_seed(runs, |seed| {
                slots_to_breach(&g.trial, g.traffic, multiple, horizon, seed)
            });
            let today_runs = per_seed(runs, |seed| today(&g, within(seed)));
            let (mixture, today) = (power(&mixture_runs), power(&today_runs));
            let flagger = per_seed(runs, |seed| fixed_threshold(&g, within(seed)));
            let flagger = power(&flagger);
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
                if let (Some(m), Some(t)) = (mixture.quantile(0.5), today.quantile(0.5)) {
                    println!(
                        "{:>9}   mixture / fixed SPRT, medians: {:.3} (95% paired bootstrap {})",
                        "",
                        m as f64 / t as f64,
                        median_ratio_interval(&mixture_runs, &today_runs)
                            .map_or("-".into(), |(lo, hi)| format!("{lo:.3} to {hi:.3}")),
                    );
                }
            }
            if let Some(oracle) = oracle
                && LATE.iter().any(|(l, _)| *l == label)
            {
                fresh.push((label, multiple, horizon, mixture, today, oracle));
            }
        }
        println!();
        fresh.sort_by_key(|f| LATE.iter().position(|(l, _)| *l == f.0));
        late.push((g, fresh));
    }
    late_breach(runs, params.alpha, &late);
    let g = &guards(&params)[0];
    let within = 20_000 / 5;
    let example = Power::measure(&g.trial, g.traffic, 2.0 / 1.5, within, runs, SEED);
    let oracle = Power::of(runs, |i| {
        let slots = slots(g, 2.0 / 1.5, SEED + i).take(within as usize);
        fixed_sprt(g, 2.0 / 1.5, g.trial.bounds.breach, None, slots)
    });
    println!(
        "The example, errors 1% -> 2% against max_ratio 1.5, rolled back within 20,000 canary requests: mixture {:.1}%, oracle {:.1}%",
        100.0 * example.rate(),
        100.0 * oracle.rate()
    );
    distribution(runs, &params);
    through_the_engine(engine_runs);
}

/// A breach cell's figures fresh (the canary breaching from the start), reused beside the
/// late breach: label, multiple, horizon, mixture, fixed SPRT, oracle.
type Fresh = (&'static str, f64, u64, Power, Power, Power);

/// The late breach: the canary equal to stable for an hour (the same sub-windows, seed by
/// seed, as the "= stable" cell), then at the multiple, each seed played up to the hour plus
/// the fresh cell's horizon (five times the oracle's mean). A rollback within the hour is a
/// false one; after it, the canary requests counted are those from the breach's start.
fn late_breach(runs: u32, alpha: f64, guards: &[(Guard, Vec<Fresh>)]) {
    println!(
        "== late breach: equal to stable for an hour ({} canary requests at 5 per second), then the breach; canary requests from the breach's start to rollback",
        HOUR * 5
    );
    for (g, fresh) in guards {
        let requests = |slots: Option<u64>| requests(g, slots);
        println!("-- {}", g.name);
        println!(
            "{:>9} | {:>13} | {:>24} | {:>24} | {:>14} | {:>14} | {:>7}",
            "true",
            "false in hour",
            "mixture: late",
            "fixed SPRT (2x): late",
            "fresh mix, fix",
            "oracle fresh",
            "late/fr"
        );
        for (label, multiple, horizon, mixture, today, oracle) in fresh {
            let late = |seed| late_slots(g, *multiple, seed).take((HOUR + horizon) as usize);
            let mixture_late = per_seed(runs, |seed| first_breach(&g.trial, late(seed)));
            let today_late = per_seed(runs, |seed| self::today(g, late(seed)));
            let false_rate = |v: &[Option<u64>]| {
                v.iter().filter(|s| s.is_some_and(|s| s <= HOUR)).count() as f64 / v.len() as f64
            };
            // Sub-windows from the breach's start; a rollback in the healthy hour is a miss.
            let shifted = |v: &[Option<u64>]| -> Vec<Option<u64>> {
                v.iter()
                    .map(|s| s.and_then(|s| s.checked_sub(HOUR).filter(|s| *s > 0)))
                    .collect()
            };
            let after = |v: &[Option<u64>]| power(&shifted(v));
            let (m, t) = (after(&mixture_late), after(&today_late));
            let length = HOUR + horizon;
            let h = cusum_threshold(g, *multiple, length, alpha);
            let cusum_late = per_seed(runs, |seed| {
                fixed_sprt(g, *multiple, h, Some(0.0), late(seed))
            });
            let c = after(&cusum_late);
            let over_cusum = |late: &Power| match (late.quantile(0.5), c.quantile(0.5)) {
                (Some(l), Some(o)) => format!("{:.2}", l as f64 / o as f64),
                _ => "-".into(),
            };
            let ratio =
                |late: &Power, fresh: &Power| match (late.quantile(0.5), fresh.quantile(0.5)) {
                    (Some(l), Some(f)) => format!("{:.2}", l as f64 / f as f64),
                    _ => "-".into(),
                };
            println!(
                "{label:>9} | {:>13} | {} | {} | {:>14} | {:>14} | {:>7}",
                format!(
                    "{:.1}%, {:.1}%",
                    100.0 * false_rate(&mixture_late),
                    100.0 * false_rate(&today_late)
                ),
                cell(g, &m),
                cell(g, &t),
                format!(
                    "{}, {}",
                    requests(mixture.quantile(0.5)),
                    requests(today.quantile(0.5))
                ),
                requests(oracle.quantile(0.5)),
                format!("{}, {}", ratio(&m, mixture), ratio(&t, today)),
            );
            println!(
                "{:>9}   oracle CUSUM (h = {h:.2}): {}; mixture / CUSUM {} (95% paired bootstrap {}), fixed SPRT / CUSUM {}",
                "",
                cell(g, &c),
                over_cusum(&m),
                median_ratio_interval(&shifted(&mixture_late), &shifted(&cusum_late))
                    .map_or("-".into(), |(lo, hi)| format!("{lo:.3} to {hi:.3}")),
                over_cusum(&t),
            );
        }
        println!(
            "{:>9}   false at the limit over an hour: mixture {:.2}%, fixed SPRT {:.2}% ({CALIBRATION_RUNS} seeds)",
            "",
            100.0 * at_limit_false_rate(g, HOUR, CALIBRATION_RUNS, |s| first_breach(&g.trial, s)),
            100.0 * at_limit_false_rate(g, HOUR, CALIBRATION_RUNS, |s| today(g, s)),
        );
        // The floor's horizon (`sprt.rs`, "the floor"): over 1/α² sub-windows the mixture is
        // promised at most 2α at the limit, whatever the traffic.
        let horizon = (1.0 / (alpha * alpha)).ceil() as u64;
        println!(
            "{:>9}   false at the limit over 1/α² sub-windows ({:.1} h): mixture {:.2}% (bound {:.2}%; {runs} seeds)",
            "",
            horizon as f64 / HOUR as f64,
            100.0 * at_limit_false_rate(g, horizon, runs, |s| first_breach(&g.trial, s)),
            100.0 * 2.0 * alpha,
        );
    }
    println!(
        "(late/fr: the late median over the same test's fresh median, mixture then fixed SPRT; caught: within 5x the oracle's fresh mean after the breach's start)\n"
    );
}

/// Seeds of the at-limit runs that calibrate the late oracle and measure false rollbacks at the
/// limit: more than the table's, as α = 0.3% needs, and disjoint from them.
const CALIBRATION_RUNS: u32 = 10_000;
const CALIBRATION_SEED: u64 = 1 << 32;

/// The late breach's information limit: Page's CUSUM of the limit against the true value (an
/// SPRT floored at zero), with the smallest threshold that keeps a canary exactly at its limit
/// under α false rollbacks over `length` sub-windows (calibrated on [`CALIBRATION_RUNS`]
/// seeds). CUSUM detects a change between two known values fastest, in the worst case over
/// when it starts, among all tests that false-alarm no more often (Moustakides, 1986); a test
/// that must hold α at the limit over this exposure cannot catch a late breach faster on
/// average without knowing its size. Lorden (1971) puts its delay near `ln(length/α)` over the
/// information rate, against `ln(1/α)` for a fresh breach: the late price is the log of the
/// exposure to be protected.
fn cusum_threshold(g: &Guard, multiple: f64, length: u64, alpha: f64) -> f64 {
    let mut maxima: Vec<f64> = (0..u64::from(CALIBRATION_RUNS))
        .map(|i| {
            let at_limit = slots(g, 1.0, CALIBRATION_SEED + i).take(length as usize);
            sprt_path(g, multiple, Some(0.0), at_limit)
                .flatten()
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    maxima.sort_by(f64::total_cmp);
    // At most ⌊α·runs⌋ runs reach the threshold: just above the next largest maximum.
    let allowed = (alpha * f64::from(CALIBRATION_RUNS)).floor() as usize;
    let at = maxima[maxima.len() - 1 - allowed];
    at + 1e-9 * at.abs().max(1.0)
}

/// The share of `runs` runs of `length` sub-windows, the canary exactly at its limit, that
/// `test` rolls back (seeds from [`CALIBRATION_SEED`]).
fn at_limit_false_rate(
    g: &Guard,
    length: u64,
    runs: u32,
    test: impl Fn(std::iter::Take<Slots>) -> Option<u64>,
) -> f64 {
    let rolled_back = (0..u64::from(runs))
        .filter(|i| test(slots(g, 1.0, CALIBRATION_SEED + i).take(length as usize)).is_some())
        .count();
    rolled_back as f64 / f64::from(runs)
}

/// Canary requests in `slots` sub-windows.
fn requests(g: &Guard, slots: Option<u64>) -> String {
    match slots {
        Some(s) => format!("{:.0}", s as f64 * g.canary_per_slot),
        None => "-".into(),
    }
}

/// A test's cell: the share rolled back, and the median (95th percentile) canary requests.
fn cell(g: &Guard, p: &Power) -> String {
    format!(
        "{:>5.1}% {:>8} ({:>7})",
        100.0 * p.rate(),
        requests(g, p.quantile(0.5)),
        requests(g, p.quantile(0.95))
    )
}

/// `run(seed)` for every seed of a cell, in seed order.
fn per_seed(runs: u32, run: impl Fn(u64) -> Option<u64>) -> Vec<Option<u64>> {
    (0..u64::from(runs)).map(|i| run(SEED + i)).collect()
}

/// The record of per-seed results.
fn power(runs: &[Option<u64>]) -> Power {
    Power::of(runs.len() as u32, |i| runs[i as usize])
}

/// The guard's sub-windows with the canary at `multiple` times the limit.
fn slots(g: &Guard, multiple: f64, seed: u64) -> Slots {
    Slots::new(g.traffic, g.traffic.rates(&g.trial.model, multiple), seed)
}

/// The guard's sub-windows with the canary equal to stable for an hour, then at `multiple`
/// times the limit.
fn late_slots(g: &Guard, multiple: f64, seed: u64) -> Slots {
    slots(g, g.equal_to_stable, seed).changing_at(HOUR, g.traffic.rates(&g.trial.model, multiple))
}

/// The median (as [`Power::quantile`] reads it: a miss counts as later than any catch) of
/// `a`'s runs over `b`'s, paired seed by seed: a percentile interval over [`RESAMPLES`]
/// resamples of the seeds with replacement. `None` if a resample's median is a miss.
fn median_ratio_interval(a: &[Option<u64>], b: &[Option<u64>]) -> Option<(f64, f64)> {
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let mut rng = SplitMix64(BOOTSTRAP_SEED);
    let rank = n.div_ceil(2) - 1;
    let (mut ra, mut rb) = (vec![0u64; n], vec![0u64; n]);
    let mut ratios = Vec::with_capacity(RESAMPLES as usize);
    for _ in 0..RESAMPLES {
        for (x, y) in ra.iter_mut().zip(rb.iter_mut()) {
            let i = (rng.next_u64() % n as u64) as usize;
            *x = a[i].unwrap_or(u64::MAX);
            *y = b[i].unwrap_or(u64::MAX);
        }
        let (ma, mb) = (
            *ra.select_nth_unstable(rank).1,
            *rb.select_nth_unstable(rank).1,
        );
        if ma == u64::MAX || mb == u64::MAX {
            return None;
        }
        ratios.push(ma as f64 / mb as f64);
    }
    ratios.sort_by(f64::total_cmp);
    let at =
        |q: f64| ratios[((q * f64::from(RESAMPLES)).ceil() as usize).clamp(1, ratios.len()) - 1];
    Some((at(0.025), at(0.975)))
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
/// optional floor, on the same traffic as the engine's test: sub-windows to a breach, or `None`
/// if `slots` run out first.
fn fixed_sprt(
    g: &Guard,
    alternative: f64,
    threshold: f64,
    floor: Option<f64>,
    slots: impl Iterator<Item = (u64, u64, u64, u64)>,
) -> Option<u64> {
    sprt_path(g, alternative, floor, slots)
        .position(|llr| llr.is_some_and(|llr| llr >= threshold))
        .map(|slot| slot as u64 + 1)
}

/// Wald's statistic of the limit against `alternative` times it, sub-window by sub-window, with
/// an optional floor: `None` until the guard's `min_samples`, then the statistic.
fn sprt_path(
    g: &Guard,
    alternative: f64,
    floor: Option<f64>,
    slots: impl Iterator<Item = (u64, u64, u64, u64)>,
) -> impl Iterator<Item = Option<f64>> {
    let (model, min_samples) = (g.trial.model, g.trial.min_samples);
    let (null, alt) = (model.null(), model.alternative(alternative));
    let (mut llr, mut samples) = (0.0, 0u64);
    slots.map(move |(x_w, n_w, x_o, n_o)| {
        llr += match model {
            Model::Rate { .. } => bernoulli_llr(x_w, n_w, null, alt),
            Model::Ratio { .. } => split_llr(x_w, x_o, n_w, n_o, null, alt),
        };
        if let Some(f) = floor {
            llr = f64::max(llr, f);
        }
        samples += n_w;
        (samples >= min_samples).then_some(llr)
    })
}

/// The test the mixture replaced: Wald's SPRT against the design effect at α = 0.0025,
/// β = 0.2, floored at the healthy boundary, as the engine ran it.
fn today(g: &Guard, slots: impl Iterator<Item = (u64, u64, u64, u64)>) -> Option<u64> {
    let wald = ((1.0 - 0.2) / 0.0025f64).ln();
    fixed_sprt(g, g.trial.design, wald, Some(-wald), slots)
}

/// Flagger's analysis: every minute, the minute's value against the limit; a rollback at the
/// fifth failed check. A minute without data is not a check.
fn fixed_threshold(g: &Guard, slots: impl Iterator<Item = (u64, u64, u64, u64)>) -> Option<u64> {
    let model = g.trial.model;
    let mut minute = (0u64, 0u64, 0u64, 0u64);
    let mut failed = 0;
    for (slot, (x_w, n_w, x_o, n_o)) in slots.enumerate() {
        let slot = slot as u64 + 1;
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
        "\nThrough the engine, {runs} runs: identical arms for an hour, rolled back (any guard): {}, held: {}",
        share(f64::from(report.rolled_back), runs),
        share(f64::from(report.held), runs),
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
        "Through the engine, {runs} runs: errors 1% -> 2%, rolled back by `error rate` within 20,000 canary requests: {}; median canary requests to rollback {}",
        share(within as f64, runs),
        report
            .canary_requests_to_rollback
            .map_or("-".into(), |s| format!("{:.0}", s.median))
    );
}

/// `count` of `runs` as a percentage with its binomial standard error.
fn share(count: f64, runs: u32) -> String {
    let n = f64::from(runs.max(1));
    let p = count / n;
    format!(
        "{:.1}% (s.e. {:.1})",
        100.0 * p,
        100.0 * (p * (1.0 - p) / n).sqrt()
    )
}
