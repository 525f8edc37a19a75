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

use super::sprt::{Bounds, EFFECTS, Evidence, Model, Verdict};
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
}

impl Slots {
    pub fn new(traffic: Traffic, rates: (f64, f64), seed: u64) -> Slots {
        Slots {
            rng: SplitMix64(seed ^ 0x5EC0_57A7_1571_C5A1),
            traffic,
            rates,
        }
    }
}

impl Iterator for Slots {
    type Item = (u64, u64, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        let n_w = round_at_random(&mut self.rng, self.traffic.watched);
        let n_o = round_at_random(&mut self.rng, self.traffic.other);
        let x_w = binomial(&mut self.rng, n_w, self.rates.0);
        let x_o = binomial(&mut self.rng, n_o, self.rates.1);
        Some((x_w, n_w, x_o, n_o))
    }
}

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
    let mut evidence = Evidence::default();
    let mut samples = 0u64;
    // Per exposure: the increments of one watched event and of one other event (a ratio
    // test), or of one event and one non-event (a rate test).
    let mut cache: Vec<((u64, u64), [f64; EFFECTS], [f64; EFFECTS])> = Vec::new();
    for (slot, (x_w, n_w, x_o, n_o)) in Slots::new(traffic, rates, seed)
        .take(usize::try_from(max_slots).unwrap_or(usize::MAX))
        .enumerate()
    {
        let key = match trial.model {
            Model::Rate { .. } => (0, 0),
            Model::Ratio { .. } => (n_w, n_o),
        };
        let (a, b) = match cache.iter().find(|(k, ..)| *k == key) {
            Some((_, a, b)) => (*a, *b),
            None => {
                let units = match trial.model {
                    Model::Rate { .. } => ((1, 1, 0, 0), (0, 1, 0, 0)),
                    Model::Ratio { .. } => ((1, n_w, 0, n_o), (0, n_w, 1, n_o)),
                };
                let a = trial.model.increments(trial.design, units.0);
                let b = trial.model.increments(trial.design, units.1);
                cache.push((key, a, b));
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
            bounds: crate::guard::Params::default().bounds(),
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

    #[test]
    fn a_canary_equal_to_stable_is_not_rolled_back() {
        let (trial, traffic) = errors_ratio();
        let p = Power::measure(&trial, traffic, 1.0 / 1.5, 3_600, 200, 1);
        assert!(p.caught.is_empty(), "{p:?}");
    }
}
