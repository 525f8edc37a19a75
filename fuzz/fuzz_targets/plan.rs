//! Plan loading, as the filter's `on_configure` does it, on arbitrary bytes: refused or loaded,
//! never a panic; a plan that loads can be decided on and rolled out without a panic.
//!
//! `cargo xtask fuzz plan` (or `cargo fuzz run plan`), seeded with the compiled example plans.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serin_policy::guard::{Params, Role, Rollout};
use serin_policy::{HeaderList, Plan};

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = Plan::from_json(data) else { return };
    let requests: [&[(&str, &str)]; 3] = [
        &[],
        &[("x-user-id", "alice"), (":path", "/v1/models/m:predict?u=1"), ("cookie", "serin-id=abc")],
        &[("x-serin-force", "canary"), ("x-serin-token", "t"), ("x-age-band", "65+")],
    ];
    for headers in requests {
        let mut request = HeaderList::new(headers);
        request.source_ip = Some([10, 0, 0, 1].into());
        let decision = plan.decide(&request);
        assert!(usize::from(decision.arm) < plan.arms.len());
        if let Some(split) = decision.split.filter(|_| decision.mint_key) {
            assert!(plan.assign(split, b"minted").is_some());
        }
    }
    let rollout = Rollout::from_plan(&plan, Params::default());
    let mut state = rollout.fresh();
    let mut window = rollout.window();
    for t in 0..5u64 {
        window.record_request(t * 1000, Role::Canary);
        window.record_response(t * 1000, Role::Canary, 503, 1_000, false);
        let _ = rollout.tick(&mut state, t * 1000 + 999, &window);
    }
    let _ = rollout.canary_weight(&state);
    assert!(serin_policy::guard::RolloutState::from_bytes(&state.to_bytes()).is_some());
});
