//! One full request life cycle through a proxy-wasm module in the host: request headers,
//! response headers (and body, when the policy reads it), then the end of the stream (log,
//! done, delete), on one configured worker.
//!
//! - `fraud_model`: the real `filter.wasm` with `examples/fraud-model.toml` compiled by the real
//!   compiler; a new user per request, an age band, TF Serving's JSON answer (the policy reads
//!   its outcome from `predictions[0]`). The issue's target: at most 2 µs.
//! - `split_only`: the real `filter.wasm` with a hand-built 1% split and nothing to measure.
//! - `empty_filter`: `bench/empty-filter`, which returns `Continue` from every callback: the
//!   floor of the ABI's calls through this host, which no filter can go under.

use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{json, to_value};
use serin_host_tests::{Action, Host, Worker, filter_wasm};
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
fn fraud_plan() -> String {
    let file = "examples/fraud-model.toml";
    let source = std::fs::read_to_string(workspace().join(file)).expect("the example exists");
    match serin_compiler::compile_str(&source, file) {
        Ok(compiled) => compiled.plan.to_json(),
        Err(diagnostics) => panic!("{file} does not compile:\n{diagnostics}"),
    }
}

/// A 1% split on `x-user-id` (then the `sid` cookie), nothing else.
fn split_plan() -> String {
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

/// The empty filter's module: `$SERIN_EMPTY_FILTER_WASM`, else where `cargo xtask` builds it
/// (rustup's wasm32 target or the Debian route's target dir).
fn empty_filter_wasm() -> Option<Vec<u8>> {
    let module = "wasm32-unknown-unknown/wasm/serin_bench_empty_filter.wasm";
    let candidates = std::env::var_os("SERIN_EMPTY_FILTER_WASM")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            workspace().join("target").join(module),
            workspace().join("target/wasm-build").join(module),
        ]);
    candidates.into_iter().find_map(|p| std::fs::read(p).ok())
}

fn filter_worker(plan: String) -> Worker {
    let wasm = filter_wasm().unwrap_or_else(|e| panic!("{e:#}"));
    let host = Host::new(&wasm).expect("the filter compiles");
    host.configured_worker(plan)
        .expect("the filter accepts the plan")
}

/// A model inference call as the fraud example sees it.
fn predict(worker: &mut Worker, user: u64) {
    let mut s = worker
        .request()
        .method("POST")
        .path("/v1/models/fraud:predict")
        .authority("fraud.example.com")
        .header("content-type", "application/json")
        .header("user-agent", "bench/1.0")
        .header("x-user-id", user.to_string())
        .header("x-age-band", AGE_BANDS[user as usize % AGE_BANDS.len()]);
    assert_eq!(s.send_headers().unwrap(), Action::Continue);
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

/// A GET without a body, answered without a body.
fn get(worker: &mut Worker, user: u64) {
    let mut s = worker
        .request()
        .path("/checkout?item=1")
        .header("user-agent", "bench/1.0")
        .header("x-user-id", user.to_string())
        .header("cookie", "sid=abc; theme=dark");
    assert_eq!(s.send_headers().unwrap(), Action::Continue);
    s.deliver_response_headers(&[(":status", "200"), ("content-length", "0")], true)
        .unwrap();
    s.done().unwrap();
}

fn lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("lifecycle");
    group.throughput(Throughput::Elements(1));

    let mut fraud = filter_worker(fraud_plan());
    let mut user = 0u64;
    group.bench_function("fraud_model", |b| {
        b.iter(|| {
            user += 1;
            predict(&mut fraud, user);
        })
    });
    drop(fraud);

    let mut split = filter_worker(split_plan());
    group.bench_function("split_only", |b| {
        b.iter(|| {
            user += 1;
            get(&mut split, user);
        })
    });
    drop(split);

    match empty_filter_wasm() {
        Some(wasm) => {
            let host = Host::new(&wasm).expect("the empty filter compiles");
            let mut empty = host.configured_worker("").expect("it takes any config");
            group.bench_function("empty_filter", |b| {
                b.iter(|| {
                    user += 1;
                    predict(&mut empty, user);
                })
            });
        }
        None => eprintln!(
            "SKIPPED lifecycle/empty_filter: no bench/empty-filter module; build it with `cargo \
             build --profile wasm --target wasm32-unknown-unknown -p serin-bench-empty-filter` \
             or point SERIN_EMPTY_FILTER_WASM at one"
        ),
    }
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
