//! One sequential test of one guard bound: what it compares, and how a sub-window's counters
//! move its statistic.

use super::hist::Histogram;
use super::sprt::{Bounds, bernoulli_llr, split_llr};
use super::state::CheckState;
use super::window::Counters;

/// What a check tests: H0 at the guard's bound (`p0`, `rho0`), H1 at the effect the test is
/// tuned to detect (`p1`, `rho1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Test {
    /// Canary errors per completed request against `p0`.
    ErrorRate { p0: f64, p1: f64 },
    /// Canary error rate against stable's times `rho0`.
    ErrorRatio { rho0: f64, rho1: f64 },
    /// Canary requests at or above `micros` against `p0 = 1 - quantile`.
    LatencyAbove { micros: u64, p0: f64, p1: f64 },
    /// Canary requests at or above `ratio ×` stable's `quantile` against `p0 = 1 - quantile`.
    LatencyRatio {
        quantile: f64,
        ratio: f64,
        p0: f64,
        p1: f64,
    },
    /// Positive (or, `below`, non-positive) outcomes in `cell` against `p0`.
    OutcomeRate {
        cell: u8,
        below: bool,
        p0: f64,
        p1: f64,
    },
    /// Canary's positive rate in `cell` against stable's times `rho0` (`below`: stable's
    /// against the canary's, for a lower bound).
    OutcomeRatio {
        cell: u8,
        below: bool,
        rho0: f64,
        rho1: f64,
    },
}

/// One sequential test of one guard bound (a guard with two bounds, or one per segment value,
/// has several).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub guard: u16,
    /// What is tested, for logs: e.g. `error_rate <= 2%`, `outcome_ratio[age=65+] <= 1.2`.
    pub label: String,
    pub min_samples: u64,
    pub(super) test: Test,
}

/// H1 for a rate `p0`: `p0 × factor`, kept below 1.
pub(super) fn raise(p0: f64, factor: f64) -> f64 {
    let p1 = p0 * factor;
    if p1 < 1.0 { p1 } else { (p0 + 1.0) / 2.0 }
}

impl Check {
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
        // (canary events, canary samples, stable events, stable samples, increment)
        let (xc, nc, xs, ns, inc) = match self.test {
            Test::ErrorRate { p0, p1 } => {
                let (x, n) = (canary.errors(), canary.completed());
                (
                    x,
                    n,
                    stable.errors(),
                    stable.completed(),
                    bernoulli_llr(x, n, p0, p1),
                )
            }
            Test::ErrorRatio { rho0, rho1 } => {
                let (xc, nc, xs, ns) = (
                    canary.errors(),
                    canary.completed(),
                    stable.errors(),
                    stable.completed(),
                );
                (xc, nc, xs, ns, split_llr(xc, xs, nc, ns, rho0, rho1))
            }
            Test::LatencyAbove { micros, p0, p1 } => {
                s.threshold = micros as f64;
                let ((x, n), (xs, ns)) = (above(canary, micros), above(stable, micros));
                (x, n, xs, ns, bernoulli_llr(x, n, p0, p1))
            }
            Test::LatencyRatio {
                quantile,
                ratio,
                p0,
                p1,
            } => {
                let need = min_reference.max((10.0 / (1.0 - quantile)).ceil() as u64);
                let base = reference
                    .quantile(quantile)
                    .filter(|_| reference.total() >= need);
                match base {
                    // No reference yet: the canary's requests are not tested (and not counted).
                    None => (0, 0, 0, 0, 0.0),
                    Some(q) => {
                        let micros = Histogram::bound_at_or_above(q * ratio);
                        s.threshold = micros as f64;
                        let ((x, n), (xs, ns)) = (above(canary, micros), above(stable, micros));
                        // Slowness common to both arms (a busy host, a pause, a burst)
                        // is not the canary's: in a sub-window where the stable arm itself
                        // clearly exceeds the threshold more often than `1 - quantile`, the
                        // canary is held to the stable arm's rate instead. "Clearly": a
                        // two-sigma Poisson lower bound, so that the noise of a few stable
                        // events does not blunt the test.
                        let xs_low = (xs as f64 - 2.0 * (xs as f64).sqrt()).max(0.0);
                        let stable_rate = if ns == 0 { 0.0 } else { xs_low / ns as f64 };
                        let p0_now = p0.max(stable_rate);
                        let p1_now = raise(p0_now, p1 / p0);
                        (x, n, xs, ns, bernoulli_llr(x, n, p0_now, p1_now))
                    }
                }
            }
            Test::OutcomeRate {
                cell,
                below,
                p0,
                p1,
            } => {
                let (c, st) = (
                    canary.outcomes[usize::from(cell)],
                    stable.outcomes[usize::from(cell)],
                );
                let x = if below {
                    c.total - c.positive.min(c.total)
                } else {
                    c.positive.min(c.total)
                };
                let xs = if below {
                    st.total - st.positive.min(st.total)
                } else {
                    st.positive.min(st.total)
                };
                let (x, n) = (u64::from(x), u64::from(c.total));
                (
                    x,
                    n,
                    u64::from(xs),
                    u64::from(st.total),
                    bernoulli_llr(x, n, p0, p1),
                )
            }
            Test::OutcomeRatio {
                cell,
                below,
                rho0,
                rho1,
            } => {
                let (c, st) = (
                    canary.outcomes[usize::from(cell)],
                    stable.outcomes[usize::from(cell)],
                );
                let (xc, nc) = (u64::from(c.positive.min(c.total)), u64::from(c.total));
                let (xs, ns) = (u64::from(st.positive.min(st.total)), u64::from(st.total));
                let inc = if below {
                    split_llr(xs, xc, ns, nc, rho0, rho1)
                } else {
                    split_llr(xc, xs, nc, ns, rho0, rho1)
                };
                (xc, nc, xs, ns, inc)
            }
        };
        s.llr = bounds.add(s.llr, inc);
        s.canary_events = s.canary_events.saturating_add(xc);
        s.canary_samples = s.canary_samples.saturating_add(nc);
        s.stable_events = s.stable_events.saturating_add(xs);
        s.stable_samples = s.stable_samples.saturating_add(ns);
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
            Test::OutcomeRate {
                cell, below, p0, ..
            } => {
                let o = canary_w.outcomes[usize::from(cell)];
                let limit = if below { 1.0 - p0 } else { p0 };
                (limit, rate(u64::from(o.positive), u64::from(o.total)))
            }
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
