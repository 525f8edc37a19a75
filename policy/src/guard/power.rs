//! What a guard can catch, before the rollout starts: its sequential test played over
//! synthetic sub-windows for many seeds, fast enough for `serin check` to run per guard.
//!
//! Only the counts a test reads are simulated. Each sub-window carries the arms' expected
//! number of samples (rounded at random to a neighbouring integer); the tests condition on
//! exposures, so drawing them from a Poisson law would add time, not realism. The events are
//! binomial. A sub-window's increments are linear in its event counts for a given exposure,
//! so they are computed once per exposure with [`Model::increments`] and scaled: the same
//! function the engine calls, at a fraction of the cost.
//!
//! `serin simulate` plays whole rollouts through the engine instead; this module answers the
//! narrower question "how many canary requests until this guard catches a breach of this
//! size", which `serin check`, `serin explain --guards` and the detection bench ask.

use std::fmt::Write as _;

use serde::Serialize;

use super::check::Check;
use super::drift;
use super::layout::Cell;
use super::machine::Rollout;
use super::params::Params;
use super::sprt::{Bounds, EFFECTS, Evidence, Model, Verdict};
use super::state::CheckState;
use crate::sim::SplitMix64;

/// One guard bound's test, as the engine runs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub model: Model,
    /// The design effect (see [`super::Check::design`]).
    pub design: f64,
    pub min_samples: u64,
    pub bounds: Bounds,
}

/// The traffic one test sees, per sub-window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Expected samples on the watched arm (usually the canary) per sub-window.
    pub watched: f64,
    /// Expected samples on the other arm per sub-window (a ratio test's reference).
    pub other: f64,
    /// The other arm's event rate: a ratio test's baseline (a rate test ignores it).
    pub base_rate: f64,
}

impl Traffic {
    /// The watched and the other arm's event rates when the watched arm breaches by
    /// `multiple` times the limit (1: exactly at the limit).
    pub fn rates(&self, model: &Model, multiple: f64) -> (f64, f64) {
        match model {
            Model::Rate { .. } => (model.alternative(multiple).clamp(0.0, 1.0), self.base_rate),
            Model::Ratio { .. } => (
                (self.base_rate * model.alternative(multiple)).clamp(0.0, 1.0),
                self.base_rate,
            ),
        }
    }
}

/// Synthetic sub-windows: `(watched events, watched samples, other events, other samples)`.
pub struct Slots {
    rng: SplitMix64,
    traffic: Traffic,
    rates: (f64, f64),
    /// Sub-windows drawn so far.
    drawn: u64,
    /// From this sub-window on (counted from 0), these rates: a canary that changes mid-run.
    change: Option<(u64, (f64, f64))>,
}

impl Slots {
    pub fn new(traffic: Traffic, rates: (f64, f64), seed: u64) -> Slots {
        Slots {
            rng: SplitMix64(seed ^ 0x5EC0_57A7_1571_C5A1),
            traffic,
            rates,
            drawn: 0,
            change: None,
        }
    }

    /// The same sub-windows until `at` of them have been drawn, then drawn at `rates`: a
    /// regression that starts late. The draws before `at` are those of [`Slots::new`] alone.
    pub fn changing_at(self, at: u64, rates: (f64, f64)) -> Slots {
        Slots {
            change: Some((at, rates)),
            ..self
        }
    }
}

impl Iterator for Slots {
    type Item = (u64, u64, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((at, rates)) = self.change
            && self.drawn >= at
        {
            self.rates = rates;
            self.change = None;
        }
        self.drawn += 1;
        let n_w = round_at_random(&mut self.rng, self.traffic.watched);
        let n_o = round_at_random(&mut self.rng, self.traffic.other);
        let x_w = binomial(&mut self.rng, n_w, self.rates.0);
        let x_o = binomial(&mut self.rng, n_o, self.rates.1);
        Some((x_w, n_w, x_o, n_o))
    }
}

/// A sub-window's exposures (watched, other), and the increments of one event of each kind.
type Exposure = (u64, u64);
type Units = ([f64; EFFECTS], [f64; EFFECTS]);

/// An outcome cell's key: `(outcome, Some((segment, value index)))`, or `(outcome, None)`.
pub type CellKey = (u8, Option<(u8, u16)>);

