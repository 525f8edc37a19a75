//! The real `filter.wasm`, run by the wasmtime host of `host-tests`, on arbitrary plugin
//! configurations, request header maps, bodies, responses, resets and clock steps, over two
//! workers that share data as Envoy's do.
//!
//! What must hold: the VM never traps; a configuration is refused or accepted, never half-taken;
//! an accepted one routes every request to one of the plan's arms; and nothing the filter writes
//! into a header carries CR, LF or NUL.
//!
//! The coverage that guides libFuzzer is the host's (the guest runs in wasmtime), so the input is
//! structured: the example plans, byte-level mutations of them, and raw bytes.
//!
//! `cargo xtask fuzz filter` (or `cargo fuzz run filter` after `cargo xtask wasm`, or with
//! SERIN_FILTER_WASM set).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serin_fuzz::{PluginConfig, forbidden};
use serin_host_tests::{Host, Worker};

#[derive(Arbitrary, Debug)]
struct Exchange {
    headers: Vec<(String, Vec<u8>)>,
    source: Option<[u8; 4]>,
    request_body: Vec<Vec<u8>>,
    response: Response,
    advance_ms: u16,
}

#[derive(Arbitrary, Debug)]
enum Response {
    /// The upstream answered: status, headers, body chunks.
    Answered {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<Vec<u8>>,
    },
    /// The stream was reset before any response.
    Reset,
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: PluginConfig,
    exchanges: Vec<Exchange>,
}

/// One wasmtime host with the compiled filter, for every run.
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let wasm = serin_host_tests::filter_wasm().expect("filter.wasm is built");
        Host::new(&wasm).expect("filter.wasm loads")
    })
}

/// Header names as a codec hands them over: lower case, not empty, no forbidden bytes.
fn name(raw: &str) -> Option<String> {
    let name = raw.to_ascii_lowercase();
    (!name.is_empty() && !name.bytes().any(forbidden)).then_some(name)
}

fn value(raw: &[u8]) -> Vec<u8> {
    raw.iter().copied().filter(|b| !forbidden(*b)).collect()
}

fn assert_clean(what: &str, pairs: &[(String, String)]) {
    for (k, v) in pairs {
        assert!(
            !k.bytes().chain(v.bytes()).any(forbidden),
            "the filter wrote a forbidden byte into {what} header `{k}`: {v:?}"
        );
    }
}

fn exchange(worker: &mut Worker, arms: &[String], routing_header: &str, ex: &Exchange) {
    let mut s = worker.request();
    for (k, v) in ex.headers.iter().take(32) {
        if let Some(k) = name(k) {
            s = s.header(&k, value(v));
        }
    }
    if let Some(ip) = ex.source {
        let [a, b, c, d] = ip;
        s = s.source_address(&format!("{a}.{b}.{c}.{d}:40000"));
    }
    let has_body = !ex.request_body.is_empty();
    s = s.end_of_stream(!has_body);
    s.send_headers().expect("request headers");
    let chunks = ex.request_body.len().min(4);
    for (i, chunk) in ex.request_body.iter().take(chunks).enumerate() {
        s.send_body(chunk, i + 1 == chunks).expect("request body");
    }
    if s.local_response().is_none() {
        let arm = s.request_header(routing_header);
        assert!(
            arm.as_ref().is_some_and(|a| arms.contains(a)),
            "a routed request carries one of the plan's arms, not {arm:?}"
        );
        assert_clean("a request", &s.request_headers().to_vec());
        if let Response::Answered {
            status,
            headers,
            body,
        } = &ex.response
        {
            let status = (status % 500 + 100).to_string();
            let mut pairs: Vec<(String, String)> = headers
                .iter()
                .take(16)
                .filter_map(|(k, v)| Some((name(k)?, v.replace(['\r', '\n', '\0'], ""))))
                .collect();
            pairs.retain(|(k, _)| k != ":status");
            pairs.insert(0, (":status".into(), status));
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let chunks = body.len().min(4);
            s.deliver_response_headers(&refs, chunks == 0)
                .expect("response headers");
            for (i, chunk) in body.iter().take(chunks).enumerate() {
                s.deliver_response_body(chunk, i + 1 == chunks)
                    .expect("response body");
            }
            if let Some(headers) = s.response_headers() {
                assert_clean("a response", &headers.to_vec());
            }
        }
    }
    s.done().expect("done");
    drop(s);
    let host = worker.host().clone();
    host.advance_clock(Duration::from_millis(u64::from(ex.advance_ms)));
    worker.run_due_ticks().expect("ticks");
    assert!(
        worker.failure().is_none(),
        "the VM failed: {:?}",
        worker.failure()
    );
}

fuzz_target!(|input: Input| {
    let config = input.config.bytes();
    let host = host().fresh();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut w = host.worker().expect("a worker starts");
        let accepted = w.configure(&config).expect("on_configure does not trap");
        if !accepted {
            // Refused: Envoy creates no filter, so there is nothing more to run.
            return;
        }
        workers.push(w);
    }
    let plan = serin_policy::Plan::from_json(&config).expect("the filter accepted it, so it loads");
    let arms: Vec<String> = plan.arms.iter().map(|a| a.value.clone()).collect();
    for (i, ex) in input.exchanges.iter().take(16).enumerate() {
        exchange(&mut workers[i % 2], &arms, &plan.routing_header, ex);
    }
});
