//! The rollout parts of the plan: what the filter measures (segments, outcomes, metrics) and how
//! it ramps and rolls back (guards, ramp). Types only: the compiler writes them, the rollout
//! engine executes them.
//!
//! Every rate, ratio and quantile is an integer in parts per million (`ppm`): 2% is `20_000`,
//! a ratio of 1.2 is `1_200_000`, p99 is `990_000`. Weights are basis points, as in lanes.

use serde::Serialize;

use crate::lane::{ArmId, Lane};

/// Parts per million: the unit of every rate, ratio and quantile in the plan.
pub const PPM: u32 = 1_000_000;

/// A named request attribute, read from a request header, that metrics and guards break down by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub name: String,
    /// The request header carrying the attribute (lower case).
    pub header: String,
    /// Known values. Any other value (or none) counts as `other`. Empty: the value as sent
    /// (the engine should bound how many distinct values it keeps).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The model's decision on one response: reduced to positive or not when `positive` is set
/// (what `outcome_rate` guards count), and read as a number (what `distribution` guards
/// bucket) whenever the value is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub name: String,
    pub source: OutcomeSource,
    /// `None`: a numeric outcome that only distribution guards read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub positive: Option<Positive>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum OutcomeSource {
    /// A response header (lower case).
    Header { name: String },
    /// A field of a JSON response body, e.g. `outputs[0].data[0]` as
    /// `[{"key":"outputs"},{"index":0},{"key":"data"},{"index":0}]`.
    Json { path: Vec<PathStep> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathStep {
    Key(String),
    Index(u32),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Positive {
    /// The value (a string, or a number or boolean as JSON writes it) is one of these; sorted.
    Equals { any_of: Vec<String> },
    /// The value is a number strictly above this.
    Above { value: f64 },
}

/// A health condition over a window. A breach rolls back or holds the ramp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guard {
    pub name: String,
    /// The arms watched (never the stable arm, which is the baseline).
    pub arms: Vec<ArmId>,
    pub metric: GuardMetric,
    pub window_seconds: u32,
    /// No verdict before a watched arm has this many samples in the window.
    pub min_samples: u32,
    pub on_breach: Breach,
}

/// The bounds are all optional; a guard breaches when any bound it sets is crossed.
/// `*_ratio_ppm` compare the arm with the stable arm over the same window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GuardMetric {
    /// Share of responses that are 5xx, local replies or resets.
    ErrorRate {
        #[serde(skip_serializing_if = "Option::is_none")]
        max_ppm: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_ratio_ppm: Option<u32>,
    },
    /// A latency quantile (request headers to response headers).
    Latency {
        quantile_ppm: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_ms: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_ratio_ppm: Option<u32>,
    },
    /// Share of responses whose outcome is positive, overall or per segment value.
    OutcomeRate {
        /// Index into [`Plan::outcomes`](crate::Plan::outcomes).
        outcome: u8,
        /// Index into [`Plan::segments`](crate::Plan::segments): evaluate the guard for each segment value separately.
        #[serde(skip_serializing_if = "Option::is_none")]
        segment: Option<u8>,
        /// Only these segment values (sorted); empty: every value of the segment.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        segment_values: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_ppm: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_ppm: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_ratio_ppm: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        min_ratio_ppm: Option<u32>,
    },
    /// The canary's histogram of a numeric outcome or of a segment attribute against
    /// stable's, on fixed buckets: no bound, the null is "the same distribution".
    Distribution { over: Distributed },
}

/// What a distribution guard buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Distributed {
    /// A numeric outcome's value. Bucket `j` holds values at most `upper_bounds_millionths[j]`
    /// (and above the previous bound); the last bucket, past every bound, is open. Millionths
    /// keep the plan `Eq` and its digest exact, like the `*_ppm` fields.
    Outcome {
        /// Index into [`Plan::outcomes`](crate::Plan::outcomes).
        outcome: u8,
        /// Strictly increasing.
        upper_bounds_millionths: Vec<i64>,
    },
    /// A segment attribute: its declared values, in the plan's (sorted) order, then `other`.
    Segment {
        /// Index into [`Plan::segments`](crate::Plan::segments).
        segment: u8,
    },
}

/// Millionths: the unit of a distribution's bucket bounds.
pub const MILLIONTHS: f64 = 1e6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breach {
    /// Send every new request to the stable arm.
    Rollback,
    /// Stay at the current step until the guard recovers.
    Hold,
}

/// Raise one arm's weight in steps. Step 0 is where a fresh policy starts; the split's own lanes
/// are step 0's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ramp {
    /// Index into [`Plan::splits`](crate::Plan::splits).
    pub split: u16,
    pub arm: ArmId,
    pub steps: Vec<RampStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RampStep {
    /// The arm's weight in basis points.
    pub weight: u32,
    pub min_duration_seconds: u32,
    /// Samples the ramped arm needs at this step before it may advance (0: the guards' own).
    #[serde(skip_serializing_if = "is_zero")]
    pub min_samples: u32,
    /// All must pass before the next step.
    pub gates: Vec<Gate>,
    /// The split's complete lanes at this step (precomputed: the filter swaps them in).
    pub lanes: Vec<Lane>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// Every guard has its minimum samples and none breaches.
    Healthy,
    /// An operator approves the next step.
    Manual,
}

/// What the filter exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metrics {
    /// Label names, from `arm`, `rule`, `segment`, `class`, `outcome`.
    pub labels: Vec<String>,
    /// Latency histogram bucket bounds in microseconds, increasing.
    pub latency_buckets_us: Vec<u32>,
}
