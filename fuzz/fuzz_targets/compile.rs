//! Parse + compile arbitrary text: the compiler must never panic, every plan it emits must pass
//! the filter's own checks and survive a JSON round trip, and `fmt` must keep meaning.
//!
//! `cargo xtask fuzz compile` (or `cargo fuzz run compile -- -dict=fuzz/policy.dict`), seeded from
//! `policy-compiler/tests/corpus` and `examples`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serin_policy::Plan;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match serin_compiler::compile_str(source, "fuzz.toml") {
        Ok(compiled) => {
            compiled
                .plan
                .check()
                .expect("a compiled plan passes the filter's check");
            compiled
                .plan
                .check_rollout()
                .expect("a compiled plan's rollout indices are valid");
            let json = compiled.plan.to_json();
            let back = Plan::from_json(json.as_bytes()).expect("a compiled plan loads");
            assert_eq!(back, compiled.plan);
        }
        Err(diagnostics) => {
            let _ = diagnostics.render(false);
            let _ = diagnostics.to_json();
        }
    }
    if let Ok(formatted) = serin_compiler::format::format(source) {
        assert_eq!(
            serin_compiler::format::format(&formatted).ok().as_deref(),
            Some(formatted.as_str()),
            "fmt is idempotent"
        );
    }
});
