//! One sequential test of one guard bound: what it compares, and how a sub-window's counters
//! move its statistic.

use super::drift;
use super::hist::Histogram;
use super::params::Params;
use super::power::Trial;
use super::sprt::{Bounds, Model};
use super::state::CheckState;
use super::window::Counters;

/// What a check compares, with its bound: `p0` a rate, `rho0` a ratio to stable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Test {
    /// Canary errors per completed request against `p0`.
    ErrorRate { p0: f64 },
    /// Canary error rate against stable's times `rho0`.
    ErrorRatio { rho0: f64 },
    /// Canary requests at or above `micros` against `p0 = 1 - quantile`.
    LatencyAbove { micros: u64, p0: f64 },
    /// Canary requests at or above `ratio ×` stable's `quantile` against `p0 = 1 - quantile`.
    LatencyRatio { quantile: f64, ratio: f64, p0: f64 },
    /// Positive outcomes in `cell` at most `limit` (`below`: at least `limit`).
    OutcomeRate { cell: u8, below: bool, limit: f64 },
    /// Canary's positive rate in `cell` against stable's times `rho0` (`below`: stable's
    /// against the canary's, for a lower bound).
    OutcomeRatio { cell: u8, below: bool, rho0: f64 },
    /// The canary's histogram in `buckets` cells from `first` against stable's (see
    /// [`super::drift`]).
    Distribution { first: u8, buckets: u8 },
}

/// One sequential test of one guard bound (a guard with two bounds, or one per segment value,
/// has several).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub guard: u16,
    /// What is tested, for logs: e.g. `error_rate <= 2%`, `outcome_ratio[age=65+] <= 1.2`.
    pub label: String,
    pub min_samples: u64,
    /// The breach size, as a multiple of the limit, that carries half the test's prior and
    /// that "healthy" rejects (see [`super::sprt`]).
    pub design: f64,
    pub(super) test: Test,
}

/// One sub-window's counts for a test: (watched arm's events, its samples, the other arm's
/// events, its samples).
type Counts = (u64, u64, u64, u64);

impl Check {
    /// The statistical model of this check's bound, and whether its watched arm is stable (a
    /// lower bound on a ratio watches stable against the canary). Latency-ratio checks are
    /// modelled at their nominal tail share. `None` for a distribution check, which has no
    /// bound: its null is "equal histograms" and its alternative is learnt
    /// ([`super::drift`]).
    pub fn model(&self) -> Option<(Model, bool)> {
        Some(match self.test {
            Test::ErrorRate { p0 } | Test::LatencyAbove { p0, .. } => {
                (Model::rate(p0, false), false)
            }
            Test::LatencyRatio { p0, .. } => (Model::rate(p0, false), false),
            Test::OutcomeRate { below, limit, .. } => (Model::rate(limit, below), false),
            Test::ErrorRatio { rho0 } => (Model::Ratio { rho0 }, false),
            Test::OutcomeRatio { below, rho0, .. } => (Model::Ratio { rho0 }, below),
            Test::Distribution { .. } => return None,
        })
    }

    /// A distribution check's cells: the first and how many.
    pub fn distribution(&self) -> Option<(u8, u8)> {
        match self.test {
            Test::Distribution { first, buckets } => Some((first, buckets)),
            _ => None,
        }
    }

    /// The outcome cell this check counts in, if it is an outcome check.
    pub fn cell(&self) -> Option<u8> {
        match self.test {
            Test::OutcomeRate { cell, .. } | Test::OutcomeRatio { cell, .. } => Some(cell),
            _ => None,
        }
    }

    /// This check's test as [`super::power`] plays it (a bound's test; `None` for a
    /// distribution check, which [`super::power::slots_to_drift`] plays).
    pub fn trial(&self, params: &Params) -> Option<Trial> {
        Some(Trial {
            model: self.model()?.0,
            design: self.design,
            min_samples: self.min_samples,
            bounds: params.bounds(),
        })
    }

    /// Feed one completed sub-window's counters to this check's test. `reference` is stable's
    /// decayed latency, which a latency-ratio test needs `min_reference` samples of.
    pub(super) fn feed(
        &self,
        s: &mut CheckState,
        stable: &Counters,
        canary: &Counters,
        reference: &Histogram,
        min_reference: u64,
        bounds: &Bounds,
    ) {
        if let Test::Distribution { first, buckets } = self.test {
            drift::feed(s, &drift::counts(first, buckets, stable, canary), bounds);
            return;
        }
        let Some((model, (xc, nc, xs, ns))) =
            self.counts(s, stable, canary, reference, min_reference)
        else {
            return;
        };
        let Some((_, swapped)) = self.model() else {
            return;
        };
        let watched = if swapped {
            (xs, ns, xc, nc)
        } else {
            (xc, nc, xs, ns)
        };
        s.evidence
            .add(&model.increments(self.design, watched), bounds);
        s.canary_events = s.canary_events.saturating_add(xc);
        s.canary_samples = s.canary_samples.saturating_add(nc);
        s.stable_events = s.stable_events.saturating_add(xs);
        s.stable_samples = s.stable_samples.saturating_add(ns);
    }

