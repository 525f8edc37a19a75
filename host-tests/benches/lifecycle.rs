//! One full request life cycle through the real `filter.wasm` in the proxy-wasm host:
//! request headers, response headers, then the end of the stream (log, done, delete).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{json, to_value};
use serin_host_tests::{Action, Host, filter_wasm};
use serin_policy::{
    Action as PlanAction, Arm, DEFAULT_ROUTING_HEADER, Fallback, HashSpec, KeySource, Lane,
    PLAN_FORMAT, Plan, Reduce, SERIN_SCALE, Split,
};

fn plan() -> String {
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

fn lifecycle(c: &mut Criterion) {
    let wasm = filter_wasm().unwrap_or_else(|e| panic!("{e:#}"));
    let host = Host::new(&wasm).expect("the filter compiles");
    let mut worker = host
        .configured_worker(plan())
        .expect("the filter accepts the plan");
    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    group.bench_function("request_lifecycle", |b| {
        b.iter(|| {
            i += 1;
            let mut s = worker
                .request()
                .path("/checkout?item=1")
                .header("user-agent", "bench/1.0")
                .header("x-user-id", i.to_string())
                .header("cookie", "sid=abc; theme=dark");
            assert_eq!(s.send_headers().unwrap(), Action::Continue);
            s.deliver_response_headers(&[(":status", "200"), ("content-length", "2")], true)
                .unwrap();
            s.done().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
