//! The policy and scenarios the detection-quality evidence uses (tests and the bench).
#![allow(dead_code)]

use serde_json::json;
use serin_policy::Plan;
use serin_policy::sim::{ArmModel, Scenario, Score, SegmentShare};

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
    Plan::from_json(plan_json(guards, steps).to_string().as_bytes())
        .expect("the fixture is a plan that passes the plan's checks")
}

/// [`plan_with`]'s plan as JSON, to edit before it is read.
fn plan_json(guards: serde_json::Value, steps: serde_json::Value) -> serde_json::Value {
    json!({
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
    })
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

/// The fixture with a model score read from the JSON body (`predictions[0]`) and one
/// distribution guard on it, six buckets; a single ramp step at 20% that outlasts any run.
pub fn score_plan() -> Plan {
    let step = json!({ "weight": 2000, "min_duration_seconds": 86_400, "gates": ["healthy"], "lanes": lanes(2000) });
    let guard = json!({
        "name": "score drift", "arms": [1], "window_seconds": 60, "min_samples": 100,
        "on_breach": "rollback",
        "metric": { "kind": "distribution", "over": { "from": "outcome", "outcome": 1,
                    "upper_bounds_millionths": [200_000, 300_000, 400_000, 500_000, 600_000] } }
    });
    let mut plan = plan_json(json!([guard]), json!([step]));
    plan["splits"][0]["lanes"] = lanes(2000);
    plan["outcomes"].as_array_mut().unwrap().push(json!({
        "name": "score",
        "source": { "from": "json", "path": [{ "key": "predictions" }, { "index": 0 }] }
    }));
    Plan::from_json(plan.to_string().as_bytes()).expect("the score fixture passes")
}

/// Both arms score N(0.4, 0.15) (clipped to [0, 1]); 100 requests per second, five minutes.
pub fn scores_equal(runs: u32, seed: u64) -> Scenario {
    let arm = ArmModel {
        score: Some(Score {
            mean: 0.4,
            sd: 0.15,
        }),
        ..ArmModel::default()
    };
    Scenario {
        seed,
        runs,
        requests_per_second: 100.0,
        max_seconds: 300,
        stable: arm.clone(),
        canary: arm,
        ..Scenario::default()
    }
}

/// The canary's score is 0.05 higher (a third of its spread): a PSI near 0.1 on the plan's
/// buckets.
pub fn scores_shifted(runs: u32, seed: u64) -> Scenario {
    let mut s = scores_equal(runs, seed);
    s.canary.score = Some(Score {
        mean: 0.45,
        sd: 0.15,
    });
    s
}
