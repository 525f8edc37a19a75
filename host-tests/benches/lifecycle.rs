//! One full request life cycle through a proxy-wasm module in the host: request headers,
//! response headers (and body, when the policy reads it), then the end of the stream (log,
//! done, delete), on one configured worker.
//!
//! - `fraud_model`: the real `filter.wasm` with `examples/fraud-model.toml` compiled by the real
//!   compiler; a new user per request, an age band, TF Serving's JSON answer (the policy reads
//!   its outcome from `predictions[0]`). The target: at most 2 µs.
//! - `fraud_model_no_body`: the same, answered without a body: the life cycle as the issue
//!   defines it (request headers, response headers, done), with no outcome to read.
//! - `split_only`: the real `filter.wasm` with a hand-built 1% split and nothing to measure.
//! - `empty_filter`: `bench/empty-filter`, which returns `Continue` from every callback: the
//!   floor of the ABI's calls through this host, which no filter can go under.

mod workload;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serin_host_tests::Host;
use workload::{
    empty_filter_wasm, filter_worker, fraud_plan, get, predict, predict_no_body, split_plan,
};

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
    group.bench_function("fraud_model_no_body", |b| {
        b.iter(|| {
            user += 1;
            predict_no_body(&mut fraud, user);
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
