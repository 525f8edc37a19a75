//! Every routing construct in real Envoy: rules, the tester override and its protection, spoofed
//! headers, and the sticky cookie for clients without a key.

use serin_e2e::{Paths, Stack};

use crate::{compile_example, running};

fn served(stack: &Stack, headers: &[(&str, &str)]) -> String {
    stack
        .send("/v1/models/ranker:predict", headers)
        .unwrap()
        .served_by
        .unwrap_or_default()
}

#[test]
fn rules_and_the_tester_override() {
    let Some(paths) = Paths::for_test("rules_and_the_tester_override") else {
        return;
    };
    // examples/header-testers.toml: team and beta-user rules pin the canary, batch scoring is
    // pinned to stable, testers may force an arm with a token; nobody else reaches the canary.
    let plan = compile_example(&paths, "header-testers.toml");
    let stack = Stack::start(&paths, &plan).expect("envoy starts");
    let token = "change-me-per-environment";

    assert_eq!(served(&stack, &[("x-user-id", "u-42")]), "stable");
    assert_eq!(
        served(&stack, &[("x-team", "ranking")]),
        "canary",
        "team rule"
    );
    assert_eq!(served(&stack, &[("x-team", "sales")]), "stable");
    assert_eq!(
        served(&stack, &[("x-user-id", "u-1002")]),
        "canary",
        "beta user allow-list"
    );
    let batch = stack
        .send("/v1/batch/score", &[("x-team", "ranking")])
        .unwrap();
    assert_eq!(
        batch.served_by.as_deref(),
        Some("canary"),
        "rules apply in order: the team rule comes first"
    );

    let force = [("x-serin-force", "canary"), ("x-serin-token", token)];
    assert_eq!(served(&stack, &force), "canary", "a tester with the token");
    assert_eq!(
        served(
            &stack,
            &[("x-serin-force", "canary"), ("x-serin-token", "guess")]
        ),
        "stable"
    );
    assert_eq!(
        served(&stack, &[("x-serin-force", "canary")]),
        "stable",
        "no token, not from the office"
    );
    assert_eq!(
        served(
            &stack,
            &[
                ("x-serin-force", "stable"),
                ("x-serin-token", token),
                ("x-team", "ranking")
            ]
        ),
        "stable",
        "the override comes before the rules"
    );
    // The routing header itself never works, whatever else is sent.
    assert_eq!(served(&stack, &[("x-serin-arm", "ranker-v3")]), "stable");
    assert_eq!(
        served(
            &stack,
            &[("x-serin-arm", "ranker-v3"), ("x-serin-force", "canary")]
        ),
        "stable"
    );
}

const STICKY_POLICY: &str = r#"
[policy]
name = "e2e-sticky"
[arms.stable]
[arms.canary]
[split]
key = ["header:x-user-id"]
salt = "e2e-sticky"
weights = { canary = 50 }
fallback = { random = true, cookie = "serin-id", max_age = "30d" }
"#;

#[test]
fn clients_without_a_key_get_a_sticky_cookie() {
    let Some((_, stack)) = running(
        "clients_without_a_key_get_a_sticky_cookie",
        STICKY_POLICY,
        1,
    ) else {
        return;
    };
    let n = 400u32;
    let mut canary = 0u32;
    for i in 0..n {
        let first = stack.send("/", &[]).unwrap();
        let cookie = first
            .set_cookie
            .unwrap_or_else(|| panic!("client {i} got no cookie"));
        assert!(
            cookie.contains("Max-Age=2592000") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().unwrap().to_string();
        let arm = first.served_by.unwrap();
        canary += u32::from(arm == "canary");
        // The client comes back with its cookie: same arm, and no new cookie.
        for _ in 0..3 {
            let again = stack.send("/", &[("cookie", &pair)]).unwrap();
            assert_eq!(
                again.served_by.as_deref(),
                Some(arm.as_str()),
                "client {i} with {pair}"
            );
            assert_eq!(again.set_cookie, None);
        }
    }
    // Minted keys spread like user ids: 50% within 4σ.
    let sigma = (f64::from(n) * 0.25).sqrt();
    assert!(
        (f64::from(canary) - f64::from(n) / 2.0).abs() <= 4.0 * sigma,
        "{canary} of {n} on the canary"
    );
}

const SHADOW_POLICY: &str = r#"
[policy]
name = "e2e-shadow"
[arms.stable]
[arms.canary]
[split]
key = ["header:x-user-id"]
salt = "e2e-shadow"
weights = { canary = 10 }
fallback = "stable"
[shadow]
share = 50
"#;

#[test]
fn shadowed_stable_requests_are_mirrored_to_the_canary() {
    let Some((plan, stack)) = running(
        "shadowed_stable_requests_are_mirrored_to_the_canary",
        SHADOW_POLICY,
        1,
    ) else {
        return;
    };
    let (mut served_by_canary, mut mirrored) = (0u64, 0u64);
    for i in 0..1_000 {
        let user = format!("user-{i}");
        let decision = plan.decide(&serin_policy::HeaderList::new(&[(
            "x-user-id",
            user.as_str(),
        )]));
        mirrored += u64::from(decision.shadow);
        let reply = stack
            .send("/", &[("x-user-id", &user), ("x-serin-shadow", "1")])
            .unwrap();
        served_by_canary += u64::from(reply.served_by.as_deref() == Some("canary"));
    }
    // The mirror is fire-and-forget; give the last copies a moment to land.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let stats = stack
        .upstreams
        .admin("/stats?filter=^http.canary.downstream_rq_total$")
        .unwrap();
    let reached_canary: u64 = stats.rsplit(':').next().unwrap().trim().parse().unwrap();
    eprintln!(
        "canary upstream: {reached_canary} requests = {served_by_canary} routed + {mirrored} mirrored"
    );
    assert!(
        mirrored > 300,
        "about half of the ~900 stable requests are mirrored: {mirrored}"
    );
    assert_eq!(
        reached_canary,
        served_by_canary + mirrored,
        "exactly the policy's share is mirrored, no client-chosen extra"
    );
}