/// Play one test until it calls a breach or has seen `max_slots` sub-windows; the number of
/// sub-windows consumed at the breach.
pub fn slots_to_breach(
    trial: &Trial,
    traffic: Traffic,
    multiple: f64,
    max_slots: u64,
    seed: u64,
) -> Option<u64> {
    let rates = traffic.rates(&trial.model, multiple);
    first_breach(
        trial,
        Slots::new(traffic, rates, seed).take(usize::try_from(max_slots).unwrap_or(usize::MAX)),
    )
}

/// Play one test over `slots` until it calls a breach; the number of sub-windows consumed at
/// the breach, or `None` if they run out first. ([`slots_to_breach`] with a canary that
/// changes mid-run: [`Slots::changing_at`].)
pub fn first_breach(
    trial: &Trial,
    slots: impl Iterator<Item = (u64, u64, u64, u64)>,
) -> Option<u64> {
    let mut evidence = Evidence::default();
    let mut samples = 0u64;
    // Per exposure: the increments of one watched event and of one other event (a ratio
    // test), or of one event and one non-event (a rate test).
    let mut cache: Vec<(Exposure, Units)> = Vec::new();
    for (slot, (x_w, n_w, x_o, n_o)) in slots.enumerate() {
        let key = match trial.model {
            Model::Rate { .. } => (0, 0),
            Model::Ratio { .. } => (n_w, n_o),
        };
        let (a, b) = match cache.iter().find(|(k, _)| *k == key) {
            Some((_, units)) => *units,
            None => {
                let units = match trial.model {
                    Model::Rate { .. } => ((1, 1, 0, 0), (0, 1, 0, 0)),
                    Model::Ratio { .. } => ((1, n_w, 0, n_o), (0, n_w, 1, n_o)),
                };
                let a = trial.model.increments(trial.design, units.0);
                let b = trial.model.increments(trial.design, units.1);
                cache.push((key, (a, b)));
                (a, b)
            }
        };
        let (ca, cb) = match trial.model {
            Model::Rate { .. } => (x_w as f64, (n_w - x_w) as f64),
            Model::Ratio { .. } => (x_w as f64, x_o as f64),
        };
        let mut inc = [0.0; EFFECTS];
        for ((i, a), b) in inc.iter_mut().zip(a).zip(b) {
            *i = ca * a + cb * b;
        }
        evidence.add(&inc, &trial.bounds);
        samples += n_w;
        if samples >= trial.min_samples && evidence.verdict(&trial.bounds) == Verdict::Breach {
            return Some(slot as u64 + 1);
        }
    }
    None
}

/// A test's record over many seeds at one breach size.
#[derive(Debug, Clone, PartialEq)]
pub struct Power {
    pub runs: u32,
    /// Sub-windows to a breach, sorted, for the runs that reached one.
    pub caught: Vec<u64>,
}

impl Power {
    /// Play `runs` seeds from `seed`.
    pub fn measure(
        trial: &Trial,
        traffic: Traffic,
        multiple: f64,
        max_slots: u64,
        runs: u32,
        seed: u64,
    ) -> Power {
        Power::of(runs, |i| {
            slots_to_breach(trial, traffic, multiple, max_slots, seed + i)
        })
    }

    /// The record of any test: `run(seed)` for seeds `0..runs` gives the sub-windows to its
    /// breach, if any.
    pub fn of(runs: u32, run: impl Fn(u64) -> Option<u64>) -> Power {
        let mut caught: Vec<u64> = (0..u64::from(runs)).filter_map(run).collect();
        caught.sort_unstable();
        Power { runs, caught }
    }

    /// The mean sub-windows to a breach over the runs that reached one.
    pub fn mean(&self) -> Option<f64> {
        (!self.caught.is_empty())
            .then(|| self.caught.iter().sum::<u64>() as f64 / self.caught.len() as f64)
    }

    /// The share of runs that reached a breach.
    pub fn rate(&self) -> f64 {
        self.caught.len() as f64 / f64::from(self.runs.max(1))
    }

    /// Sub-windows by which a share `q` of all runs reached a breach; `None` if fewer did.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let rank = (q * f64::from(self.runs)).ceil().max(1.0) as usize;
        self.caught.get(rank - 1).copied()
    }
}

