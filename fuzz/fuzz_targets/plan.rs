//! Plan loading, as the filter's `on_configure` does it, on arbitrary bytes: refused or loaded,
//! never a panic; a plan that loads runs in the engine (route, respond, tick, flush) without a
//! panic.
//!
//! `cargo xtask fuzz plan` (or `cargo fuzz run plan`), seeded with the compiled example plans.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serin_policy::guard::{Params, RolloutState};
use serin_policy::{Engine, HeaderList, InMemory, Plan};

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = Plan::from_json(data) else {
        return;
    };
    let requests: [&[(&str, &str)]; 3] = [
        &[],
        &[
            ("x-user-id", "alice"),
            (":path", "/v1/models/m:predict?u=1"),
            ("cookie", "serin-id=abc"),
        ],
        &[
            ("x-serin-force", "canary"),
            ("x-serin-token", "t"),
            ("x-age-band", "65+"),
        ],
    ];
    let arms = plan.arms.len();
    // The engine, as each backend drives it: route, respond, tick over shared data.
    let mut engine = Engine::new(plan, Params::default());
    let mut shared = InMemory::default();
    for t in 0..5u64 {
        for headers in requests {
            let mut request = HeaderList::new(headers);
            request.source_ip = Some([10, 0, 0, 1].into());
            let mut ex = engine
                .route(&request, t * 1000, || b"minted".to_vec())
                .exchange;
            assert!(usize::from(ex.arm()) < arms);
            engine.response_headers(&mut ex, t * 1000 + 5, 503, false, || true, |_| None);
            engine.response_body(&mut ex, || t * 1000 + 6, 9, true, || {
                Some(b"{\"a\":[1]}".to_vec())
            });
            engine.stream_done(ex, || t * 1000 + 7);
        }
        let _ = engine.tick(t * 1000 + 999, &mut shared);
        let series = engine.catalogue().series.len();
        engine.flush(|i, _| assert!(i < series, "a metric outside the catalogue"));
    }
    for (key, bytes) in &shared.0 {
        if key.ends_with("/state") {
            assert!(
                RolloutState::from_bytes(bytes).is_some(),
                "the shared state decodes"
            );
        }
    }
});
