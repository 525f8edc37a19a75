//! Arm indices and bucket lanes: the plan types that both its routing part (`plan.rs`: rules,
//! splits) and its rollout part (`rollout.rs`: guards watch arms, ramp steps carry lanes) are
//! built from. Kept in a leaf so that `plan` depends on `rollout` and never the reverse.

use serde::Serialize;

/// Index of an arm in [`Plan::arms`](crate::Plan::arms).
pub type ArmId = u8;

/// The buckets `start..end` of a split that go to `arm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lane {
    pub arm: ArmId,
    /// Inclusive.
    pub start: u32,
    /// Exclusive.
    pub end: u32,
}