/// What a rollout's traffic is expected to look like, for a power table.
pub struct Baseline {
    /// Requests per second at one proxy (each proxy's guards judge its own traffic).
    pub rps: f64,
    /// The canary's share of requests, 0 to 1.
    pub canary_share: f64,
    /// Stable's error rate: an error-ratio guard's baseline.
    pub error_rate: f64,
    /// For an outcome cell (`(outcome, Some((segment, value index)))`, or `(outcome, None)`
    /// overall): stable's positive rate there, and the share of requests that fall in it.
    pub cell: Box<dyn Fn(CellKey) -> (f64, f64)>,
}

/// A baseline for a plan before any traffic is known: stable fails 1% of requests, each
/// outcome is positive for 5% of requests, and a segment's declared values and "other" take
/// equal shares. `serin simulate` replaces these with a scenario's numbers.
pub fn assumed_baseline(plan: &crate::Plan, rps: f64, canary_share: f64) -> Baseline {
    let values: Vec<usize> = plan.segments.iter().map(|s| s.values.len()).collect();
    Baseline {
        rps,
        canary_share,
        error_rate: ASSUMED_ERROR_RATE,
        cell: Box::new(move |(_, segment)| {
            let share = segment.map_or(1.0, |(s, _)| {
                1.0 / (values.get(usize::from(s)).copied().unwrap_or(0) + 1) as f64
            });
            (ASSUMED_POSITIVE_RATE, share)
        }),
    }
}

/// [`assumed_baseline`]'s stable error rate.
pub const ASSUMED_ERROR_RATE: f64 = 0.01;
/// [`assumed_baseline`]'s positive rate of every outcome.
pub const ASSUMED_POSITIVE_RATE: f64 = 0.05;

/// How soon one check catches breaches of several sizes, and how often it rolls back a canary
/// exactly at its limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckPower {
    pub guard: String,
    pub check: String,
    /// Per breach size (a multiple of the limit): the median canary requests (all of the
    /// canary's, not only those the check counts) and seconds to a rollback; `None` when fewer
    /// than half the runs catch it within the horizon.
    pub catches: Vec<Catch>,
    /// The share of runs with the canary exactly at the limit that breach within an hour.
    pub false_rollback_at_limit: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catch {
    pub multiple: f64,
    pub median_canary_requests: Option<f64>,
    pub median_seconds: Option<f64>,
}

/// The breach sizes a power table shows, as multiples of the limit.
pub const TABLE_MULTIPLES: [f64; 3] = [1.25, 1.5, 2.0];

impl Rollout {
    /// The traffic `check` sees per sub-window under `baseline`.
    pub fn traffic(&self, check: &Check, baseline: &Baseline) -> Traffic {
        let slot = f64::from(self.params.slot_ms) / 1000.0;
        let canary = baseline.rps * baseline.canary_share.clamp(0.0, 1.0) * slot;
        let stable = baseline.rps * (1.0 - baseline.canary_share.clamp(0.0, 1.0)) * slot;
        let (rate, share) = match check.cell() {
            Some(cell) => match self.layout.cells.get(usize::from(cell)) {
                Some(Cell::Outcome { outcome, segment }) => (baseline.cell)((*outcome, *segment)),
                _ => (0.0, 0.0),
            },
            None => (baseline.error_rate, 1.0),
        };
        let (watched, other) = match check.model() {
            Some((_, true)) => (stable * share, canary * share),
            _ => (canary * share, stable * share),
        };
        Traffic {
            watched,
            other,
            base_rate: rate,
        }
    }

    /// Sub-windows in a day: the horizon of a power table.
    pub fn slots_per_day(&self) -> u64 {
        86_400_000 / u64::from(self.params.slot_ms.max(1))
    }

