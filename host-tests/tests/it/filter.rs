//! The routing header, the client's attempts to set it, and plugin configurations the filter
//! must refuse.

use serin_host_tests::{Action, LogLevel, Status};
use serin_policy::PLAN_FORMAT;

use crate::support::*;

#[test]
fn sets_the_routing_header_and_clears_the_route_cache() {
    let plan = split_plan(5_000);
    let mut w = worker(&plan);
    let mut s = w.request().path("/checkout").header("x-user-id", "user-42");
    assert_eq!(s.send_headers().unwrap(), Action::Continue);
    let want = native_arm(&plan, &s.request_headers().to_vec(), None);
    assert_eq!(
        s.request_header("x-serin-arm").as_deref(),
        Some(want.as_str())
    );
    assert_eq!(
        s.route_cache_clears(),
        1,
        "clear_route_cache after changing the header"
    );
    assert_eq!(
        s.deliver_response_headers(&[(":status", "200")], true)
            .unwrap(),
        Action::Continue
    );
    assert_eq!(s.response_header("set-cookie"), None);
    s.done().unwrap();
    drop(s);
    let calls = w.foreign_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].name.as_str(), calls[0].status),
        ("clear_route_cache", Status::Ok)
    );
}

#[test]
fn a_pinned_plan_routes_everything_to_its_arm() {
    let mut w = worker(&pin_plan(1));
    for user in ["a", "b", "c"] {
        let mut s = w.request().header("x-user-id", user);
        s.send_headers().unwrap();
        assert_eq!(
            s.request_header("x-serin-arm").as_deref(),
            Some("canary-v1")
        );
    }
}

#[test]
fn a_spoofed_routing_header_is_replaced() {
    let mut w = worker(&pin_plan(0));
    let mut s = w
        .request()
        .header("x-serin-arm", "canary-v1")
        .header("X-Serin-Arm", "canary-v1")
        .header("x-user-id", "mallory");
    assert_eq!(s.send_headers().unwrap(), Action::Continue);
    let headers = s.request_headers();
    assert_eq!(
        headers.get_all("x-serin-arm"),
        vec![&b"stable-v1"[..]],
        "one value, the filter's"
    );
    assert_eq!(
        headers.get("x-user-id"),
        Some(&b"mallory"[..]),
        "other headers are kept"
    );
}

#[test]
fn a_spoofed_header_cannot_pick_the_canary_in_a_split() {
    // With no canary lane, only a spoofed header could send a request to the canary.
    let mut w = worker(&split_plan(0));
    for i in 0..50 {
        let mut s = w
            .request()
            .header("x-user-id", format!("u{i}"))
            .header("x-serin-arm", "canary-v1");
        s.send_headers().unwrap();
        assert_eq!(
            s.request_header("x-serin-arm").as_deref(),
            Some("stable-v1")
        );
    }
}

fn refused(config: &[u8], reason: &str) {
    let host = host();
    let mut w = host.worker().unwrap();
    assert!(
        !w.configure(config).unwrap(),
        "on_configure accepted {:?}",
        String::from_utf8_lossy(config)
    );
    let errors: Vec<String> = w
        .logs()
        .into_iter()
        .filter(|l| l.level == LogLevel::Error)
        .map(|l| l.message)
        .collect();
    assert!(
        errors
            .iter()
            .any(|m| m.contains("refusing plugin configuration") && m.contains(reason)),
        "no error log naming `{reason}` for {:?}; logs:\n{}",
        String::from_utf8_lossy(config),
        w.log_text()
    );
    // Envoy creates no filter from a refused configuration.
    assert!(w.request().send_headers().is_err());
}

#[test]
fn bad_plugin_configurations_are_refused_with_a_reason() {
    // Each log line must name the problem; the fragments are the stable part of the wording.
    let good = split_json(5_000);
    refused(b"", "empty");
    refused(b"   ", "JSON");
    refused(b"not json", "JSON");
    refused(b"[1, 2, 3]", "JSON");

    let mut v = good.clone();
    v["format"] = (PLAN_FORMAT + 1).into();
    refused(
        v.to_string().as_bytes(),
        &format!("format {} is not supported", PLAN_FORMAT + 1),
    );

    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("format");
    refused(v.to_string().as_bytes(), "`format`");

    let mut v = good.clone();
    v["format"] = "1".into();
    refused(v.to_string().as_bytes(), "invalid type: string \"1\"");

    let mut v = good.clone();
    v["arms"] = "stable".into();
    refused(v.to_string().as_bytes(), "invalid type: string \"stable\"");

    let mut v = good.clone();
    v["splits"][0]["lanes"][0]["end"] = (-5).into();
    refused(v.to_string().as_bytes(), "invalid value: integer `-5`");

    let mut v = good.clone();
    v["stable"] = 9.into();
    refused(
        v.to_string().as_bytes(),
        "stable arm index 9 is out of range",
    );

    let mut v = good.clone();
    v["routing_header"] = "X-Serin-Arm".into();
    refused(v.to_string().as_bytes(), "routing header `X-Serin-Arm`");

    let mut v = good;
    v["surprise"] = true.into();
    refused(v.to_string().as_bytes(), "unknown field `surprise`");
}

#[test]
fn a_good_configuration_is_logged() {
    let host = host();
    let mut w = host.worker().unwrap();
    assert!(w.configure(split_plan(100).to_json()).unwrap());
    let log = w.log_text();
    assert!(log.contains("loaded policy `checkout`"), "{log}");
}

#[test]
fn workers_decide_alike_and_keep_no_state_between_requests() {
    // Two Envoy workers, each with its own VM: a user lands on the same arm on either.
    let plan = split_plan(5_000);
    let host = host();
    let mut a = host.configured_worker(plan.to_json()).unwrap();
    let mut b = host.configured_worker(plan.to_json()).unwrap();
    assert_ne!(a.id(), b.id());
    for i in 0..200 {
        let user = format!("user-{i}");
        let mut sa = a.request().header("x-user-id", &user);
        sa.send_headers().unwrap();
        let arm_a = sa.request_header("x-serin-arm");
        drop(sa);
        let mut sb = b.request().header("x-user-id", &user);
        sb.send_headers().unwrap();
        assert_eq!(arm_a, sb.request_header("x-serin-arm"), "{user}");
    }
}
