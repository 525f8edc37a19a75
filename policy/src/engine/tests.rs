use serde_json::json;

use super::*;
use crate::guard::{Class, Params};
use crate::{ArmId, HeaderList};

/// A 5% canary split on `x-user-id`, minting a sticky cookie for keyless clients, mirroring
/// `shadow` of stable traffic, with a tester override by token and one outcome by age band.
fn plan(shadow: u32) -> Plan {
    let lanes = |w: u32| json!([{ "arm": 1, "start": 0, "end": w }]);
    let step = |w: u32| json!({ "weight": w, "min_duration_seconds": 60, "gates": ["manual"], "lanes": lanes(w) });
    let plan = json!({
        "format": crate::PLAN_FORMAT,
        "policy": "fraud-model-v2",
        "digest": "sha256:01",
        "routing_header": "x-serin-arm",
        "arms": [{ "name": "stable", "value": "v1" }, { "name": "canary", "value": "v2" }],
        "stable": 0,
        "default": { "split": { "split": 0 } },
        "splits": [{
            "key": [{ "header": "x-user-id" }, { "cookie": "serin-id" }],
            "hash": { "seed": 7, "reduce": { "mul_shift": { "scale": 10000 } } },
            "lanes": lanes(500),
            "rest": 0,
            "fallback": { "random_sticky": { "cookie": "serin-id", "max_age_seconds": 60 } }
        }],
        "override": { "header": "x-serin-force", "token": { "header": "x-serin-token", "value": "t0p" } },
        "shadow": { "header": "x-serin-shadow", "share": shadow, "seed": 3 },
        "segments": [{ "name": "age", "header": "x-age-band", "values": ["18-64", "65+"] }],
        "outcomes": [{
            "name": "flagged",
            "source": { "from": "header", "name": "x-model-decision" },
            "positive": { "op": "equals", "any_of": ["flagged"] }
        }],
        "guards": [{ "name": "errors", "arms": [1], "metric": { "kind": "error_rate", "max_ppm": 20_000 },
                     "window_seconds": 60, "min_samples": 100, "on_breach": "rollback" }],
        "ramp": { "split": 0, "arm": 1, "steps": [step(500), step(5000)] }
    });
    Plan::from_json(plan.to_string().as_bytes()).unwrap()
}

fn engine(shadow: u32) -> Engine {
    Engine::new(plan(shadow), Params::default())
}

fn edits(route: &Route<'_>) -> Vec<(String, Option<String>)> {
    let owned = |(k, v): (&str, Option<&str>)| (k.to_owned(), v.map(String::from));
    route.edits.iter().map(owned).collect()
}

fn user(id: usize) -> Vec<(String, Vec<u8>)> {
    vec![("x-user-id".into(), format!("user-{id}").into_bytes())]
}

/// Share of `users` an engine routes to the canary.
fn canary_share(engine: &mut Engine, users: usize) -> f64 {
    let canary = (0..users)
        .filter(|&i| {
            let route = engine.route(&HeaderList::new(&user(i)), 0, Vec::new);
            route.exchange.arm() == 1
        })
        .count();
    canary as f64 / users as f64
}

/// Put the shared rollout in `phase`, as another worker would, and tick `engine` onto it.
fn enter(engine: &mut Engine, shared: &mut InMemory, phase: Phase) {
    let mut state = engine.rollout().fresh();
    state.phase = phase;
    shared
        .0
        .insert("serin/sha256:01/state".into(), state.to_bytes());
    engine.tick(1, shared);
}

#[test]
fn a_minted_key_is_mirrored_like_a_sent_one() {
    // Everything stable is mirrored: a keyless client's first request, routed by the key it was
    // just given, must be marked too (it was not when minting happened outside the engine).
    let mut engine = engine(10_000);
    let mut marked = 0;
    for i in 0..200u32 {
        let route = engine.route(&HeaderList::<&str, &[u8]>::new(&[]), 0, || {
            i.to_le_bytes().to_vec()
        });
        let arm = route.exchange.arm();
        let shadow = edits(&route)
            .into_iter()
            .find(|(h, _)| h == "x-serin-shadow");
        if arm == 0 {
            assert_eq!(shadow, Some(("x-serin-shadow".into(), Some("1".into()))));
            marked += 1;
        } else {
            // A client's own mark is dropped; a canary request is never mirrored.
            assert_eq!(shadow, Some(("x-serin-shadow".into(), None)));
        }
        let mut ex = route.exchange;
        let cookie = ex
            .take_set_cookie()
            .expect("a keyless client gets a cookie");
        assert!(cookie.starts_with("serin-id=") && cookie.contains("Max-Age=60"));
        // The same key sent back lands on the same arm.
        let key = cookie["serin-id=".len()..]
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let again = [("cookie", format!("serin-id={key}"))];
        assert_eq!(
            engine
                .route(&HeaderList::new(&again), 0, Vec::new)
                .exchange
                .arm(),
            arm
        );
    }
    assert!(
        marked > 150,
        "{marked} of 200 keyless requests went to stable"
    );
}

#[test]
fn edits_replace_the_routing_header_and_hide_the_token() {
    let mut engine = engine(0);
    assert!(
        engine.headers_to_strip_first().is_empty(),
        "the plan names neither header"
    );
    let request = [
        ("x-user-id", "user-1"),
        ("x-serin-force", "canary"),
        ("x-serin-token", "t0p"),
    ];
    let route = engine.route(&HeaderList::new(&request), 0, Vec::new);
    assert_eq!(
        route.exchange.arm(),
        1,
        "a tester with the token forces the canary"
    );
    assert_eq!(
        edits(&route),
        [
            ("x-serin-arm".into(), Some("v2".into())),
            ("x-serin-shadow".into(), None),
            ("x-serin-token".into(), None),
        ]
    );
}

