//! The rollout loop across Envoy workers in virtual time: counts merged through shared data, a
//! rollback written by one worker obeyed by every worker within one tick, and the state kept
//! across a reload of the same policy but not of a new one.

use std::time::Duration;

use serde_json::json;
use serin_host_tests::{MetricValue, Worker};
use serin_policy::Plan;
use serin_policy::guard::{Role, Window};

use crate::support::{host, plan};

/// stable + canary at 50%, one guard: canary errors above 2% roll back.
fn guarded_plan(digest: &str) -> Plan {
    plan(json!({
        "format": serin_policy::PLAN_FORMAT,
        "policy": "checkout",
        "digest": digest,
        "routing_header": "x-serin-arm",
        "arms": [{ "name": "stable", "value": "stable" }, { "name": "canary", "value": "canary" }],
        "stable": 0,
        "default": { "split": { "split": 0 } },
        "splits": [{
            "key": [{ "header": "x-user-id" }],
            "hash": { "seed": 7, "reduce": { "mul_shift": { "scale": 10_000 } } },
            "lanes": [{ "arm": 1, "start": 0, "end": 5_000 }],
            "rest": 0,
            "fallback": { "arm": { "arm": 0 } }
        }],
        "guards": [{
            "name": "errors", "arms": [1], "metric": { "kind": "error_rate", "max_ppm": 20_000 },
            "window_seconds": 60, "min_samples": 50, "on_breach": "rollback"
        }]
    }))
}

/// Send `n` requests through `worker`; the canary answers 503, stable 200. Returns how many
/// were routed to the canary.
fn traffic(worker: &mut Worker, from: u32, n: u32) -> u32 {
    let mut canary = 0;
    for i in from..from + n {
        let mut s = worker.request().header("x-user-id", format!("user-{i}"));
        s.send_headers().unwrap();
        let to_canary = s.request_header("x-serin-arm").as_deref() == Some("canary");
        let status = if to_canary { "503" } else { "200" };
        s.deliver_response_headers(&[(":status", status)], true)
            .unwrap();
        s.done().unwrap();
        canary += u32::from(to_canary);
    }
    canary
}

fn state_gauge(worker: &Worker) -> Option<u64> {
    match worker.metrics().get("serin_rollout_state") {
        Some(MetricValue::Gauge(v)) => Some(*v),
        _ => None,
    }
}

#[test]
fn a_rollback_by_one_worker_reaches_the_other_within_one_tick_and_survives_a_reload() {
    let host = host();
    let plan = guarded_plan("sha256:first");
    let mut a = host.configured_worker(plan.to_json()).unwrap();
    let mut b = host.configured_worker(plan.to_json()).unwrap();
    assert_eq!(a.tick_period(), Some(Duration::from_secs(1)));

    // Only worker A sees the failing canary. B ticks too, but has nothing to add.
    let mut rolled_back_after = None;
    for step in 0..20u32 {
        assert!(traffic(&mut a, step * 200, 200) > 0);
        host.advance_clock(Duration::from_millis(500));
        a.run_due_ticks().unwrap();
        if state_gauge(&a) == Some(4) {
            rolled_back_after = Some(step);
            break;
        }
    }
    let step = rolled_back_after.expect("worker A rolls the canary back");
    assert!(step <= 8, "rolled back only after {step} half-seconds");
    assert!(
        a.log_text().contains("rollout transition"),
        "{}",
        a.log_text()
    );
    assert_eq!(
        traffic(&mut a, 100_000, 500),
        0,
        "A sends nothing more to the canary"
    );

    // B has not ticked since: it may still route to the canary. One tick later it may not.
    host.advance_clock(Duration::from_millis(1_000));
    b.run_due_ticks().unwrap();
    assert_eq!(
        traffic(&mut b, 200_000, 500),
        0,
        "B obeys the rollback after its next tick"
    );
    assert!(
        !b.log_text().contains("rollout transition"),
        "the transition is logged once, by A"
    );

    // A reload of the same policy resumes where the rollout was...
    assert!(a.configure(plan.to_json()).unwrap());
    assert_eq!(
        traffic(&mut a, 300_000, 500),
        0,
        "a reload of the same policy stays rolled back"
    );

    // ...and a new policy starts afresh.
    assert!(
        a.configure(guarded_plan("sha256:second").to_json())
            .unwrap()
    );
    assert!(
        traffic(&mut a, 400_000, 500) > 150,
        "a new policy routes to its canary again"
    );
}

