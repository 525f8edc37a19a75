//! `decide()` on arbitrary requests (any header names and byte values, repeated headers, huge
//! values) against every example policy: never a panic, an arm in range, the same answer
//! twice, and the engine object routing as the plan decides.
//!
//! `cargo xtask fuzz decide` (or `cargo fuzz run decide`)
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use serin_policy::guard::Params;
use serin_policy::{Engine, HeaderList, Plan};

fn plans() -> &'static [Plan] {
    static PLANS: OnceLock<Vec<Plan>> = OnceLock::new();
    PLANS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let mut plans = Vec::new();
        for entry in std::fs::read_dir(dir).expect("examples/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let source = std::fs::read_to_string(&path).expect("readable");
                let compiled =
                    serin_compiler::compile_str(&source, "example.toml").expect("examples compile");
                plans.push(compiled.plan);
            }
        }
        plans
    })
}

/// One engine per plan, as a proxy worker holds it.
fn engines() -> &'static Mutex<Vec<Engine>> {
    static ENGINES: OnceLock<Mutex<Vec<Engine>>> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let engines = plans()
            .iter()
            .map(|p| Engine::new(p.clone(), Params::default()));
        Mutex::new(engines.collect())
    })
}

fuzz_target!(|input: (Vec<(String, Vec<u8>)>, Option<[u8; 4]>)| {
    let (headers, ip) = input;
    let mut engines = engines().lock().unwrap_or_else(|e| e.into_inner());
    for (plan, engine) in plans().iter().zip(engines.iter_mut()) {
        let mut request = HeaderList::new(&headers);
        request.source_ip = ip.map(Into::into);
        let first = plan.decide(&request);
        assert!(usize::from(first.arm) < plan.arms.len());
        assert_eq!(first, plan.decide(&request), "decide is deterministic");
        // The engine routes by the same decision (a minted key is random by design), except
        // that in fleet mode a proxy that has not heard from the fleet routes to stable.
        let mut ex = engine.route(&request, 0, || b"minted".to_vec()).exchange;
        let expected = if engine.joining() { plan.stable } else { first.arm };
        if !first.mint_key || engine.joining() {
            assert_eq!(ex.arm(), expected, "the engine decides as the plan does");
        }
        engine.response_headers(&mut ex, 1, 200, true, || false, |_| None);
        engine.stream_done(ex, || 2);
    }
});