    /// Every bound's check's power under `baseline`: `runs` seeds per breach size, each run
    /// up to `horizon_slots` sub-windows. Distribution checks have no row: a table of
    /// multiples of a limit means nothing for a test whose null is equality, and the drift
    /// that matters depends on the score's shape, which no baseline knows
    /// ([`slots_to_drift`] plays one against given histograms).
    pub fn power_table(
        &self,
        baseline: &Baseline,
        multiples: &[f64],
        runs: u32,
        horizon_slots: u64,
    ) -> Vec<CheckPower> {
        let slot = f64::from(self.params.slot_ms) / 1000.0;
        let canary_per_slot = baseline.rps * baseline.canary_share.clamp(0.0, 1.0) * slot;
        self.checks
            .iter()
            .filter_map(|c| Some((c, c.trial(&self.params)?)))
            .map(|(c, trial)| {
                let traffic = self.traffic(c, baseline);
                let catches = multiples
                    .iter()
                    .map(|&m| {
                        let p = Power::measure(&trial, traffic, m, horizon_slots, runs, 1);
                        let median = p.quantile(0.5).map(|s| s as f64);
                        Catch {
                            multiple: m,
                            median_canary_requests: median.map(|s| s * canary_per_slot),
                            median_seconds: median.map(|s| s * slot),
                        }
                    })
                    .collect();
                let hour = (3600.0 / slot).ceil() as u64;
                let at_limit = Power::measure(&trial, traffic, 1.0, hour, runs, 1);
                CheckPower {
                    guard: self.guard_name(c.guard),
                    check: c.label.clone(),
                    catches,
                    false_rollback_at_limit: at_limit.rate(),
                }
            })
            .collect()
    }
}

/// A power table for people: one row per check, the median canary requests and time to
/// catch each breach size, and the false-rollback rate at the limit; under it, what the test
/// promises at the limit under `params` (see [`super::sprt`], "the floor").
pub fn render(rows: &[CheckPower], params: &Params) -> String {
    let mut out = String::new();
    let multiples: Vec<f64> = rows
        .first()
        .map(|r| r.catches.iter().map(|c| c.multiple).collect())
        .unwrap_or_default();
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{}: {}", r.guard, r.check))
        .collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    let _ = write!(out, "{:<width$}", "guard: check");
    for m in &multiples {
        let _ = write!(out, " {:>20}", format!("{m}x the limit"));
    }
    let _ = writeln!(out, " {:>14}", "at the limit");
    for (r, name) in rows.iter().zip(&names) {
        let _ = write!(out, "{name:<width$}");
        for c in &r.catches {
            let cell = match (c.median_canary_requests, c.median_seconds) {
                (Some(n), Some(s)) => format!("{} req, {}", round(n), duration(s)),
                _ => "not within a day".to_owned(),
            };
            let _ = write!(out, " {cell:>20}");
        }
        let _ = writeln!(
            out,
            " {:>14}",
            format!("{:.1}% false", 100.0 * r.false_rollback_at_limit)
        );
    }
    let _ = writeln!(out, "{}", promise(params));
    out
}

/// What every check promises with the canary exactly at its limit, whatever the traffic: at
/// most `α + N·α³` rolled back within `N` sub-windows, so α over an hour and 2α over `1/α²`
/// sub-windows.
pub fn promise(params: &Params) -> String {
    let a = params.alpha;
    let slot = f64::from(params.slot_ms.max(1)) / 1000.0;
    let hour = 3600.0 / slot;
    let horizon = 1.0 / (a * a) * slot;
    format!(
        "at the limit: the share of runs rolled back within an hour; each check promises at most {:.2}% in an hour and {:.2}% over {}, whatever the traffic",
        100.0 * (a + hour * a * a * a),
        200.0 * a,
        duration(horizon)
    )
}

/// A request count to two significant digits, as people read it.
fn round(n: f64) -> String {
    if n < 100.0 {
        return format!("{n:.0}");
    }
    let scale = 10f64.powi(n.log10().floor() as i32 - 1);
    let r = ((n / scale).round() * scale) as u64;
    let digits = r.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Seconds as `45s`, `12m`, `3.5h`.
pub fn duration(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0}s")
    } else if s < 5400.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{:.1}h", s / 3600.0)
    }
}

/// What a distribution check sees per sub-window: each arm's expected observations and its
/// bucket probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftTraffic {
    pub canary: f64,
    pub stable: f64,
    pub canary_buckets: Vec<f64>,
    pub stable_buckets: Vec<f64>,
}