#[test]
fn counts_from_every_worker_reach_the_shared_window() {
    // Two workers serve traffic; after each has ticked, the shared window holds exactly the
    // sum of what both routed, request for request.
    let host = host();
    let plan = guarded_plan("sha256:shared");
    let mut a = host.configured_worker(plan.to_json()).unwrap();
    let mut b = host.configured_worker(plan.to_json()).unwrap();
    let (mut canary, mut all) = (0u64, 0u64);
    for round in 0..3u32 {
        canary += u64::from(traffic(&mut a, round * 1_000, 30));
        canary += u64::from(traffic(&mut b, 50_000 + round * 1_000, 20));
        all += 50;
        host.advance_clock(Duration::from_millis(1_000));
        a.run_due_ticks().unwrap();
        b.run_due_ticks().unwrap();
    }
    let (bytes, _) = host
        .shared_data("serin/sha256:shared/window")
        .expect("the workers share a window");
    let window = Window::from_bytes(&bytes).expect("it decodes");
    let now_ms = host
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let shared_canary = u64::from(window.totals(now_ms, Role::Canary).requests);
    let shared_stable = u64::from(window.totals(now_ms, Role::Stable).requests);
    assert_eq!((shared_canary, shared_stable), (canary, all - canary));
}

#[test]
fn an_envoy_restart_forgets_the_rollout() {
    // Shared data lives as long as the Envoy process: a new process (a fresh host) starts the
    // policy at its first step again. SECURITY.md says so and says what to do about it.
    let host = host();
    let plan = guarded_plan("sha256:restart");
    let mut a = host.configured_worker(plan.to_json()).unwrap();
    for step in 0..20u32 {
        traffic(&mut a, step * 200, 200);
        host.advance_clock(Duration::from_millis(500));
        a.run_due_ticks().unwrap();
    }
    assert_eq!(state_gauge(&a), Some(4), "rolled back before the restart");
    let restarted = host.fresh();
    let mut b = restarted.configured_worker(plan.to_json()).unwrap();
    assert!(
        traffic(&mut b, 900_000, 500) > 150,
        "after a restart the canary gets its share again"
    );
}

/// Send `n` requests; the canary's responses start (200 and part of a body) and are then reset,
/// stable's complete. Returns how many went to the canary.
fn traffic_cut_short(worker: &mut Worker, from: u32, n: u32) -> u32 {
    let mut canary = 0;
    for i in from..from + n {
        let mut s = worker.request().header("x-user-id", format!("user-{i}"));
        s.send_headers().unwrap();
        let to_canary = s.request_header("x-serin-arm").as_deref() == Some("canary");
        s.deliver_response_headers(&[(":status", "200")], false)
            .unwrap();
        s.deliver_response_body(b"{\"predictions\": [", !to_canary)
            .unwrap();
        s.done().unwrap();
        canary += u32::from(to_canary);
    }
    canary
}

fn counter(worker: &Worker, name: &str) -> u64 {
    match worker.metrics().get(name) {
        Some(MetricValue::Counter(v)) => *v,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_response_reset_after_it_started_counts_as_a_reset_and_rolls_back() {
    let host = host();
    let mut w = host
        .configured_worker(guarded_plan("sha256:cut-short").to_json())
        .unwrap();
    let mut canary = 0;
    let mut sent = 0;
    while state_gauge(&w) != Some(4) && sent < 4_000 {
        canary += traffic_cut_short(&mut w, sent, 200);
        sent += 200;
        host.advance_clock(Duration::from_millis(500));
        w.run_due_ticks().unwrap();
    }
    assert_eq!(state_gauge(&w), Some(4), "rolled back on resets");
    // Counters are flushed on ticks; one more makes them current.
    host.advance_clock(Duration::from_millis(1_000));
    w.run_due_ticks().unwrap();
    let resets = |arm: &str| counter(&w, &format!("serin_resets_total_arm=.={arm};.;"));
    assert_eq!(
        resets("canary"),
        u64::from(canary),
        "every cut-short response"
    );
    assert_eq!(resets("stable"), 0, "complete responses are not resets");
    assert!(
        w.log_text().contains("errors"),
        "the error guard fired: {}",
        w.log_text()
    );
}
