//! The routing engine's promises, checked on the pure engine: split accuracy, monotone ramps,
//! every matcher, overrides, fallbacks, shadowing, and defined behaviour on hostile input.

use std::net::IpAddr;

use proptest::prelude::*;

use crate::*;

const STABLE: ArmId = 0;
const CANARY: ArmId = 1;

fn arm(name: &str) -> Arm {
    Arm {
        name: name.into(),
        value: name.into(),
    }
}

fn serin_split(lanes: Vec<Lane>, key: Vec<KeySource>, salt: &str) -> Split {
    Split {
        key,
        hash: HashSpec {
            prefix: String::new(),
            seed: murmur3_x86_32(b"", salt.as_bytes(), 0),
            reduce: Reduce::MulShift { scale: SERIN_SCALE },
        },
        lanes,
        rest: STABLE,
        fallback: Fallback::Arm { arm: STABLE },
    }
}

/// stable + canary, the canary at `bp` basis points, keyed by `x-user-id`.
fn canary_plan(bp: u32) -> Plan {
    let split = serin_split(
        vec![Lane {
            arm: CANARY,
            start: 0,
            end: bp,
        }],
        vec![KeySource::Header("x-user-id".into())],
        "salt",
    );
    Plan {
        format: PLAN_FORMAT,
        policy: "test".into(),
        digest: String::new(),
        routing_header: DEFAULT_ROUTING_HEADER.into(),
        arms: vec![arm("stable"), arm("canary")],
        stable: STABLE,
        rules: vec![],
        default: Action::Split { split: 0 },
        splits: vec![split],
        override_: None,
        shadow: None,
        ..Plan::from_json(minimal_json().as_bytes()).unwrap()
    }
}

fn minimal_json() -> String {
    format!(
        r#"{{"format":{PLAN_FORMAT},"policy":"t","digest":"","routing_header":"x-serin-arm","arms":[{{"name":"stable","value":"stable"}}],"stable":0,"default":{{"pin":{{"arm":0}}}}}}"#
    )
}

fn user(i: u32) -> String {
    format!("user-{i}")
}

/// `plan.decide(req)`, checked against the router's decision for the same plan.
fn decide(plan: &Plan, req: &impl Request) -> Decision {
    let decision = plan.decide(req);
    assert_eq!(
        Router::new(plan.clone()).decide(req),
        decision,
        "router and plan differ"
    );
    decision
}

fn decide_user(plan: &Plan, id: &str) -> ArmId {
    plan.decide(&HeaderList::new(&[("x-user-id", id)])).arm
}

#[test]
fn split_share_is_within_4_sigma_over_a_million_users() {
    for bp in [1, 100, 500, 2_500, 5_000, 9_999] {
        let plan = canary_plan(bp);
        let n = 1_000_000u32;
        let canary = (0..n)
            .filter(|&i| decide_user(&plan, &user(i)) == CANARY)
            .count() as f64;
        let p = f64::from(bp) / 10_000.0;
        let sigma = (f64::from(n) * p * (1.0 - p)).sqrt();
        assert!(
            (canary - f64::from(n) * p).abs() <= 4.0 * sigma,
            "{bp} bp: {canary} canary users"
        );
    }
}

#[test]
fn raising_the_weight_never_moves_a_canary_user_out() {
    let steps = [100, 500, 2_500, 5_000, 10_000];
    let plans: Vec<Plan> = steps.iter().map(|&bp| canary_plan(bp)).collect();
    for i in 0..1_000_000 {
        let id = user(i);
        let arms: Vec<ArmId> = plans.iter().map(|p| decide_user(p, &id)).collect();
        // Once in the canary, a user stays there at every higher weight; lowering the weight
        // (reading the steps backwards) returns users in reverse order of arrival.
        if let Some(first) = arms.iter().position(|&a| a == CANARY) {
            assert!(arms[first..].iter().all(|&a| a == CANARY), "{id}: {arms:?}");
        }
    }
}

