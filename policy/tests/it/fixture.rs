//! The policy and scenarios the detection-quality evidence uses (tests and the bench).
#![allow(dead_code)]

use serde_json::json;
use serin_policy::Plan;
use serin_policy::sim::{ArmModel, Scenario, SegmentShare};

/// A fraud model's canary: 5% → 25% → 50% of users, one minute each, watched by four guards.
pub fn plan() -> Plan {
    let step = |w: u32| json!({ "weight": w, "min_duration_seconds": 60, "gates": ["healthy"], "lanes": lanes(w) });
    plan_with(
        json!([
            { "name": "errors", "arms": [1], "metric": { "kind": "error_rate", "max_ratio_ppm": 1_000_000 },
              "window_seconds": 60, "min_samples": 500, "on_breach": "rollback" },
            { "name": "latency", "arms": [1],
              "metric": { "kind": "latency", "quantile_ppm": 990_000, "max_ratio_ppm": 1_000_000 },
              "window_seconds": 60, "min_samples": 500, "on_breach": "rollback" },
            { "name": "flag-rate", "arms": [1],
              "metric": { "kind": "outcome_rate", "outcome": 0, "max_ratio_ppm": 1_500_000 },
              "window_seconds": 60, "min_samples": 200, "on_breach": "rollback" },
            { "name": "elderly-flags", "arms": [1],
              "metric": { "kind": "outcome_rate", "outcome": 0, "segment": 0, "segment_values": ["65+"],
                          "max_ratio_ppm": 1_200_000 },
              "window_seconds": 60, "min_samples": 200, "on_breach": "rollback" }
        ]),
        json!([step(500), step(2500), step(5000)]),
    )
}

/// The canary's lanes at weight `w` (basis points).
pub fn lanes(w: u32) -> serde_json::Value {
    json!([{ "arm": 1, "start": 0, "end": w }])
}

/// The fixture's arms, split, segments and outcomes with other guards and ramp steps.
pub fn plan_with(guards: serde_json::Value, steps: serde_json::Value) -> Plan {
    let plan = json!({
        "format": serin_policy::PLAN_FORMAT,
        "policy": "fraud-model-v2",
        "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000001",
        "routing_header": "x-serin-arm",
        "arms": [{ "name": "stable", "value": "v1" }, { "name": "canary", "value": "v2" }],
        "stable": 0,
        "default": { "split": { "split": 0 } },
        "splits": [{
            "key": [{ "header": "x-user-id" }],
            "hash": { "seed": 7, "reduce": { "mul_shift": { "scale": 10000 } } },
            "lanes": lanes(500),
            "rest": 0,
            "fallback": { "arm": { "arm": 0 } }
        }],
        "segments": [{ "name": "age", "header": "x-age-band", "values": ["18-64", "65+"] }],
        "outcomes": [{
            "name": "flagged",
            "source": { "from": "header", "name": "x-model-decision" },
            "positive": { "op": "equals", "any_of": ["flagged"] }
        }],
        "guards": guards,
        "ramp": { "split": 0, "arm": 1, "steps": steps }
    });
    let plan: Plan = serde_json::from_value(plan).expect("the fixture is a plan");
    plan.check().expect("the fixture passes the plan checks");
    plan.check_rollout()
        .expect("the fixture passes the rollout checks");
    plan
}

/// Identical arms: 1% errors, lognormal latency (median 50 ms, σ 0.5), 5% flagged in every
/// segment; 20% of requests from the `65+` band; 200 requests per second.
pub fn aa(runs: u32, seed: u64) -> Scenario {
    let arm = ArmModel {
        positive_by_segment: vec![0.05, 0.05],
        ..ArmModel::default()
    };
    Scenario {
        seed,
        runs,
        requests_per_second: 200.0,
        max_seconds: 900,
        stable: arm.clone(),
        canary: arm,
        segment_mix: vec![
            SegmentShare {
                value: "18-64".into(),
                share: 0.8,
            },
            SegmentShare {
                value: "65+".into(),
                share: 0.2,
            },
        ],
        ..Scenario::default()
    }
}

/// The canary fails 2% of requests against stable's 1%.
pub fn errors_doubled(runs: u32, seed: u64) -> Scenario {
    let mut s = aa(runs, seed);
    s.canary.error_rate = 0.02;
    s
}

/// The canary is 20% slower at every quantile (so its p99 is 20% above stable's).
pub fn latency_plus_20(runs: u32, seed: u64) -> Scenario {
    let mut s = aa(runs, seed);
    s.canary.latency_median_ms *= 1.2;
    s
}

/// The canary flags the `65+` band at twice stable's rate; overall it flags 6% against 5%,
/// inside the overall guard's ratio of 1.5.
pub fn elderly_flagged_twice(runs: u32, seed: u64) -> Scenario {
    let mut s = aa(runs, seed);
    s.canary.positive_by_segment = vec![0.05, 0.10];
    s
}
