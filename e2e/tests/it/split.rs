//! The walking skeleton's promise: a sticky, spoof-proof split at the policy's share.

use serin_e2e::{Paths, Stack};
use serin_policy::{HeaderList, Plan};

use crate::compile_example;

fn expected_arm<'p>(plan: &'p Plan, user: &str) -> &'p str {
    &plan
        .arm(plan.decide(&HeaderList::new(&[("x-user-id", user)])).arm)
        .value
}

fn canary_share(plan: &Plan) -> f64 {
    let split = &plan.splits[0];
    let canary = plan.arm_id("canary").expect("example has a canary arm");
    let buckets: u32 = split
        .lanes
        .iter()
        .filter(|l| l.arm == canary)
        .map(|l| l.end - l.start)
        .sum();
    f64::from(buckets) / f64::from(serin_policy::SERIN_SCALE)
}

#[test]
fn split_is_on_target_sticky_and_spoof_proof() {
    let Some(paths) = Paths::for_test("split_is_on_target_sticky_and_spoof_proof") else {
        return;
    };
    let plan = compile_example(&paths, "percent-canary.toml");
    let stack = Stack::start(&paths, &plan).expect("envoy starts");

    // 20,000 distinct users: the canary share is within 4σ of the target, and every request is
    // served by exactly the arm that the native engine chooses.
    let n = 20_000u32;
    let mut canary = 0u32;
    for i in 0..n {
        let user = format!("user-{i}");
        let reply = stack
            .send("/v1/models/fraud:predict", &[("x-user-id", &user)])
            .expect("request");
        assert_eq!(reply.status, 200);
        let arm = reply.served_by.expect("an upstream answered");
        assert_eq!(arm, expected_arm(&plan, &user), "user {user}");
        canary += u32::from(arm == "canary");
    }
    let p = canary_share(&plan);
    let expected = f64::from(n) * p;
    let sigma = (f64::from(n) * p * (1.0 - p)).sqrt();
    eprintln!(
        "canary share: {canary}/{n} = {:.3}% (target {:.2}%, 4σ = {:.0})",
        100.0 * f64::from(canary) / f64::from(n),
        100.0 * p,
        4.0 * sigma
    );
    assert!(
        (f64::from(canary) - expected).abs() <= 4.0 * sigma,
        "canary {canary}, expected {expected:.0} ± {:.0}",
        4.0 * sigma
    );

    // Stickiness: a repeated user always gets the same arm.
    for i in 0..300u32 {
        let user = format!("repeat-{i}");
        let first = stack.send("/", &[("x-user-id", &user)]).unwrap().served_by;
        for _ in 0..3 {
            assert_eq!(
                stack.send("/", &[("x-user-id", &user)]).unwrap().served_by,
                first,
                "user {user}"
            );
        }
    }

    // A client-sent routing header never changes the arm, whichever way it points.
    for i in 0..2_000u32 {
        let user = format!("spoof-{i}");
        let want = expected_arm(&plan, &user);
        let lie = if want == "canary" { "stable" } else { "canary" };
        let reply = stack
            .send("/", &[("x-user-id", &user), ("x-serin-arm", lie)])
            .unwrap();
        assert_eq!(
            reply.served_by.as_deref(),
            Some(want),
            "user {user} spoofing `{lie}`"
        );
    }

    // No key: the policy's fallback (stable).
    let reply = stack.send("/", &[]).unwrap();
    assert_eq!(reply.served_by.as_deref(), Some("stable"));
}
