//! Differential tests: the native `Plan::decide` and the filter in its VM agree on generated
//! requests, for a plan that uses every matcher, the override, two splits and shadowing.

use std::net::{IpAddr, SocketAddr};

use serin_policy::{
    Action as PlanAction, Cidr, Fallback, HashSpec, HeaderList, KeySource, Lane, Matcher, Override,
    OverrideToken, Plan, Reduce, Rule, Shadow, Split, Test,
};

use crate::support::*;

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter()
        .map(|c| c.parse().expect("a valid CIDR"))
        .collect()
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_string()).collect();
    v.sort();
    v
}

fn rule(name: &str, all: Vec<Matcher>, action: PlanAction) -> Rule {
    Rule {
        name: name.into(),
        all,
        action,
    }
}

fn header(name: &str, test: Test) -> Matcher {
    Matcher::Header {
        name: name.into(),
        test,
    }
}

fn rich_plan() -> Plan {
    let mut p = Parts::new(
        &["stable", "canary", "beta"],
        PlanAction::Split { split: 0 },
    );
    p.rules = vec![
        rule(
            "internal-admin",
            vec![
                header("x-internal", Test::Present),
                Matcher::PathPrefix {
                    any_of: vec!["/admin".into()],
                },
            ],
            PlanAction::Pin { arm: 2 },
        ),
        rule(
            "beta-cookie",
            vec![Matcher::Cookie {
                name: "beta".into(),
                test: Test::Exact("yes".into()),
            }],
            PlanAction::Pin { arm: 2 },
        ),
        rule(
            "ios-reads",
            vec![
                header("user-agent", Test::Prefix("ios/".into())),
                Matcher::Method {
                    any_of: vec!["GET".into(), "HEAD".into()],
                },
            ],
            PlanAction::Split { split: 1 },
        ),
        rule(
            "office",
            vec![Matcher::SourceIp {
                any_of: cidrs(&["192.168.0.0/16", "2001:db8::/32"]),
            }],
            PlanAction::Pin { arm: 1 },
        ),
        rule(
            "variant-query",
            vec![Matcher::Query {
                name: "variant".into(),
                test: Test::AnyOf(sorted(&["b", "a", "c"])),
            }],
            PlanAction::Split { split: 0 },
        ),
        rule(
            "gold-outside-eu",
            vec![
                header("x-region", Test::NoneOf(sorted(&["eu-west", "eu-central"]))),
                header("x-tier", Test::Suffix("-gold".into())),
            ],
            PlanAction::Pin { arm: 1 },
        ),
        rule(
            "anonymous",
            vec![
                header("x-user-id", Test::Absent),
                Matcher::PathPrefix {
                    any_of: vec!["/anon".into()],
                },
            ],
            PlanAction::Pin { arm: 0 },
        ),
    ];
    p.splits = vec![
        Split {
            key: vec![
                KeySource::Header("x-user-id".into()),
                KeySource::Cookie("sid".into()),
                KeySource::Query("uid".into()),
            ],
            hash: HashSpec {
                prefix: "checkout:".into(),
                seed: 7,
                reduce: Reduce::MulShift { scale: 10_000 },
            },
            lanes: vec![
                Lane {
                    arm: 1,
                    start: 0,
                    end: 2_000,
                },
                Lane {
                    arm: 2,
                    start: 2_000,
                    end: 2_500,
                },
            ],
            rest: 0,
            fallback: Fallback::Arm { arm: 0 },
        },
        Split {
            key: vec![KeySource::Header("x-device-id".into())],
            hash: HashSpec {
                prefix: String::new(),
                seed: 0,
                reduce: Reduce::Modulo { modulus: 100 },
            },
            lanes: vec![Lane {
                arm: 1,
                start: 0,
                end: 50,
            }],
            rest: 0,
            fallback: Fallback::Arm { arm: 1 },
        },
    ];
    p.override_ = Some(Override {
        header: "x-serin-force".into(),
        token: Some(OverrideToken {
            header: "x-serin-token".into(),
            value: "s3cret".into(),
        }),
        trusted_sources: cidrs(&["10.1.0.0/16"]),
    });
    p.shadow = Some(Shadow {
        header: "x-serin-shadow".into(),
        share: 2_000,
        seed: 3,
    });
    p.plan()
}

