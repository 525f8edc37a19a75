//! `decide()` on arbitrary requests (any header names and byte values, repeated headers, huge
//! values) against every example policy: never a panic, an arm in range, and the same answer
//! twice.
//!
//! `cargo xtask fuzz decide` (or `cargo fuzz run decide`)
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serin_policy::{HeaderList, Plan};

fn plans() -> &'static [Plan] {
    static PLANS: OnceLock<Vec<Plan>> = OnceLock::new();
    PLANS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let mut plans = Vec::new();
        for entry in std::fs::read_dir(dir).expect("examples/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let source = std::fs::read_to_string(&path).expect("readable");
                let compiled = serin_compiler::compile_str(&source, "example.toml").expect("examples compile");
                plans.push(compiled.plan);
            }
        }
        plans
    })
}

fuzz_target!(|input: (Vec<(String, Vec<u8>)>, Option<[u8; 4]>)| {
    let (headers, ip) = input;
    for plan in plans() {
        let mut request = HeaderList::new(&headers);
        request.source_ip = ip.map(Into::into);
        let first = plan.decide(&request);
        assert!(usize::from(first.arm) < plan.arms.len());
        assert_eq!(first, plan.decide(&request), "decide is deterministic");
    }
});
