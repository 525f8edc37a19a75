//! Validation of the parts of a policy that the rollout controller executes: segments, outcomes,
//! guards, the ramp and metrics.

use crate::validate::Ctx;
use serin_policy::Split;

/// The validated rollout parts, in the plan's types.
#[derive(Debug, Clone, Default)]
pub struct Rollout {}

pub(crate) fn validate(_cx: &mut Ctx<'_>, _split_names: &[String], _splits: &[Split]) -> Rollout {
    Rollout {}
}
