//! Measure each arm, test it sequentially, and ramp up or roll back by itself.
//!
//! - [`Window`]: per-arm counters (requests, responses by class, local replies, resets, a
//!   latency [`Histogram`], model outcomes per cell) in a ring of sub-windows, with a fixed-size
//!   encoding and an associative [`Window::merge`] for proxy-wasm shared data.
//! - [`drift`]: the distribution guard's test (a plug-in sequential test of two histograms on
//!   fixed buckets) and its population stability index.
//! - [`sprt`]: the sequential test (a mixture SPRT with power against every breach, floored,
//!   over a Bernoulli model and a conditional binomial model); see that module for the method
//!   and its guarantees. [`power`] plays one test over synthetic traffic: what a guard can
//!   catch, and how soon, before the rollout starts.
//! - [`Rollout`] and [`RolloutState`]: the state machine, compiled from the plan's guards and
//!   ramp and driven by [`Rollout::tick`].
//!
//! # How the engine uses it
//!
//! [`crate::Engine`] (one per proxy worker) records into its own [`Window`]
//! ([`Rollout::role_of`] maps the routed arm to [`Role::Stable`] or [`Role::Canary`];
//! [`Layout::cells_for`] gives a response's outcome cells). On each tick it merges that window
//! into the shared one (read-modify-write through the backend's shared data, retried on a
//! concurrent write) and clears its own; then it reads the shared [`RolloutState`]
//! ([`Rollout::restore`]), calls [`Rollout::tick`], and writes the state back the same way. A
//! worker that loses the race re-reads and ticks again, which consumes nothing twice: the state
//! records the next sub-window to read. Every worker reads the state's phase on its own tick, so
//! a rollback reaches all of them within one tick, and [`Rollout::canary_weight`] is 0 from
//! then on.
//!
//! # What the engine evaluates
//!
//! Each guard bound becomes one [`Check`]: `error_rate` `max_ppm` (Bernoulli) and
//! `max_ratio_ppm` (conditional binomial against stable); `latency` `max_ms` (share of canary
//! requests at or above the bound, against `1 - quantile`) and `max_ratio_ppm` (the same, above
//! `ratio ×` stable's quantile from a decayed reference histogram); `outcome_rate` bounds per
//! segment value; `distribution` one test of the canary's histogram against stable's
//! ([`drift`]). Guards that do not watch the ramped arm are not evaluated. A guard's
//! `window_seconds` does not bound the tests' memory: a sequential test must see each sample
//! once and keep its evidence, and the healthy floor is what lets it notice a late regression.
#![allow(clippy::module_inception)]

mod check;
mod compile;
pub mod drift;
mod hist;
mod layout;
mod machine;
mod params;
pub mod power;
mod report;
pub mod sprt;
mod state;
mod window;

pub use check::Check;
pub use drift::Distribution;
pub use hist::{BUCKETS, Histogram, SUB_BITS, bucket_of, lower_bound};
pub use layout::{Cell, Layout, segment_value_index};
pub use machine::{FULL_WEIGHT, Rollout};
pub use params::Params;
pub use report::{Evidence, Transition};
pub use sprt::Verdict;
pub use state::{CheckState, Phase, RolloutState};
pub(crate) use window::Reader;
pub use window::{
    CELLS, Class, Counters, Outcomes, ROLES, Role, SLOTS, Slot, WINDOW_BYTES, Window,
};
