//! One full request life cycle through a proxy-wasm module in the host: request headers,
//! response headers (and body, when the policy reads it), then the end of the stream (log,
//! done, delete), on one configured worker.
//!
//! - `fraud_model`: the real `filter.wasm` with `examples/fraud-model.toml` compiled by the real
//!   compiler; a new user per request, an age band, TF Serving's JSON answer (the policy reads
//!   its outcome from `predictions[0]`).
//! - `fraud_model_no_body`: the same, answered without a body: the life cycle as the issue
//!   defines it (request headers, response headers, done), with no outcome to read.
//! - `split_only`: the real `filter.wasm` with a hand-built 1% split and nothing to measure.
//!
//! Each case is measured three ways. `<case>` is the filter; `<case>/floor` is
//! `bench/empty-filter`, which returns `Continue` from every callback, given the same requests:
//! what the ABI's calls cost through this host, which no filter can go under. The host's own
//! cost sits in both, so `<case>/filter_minus_floor` is what the filter adds: each of its
//! samples runs the same number of requests through the filter and through the floor, back to
//! back, and keeps the difference. Compare filters by that difference, not by `<case>`, which
//! moves with the host as much as with the filter.

mod workload;

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use workload::{CASES, empty_filter_wasm, filter_worker, floor_worker};

fn lifecycle(c: &mut Criterion) {
    let mut floor = match empty_filter_wasm() {
        Ok(wasm) => Some(floor_worker(&wasm)),
        Err(e) => {
            eprintln!("SKIPPED lifecycle/*/floor and lifecycle/*/filter_minus_floor: {e}");
            None
        }
    };
    let mut group = c.benchmark_group("lifecycle");
    group.throughput(Throughput::Elements(1));
    let mut user = 0u64;
    for case in CASES {
        let send = case.send;
        let mut filter = filter_worker((case.plan)());
        group.bench_function(case.name, |b| {
            b.iter(|| {
                user += 1;
                send(&mut filter, user);
            })
        });
        let Some(floor) = floor.as_mut() else {
            continue;
        };
        group.bench_function(format!("{}/floor", case.name), |b| {
            b.iter(|| {
                user += 1;
                send(floor, user);
            })
        });
        group.bench_function(format!("{}/filter_minus_floor", case.name), |b| {
            b.iter_custom(|requests| {
                let start = Instant::now();
                for _ in 0..requests {
                    user += 1;
                    send(&mut filter, user);
                }
                let through_filter = start.elapsed();
                let start = Instant::now();
                for _ in 0..requests {
                    user += 1;
                    send(floor, user);
                }
                through_filter.saturating_sub(start.elapsed())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