#[test]
fn abn_lanes_keep_every_arm_sticky_when_one_weight_changes() {
    // Three variants in fixed lanes of a third each; the variant B weight triples.
    let plan = |b: u32| {
        let mut p = canary_plan(0);
        p.arms = vec![arm("control"), arm("a"), arm("b")];
        p.splits[0].lanes = vec![
            Lane {
                arm: 1,
                start: 0,
                end: 1_000,
            },
            Lane {
                arm: 2,
                start: 5_000,
                end: 5_000 + b,
            },
        ];
        p
    };
    let (before, after) = (plan(1_000), plan(3_000));
    for i in 0..200_000 {
        let id = user(i);
        let (x, y) = (decide_user(&before, &id), decide_user(&after, &id));
        assert!(
            x == y || (x == 0 && y == 2),
            "{id}: {x} → {y}: only control users may move, and only into b"
        );
    }
}

#[test]
fn first_present_key_wins_and_no_key_falls_back() {
    let mut plan = canary_plan(10_000);
    plan.splits[0].key = vec![
        KeySource::Header("x-user-id".into()),
        KeySource::Cookie("uid".into()),
        KeySource::Query("user".into()),
    ];
    let d = |h: &[(&str, &str)]| decide(&plan, &HeaderList::new(h));
    assert_eq!(
        d(&[("x-user-id", "a"), ("cookie", "uid=b")]).key_source,
        Some(0)
    );
    assert_eq!(
        d(&[("x-user-id", ""), ("cookie", "uid=b")]).key_source,
        Some(1),
        "an empty key is absent"
    );
    assert_eq!(d(&[(":path", "/p?user=c")]).key_source, Some(2));
    let none = d(&[(":path", "/p")]);
    assert_eq!(
        (none.arm, none.key_source, none.mint_key),
        (STABLE, None, false)
    );

    plan.splits[0].fallback = Fallback::RandomSticky {
        cookie: "serin-id".into(),
        max_age_seconds: 60,
    };
    assert!(decide(&plan, &HeaderList::new(&[] as &[(&str, &str)])).mint_key);
    assert_eq!(plan.assign(0, b"minted").map(|b| b.arm), Some(CANARY));
}

#[test]
fn the_same_key_hashes_the_same_across_key_sources() {
    let mut plan = canary_plan(5_000);
    plan.splits[0].key = vec![
        KeySource::Header("x-user-id".into()),
        KeySource::Cookie("uid".into()),
    ];
    for i in 0..1_000 {
        let id = user(i);
        let by_header = decide(&plan, &HeaderList::new(&[("x-user-id", id.as_str())]));
        let cookie = format!("x=1; uid={id}");
        let by_cookie = decide(&plan, &HeaderList::new(&[("cookie", cookie.as_str())]));
        assert_eq!(
            (by_header.arm, by_header.hash),
            (by_cookie.arm, by_cookie.hash)
        );
    }
}

fn rule(all: Vec<Matcher>, to: ArmId) -> Rule {
    Rule {
        name: "r".into(),
        all,
        action: Action::Pin { arm: to },
    }
}

fn header(name: &str, test: Test) -> Matcher {
    Matcher::Header {
        name: name.into(),
        test,
    }
}