struct Generated {
    headers: Vec<(String, String)>,
    source: String,
}

fn generate(r: &mut Rng) -> Generated {
    let mut h: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| h.push((k.to_string(), v));
    let base = *r.pick(&[
        "/",
        "/admin/users",
        "/anon/page",
        "/checkout",
        "/api/v1/items",
    ]);
    let mut query = Vec::new();
    if r.chance(30) {
        query.push(format!("variant={}", r.pick(&["a", "b", "c", "d", ""])));
    }
    if r.chance(20) {
        query.push(format!("uid={}", r.below(500)));
    }
    let path = if query.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", query.join("&"))
    };
    push(":path", path);
    push(
        ":method",
        r.pick(&["GET", "POST", "HEAD", "PUT"]).to_string(),
    );
    if r.chance(70) {
        push(
            if r.chance(20) {
                "X-User-Id"
            } else {
                "x-user-id"
            },
            format!("user-{}", r.below(5_000)),
        );
    }
    if r.chance(5) {
        push("x-user-id", String::new());
    }
    if r.chance(5) {
        push("x-user-id", format!("dup-{}", r.below(100)));
    }
    if r.chance(30) {
        let mut parts = Vec::new();
        if r.chance(60) {
            parts.push(format!("sid={}", r.below(1_000)));
        }
        if r.chance(40) {
            parts.push(format!("beta={}", r.pick(&["yes", "no", "YES"])));
        }
        parts.push("theme=dark".to_string());
        push("cookie", parts.join("; "));
    }
    if r.chance(50) {
        push(
            "user-agent",
            r.pick(&["ios/17.1", "android/14", "curl/8", "ios/"])
                .to_string(),
        );
    }
    if r.chance(10) {
        push("x-internal", "1".into());
    }
    if r.chance(40) {
        push(
            "x-region",
            r.pick(&["eu-west", "eu-central", "us-east", "ap-south"])
                .to_string(),
        );
    }
    if r.chance(30) {
        push(
            "x-tier",
            r.pick(&["silver", "acct-gold", "gold-x"]).to_string(),
        );
    }
    if r.chance(30) {
        push("x-device-id", format!("dev-{}", r.below(10_000)));
    }
    if r.chance(10) {
        push(
            "x-serin-arm",
            r.pick(&["canary-v1", "beta-v1", "stable-v1"]).to_string(),
        );
    }
    if r.chance(5) {
        push("x-serin-shadow", "1".into());
    }
    if r.chance(15) {
        push(
            "x-serin-force",
            r.pick(&["stable", "canary", "beta", "nope"]).to_string(),
        );
        if r.chance(60) {
            push(
                "x-serin-token",
                r.pick(&["s3cret", "guess", "s3cret "]).to_string(),
            );
        }
    }
    let source = match r.below(6) {
        0 => format!(
            "10.1.{}.{}:{}",
            r.below(256),
            r.below(256),
            1024 + r.below(60_000)
        ),
        1 => format!("192.168.{}.{}:443", r.below(256), r.below(256)),
        2 => "[2001:db8::17]:8443".to_string(),
        3 => "[::1]:5000".to_string(),
        _ => format!("203.0.113.{}:{}", r.below(256), 1024 + r.below(60_000)),
    };
    Generated { headers: h, source }
}

fn source_ip(text: &str) -> Option<IpAddr> {
    text.parse::<SocketAddr>().map(|s| s.ip()).ok()
}

