//! Shared test support: the filter module (compiled once per test binary) and plans.

use std::sync::OnceLock;

use serde_json::{Value, json, to_value};
use serin_host_tests::{Host, Worker, filter_wasm};
use serin_policy::{
    Action as PlanAction, Arm, DEFAULT_ROUTING_HEADER, Fallback, HashSpec, KeySource, Lane,
    PLAN_FORMAT, Plan, Reduce, SERIN_SCALE, Split,
};

/// A fresh host (its own clock, shared data and stats) running the filter. The compiled module
/// is shared by the tests of this binary: compiling it is the slow part.
pub fn host() -> Host {
    static COMPILED: OnceLock<Result<Host, String>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        let wasm = filter_wasm().map_err(|e| format!("{e:#}"))?;
        Host::new(&wasm).map_err(|e| format!("{e:#}"))
    });
    match compiled {
        Ok(h) => h.fresh(),
        Err(e) => panic!("{e}"),
    }
}

/// A worker that accepted `plan`.
pub fn worker(plan: &Plan) -> Worker {
    host()
        .configured_worker(plan.to_json())
        .expect("the filter accepts the plan")
}

/// A plan from its JSON form (so that tests keep working as optional plan fields are added),
/// checked by the same `Plan::from_json` the filter runs.
pub fn plan(v: Value) -> Plan {
    Plan::from_json(v.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("test plan is invalid: {e}"))
}

/// The JSON of a plan with these parts. Only required fields are written, and the parts are
/// serialized from `serin-policy`'s own types, so that tests follow the plan format as it grows.
pub fn plan_json(arms: &[&str], rules: Value, default: PlanAction, splits: &[Split]) -> Value {
    let arms: Vec<Arm> = arms
        .iter()
        .map(|a| Arm {
            name: (*a).into(),
            value: (*a).into(),
        })
        .collect();
    json!({
        "format": PLAN_FORMAT,
        "policy": "checkout",
        "digest": "sha256:test",
        "routing_header": DEFAULT_ROUTING_HEADER,
        "arms": to_value(&arms).unwrap(),
        "stable": 0,
        "rules": rules,
        "default": to_value(default).unwrap(),
        "splits": to_value(splits).unwrap(),
    })
}

/// A split keyed by the first of `keys` present: `canary_buckets` of 10,000 go to arm 1, the
/// rest and keyless requests to arm 0.
pub fn split(keys: Vec<KeySource>, canary_buckets: u32) -> Split {
    Split {
        key: keys,
        hash: HashSpec {
            prefix: "checkout:".into(),
            seed: 7,
            reduce: Reduce::MulShift { scale: SERIN_SCALE },
        },
        lanes: vec![Lane {
            arm: 1,
            start: 0,
            end: canary_buckets,
        }],
        rest: 0,
        fallback: Fallback::Arm { arm: 0 },
    }
}

/// Stable and canary, split over `x-user-id`.
pub fn split_plan(canary_buckets: u32) -> Plan {
    let s = split(vec![KeySource::Header("x-user-id".into())], canary_buckets);
    plan(plan_json(
        &["stable", "canary"],
        json!([]),
        PlanAction::Split { split: 0 },
        &[s],
    ))
}