#[test]
fn a_plan_that_reads_the_routing_header_has_it_stripped_first() {
    let mut plan = plan(0);
    plan.splits[0]
        .key
        .insert(0, crate::KeySource::Header("x-serin-arm".into()));
    let engine = Engine::new(plan, Params::default());
    assert_eq!(
        engine.headers_to_strip_first(),
        ["x-serin-arm", "x-serin-shadow"]
    );
}

#[test]
fn the_phase_sets_the_lanes_and_a_rollback_sends_everything_to_stable() {
    let mut engine = engine(10_000);
    let mut shared = InMemory::default();
    let at_5 = canary_share(&mut engine, 20_000);
    assert!((at_5 - 0.05).abs() < 0.01, "{at_5}");
    enter(&mut engine, &mut shared, Phase::Ramping { step: 1 });
    let at_50 = canary_share(&mut engine, 20_000);
    assert!((at_50 - 0.5).abs() < 0.02, "{at_50}");
    enter(&mut engine, &mut shared, Phase::Promoted);
    assert_eq!(canary_share(&mut engine, 1_000), 1.0);
    enter(&mut engine, &mut shared, Phase::RolledBack { guard: 0 });
    assert_eq!(canary_share(&mut engine, 1_000), 0.0);
    // Nor is anything mirrored to the canary any more, even with a tester's override.
    let request = [("x-serin-force", "canary"), ("x-serin-token", "t0p")];
    let route = engine.route(&HeaderList::new(&request), 0, Vec::new);
    assert_eq!(route.exchange.arm(), 0);
    assert!(!edits(&route).iter().any(|(_, v)| v.as_deref() == Some("1")));
}

#[test]
fn users_keep_their_arm_as_the_canary_grows() {
    let mut engine = engine(0);
    let mut shared = InMemory::default();
    let arms = |e: &mut Engine| -> Vec<ArmId> {
        let route = |i| {
            e.route(&HeaderList::new(&user(i)), 0, Vec::new)
                .exchange
                .arm()
        };
        (0..5_000).map(route).collect()
    };
    let before = arms(&mut engine);
    enter(&mut engine, &mut shared, Phase::Ramping { step: 1 });
    let after = arms(&mut engine);
    let moved_out = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| **b == 1 && **a != 1);
    assert_eq!(moved_out.count(), 0);
}

#[test]
fn a_response_is_counted_once_it_ends_and_a_cut_one_as_a_reset() {
    let mut engine = engine(0);
    let canary_user = (0..).find(|&i| {
        let route = engine.route(&HeaderList::new(&user(i)), 0, Vec::new);
        route.exchange.arm() == 1
    });
    let mut request = user(canary_user.unwrap());
    request.push(("x-age-band".into(), b"65+".to_vec()));
    // Drain what the search counted.
    engine.flush(|_, _| {});
    engine.publish(&mut InMemory::default());

    let mut ex = engine
        .route(&HeaderList::new(&request), 10, Vec::new)
        .exchange;
    let decision = |name: &str| (name == "x-model-decision").then(|| b"flagged".to_vec());
    let sample = engine.response_headers(&mut ex, 35, 503, false, || true, decision);
    assert_eq!(sample.value, 25, "latency in ms");
    assert_eq!(sample.series, engine.catalogue().duration(1));
    // The body stops short: the stream ends without its end.
    engine.stream_done(ex, || 40);

    let mut counts = std::collections::BTreeMap::new();
    engine.flush(|series, update| {
        if let Update::Add(n) = update {
            counts.insert(series, n);
        }
    });
    let c = engine.catalogue();
    assert_eq!(
        counts,
        [
            (c.requests(1), 1),
            (c.responses(1, Class::ServerError), 1),
            (c.resets(1), 1),
            (c.outcomes(1, 0, 1, false), 1),
            (c.outcomes(1, 0, 1, true), 1),
        ]
        .into_iter()
        .collect()
    );
    // The window saw the request and the reset, not the 503 it began with.
    let window = engine.publish(&mut InMemory::default());
    let canary = window.slot(0).unwrap().arm(crate::guard::Role::Canary);
    assert_eq!(
        (canary.requests, canary.resets, canary.completed()),
        (1, 1, 1)
    );
}

/// Shared data that counts its writes.
#[derive(Default)]
struct Counting(InMemory, usize);

impl SharedData for Counting {
    fn update(&mut self, key: &str, f: &mut Rewrite<'_>) -> bool {
        self.1 += 1;
        self.0.update(key, f)
    }

    fn read(&mut self, key: &str) -> Option<Vec<u8>> {
        self.0.read(key)
    }
}

#[test]
fn a_worker_that_recorded_nothing_reads_the_shared_window_without_writing_it() {
    let (mut busy, mut idle) = (engine(0), engine(0));
    let mut shared = Counting::default();
    busy.route(&HeaderList::new(&user(1)), 1_000, Vec::new);
    let merged = busy.publish(&mut shared);
    assert_eq!(shared.1, 1);
    assert!(!merged.is_empty());
    assert_eq!(idle.publish(&mut shared), merged);
    assert_eq!(shared.1, 1, "an empty window is not merged in");

    // A plan that measures nothing (no guard, no ramp) never touches the shared window.
    let mut plan = plan(0);
    plan.guards.clear();
    plan.ramp = None;
    let mut split = Engine::new(plan, Params::default());
    split.route(&HeaderList::new(&user(1)), 1_000, Vec::new);
    let mut untouched = Counting::default();
    assert!(split.publish(&mut untouched).is_empty());
    assert!(untouched.0.0.is_empty() && untouched.1 == 0);
}