#[test]
fn native_decide_and_the_filter_agree_on_10000_generated_requests() {
    let plan = rich_plan();
    let shadow = plan.shadow.clone().unwrap().header;
    let token = plan.override_.clone().unwrap().token.unwrap().header;
    let host = host();
    let mut workers = [
        host.configured_worker(plan.to_json()).unwrap(),
        host.configured_worker(plan.to_json()).unwrap(),
    ];
    let mut rng = Rng(2026);
    let mut arms_seen = std::collections::BTreeMap::new();
    let mut shadowed = 0;
    for i in 0..10_000 {
        let g = generate(&mut rng);
        let w = &mut workers[i % 2];
        let mut s = w.request().source_address(&g.source);
        for (k, v) in &g.headers {
            s = if k.starts_with(':') {
                s.set_header(k, v)
            } else {
                s.header(k, v)
            };
        }
        // What the filter decides on: the request without client-sent routing or shadow headers.
        let seen: Vec<(String, Vec<u8>)> = s
            .request_headers()
            .entries()
            .iter()
            .filter(|(k, _)| *k != plan.routing_header && *k != shadow)
            .cloned()
            .collect();
        let mut req = HeaderList::new(&seen);
        req.source_ip = source_ip(&g.source);
        let decision = plan.decide(&req);

        s.send_headers().unwrap();
        let got = s.request_headers();
        let context = || format!("request {i}: {:?} from {}", g.headers, g.source);
        assert_eq!(
            got.get_all(&plan.routing_header),
            vec![plan.arm(decision.arm).value.as_bytes()],
            "{}",
            context()
        );
        let want_shadow: Vec<&[u8]> = if decision.shadow { vec![b"1"] } else { vec![] };
        assert_eq!(
            got.get_all(&shadow),
            want_shadow,
            "shadow marker; {}",
            context()
        );
        assert_eq!(
            got.get(&token),
            None,
            "the override token must not reach upstreams; {}",
            context()
        );
        *arms_seen.entry(decision.arm).or_insert(0) += 1;
        shadowed += usize::from(decision.shadow);
    }
    // The generator reaches every arm and both shadow outcomes, or the test proves little.
    assert_eq!(arms_seen.len(), 3, "{arms_seen:?}");
    assert!(shadowed > 0);
}

#[test]
fn a_minted_sticky_key_buckets_as_the_native_engine_does() {
    let mut p = Parts::new(&["stable", "canary"], PlanAction::Split { split: 0 });
    let mut s = split(
        vec![
            KeySource::Header("x-user-id".into()),
            KeySource::Cookie("serin-id".into()),
        ],
        5_000,
    );
    s.fallback = Fallback::RandomSticky {
        cookie: "serin-id".into(),
        max_age_seconds: 86_400,
    };
    p.splits.push(s);
    let plan = p.plan();
    let host = host();
    let mut w = host.configured_worker(plan.to_json()).unwrap();
    let mut minted = Vec::new();
    for i in 0..200 {
        // Keyless clients at different times get distinct keys.
        host.advance_clock(std::time::Duration::from_millis(1 + i));
        let mut st = w.request();
        st.send_headers().unwrap();
        let arm = st.request_header("x-serin-arm").unwrap();
        st.deliver_response_headers(&[(":status", "200")], false)
            .unwrap();
        let cookie = st
            .response_header("set-cookie")
            .expect("a minted key is set as a cookie");
        assert!(cookie.contains("Max-Age=86400"), "{cookie}");
        let key = cookie
            .strip_prefix("serin-id=")
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_string();
        let native = plan.assign(0, key.as_bytes()).unwrap();
        assert_eq!(arm, plan.arm(native.arm).value, "key {key}");
        minted.push((key, arm));
    }
    let distinct: std::collections::BTreeSet<_> = minted.iter().map(|(k, _)| k).collect();
    assert_eq!(distinct.len(), minted.len(), "minted keys repeat");
    // The client comes back with its cookie and stays.
    for (key, arm) in minted.iter().take(50) {
        let mut st = w.request().header("cookie", format!("serin-id={key}"));
        st.send_headers().unwrap();
        assert_eq!(st.request_header("x-serin-arm").as_ref(), Some(arm));
        st.deliver_response_headers(&[(":status", "200")], false)
            .unwrap();
        assert_eq!(
            st.response_header("set-cookie"),
            None,
            "no new key for a returning client"
        );
    }
}
