//! The native backend's hooks, driven as Envoy drives them, against the stand-in host: the
//! routing the engine decides, metrics with real labels, a bad plan refused, a broken host
//! survived, the ticker stopped with its config. The e2e suite runs the same hooks in Envoy.

use serin_fake_envoy::{Config, Hostile, Response, StreamState, ticks, with_host};
use serin_policy::{HeaderList, Plan};

fn plan() -> Plan {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fraud-model.toml"
    ))
    .unwrap();
    serin_compiler::compile_str(&source, "fraud-model.toml")
        .unwrap()
        .plan
}

fn request(headers: &[(&str, &str)]) -> StreamState {
    StreamState {
        request: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        ..StreamState::default()
    }
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    let (_, v) = headers.iter().find(|(k, _)| k == name)?;
    std::str::from_utf8(v).ok()
}

fn ok_response(body: &str) -> Response {
    Response {
        headers: vec![(":status".into(), b"200".to_vec())],
        body: vec![body.as_bytes().to_vec()],
        code_details: Some("via_upstream".into()),
    }
}

#[test]
fn every_request_gets_the_arm_the_engine_decides_and_a_spoofed_header_is_replaced() {
    let plan = plan();
    let config = Config::load(plan.to_json().as_bytes(), 2).unwrap();
    for i in 0..2_000 {
        let user = format!("user-{i}");
        let spoof = if i % 3 == 0 { "fraud-v2" } else { "fraud-v1" };
        let sent = [("x-user-id", user.as_str()), ("x-serin-arm", spoof)];
        let after = config.exchange(i % 2, request(&sent), Some(ok_response("{}")));
        let want = plan.arm(plan.decide(&HeaderList::new(&sent[..1])).arm);
        assert_eq!(
            header(&after.request, "x-serin-arm"),
            Some(want.value.as_str())
        );
        let routing = after.request.iter().filter(|(k, _)| k == "x-serin-arm");
        assert_eq!(routing.count(), 1, "one routing header, the engine's");
        assert_eq!(after.route_cache_cleared, 1);
    }
}

#[test]
fn metrics_carry_real_labels_and_the_outcome_read_from_the_body() {
    let config = Config::load(plan().to_json().as_bytes(), 1).unwrap();
    for i in 0..200 {
        let user = format!("u{i}");
        let headers = [("x-user-id", user.as_str()), ("x-age-band", "65+")];
        config.exchange(
            0,
            request(&headers),
            Some(ok_response(r#"{"predictions": [0.93]}"#)),
        );
    }
    config.tick();
    let values = with_host(|h| h.values.clone());
    let total = |prefix: &str| -> u64 {
        let rows = values.iter().filter(|(k, _)| k.starts_with(prefix));
        rows.map(|(_, v)| v).sum()
    };
    assert_eq!(total("requests_total{arm="), 200, "{values:#?}");
    assert_eq!(total("responses_total{arm="), 200);
    assert_eq!(total("outcomes_positive_total{arm="), 200, "{values:#?}");
    assert!(values.contains_key(r#"rollout_state{}"#));
    assert!(
        values
            .keys()
            .any(|k| k.starts_with("request_duration_milliseconds_arm=.=")),
        "latency recorded per arm: {values:#?}"
    );
}

#[test]
fn a_bad_plan_is_refused_with_the_reason_in_the_log() {
    let json = plan().to_json().replacen(
        &format!(r#""format":{}"#, serin_policy::PLAN_FORMAT),
        r#""format":99"#,
        1,
    );
    let logs = Config::load(json.as_bytes(), 1).err().expect("refused");
    assert!(
        logs.iter()
            .any(|l| l.contains("serin: refusing plugin configuration") && l.contains("99")),
        "{logs:?}"
    );
    assert!(Config::load(b"not json", 1).is_err());
}

#[test]
fn a_host_that_answers_absurdly_never_takes_the_proxy_down() {
    // A plan that reads more headers than it asks for by name: the whole map is fetched, and
    // the broken host reports more headers than memory holds.
    let source = r#"
[policy]
name = "many headers"
[arms.stable]
value = "v1"
[arms.canary]
value = "v2"
[split]
key = ["header:h1", "header:h2", "header:h3", "header:h4", "header:h5", "header:h6", "header:h7", "header:h8", "header:h9"]
weights = { canary = 50 }
fallback = "stable"
"#;
    let plan = serin_compiler::compile_str(source, "many.toml")
        .unwrap()
        .plan;
    let config = Config::load(plan.to_json().as_bytes(), 1).unwrap();
    with_host(|h| {
        h.hostile = Hostile {
            absurd_counts: true,
            ..Hostile::default()
        }
    });
    for _ in 0..3 {
        let after = config.exchange(0, request(&[("h1", "k")]), Some(ok_response("{}")));
        // The hook panicked inside; the request still goes somewhere safe: the stable arm.
        assert_eq!(header(&after.request, "x-serin-arm"), Some("v1"));
    }
    with_host(|h| h.hostile = Hostile::default());
    config.tick();
    assert_eq!(
        with_host(|h| h.values.get("panics_total{}").copied()),
        Some(3)
    );
    // And the next request is routed as usual.
    let after = config.exchange(0, request(&[("h1", "k")]), Some(ok_response("{}")));
    let want = plan.arm(plan.decide(&HeaderList::new(&[("h1", "k")])).arm);
    assert_eq!(
        header(&after.request, "x-serin-arm"),
        Some(want.value.as_str())
    );
}

#[test]
fn garbage_from_the_host_and_refused_metrics_are_survived() {
    let config = {
        with_host(|h| {
            h.hostile = Hostile {
                no_metrics: true,
                ..Hostile::default()
            }
        });
        Config::load(plan().to_json().as_bytes(), 1).unwrap()
    };
    with_host(|h| {
        h.hostile = Hostile {
            garbage_headers: true,
            no_metrics: true,
            ..Hostile::default()
        }
    });
    let after = config.exchange(0, request(&[("x-user-id", "u")]), Some(ok_response("{")));
    assert!(header(&after.request, "x-serin-arm").is_some());
    config.tick();
    with_host(|h| h.hostile = Hostile::default());
}

#[test]
fn the_ticker_wakes_the_main_thread_and_stops_with_its_config() {
    let config = Config::load(plan().to_json().as_bytes(), 1).unwrap();
    let wakeups = config.ticks();
    std::thread::sleep(std::time::Duration::from_millis(2_300));
    let running = ticks(&wakeups);
    assert!(
        (2..=3).contains(&running),
        "about one wake-up a second: {running}"
    );
    drop(config);
    let stopped = ticks(&wakeups);
    std::thread::sleep(std::time::Duration::from_millis(1_300));
    assert_eq!(
        ticks(&wakeups),
        stopped,
        "the thread was joined in config_destroy"
    );
}
