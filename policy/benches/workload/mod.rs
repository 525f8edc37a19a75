//! The decide bench's plan and request, shared by `benches/decide.rs` and
//! `examples/decide_instructions.rs`, so that the instructions counted are those of the
//! decisions timed.

use serin_policy::{PLAN_FORMAT, Plan};

/// Ten rules over headers, cookies, query, path and method, then a 5% split by user id.
pub fn ten_rule_plan() -> Plan {
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
        r#"{{"format":{PLAN_FORMAT},"policy":"bench","digest":"","routing_header":"x-serin-arm",
        "arms":[{{"name":"stable","value":"stable"}},{{"name":"canary","value":"canary"}}],"stable":0,
        "rules":[{}],"default":{{"split":{{"split":0}}}},
        "splits":[{{"key":[{{"header":"x-user-id"}}],"hash":{{"seed":1234,"reduce":{{"mul_shift":{{"scale":10000}}}}}},
        "lanes":[{{"arm":1,"start":0,"end":500}}],"rest":0,"fallback":{{"arm":{{"arm":0}}}}}}]}}"#,
        rules.join(",")
    );
    Plan::from_json(json.as_bytes()).expect("bench plan is valid")
}

/// The ten-rule plan without its rules: the split alone.
pub fn split_only_plan() -> Plan {
    let mut plan = ten_rule_plan();
    plan.rules.clear();
    plan
}

/// The request every decision is asked about: all ten rules miss, the user id is hashed.
pub const HEADERS: [(&str, &str); 8] = [
    (":method", "POST"),
    (":path", "/v1/models/fraud:predict?trace=1"),
    ("host", "fraud.models.svc"),
    ("content-type", "application/json"),
    ("cookie", "session=abc; theme=dark"),
    ("x-user-id", "user-8d3f2a91"),
    ("x-region", "sa-east"),
    ("user-agent", "bench/1.0"),
];

/// What the filter hands the router: only the headers the plan reads, fetched by name
/// ([`Plan::headers_read`]), in that order.
pub fn fetched_headers(plan: &Plan) -> Vec<(&'static str, &'static str)> {
    plan.headers_read()
        .iter()
        .filter_map(|name| HEADERS.iter().find(|(k, _)| k == name).copied())
        .collect()
}
