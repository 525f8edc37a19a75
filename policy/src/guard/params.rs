//! The engine's tuning: what the sequential tests and the window need beyond the plan.

use serde::{Deserialize, Serialize};

/// Tuning that the plan does not carry. The defaults are what BENCHMARKS.md measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Per test: the chance of a false breach before the test first finds the canary healthy.
    pub alpha: f64,
    /// Per test: the chance of calling a canary at the detection effect healthy.
    pub beta: f64,
    /// The effect each rate test is tuned to detect, as a multiple of its limit: H1 is
    /// `rate = limit × detect` (or `ratio = max_ratio × detect`).
    pub detect: f64,
    /// The latency tests' H1: the share of canary requests above the threshold is this multiple
    /// of `1 - quantile` (a +20% p99 shift of a lognormal with σ = 0.5 gives about 2.5).
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
            alpha: 0.0025,
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
