//! The native backend's hooks (`libserin`), driven by the stand-in Envoy of
//! `native/fake-envoy` on arbitrary plugin configurations, request headers, responses and
//! ticks, over two workers, with a host that may answer absurdly.
//!
//! What must hold: no panic leaves a hook (each is caught there, and counted); a configuration
//! is refused or accepted; an accepted one leaves every request with exactly one routing header
//! naming one of the plan's arms; nothing written into a header carries CR, LF or NUL.
//!
//! `cargo xtask fuzz native`.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serin_fake_envoy::{Config, Hostile, Response, StreamState, with_host};
use serin_fuzz::{PluginConfig, forbidden};

#[derive(Arbitrary, Debug)]
struct Exchange {
    worker: u8,
    headers: Vec<(String, Vec<u8>)>,
    source: Option<[u8; 4]>,
    status: Option<u16>,
    response_headers: Vec<(String, Vec<u8>)>,
    body: Vec<Vec<u8>>,
    local_reply: bool,
    tick: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: PluginConfig,
    hostile: (bool, bool, bool),
    exchanges: Vec<Exchange>,
}

/// Headers as a codec hands them over: lower-case names, no forbidden bytes.
fn clean(pairs: &[(String, Vec<u8>)], at_most: usize) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .take(at_most)
        .filter_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let v: Vec<u8> = v.iter().copied().filter(|b| !forbidden(*b)).collect();
            (!k.is_empty() && !k.bytes().any(forbidden)).then_some((k, v))
        })
        .collect()
}

fuzz_target!(|input: Input| {
    // Panics inside a hook are caught there by design; libFuzzer's hook would abort on them.
    // One that escapes a hook still fails the run (it unwinds into the harness).
    static QUIET: Once = Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let json = input.config.bytes();
    let (absurd_counts, garbage_headers, no_metrics) = input.hostile;
    with_host(|h| {
        h.hostile = Hostile {
            absurd_counts,
            garbage_headers,
            no_metrics,
        }
    });
    let Ok(config) = Config::load(&json, 2) else {
        return;
    };
    let plan = serin_policy::Plan::from_json(&json).expect("an accepted config is a plan");
    let arms: Vec<&str> = plan.arms.iter().map(|a| a.value.as_str()).collect();
    for ex in input.exchanges.iter().take(16) {
        let request = StreamState {
            request: clean(&ex.headers, 32),
            source_address: ex
                .source
                .map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}:40000")),
            ..StreamState::default()
        };
        let response = ex.status.map(|status| {
            let mut headers = clean(&ex.response_headers, 16);
            headers.retain(|(k, _)| k != ":status");
            headers.insert(
                0,
                (
                    ":status".into(),
                    (status % 500 + 100).to_string().into_bytes(),
                ),
            );
            Response {
                headers,
                body: ex.body.iter().take(4).cloned().collect(),
                code_details: Some(
                    if ex.local_reply {
                        "direct_response"
                    } else {
                        "via_upstream"
                    }
                    .into(),
                ),
            }
        });
        let after = config.exchange(u32::from(ex.worker % 2), request, response);
        let routing: Vec<&Vec<u8>> = after
            .request
            .iter()
            .filter(|(k, _)| *k == plan.routing_header)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(routing.len(), 1, "one routing header");
        let arm = std::str::from_utf8(routing[0]).unwrap_or_default();
        assert!(
            arms.contains(&arm),
            "routed to one of the plan's arms, not {arm:?}"
        );
        for (k, v) in after.request.iter().chain(&after.response) {
            assert!(
                !k.bytes().chain(v.iter().copied()).any(forbidden),
                "a forbidden byte written into header `{k}`"
            );
        }
        if ex.tick {
            config.tick();
        }
    }
    with_host(|h| h.hostile = Hostile::default());
});
