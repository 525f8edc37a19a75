//! The two backends side by side: the same 10,000 requests through `filter.wasm` and through
//! `libserin.so` land on the same arms and leave the same counters.

use std::collections::BTreeMap;

use serin_e2e::{Backend, Paths, Stack};

use crate::compile_example;

/// `name{sorted labels}` → value, for every counter Serin exports (histograms and gauges
/// aside: latency is not the same twice).
fn counters(stack: &Stack) -> BTreeMap<String, u64> {
    let text = stack.metrics_text().expect("admin answers");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        let counted = [
            "requests",
            "responses",
            "resets",
            "outcomes",
            "distribution",
        ];
        let is_counter = name.ends_with("_total")
            && counted
                .iter()
                .any(|c| name.starts_with(&format!("serin_{c}")));
        if !is_counter {
            continue;
        }
        let mut labels: Vec<&str> = labels
            .trim_end_matches('}')
            .split(',')
            .filter(|l| !l.is_empty())
            .collect();
        labels.sort();
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        if value > 0.0 {
            out.insert(format!("{name}{{{}}}", labels.join(",")), value as u64);
        }
    }
    out
}

#[test]
fn both_backends_route_the_same_requests_to_the_same_arms_and_count_them_alike() {
    let test = "both_backends_route_the_same_requests_to_the_same_arms_and_count_them_alike";
    let Some(paths) = Paths::for_test(test) else {
        return;
    };
    if paths.backend == Backend::Native {
        eprintln!("{test}: runs in the wasm pass (it starts both backends itself)");
        return;
    }
    let native = Paths::locate_backend(Backend::Native);
    let native = match (native, std::env::var("SERIN_E2E").as_deref()) {
        (Ok(p), _) => p,
        (Err(e), Ok("require")) => panic!("{test}: {e}"),
        (Err(e), _) => return eprintln!("SKIPPED {test}: {e}"),
    };
    let plan = compile_example(&paths, "fraud-model.toml");
    let stacks: Vec<Stack> = [&paths, &native]
        .iter()
        .map(|p| Stack::start(p, &plan).expect("envoy starts"))
        .collect();
    // Deterministic outcomes: the upstreams flag every 65+ request and no other.
    for stack in &stacks {
        for arm in ["stable", "canary"] {
            let set = |key: &str, v| stack.set_upstream_runtime(&format!("{arm}.{key}"), v);
            set("flag_elderly_percent", 100).unwrap();
            set("flag_percent", 0).unwrap();
        }
    }
    let bands = ["18-34", "35-64", "65+", "unknown"];
    for i in 0..10_000u32 {
        let user = format!("user-{i}");
        let cookie = format!("session=s-{i}");
        let mut headers = vec![("x-age-band", bands[i as usize % bands.len()])];
        match i % 10 {
            // A key from the cookie, the split's second choice.
            0 => headers.push(("cookie", &cookie)),
            // Anonymous: the fallback, stable.
            1 => {}
            // A client trying to pick the canary by sending the routing header.
            2 => headers.extend([("x-user-id", user.as_str()), ("x-serin-arm", "fraud-v2")]),
            _ => headers.push(("x-user-id", &user)),
        }
        let arms: Vec<Option<String>> = stacks
            .iter()
            .map(|s| {
                s.send("/v1/models/fraud:predict", &headers)
                    .expect("request")
                    .served_by
            })
            .collect();
        assert_eq!(arms[0], arms[1], "request {i} {headers:?}: wasm vs native");
    }
    // Both have ticked since (each flushes its tallies once a second).
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let (wasm, native) = (counters(&stacks[0]), counters(&stacks[1]));
    assert!(
        wasm.keys()
            .any(|k| k.starts_with("serin_outcomes_positive_total")),
        "no outcome counted: {wasm:#?}"
    );
    assert_eq!(wasm, native, "counters: wasm (left) vs native (right)");
}