/// Play one distribution test ([`super::drift`], the engine's own `feed`) over synthetic
/// sub-windows until it calls a breach or has seen `max_slots`; the sub-windows consumed at
/// the breach. Like [`slots_to_breach`], the arms' counts are their expected numbers rounded
/// at random, and each arm's histogram is multinomial.
pub fn slots_to_drift(
    min_samples: u64,
    bounds: &Bounds,
    traffic: &DriftTraffic,
    max_slots: u64,
    seed: u64,
) -> Option<u64> {
    let mut rng = SplitMix64(seed ^ 0xD81F_7A11_5C0E_B0C5);
    let mut state = CheckState::default();
    let buckets = traffic.stable_buckets.len();
    let mut counts = vec![[0u64; 2]; buckets];
    for slot in 0..max_slots {
        let n_c = round_at_random(&mut rng, traffic.canary);
        let n_s = round_at_random(&mut rng, traffic.stable);
        for (arm, (n, p)) in [
            (n_c, &traffic.canary_buckets),
            (n_s, &traffic.stable_buckets),
        ]
        .into_iter()
        .enumerate()
        {
            for (j, x) in multinomial(&mut rng, n, p).into_iter().enumerate() {
                counts[j][arm] = x;
            }
        }
        drift::feed(&mut state, &counts, bounds);
        if state.canary_samples >= min_samples && state.evidence.verdict(bounds) == Verdict::Breach
        {
            return Some(slot + 1);
        }
    }
    None
}

/// `n` draws over buckets with probabilities `p` (normalised), by a binomial per bucket.
pub fn multinomial(rng: &mut SplitMix64, n: u64, p: &[f64]) -> Vec<u64> {
    let mut left = n;
    let mut mass: f64 = p.iter().map(|x| x.max(0.0)).sum();
    p.iter()
        .map(|&q| {
            let q = q.max(0.0);
            let x = if mass > 0.0 {
                binomial(rng, left, (q / mass).min(1.0))
            } else {
                0
            };
            left -= x;
            mass -= q;
            x
        })
        .collect()
}

/// `x` rounded down or up at random, with the chance of up its fractional part.
fn round_at_random(rng: &mut SplitMix64, x: f64) -> u64 {
    let x = x.max(0.0);
    let floor = x.floor();
    floor as u64 + u64::from(rng.chance(x - floor))
}