#[test]
fn every_matcher() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // A matcher, a request's headers, and whether it holds.
    type Case = (Matcher, Vec<(&'static str, &'static str)>, bool);
    let cases: Vec<Case> = vec![
        (header("x-t", Test::Present), vec![("x-t", "")], true),
        (header("x-t", Test::Present), vec![], false),
        (header("x-t", Test::Absent), vec![], true),
        (
            header("x-t", Test::Exact("yes".into())),
            vec![("x-t", "yes")],
            true,
        ),
        (
            header("x-t", Test::Exact("yes".into())),
            vec![("x-t", "yes!")],
            false,
        ),
        (
            header("x-t", Test::Prefix("eu-".into())),
            vec![("x-t", "eu-west")],
            true,
        ),
        (
            header("x-t", Test::Suffix(".test".into())),
            vec![("x-t", "a.test")],
            true,
        ),
        (
            header("x-t", Test::AnyOf(s(&["a", "b", "c"]))),
            vec![("x-t", "b")],
            true,
        ),
        (
            header("x-t", Test::AnyOf(s(&["a", "b", "c"]))),
            vec![("x-t", "d")],
            false,
        ),
        (
            header("x-t", Test::NoneOf(s(&["a", "b"]))),
            vec![("x-t", "d")],
            true,
        ),
        (header("x-t", Test::NoneOf(s(&["a", "b"]))), vec![], true),
        (
            header("x-t", Test::NoneOf(s(&["a", "b"]))),
            vec![("x-t", "a")],
            false,
        ),
        (
            Matcher::Cookie {
                name: "beta".into(),
                test: Test::Exact("1".into()),
            },
            vec![("cookie", "a=2; beta=1")],
            true,
        ),
        (
            Matcher::Query {
                name: "m".into(),
                test: Test::Exact("v2".into()),
            },
            vec![(":path", "/x?m=v2")],
            true,
        ),
        (
            Matcher::PathPrefix {
                any_of: s(&["/v1/models/fraud"]),
            },
            vec![(":path", "/v1/models/fraud:predict?x")],
            true,
        ),
        (
            Matcher::PathPrefix {
                any_of: s(&["/v2"]),
            },
            vec![(":path", "/v1/models")],
            false,
        ),
        (
            Matcher::Method {
                any_of: s(&["POST"]),
            },
            vec![(":method", "POST")],
            true,
        ),
        (
            Matcher::Method {
                any_of: s(&["POST"]),
            },
            vec![(":method", "GET")],
            false,
        ),
    ];
    for (i, (matcher, headers, want)) in cases.into_iter().enumerate() {
        let mut plan = canary_plan(0);
        plan.rules = vec![rule(vec![matcher.clone()], CANARY)];
        let got = decide(&plan, &HeaderList::new(&headers));
        assert_eq!(
            got.arm == CANARY,
            want,
            "case {i}: {matcher:?} on {headers:?}"
        );
    }
}

#[test]
fn source_ip_rules_and_first_match_wins() {
    let mut plan = canary_plan(0);
    plan.rules = vec![
        rule(
            vec![Matcher::SourceIp {
                any_of: vec!["10.0.0.0/8".parse().unwrap()],
            }],
            CANARY,
        ),
        rule(vec![], STABLE),
        rule(vec![], CANARY),
    ];
    let mut req = HeaderList::new(&[] as &[(&str, &str)]);
    req.source_ip = Some("10.9.8.7".parse::<IpAddr>().unwrap());
    assert_eq!(decide(&plan, &req).arm, CANARY);
    assert_eq!(decide(&plan, &req).reason, Reason::Rule(0));
    req.source_ip = Some("192.0.2.1".parse().unwrap());
    assert_eq!(
        decide(&plan, &req).reason,
        Reason::Rule(1),
        "the catch-all wins before the later rule"
    );
}

#[test]
fn override_needs_the_token_or_a_trusted_source() {
    let mut plan = canary_plan(0);
    plan.override_ = Some(Override {
        header: "x-serin-force".into(),
        token: Some(OverrideToken {
            header: "x-serin-token".into(),
            value: "s3cret".into(),
        }),
        trusted_sources: vec!["192.0.2.0/24".parse().unwrap()],
    });
    let decide = |h: &[(&str, &str)], ip: Option<&str>| {
        let mut r = HeaderList::new(h);
        r.source_ip = ip.map(|s| s.parse().unwrap());
        decide(&plan, &r)
    };
    let forced = decide(
        &[("x-serin-force", "canary"), ("x-serin-token", "s3cret")],
        None,
    );
    assert_eq!((forced.arm, forced.reason), (CANARY, Reason::Override));
    assert_eq!(
        decide(
            &[("x-serin-force", "canary"), ("x-serin-token", "s3cre")],
            None
        )
        .arm,
        STABLE
    );
    assert_eq!(
        decide(
            &[("x-serin-force", "canary"), ("x-serin-token", "s3cret!")],
            None
        )
        .arm,
        STABLE
    );
    assert_eq!(decide(&[("x-serin-force", "canary")], None).arm, STABLE);
    assert_eq!(
        decide(&[("x-serin-force", "canary")], Some("192.0.2.9")).arm,
        CANARY
    );
    assert_eq!(
        decide(&[("x-serin-force", "canary")], Some("198.51.100.1")).arm,
        STABLE
    );
    assert_eq!(
        decide(
            &[("x-serin-force", "nope"), ("x-serin-token", "s3cret")],
            None
        )
        .reason,
        Reason::Default
    );
}

