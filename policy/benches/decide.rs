//! `decide()` on the request path: a 10-rule policy whose rules all miss, so every request
//! walks every rule and then hashes (the worst case), and the bucketing alone. Each decision is
//! measured twice, side by side: `Router::decide` (what the filter runs: names resolved when the
//! plan loads, one pass over the request) and `Plan::decide` (the reference, asking the request
//! for each name).
//! Target (issue: routing engine): <= 100 ns per decision.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serin_policy::{HeaderList, Plan, Router, murmur3_x86_32};
use workload::{HEADERS, fetched_headers, split_only_plan, ten_rule_plan};

mod workload;

fn bench(c: &mut Criterion) {
    let plan = ten_rule_plan();
    assert_eq!(plan.rules.len(), 10);
    let headers = HEADERS;
    let router = Router::new(plan.clone());
    c.bench_function("decide/10-rule policy, all rules miss, split", |b| {
        b.iter(|| router.decide(black_box(&HeaderList::new(&headers))))
    });
    let fetched = fetched_headers(&plan);
    c.bench_function(
        "decide/10-rule policy, all rules miss, split (the headers the filter fetches)",
        |b| b.iter(|| router.decide(black_box(&HeaderList::new(&fetched)))),
    );
    c.bench_function(
        "decide/10-rule policy, all rules miss, split (Plan::decide)",
        |b| b.iter(|| plan.decide(black_box(&HeaderList::new(&headers)))),
    );
    c.bench_function("bucketing/murmur3 of a 13-byte key", |b| {
        b.iter(|| murmur3_x86_32(b"", black_box(b"user-8d3f2a91"), 1234))
    });
    let split_only = split_only_plan();
    let split_only_router = Router::new(split_only.clone());
    c.bench_function("decide/split only (no rules)", |b| {
        b.iter(|| split_only_router.decide(black_box(&HeaderList::new(&headers))))
    });
    c.bench_function("decide/split only (no rules) (Plan::decide)", |b| {
        b.iter(|| split_only.decide(black_box(&HeaderList::new(&headers))))
    });
    use serin_policy::Request;
    c.bench_function("lookup/missing header", |b| {
        b.iter(|| {
            HeaderList::new(black_box(&headers))
                .header(black_box("x-tester-5"))
                .is_some()
        })
    });
    c.bench_function("lookup/cookie", |b| {
        b.iter(|| {
            HeaderList::new(black_box(&headers))
                .cookie(black_box("beta1"))
                .is_some()
        })
    });
    c.bench_function("lookup/query", |b| {
        b.iter(|| {
            HeaderList::new(black_box(&headers))
                .query(black_box("m2"))
                .is_some()
        })
    });
    let json = plan.to_json();
    c.bench_function("plan/load 10-rule plan", |b| {
        b.iter(|| Plan::from_json(black_box(json.as_bytes())))
    });
    c.bench_function("plan/prepare the router of the 10-rule plan", |b| {
        b.iter(|| Router::new(black_box(plan.clone())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
