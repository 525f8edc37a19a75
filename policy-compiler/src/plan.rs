//! Stage 5, plan: assemble the validated policy into the versioned plan, with its digest.

use serin_policy::{PLAN_FORMAT, Plan};
use sha2::{Digest, Sha256};

use crate::validate::Checked;

/// Build the plan and stamp its digest.
pub fn build(c: Checked) -> Plan {
    let mut plan = Plan {
        format: PLAN_FORMAT,
        policy: c.name,
        digest: String::new(),
        routing_header: c.routing_header,
        arms: c.arms,
        stable: c.stable,
        rules: c.rules,
        default: c.default,
        splits: c.splits,
        override_: c.override_,
        shadow: c.shadow,
        segments: c.rollout.segments,
        outcomes: c.rollout.outcomes,
        guards: c.rollout.guards,
        ramp: c.rollout.ramp,
        metrics: c.rollout.metrics,
        fleet: c.fleet,
    };
    plan.digest = digest(&plan);
    plan
}

/// `sha256:<hex>` of the canonical plan JSON with `digest` set to `""`.
pub fn digest(plan: &Plan) -> String {
    let mut blank = plan.clone();
    blank.digest = String::new();
    let hash = Sha256::digest(blank.to_json().as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