#[test]
fn shadow_mirrors_a_sticky_share_of_stable_traffic_only() {
    let mut plan = canary_plan(1_000);
    plan.shadow = Some(Shadow {
        header: "x-serin-shadow".into(),
        share: 2_000,
        seed: 7,
    });
    let router = Router::new(plan.clone());
    let (mut mirrored, mut stable) = (0u32, 0u32);
    for i in 0..100_000 {
        let id = user(i);
        let headers = [("x-user-id", id.as_str())];
        let request = HeaderList::new(&headers);
        let d = plan.decide(&request);
        assert_eq!(router.decide(&request), d);
        assert!(
            !(d.shadow && d.arm == CANARY),
            "canary traffic is never mirrored"
        );
        stable += u32::from(d.arm == STABLE);
        mirrored += u32::from(d.shadow);
    }
    let share = f64::from(mirrored) / f64::from(stable);
    assert!((share - 0.2).abs() < 0.01, "{share}");
}

#[test]
fn plans_with_bad_indices_or_formats_are_refused() {
    let good = canary_plan(500);
    assert!(Plan::from_json(good.to_json().as_bytes()).is_ok());
    let mut bad = good.clone();
    bad.splits[0].lanes[0].arm = 9;
    assert!(
        Plan::from_json(bad.to_json().as_bytes())
            .unwrap_err()
            .0
            .contains("missing arm")
    );
    let mut bad = good.clone();
    bad.default = Action::Split { split: 3 };
    assert!(Plan::from_json(bad.to_json().as_bytes()).is_err());
    let mut bad = good.clone();
    bad.format = PLAN_FORMAT + 1;
    let e = Plan::from_json(bad.to_json().as_bytes()).unwrap_err().0;
    assert!(
        e.contains(&format!("format {} is not supported", PLAN_FORMAT + 1)),
        "{e}"
    );
    assert!(e.contains("newer than this filter"), "{e}");
    let mut old = good.clone();
    old.format = PLAN_FORMAT - 1;
    let e = Plan::from_json(old.to_json().as_bytes()).unwrap_err().0;
    assert!(
        e.contains("older than this filter") && e.contains("serin compile"),
        "{e}"
    );
    let mut bad = good.clone();
    bad.arms[1].value = "can\r\nary".into();
    assert!(
        Plan::from_json(bad.to_json().as_bytes()).is_err(),
        "a value with CR/LF could inject headers"
    );
    for junk in [&b""[..], b"not json", b"[]", b"{}", b"{\"format\":\"1\"}"] {
        assert!(Plan::from_json(junk).is_err(), "{junk:?}");
    }
    assert!(
        Plan::from_json(&vec![b' '; MAX_PLAN_BYTES + 1])
            .unwrap_err()
            .0
            .contains("limit")
    );
}

proptest! {
    /// Arbitrary bytes anywhere (non-UTF-8, huge, repeated, empty) never panic, and the
    /// decision depends only on the first `x-user-id`.
    #[test]
    fn hostile_requests_have_defined_decisions(
        headers in proptest::collection::vec(
            (prop_oneof![Just("x-user-id".to_string()), Just("cookie".to_string()), Just(":path".to_string()), "[a-z-]{1,12}"],
             proptest::collection::vec(any::<u8>(), 0..300)),
            0..12),
        big in 0usize..2,
    ) {
        let mut plan = canary_plan(5_000);
        plan.splits[0].key.push(KeySource::Cookie("uid".into()));
        plan.splits[0].key.push(KeySource::Query("u".into()));
        plan.rules = vec![rule(vec![header("x-b", Test::AnyOf(vec!["a".into(), "b".into()])), Matcher::PathPrefix { any_of: vec!["/x".into()] }], CANARY)];
        let mut headers = headers;
        if big == 1 {
            headers.push(("x-user-id".into(), vec![0xff; 64 * 1024]));
        }
        let d = plan.decide(&HeaderList::new(&headers));
        prop_assert_eq!(Router::new(plan.clone()).decide(&HeaderList::new(&headers)), d);
        prop_assert!(usize::from(d.arm) < plan.arms.len());
        let first_user = headers.iter().find(|(k, _)| k == "x-user-id").map(|(_, v)| v.clone());
        if let Some(id) = first_user.filter(|v| !v.is_empty() && d.reason == Reason::Default) {
            prop_assert_eq!(d.key_source, Some(0));
            prop_assert_eq!(d.arm, plan.splits[0].assign(&id).arm);
        }
    }
}
