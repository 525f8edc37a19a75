//! The engine's tuning: what the sequential tests and the window need beyond the plan.

use serde::{Deserialize, Serialize};

use super::sprt::Bounds;

/// Tuning that the plan does not carry. The defaults are what BENCHMARKS.md measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Per test: the chance that a canary at its limit is called a breach, at most
    /// `α + N·α³` within `N` sub-windows (see [`super::sprt`], "the floor").
    pub alpha: f64,
    /// Per test: the chance of calling a canary that breaches by the design effect healthy.
    pub beta: f64,
    /// The design effect of rate and ratio tests, as a multiple of the limit: half of the
    /// mixture's prior, and the breach size that "healthy" rejects.
    pub detect: f64,
    /// The latency tests' design effect: the share of canary requests above the threshold is
    /// this multiple of `1 - quantile` (a +20% p99 shift of a lognormal with σ = 0.5 gives
    /// about 2.5).
    pub latency_detect: f64,
    /// Length of a sub-window (must match the [`Window`](super::Window)'s).
    pub slot_ms: u32,
    /// How long after a sub-window ends before it is read, so every worker has flushed into it.
    pub settle_ms: u32,
    /// The stable latency reference is halved whenever it holds this many samples, so it
    /// follows recent traffic.
    pub reference_cap: u64,
    /// Stable samples the reference needs before a latency-ratio test uses it; at least
    /// `10 / (1 - quantile)`.
    pub min_reference: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            alpha: 0.003,
            beta: 0.2,
            detect: 2.0,
            latency_detect: 2.5,
            slot_ms: 1000,
            settle_ms: 0,
            reference_cap: 1 << 16,
            min_reference: 2000,
        }
    }
}

impl Params {
    /// The sequential tests' boundaries.
    pub fn bounds(&self) -> Bounds {
        Bounds::new(self.alpha, self.beta)
    }
}