    /// The model for this sub-window and the arms' counts (canary first); `None` when the
    /// sub-window cannot be tested yet.
    fn counts(
        &self,
        s: &mut CheckState,
        stable: &Counters,
        canary: &Counters,
        reference: &Histogram,
        min_reference: u64,
    ) -> Option<(Model, Counts)> {
        let errors = |a: &Counters| (a.errors(), a.completed());
        let positives = |a: &Counters, cell: u8, below: bool| {
            let o = a.outcomes[usize::from(cell)];
            let positive = o.positive.min(o.total);
            let x = if below { o.total - positive } else { positive };
            (u64::from(x), u64::from(o.total))
        };
        let join = |(xc, nc): (u64, u64), (xs, ns): (u64, u64)| (xc, nc, xs, ns);
        let (model, _) = self.model()?;
        match self.test {
            Test::Distribution { .. } => None,
            Test::ErrorRate { .. } | Test::ErrorRatio { .. } => {
                Some((model, join(errors(canary), errors(stable))))
            }
            Test::LatencyAbove { micros, .. } => {
                s.threshold = micros as f64;
                Some((model, join(above(canary, micros), above(stable, micros))))
            }
            Test::LatencyRatio {
                quantile,
                ratio,
                p0,
            } => {
                let need = min_reference.max((10.0 / (1.0 - quantile)).ceil() as u64);
                // No reference yet: the canary's requests are not tested (and not counted).
                let q = reference
                    .quantile(quantile)
                    .filter(|_| reference.total() >= need)?;
                let micros = Histogram::bound_at_or_above(q * ratio);
                s.threshold = micros as f64;
                let (c, st) = (above(canary, micros), above(stable, micros));
                // Slowness common to both arms (a busy host, a pause, a burst) is not the
                // canary's: in a sub-window where the stable arm itself clearly exceeds the
                // threshold more often than `1 - quantile`, the canary is held to the stable
                // arm's rate instead. "Clearly": a two-sigma Poisson lower bound, so that the
                // noise of a few stable events does not blunt the test.
                let (xs, ns) = st;
                let xs_low = (xs as f64 - 2.0 * (xs as f64).sqrt()).max(0.0);
                let stable_rate = if ns == 0 { 0.0 } else { xs_low / ns as f64 };
                Some((Model::rate(p0.max(stable_rate), false), join(c, st)))
            }
            Test::OutcomeRate { cell, below, .. } => Some((
                model,
                join(
                    positives(canary, cell, below),
                    positives(stable, cell, below),
                ),
            )),
            Test::OutcomeRatio { cell, .. } => Some((
                model,
                join(
                    positives(canary, cell, false),
                    positives(stable, cell, false),
                ),
            )),
        }
    }

    /// The bound under test and the same quantity over the window's totals, for reading.
    pub(super) fn measure(&self, stable_w: &Counters, canary_w: &Counters) -> (f64, Option<f64>) {
        let rate = |x: u64, n: u64| {
            if n == 0 {
                None
            } else {
                Some(x as f64 / n as f64)
            }
        };
        match self.test {
            Test::ErrorRate { p0, .. } => (p0, rate(canary_w.errors(), canary_w.completed())),
            Test::ErrorRatio { rho0, .. } => (
                rho0,
                rate(canary_w.errors(), canary_w.completed())
                    .zip(rate(stable_w.errors(), stable_w.completed()))
                    .and_then(|(a, b)| (b > 0.0).then(|| a / b)),
            ),
            Test::LatencyAbove { micros, p0, .. } => (
                micros as f64 / 1000.0,
                canary_w.latency.quantile(1.0 - p0).map(|us| us / 1000.0),
            ),
            Test::LatencyRatio {
                quantile, ratio, ..
            } => (
                ratio,
                canary_w
                    .latency
                    .quantile(quantile)
                    .zip(stable_w.latency.quantile(quantile))
                    .and_then(|(a, b)| (b > 0.0).then(|| a / b)),
            ),
            Test::OutcomeRate { cell, limit, .. } => {
                let o = canary_w.outcomes[usize::from(cell)];
                (limit, rate(u64::from(o.positive), u64::from(o.total)))
            }
            // No bound: the null is equality, and the window's PSI is what people read.
            Test::Distribution { first, buckets } => (
                0.0,
                drift::psi(&drift::counts(first, buckets, stable_w, canary_w)),
            ),
            Test::OutcomeRatio {
                cell, below, rho0, ..
            } => {
                let (a, b) = (
                    canary_w.outcomes[usize::from(cell)],
                    stable_w.outcomes[usize::from(cell)],
                );
                let limit = if below { 1.0 / rho0 } else { rho0 };
                (
                    limit,
                    rate(u64::from(a.positive), u64::from(a.total))
                        .zip(rate(u64::from(b.positive), u64::from(b.total)))
                        .and_then(|(a, b)| (b > 0.0).then(|| a / b)),
                )
            }
        }
    }

    /// Whether the test compares latencies (its evidence then carries the threshold).
    pub(super) fn is_latency(&self) -> bool {
        matches!(
            self.test,
            Test::LatencyAbove { .. } | Test::LatencyRatio { .. }
        )
    }
}

/// An arm's requests at or above `micros`, and all its timed requests.
fn above(arm: &Counters, micros: u64) -> (u64, u64) {
    (arm.latency.count_at_or_above(micros), arm.latency.total())
}
