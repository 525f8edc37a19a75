//! Shared test support: the filter module (compiled once per test binary) and plans.

use std::net::IpAddr;
use std::sync::OnceLock;

use serde_json::{Value, json, to_value};
use serin_host_tests::{Host, Worker, filter_wasm};
use serin_policy::{
    Action as PlanAction, Arm, DEFAULT_ROUTING_HEADER, Fallback, HashSpec, HeaderList, KeySource,
    Lane, Override, PLAN_FORMAT, Plan, Reduce, Rule, SERIN_SCALE, Shadow, Split,
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

/// The parts of a test plan. Only these are written to JSON, each serialized from
/// `serin-policy`'s own types, so that tests follow the plan format as it grows.
pub struct Parts {
    pub arms: Vec<&'static str>,
    pub rules: Vec<Rule>,
    pub default: PlanAction,
    pub splits: Vec<Split>,
    pub override_: Option<Override>,
    pub shadow: Option<Shadow>,
}

impl Parts {
    pub fn new(arms: &[&'static str], default: PlanAction) -> Parts {
        Parts {
            arms: arms.to_vec(),
            rules: vec![],
            default,
            splits: vec![],
            override_: None,
            shadow: None,
        }
    }

    pub fn json(&self) -> Value {
        let arms: Vec<Arm> = self
            .arms
            .iter()
            .map(|a| Arm {
                name: (*a).into(),
                value: format!("{a}-v1"),
            })
            .collect();
        let mut v = json!({
            "format": PLAN_FORMAT,
            "policy": "checkout",
            "digest": "sha256:test",
            "routing_header": DEFAULT_ROUTING_HEADER,
            "arms": to_value(&arms).unwrap(),
            "stable": 0,
            "rules": to_value(&self.rules).unwrap(),
            "default": to_value(self.default).unwrap(),
            "splits": to_value(&self.splits).unwrap(),
        });
        if let Some(o) = &self.override_ {
            v["override"] = to_value(o).unwrap();
        }
        if let Some(s) = &self.shadow {
            v["shadow"] = to_value(s).unwrap();
        }
        v
    }

    pub fn plan(&self) -> Plan {
        plan(self.json())
    }
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
pub fn split_parts(canary_buckets: u32) -> Parts {
    let mut p = Parts::new(&["stable", "canary"], PlanAction::Split { split: 0 });
    p.splits.push(split(
        vec![KeySource::Header("x-user-id".into())],
        canary_buckets,
    ));
    p
}

pub fn split_json(canary_buckets: u32) -> Value {
    split_parts(canary_buckets).json()
}

pub fn split_plan(canary_buckets: u32) -> Plan {
    split_parts(canary_buckets).plan()
}

/// Every request to `arm`.
pub fn pin_plan(arm: u8) -> Plan {
    Parts::new(&["stable", "canary"], PlanAction::Pin { arm }).plan()
}

/// The routing header's value for a request with these headers, by the native engine, seeing
/// what the filter sees: the request without any client-sent routing header.
pub fn native_arm(plan: &Plan, headers: &[(String, String)], source_ip: Option<IpAddr>) -> String {
    let seen: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(&plan.routing_header))
        .cloned()
        .collect();
    let mut req = HeaderList::new(&seen);
    req.source_ip = source_ip;
    plan.arm(plan.decide(&req).arm).value.clone()
}

/// A small deterministic PRNG (splitmix64) for generated requests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
