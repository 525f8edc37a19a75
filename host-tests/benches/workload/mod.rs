//! The requests the lifecycle bench (and `examples/lifecycle_instructions.rs`) send: the fraud
//! model's inference calls, a split-only GET, and the modules and plans they run on.

use std::path::{Path, PathBuf};

use serde_json::{json, to_value};
use serin_host_tests::{Action, Host, Stream, Worker, filter_wasm};
use serin_policy::{
    Action as PlanAction, Arm, DEFAULT_ROUTING_HEADER, Fallback, HashSpec, KeySource, Lane,
    PLAN_FORMAT, Plan, Reduce, SERIN_SCALE, Split,
};

const AGE_BANDS: [&str; 4] = ["18-34", "35-64", "65+", "35-64"];
const MODEL_ANSWER: &[u8] = br#"{"predictions": [0.93]}"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// examples/fraud-model.toml, compiled as `serin compile` does.
pub fn fraud_plan() -> String {
    let file = "examples/fraud-model.toml";
    let source = std::fs::read_to_string(workspace().join(file)).expect("the example exists");
    match serin_compiler::compile_str(&source, file) {
        Ok(compiled) => compiled.plan.to_json(),
        Err(diagnostics) => panic!("{file} does not compile:\n{diagnostics}"),
    }
}

/// A 1% split on `x-user-id` (then the `sid` cookie), nothing else.
pub fn split_plan() -> String {
    let arms = [
        Arm {
            name: "stable".into(),
            value: "stable".into(),
        },
        Arm {
            name: "canary".into(),
            value: "canary".into(),
        },
    ];
    let split = Split {
        key: vec![
            KeySource::Header("x-user-id".into()),
            KeySource::Cookie("sid".into()),
        ],
        hash: HashSpec {
            prefix: "bench:".into(),
            seed: 1,
            reduce: Reduce::MulShift { scale: SERIN_SCALE },
        },
        lanes: vec![Lane {
            arm: 1,
            start: 0,
            end: 1_000,
        }],
        rest: 0,
        fallback: Fallback::Arm { arm: 0 },
    };
    let v = json!({
        "format": PLAN_FORMAT,
        "policy": "bench",
        "digest": "sha256:bench",
        "routing_header": DEFAULT_ROUTING_HEADER,
        "arms": to_value(arms).unwrap(),
        "stable": 0,
        "default": to_value(PlanAction::Split { split: 0 }).unwrap(),
        "splits": to_value([split]).unwrap(),
    });
    Plan::from_json(v.to_string().as_bytes())
        .expect("a valid plan")
        .to_json()
}

/// The empty filter's module: `$SERIN_EMPTY_FILTER_WASM`, else `target/empty-filter.wasm`,
/// which `cargo xtask wasm empty-filter` builds the way `filter.wasm` is built (the same profile
/// and `wasm-opt`), so that the two differ only in what the filter does.
pub fn empty_filter_wasm() -> Result<Vec<u8>, String> {
    let path = std::env::var_os("SERIN_EMPTY_FILTER_WASM").map_or_else(
        || workspace().join("target/empty-filter.wasm"),
        PathBuf::from,
    );
    std::fs::read(&path).map_err(|e| {
        format!(
            "no empty filter at `{}` ({e}): build it with `cargo xtask wasm empty-filter` or \
             point SERIN_EMPTY_FILTER_WASM at one",
            path.display()
        )
    })
}

/// A worker running the empty filter: the floor under any filter's life cycle in this host,
/// what the ABI's calls cost when the module does nothing.
pub fn floor_worker(wasm: &[u8]) -> Worker {
    let host = Host::new(wasm).expect("the empty filter compiles");
    host.configured_worker("").expect("it takes any config")
}

/// One life cycle the benches measure: the plan the filter runs and the requests it gets.
pub struct Case {
    pub name: &'static str,
    pub plan: fn() -> String,
    pub send: fn(&mut Worker, u64),
}

pub const CASES: [Case; 3] = [
    Case {
        name: "fraud_model",
        plan: fraud_plan,
        send: predict,
    },
    Case {
        name: "fraud_model_no_body",
        plan: fraud_plan,
        send: predict_no_body,
    },
    Case {
        name: "split_only",
        plan: split_plan,
        send: get,
    },
];

pub fn filter_worker(plan: String) -> Worker {
    let wasm = filter_wasm().unwrap_or_else(|e| panic!("{e:#}"));
    let host = Host::new(&wasm).expect("the filter compiles");
    host.configured_worker(plan)
        .expect("the filter accepts the plan")
}

/// A model inference call as the fraud example sees it.
pub fn predict(worker: &mut Worker, user: u64) {
    let mut s = send_prediction(worker, user);
    s.deliver_response_headers(
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-length", "23"),
            ("x-served-by", "fraud-v1"),
        ],
        false,
    )
    .unwrap();
    assert_eq!(
        s.deliver_response_body(MODEL_ANSWER, true).unwrap(),
        Action::Continue
    );
    s.done().unwrap();
}

/// The issue's life cycle (request headers, response headers, done) on the fraud example: the
/// same call answered without a body, so no outcome is read.
pub fn predict_no_body(worker: &mut Worker, user: u64) {
    let mut s = send_prediction(worker, user);
    s.deliver_response_headers(&[(":status", "200"), ("x-served-by", "fraud-v1")], true)
        .unwrap();
    s.done().unwrap();
}

fn send_prediction(worker: &mut Worker, user: u64) -> Stream<'_> {
    // The map as Envoy hands it over, built in one go: the bench measures the filter's life
    // cycle, not the test builder's edits of a default request.
    let user_id = user.to_string();
    let mut s = worker.request_with_headers(&[
        (":authority", "fraud.example.com"),
        (":path", "/v1/models/fraud:predict"),
        (":method", "POST"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("user-agent", "bench/1.0"),
        ("x-user-id", &user_id),
        ("x-age-band", AGE_BANDS[user as usize % AGE_BANDS.len()]),
    ]);
    assert_eq!(s.send_headers().unwrap(), Action::Continue);
    s
}

/// A GET without a body, answered without a body.
pub fn get(worker: &mut Worker, user: u64) {
    let user_id = user.to_string();
    let mut s = worker.request_with_headers(&[
        (":authority", "example.com"),
        (":path", "/checkout?item=1"),
        (":method", "GET"),
        (":scheme", "http"),
        ("user-agent", "bench/1.0"),
        ("x-user-id", &user_id),
        ("cookie", "sid=abc; theme=dark"),
    ]);
    assert_eq!(s.send_headers().unwrap(), Action::Continue);
    s.deliver_response_headers(&[(":status", "200"), ("content-length", "0")], true)
        .unwrap();
    s.done().unwrap();
}
