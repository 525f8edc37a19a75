//! `decide()` on the request path: a 10-rule policy whose rules all miss, so every request
//! walks every rule and then hashes (the worst case), and the bucketing alone. Each decision is
//! measured twice, side by side: `Router::decide` (what the filter runs: names resolved when the
//! plan loads, one pass over the request) and `Plan::decide` (the reference, asking the request
//! for each name).
//! Target (issue: routing engine): <= 100 ns per decision.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serin_policy::{HeaderList, Plan, Router, murmur3_x86_32};

/// Ten rules over headers, cookies, query, path and method, then a 5% split by user id.
fn ten_rule_plan() -> Plan {
    let rules: Vec<String> = (0..10)
        .map(|i| {
            let matcher = match i % 5 {
                0 => format!(r#"{{"header":{{"name":"x-tester-{i}","test":{{"exact":"yes"}}}}}}"#),
                1 => format!(r#"{{"cookie":{{"name":"beta{i}","test":"present"}}}}"#),
                2 => format!(r#"{{"query":{{"name":"m{i}","test":{{"exact":"v2"}}}}}}"#),
                3 => format!(r#"{{"path_prefix":{{"any_of":["/admin{i}"]}}}}"#),
                _ => format!(r#"{{"header":{{"name":"x-region","test":{{"any_of":["ap-{i}","eu-{i}","us-{i}"]}}}}}}"#),
            };
            format!(r#"{{"name":"r{i}","all":[{matcher}],"action":{{"pin":{{"arm":1}}}}}}"#)
        })
        .collect();
    let json = format!(
        r#"{{"format":1,"policy":"bench","digest":"","routing_header":"x-serin-arm",
        "arms":[{{"name":"stable","value":"stable"}},{{"name":"canary","value":"canary"}}],"stable":0,
        "rules":[{}],"default":{{"split":{{"split":0}}}},
        "splits":[{{"key":[{{"header":"x-user-id"}}],"hash":{{"seed":1234,"reduce":{{"mul_shift":{{"scale":10000}}}}}},
        "lanes":[{{"arm":1,"start":0,"end":500}}],"rest":0,"fallback":{{"arm":{{"arm":0}}}}}}]}}"#,
        rules.join(",")
    );
    Plan::from_json(json.as_bytes()).expect("bench plan is valid")
}

fn bench(c: &mut Criterion) {
    let plan = ten_rule_plan();
    assert_eq!(plan.rules.len(), 10);
    let headers = [
        (":method", "POST"),
        (":path", "/v1/models/fraud:predict?trace=1"),
        ("host", "fraud.models.svc"),
        ("content-type", "application/json"),
        ("cookie", "session=abc; theme=dark"),
        ("x-user-id", "user-8d3f2a91"),
        ("x-region", "sa-east"),
        ("user-agent", "bench/1.0"),
    ];
    let router = Router::new(plan.clone());
    c.bench_function("decide/10-rule policy, all rules miss, split", |b| {
        b.iter(|| router.decide(black_box(&HeaderList::new(&headers))))
    });
    // What the filter hands the router: only the headers the plan reads, fetched by name
    // (`Plan::headers_read`), in that order.
    let read = plan.headers_read();
    let fetched: Vec<(&str, &str)> = read
        .iter()
        .filter_map(|name| headers.iter().find(|(k, _)| k == name).copied())
        .collect();
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
    let mut split_only = plan.clone();
    split_only.rules.clear();
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
