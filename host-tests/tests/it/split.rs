//! The split's proportion and stickiness, measured through the filter.

use std::time::Duration;

use crate::support::*;

fn canary_share(canary_buckets: u32, users: u32) {
    let plan = split_plan(canary_buckets);
    let canary = plan.arm(1).value.clone();
    let host = host();
    // Requests spread over two workers, as over Envoy's worker threads.
    let mut workers = [
        host.configured_worker(plan.to_json()).unwrap(),
        host.configured_worker(plan.to_json()).unwrap(),
    ];
    let mut hits = 0u32;
    for i in 0..users {
        let w = &mut workers[(i % 2) as usize];
        let mut s = w.request().header("x-user-id", format!("user-{i}"));
        s.send_headers().unwrap();
        if s.request_header("x-serin-arm").as_deref() == Some(canary.as_str()) {
            hits += 1;
        }
    }
    let n = f64::from(users);
    let p = f64::from(canary_buckets) / 10_000.0;
    let sigma = (n * p * (1.0 - p)).sqrt();
    let off = (f64::from(hits) - n * p).abs();
    assert!(
        off <= 4.0 * sigma,
        "{hits} of {users} users on the canary; expected {:.0} ± {:.0} (4σ)",
        n * p,
        4.0 * sigma
    );
}

#[test]
fn split_proportion_is_within_four_sigma_at_10_percent() {
    canary_share(1_000, 20_000);
}

#[test]
fn split_proportion_is_within_four_sigma_at_50_percent() {
    canary_share(5_000, 20_000);
}

#[test]
fn split_proportion_is_within_four_sigma_at_1_percent() {
    canary_share(100, 20_000);
}

#[test]
fn a_user_stays_on_an_arm() {
    let plan = split_plan(3_000);
    let host = host();
    let mut w = host.configured_worker(plan.to_json()).unwrap();
    let arm = |w: &mut serin_host_tests::Worker, user: &str, extra: bool| {
        let mut s = w.request().header("x-user-id", user);
        if extra {
            s = s.path("/other?x=1").header("cookie", "a=b").method("POST");
        }
        s.send_headers().unwrap();
        s.request_header("x-serin-arm").unwrap()
    };
    let users: Vec<String> = (0..300).map(|i| format!("sticky-{i}")).collect();
    let first: Vec<String> = users.iter().map(|u| arm(&mut w, u, false)).collect();
    assert!(first.iter().any(|a| a == "canary-v1") && first.iter().any(|a| a == "stable-v1"));

    // Again, on the same worker, with other request details, after time has passed.
    host.advance_clock(Duration::from_secs(3_600));
    for (u, a) in users.iter().zip(&first) {
        assert_eq!(&arm(&mut w, u, true), a, "{u} moved on the same worker");
    }
    // On another worker, and on a restarted process.
    let mut other = host.configured_worker(plan.to_json()).unwrap();
    let mut restarted = crate::support::host()
        .configured_worker(plan.to_json())
        .unwrap();
    for (u, a) in users.iter().zip(&first) {
        assert_eq!(&arm(&mut other, u, false), a, "{u} moved across workers");
        assert_eq!(
            &arm(&mut restarted, u, false),
            a,
            "{u} moved across a restart"
        );
    }
}

#[test]
fn growing_the_canary_only_moves_users_towards_it() {
    // Lanes grow from 0: a user on the canary at 10% is still there at 50%.
    let users: Vec<String> = (0..2_000).map(|i| format!("ramp-{i}")).collect();
    let arms = |buckets: u32| -> Vec<String> {
        let mut w = worker(&split_plan(buckets));
        users
            .iter()
            .map(|u| {
                let mut s = w.request().header("x-user-id", u);
                s.send_headers().unwrap();
                s.request_header("x-serin-arm").unwrap()
            })
            .collect()
    };
    let (at10, at50) = (arms(1_000), arms(5_000));
    for ((u, a), b) in users.iter().zip(&at10).zip(&at50) {
        if a == "canary-v1" {
            assert_eq!(b, "canary-v1", "{u} left the canary as it grew");
        }
    }
}
