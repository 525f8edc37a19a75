//! The engine's own share of a request, counted natively in instructions: what a backend's
//! callbacks ask of [`Engine`] for one request of the load bench (route, the response headers,
//! the body, the stream's end), without any proxy ABI around it.
//!
//! ```text
//! serin compile examples/fraud-model.toml -o /tmp/fraud.json
//! cargo build --release -p serin-policy --example engine_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.engine --toggle-collect='*measured*' \
//!     target/release/examples/engine_instructions /tmp/fraud.json 10000
//! callgrind_annotate --inclusive=yes /tmp/cg.engine
//! ```
//!
//! Callgrind counts only inside `measured`: divide its total by the request count. The requests
//! are those of `cargo xtask bench-instructions`: a new `x-user-id` each, `x-age-band: 35-64`,
//! a 200 with the body `{"predictions": [0.02], "model_version": "stable"}`. The tick runs
//! once every 1,000 requests, outside the count, as a proxy's once-a-second tick would.

use std::hint::black_box;

use serin_policy::guard::Params;
use serin_policy::{Engine, HeaderList, InMemory, Plan};

const BODY: &[u8] = br#"{"predictions": [0.02], "model_version": "stable"}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .expect("usage: engine_instructions PLAN.json [REQUESTS]");
    let requests: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let bytes = std::fs::read(path).expect("the plan's JSON");
    let plan = Plan::from_json(&bytes).expect("a plan");
    let mut engine = Engine::new(plan, Params::default());
    let mut shared = InMemory::default();
    let mut user = 0u64;
    // Warm up outside `measured`: the first requests grow the tallies and fault in pages.
    user = batch(&mut engine, user, 1_000, &mut shared, false);
    let mut left = requests;
    while left > 0 {
        let n = left.min(1_000);
        user = batch(&mut engine, user, n, &mut shared, true);
        left -= n;
    }
    eprintln!("{requests} requests measured ({user} users)");
}

fn batch(engine: &mut Engine, user: u64, n: u64, shared: &mut InMemory, count: bool) -> u64 {
    let now = 1_000 * (user / 1_000 + 1);
    let next = if count {
        measured(engine, user, n, now)
    } else {
        requests(engine, user, n, now)
    };
    let _ = engine.tick(now + 1_000, shared);
    engine.flush(|series, update| {
        black_box((series, update));
    });
    next
}

#[inline(never)]
fn measured(engine: &mut Engine, user: u64, n: u64, now: u64) -> u64 {
    requests(engine, user, n, now)
}

fn requests(engine: &mut Engine, mut user: u64, n: u64, now: u64) -> u64 {
    let names = engine.headers_to_read();
    for _ in 0..n {
        user += 1;
        let id = format!("user-{user}").into_bytes();
        let all = [
            ("x-user-id".to_owned(), id),
            ("x-age-band".to_owned(), b"35-64".to_vec()),
        ];
        let read: Vec<_> = all
            .iter()
            .filter(|(k, _)| names.as_deref().is_none_or(|n| n.iter().any(|m| m == k)))
            .cloned()
            .collect();
        let route = engine.route(&HeaderList::new(&read), now, Vec::new);
        let edits = route.edits.iter().count();
        let mut ex = route.exchange;
        black_box(edits);
        let sample = engine.response_headers(&mut ex, now + 3, 200, false, || false, |_| None);
        black_box(sample.value);
        if engine.wants_body(&ex) {
            engine.response_body(
                &mut ex,
                || now + 3,
                BODY.len(),
                true,
                || Some(BODY.to_vec()),
            );
        } else {
            engine.response_body(&mut ex, || now + 3, BODY.len(), true, || None);
        }
        engine.stream_done(ex, || now + 3);
    }
    user
}