/// A binomial draw by geometric skips between events: one logarithm per event, so cheap for
/// the rare events guards count (the complement is drawn for `p > 1/2`).
pub fn binomial(rng: &mut SplitMix64, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if p > 0.5 {
        return n - binomial(rng, n, 1.0 - p);
    }
    let log_q = (1.0 - p).ln();
    let (mut at, mut events) = (0u64, 0u64);
    loop {
        // The gap to the next event is geometric: floor(ln U / ln(1-p)).
        let gap = (rng.unit().ln() / log_q).floor();
        if !gap.is_finite() || gap >= (n - at) as f64 {
            return events;
        }
        at += gap as u64 + 1;
        events += 1;
        if at >= n {
            return events;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_states_the_promise_at_the_limit_with_its_horizon() {
        assert_eq!(
            promise(&Params::default()),
            "at the limit: the share of runs rolled back within an hour; each check promises at most 0.31% in an hour and 0.60% over 30.9h, whatever the traffic"
        );
    }

    #[test]
    fn counts_and_durations_read_like_people_write_them() {
        assert_eq!(round(47.0), "47");
        assert_eq!(round(14_230.0), "14,000");
        assert_eq!(round(1_234_567.0), "1,200,000");
        assert_eq!(duration(45.0), "45s");
        assert_eq!(duration(720.0), "12m");
        assert_eq!(duration(12_600.0), "3.5h");
    }

    #[test]
    fn binomial_draws_have_the_right_mean_and_variance() {
        let mut rng = SplitMix64(3);
        for (n, p) in [(100u64, 0.01), (95, 0.3), (20, 0.9), (1000, 0.5)] {
            let draws: Vec<f64> = (0..20_000)
                .map(|_| binomial(&mut rng, n, p) as f64)
                .collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
            let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
            // Five standard errors of the mean, and 10% on the variance.
            assert!(
                (mean - m).abs() < 5.0 * (v / 20_000.0).sqrt(),
                "{n} {p}: {mean}"
            );
            assert!((var / v - 1.0).abs() < 0.1, "{n} {p}: {var} against {v}");
        }
    }

    fn errors_ratio() -> (Trial, Traffic) {
        let trial = Trial {
            model: Model::Ratio { rho0: 1.5 },
            design: 2.0,
            min_samples: 500,
            bounds: Params::default().bounds(),
        };
        // 100 requests per second, 5% canary, 1% errors on stable.
        let traffic = Traffic {
            watched: 5.0,
            other: 95.0,
            base_rate: 0.01,
        };
        (trial, traffic)
    }

    #[test]
    fn a_doubling_against_a_ratio_limit_of_one_and_a_half_is_caught() {
        // The example: 1% -> 2% against max_ratio 1.5 (1.33x the limit), 5% canary at
        // 100 rps. 20,000 canary requests are 4,000 sub-windows.
        let (trial, traffic) = errors_ratio();
        let p = Power::measure(&trial, traffic, 2.0 / 1.5, 4_000, 200, 1);
        assert!(
            p.rate() >= 0.85,
            "caught in {:.1}% of runs",
            100.0 * p.rate()
        );
    }

    /// 100 requests per second, 5% canary, a score on six buckets.
    fn drift_traffic(canary_buckets: Vec<f64>) -> DriftTraffic {
        DriftTraffic {
            canary: 5.0,
            stable: 95.0,
            canary_buckets,
            stable_buckets: vec![0.1, 0.2, 0.3, 0.2, 0.1, 0.1],
        }
    }

    #[test]
    fn a_drifted_score_is_caught_and_an_equal_one_is_not() {
        let bounds = Params::default().bounds();
        // A PSI near 0.2: mass moved from the low buckets to the high ones.
        let shifted = drift_traffic(vec![0.05, 0.12, 0.28, 0.25, 0.15, 0.15]);
        let p = Power::of(100, |seed| {
            slots_to_drift(100, &bounds, &shifted, 3_600, seed)
        });
        assert!(
            p.rate() >= 0.95,
            "caught in {:.0}% of runs",
            100.0 * p.rate()
        );
        // Equal histograms for an hour: Ville's bound (α = 0.3%) with room for the floor's
        // restarts; a test that rolled back one run in ten would fail this.
        let equal = drift_traffic(vec![0.1, 0.2, 0.3, 0.2, 0.1, 0.1]);
        let p = Power::of(200, |seed| {
            slots_to_drift(100, &bounds, &equal, 3_600, seed)
        });
        assert!(p.rate() <= 0.03, "{:.1}% false", 100.0 * p.rate());
    }

    #[test]
    fn multinomial_draws_keep_their_total_and_their_shares() {
        let mut rng = SplitMix64(5);
        let p = [0.5, 0.25, 0.0, 0.25];
        let mut sum = [0u64; 4];
        for _ in 0..2_000 {
            let x = multinomial(&mut rng, 20, &p);
            assert_eq!(x.iter().sum::<u64>(), 20);
            for (s, x) in sum.iter_mut().zip(x) {
                *s += x;
            }
        }
        assert_eq!(sum[2], 0);
        assert!((sum[0] as f64 / 40_000.0 - 0.5).abs() < 0.02, "{sum:?}");
    }

    #[test]
    fn a_changing_canary_draws_the_same_sub_windows_until_the_change() {
        let (trial, traffic) = errors_ratio();
        let (equal, doubled) = (
            traffic.rates(&trial.model, 1.0 / 1.5),
            traffic.rates(&trial.model, 2.0),
        );
        let before: Vec<_> = Slots::new(traffic, equal, 7).take(100).collect();
        let changing: Vec<_> = Slots::new(traffic, equal, 7)
            .changing_at(100, doubled)
            .take(20_100)
            .collect();
        assert_eq!(changing[..100], before[..]);
        let canary_errors: u64 = changing[100..].iter().map(|s| s.0).sum();
        // 20,000 sub-windows of 5 canary requests at 3% (twice the limit of 1.5 × 1%).
        assert!(
            (2_700..3_300).contains(&canary_errors),
            "{canary_errors} canary errors"
        );
        assert_eq!(
            first_breach(&trial, Slots::new(traffic, doubled, 7).take(4_000)),
            slots_to_breach(&trial, traffic, 2.0, 4_000, 7)
        );
    }

    #[test]
    fn a_canary_equal_to_stable_is_not_rolled_back() {
        let (trial, traffic) = errors_ratio();
        let p = Power::measure(&trial, traffic, 1.0 / 1.5, 3_600, 200, 1);
        assert!(p.caught.is_empty(), "{p:?}");
    }
}
