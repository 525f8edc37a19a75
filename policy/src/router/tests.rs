//! The router decides exactly as `Plan::decide` does, on arbitrary plans and requests: names
//! repeated and missing, cookie and parameter names with `=` or spaces, unsorted lists, more
//! names than slots, overrides, shadowing and key chains.

use std::net::IpAddr;

use proptest::prelude::*;
use proptest::sample::select;

use super::{MAX_SLOTS, Router};
use crate::*;

const HEADERS: &[&str] = &[
    "x-user-id",
    "x-region",
    "x-t",
    "cookie",
    ":path",
    ":method",
    "x-serin-force",
    "x-serin-token",
    "a",
    "",
    "x-a-header-name-longer-than-16",
    "x-a-header-name-longer-than-17",
    // Longer than 16 bytes, and equal in their first and last eight.
    "x-long--one--suffix",
    "x-long--two--suffix",
    "X-Region",
    "user-agent",
    "x-tester-1",
];
const COOKIES: &[&str] = &[
    "uid", "beta", "b", "", "a=b", " sp", "sp ", "serin-id", "x=",
];
const PARAMS: &[&str] = &["u", "m", "", "a=b", "flag", "model", "m2"];
const VALUES: &[&str] = &[
    "",
    "a",
    "b",
    "yes",
    "v2",
    "eu-1",
    "us-1",
    "a-value-longer-than-sixteen-bytes",
    "a-value-longer-than-sixteen-bytez",
    "a-value-111-suffix!",
    "a-value-222-suffix!",
    " padded ",
    "=",
    "a=b",
    "canary",
    "stable",
    "t0k",
];
const PATHS: &[&str] = &[
    "",
    "/",
    "/admin",
    "/admin/x",
    "/v1/models/fraud:predict",
    "/v1",
];
const ARMS: usize = 3;

/// Few enough that lists and requests often share values.
const LETTERS: &[&str] = &["a", "b", "c", "d"];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        select(VALUES).prop_map(String::from),
        select(LETTERS).prop_map(String::from),
        "[ -~]{0,20}"
    ]
}

fn list() -> impl Strategy<Value = Vec<String>> {
    let item = prop_oneof![
        select(LETTERS).prop_map(String::from),
        select(VALUES).prop_map(String::from)
    ];
    (proptest::collection::vec(item, 0..5), any::<bool>()).prop_map(|(mut list, sort)| {
        // The compiler sorts; a hand-written plan may not, and must mean the same to both.
        if sort {
            list.sort();
            list.dedup();
        }
        list
    })
}

fn test() -> impl Strategy<Value = Test> {
    prop_oneof![
        Just(Test::Present),
        Just(Test::Absent),
        value().prop_map(Test::Exact),
        value().prop_map(Test::Prefix),
        value().prop_map(Test::Suffix),
        list().prop_map(Test::AnyOf),
        list().prop_map(Test::NoneOf),
    ]
}

fn cidr() -> impl Strategy<Value = Cidr> {
    select(
        &[
            "10.0.0.0/8",
            "192.0.2.0/24",
            "::/0",
            "0.0.0.0/0",
            "2001:db8::/32",
        ][..],
    )
    .prop_map(|s| s.parse().unwrap())
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let name = |names: &'static [&'static str]| {
        prop_oneof![select(names).prop_map(String::from), "[a-c=]{0,3}"]
    };
    prop_oneof![
        (name(HEADERS), test()).prop_map(|(name, test)| Matcher::Header { name, test }),
        (name(COOKIES), test()).prop_map(|(name, test)| Matcher::Cookie { name, test }),
        (name(PARAMS), test()).prop_map(|(name, test)| Matcher::Query { name, test }),
        proptest::collection::vec(
            prop_oneof![select(PATHS).prop_map(String::from), "/[a-z]{0,10}"],
            0..3
        )
        .prop_map(|any_of| Matcher::PathPrefix { any_of }),
        proptest::collection::vec(
            select(&["GET", "POST", ""][..]).prop_map(String::from),
            0..3
        )
        .prop_map(|any_of| Matcher::Method { any_of }),
        proptest::collection::vec(cidr(), 0..3).prop_map(|any_of| Matcher::SourceIp { any_of }),
    ]
}

fn key_source() -> impl Strategy<Value = KeySource> {
    prop_oneof![
        select(HEADERS).prop_map(|n| KeySource::Header(n.into())),
        select(COOKIES).prop_map(|n| KeySource::Cookie(n.into())),
        select(PARAMS).prop_map(|n| KeySource::Query(n.into())),
    ]
}

fn split() -> impl Strategy<Value = Split> {
    (
        proptest::collection::vec(key_source(), 0..4),
        "[a-z]{0,6}",
        any::<u32>(),
        prop_oneof![
            (1..20_000u32).prop_map(|scale| Reduce::MulShift { scale }),
            (1..1_000u32).prop_map(|modulus| Reduce::Modulo { modulus }),
        ],
        (
            0..ARMS as ArmId,
            0..1_000u32,
            0..ARMS as ArmId,
            any::<bool>(),
        ),
    )
        .prop_map(
            |(key, prefix, seed, reduce, (arm, end, rest, mint))| Split {
                lanes: vec![Lane {
                    arm,
                    start: 0,
                    end: match reduce {
                        Reduce::MulShift { scale: bound } | Reduce::Modulo { modulus: bound } => {
                            end.min(bound)
                        }
                    },
                }],
                key,
                hash: HashSpec {
                    prefix,
                    seed,
                    reduce,
                },
                rest,
                fallback: if mint {
                    Fallback::RandomSticky {
                        cookie: "serin-id".into(),
                        max_age_seconds: 60,
                    }
                } else {
                    Fallback::Arm { arm: rest }
                },
            },
        )
}

fn action(splits: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..ARMS as ArmId).prop_map(|arm| Action::Pin { arm }),
        (0..splits as u16).prop_map(|split| Action::Split { split }),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    let splits = proptest::collection::vec(split(), 1..3);
    splits.prop_flat_map(|splits| {
        let n = splits.len();
        let rule =
            (proptest::collection::vec(matcher(), 0..4), action(n)).prop_map(|(all, action)| {
                Rule {
                    name: "r".into(),
                    all,
                    action,
                }
            });
        (
            Just(splits),
            proptest::collection::vec(rule, 0..8),
            action(n),
            proptest::option::of((
                // `Plan::check` wants a lower-case header name here.
                select(&["x-serin-force", "x-user-id", "x-t", "a"][..]),
                proptest::option::of((select(HEADERS), select(VALUES))),
                proptest::collection::vec(cidr(), 0..2),
            )),
            proptest::option::of(0..=SERIN_SCALE),
            // Past the slots: names that only a lookup by name finds.
            any::<bool>(),
        )
            .prop_map(|(splits, mut rules, default, override_, shadow, many)| {
                if many {
                    let all = (0..MAX_SLOTS + 4)
                        .map(|i| Matcher::Header {
                            name: format!("x-many-{i}"),
                            test: Test::Absent,
                        })
                        .collect();
                    rules.insert(
                        0,
                        Rule {
                            name: "many".into(),
                            all,
                            action: Action::Pin { arm: 2 },
                        },
                    );
                }
                Plan {
                    format: PLAN_FORMAT,
                    policy: "p".into(),
                    digest: String::new(),
                    routing_header: DEFAULT_ROUTING_HEADER.into(),
                    arms: ["stable", "canary", "third"]
                        .map(|a| Arm {
                            name: a.into(),
                            value: a.into(),
                        })
                        .into(),
                    stable: 0,
                    rules,
                    default,
                    splits,
                    override_: override_.map(|(header, token, trusted_sources)| Override {
                        header: header.into(),
                        token: token.map(|(header, value)| OverrideToken {
                            header: header.into(),
                            value: value.into(),
                        }),
                        trusted_sources,
                    }),
                    shadow: shadow.map(|share| Shadow {
                        header: "x-serin-shadow".into(),
                        share,
                        seed: 7,
                    }),
                    segments: vec![],
                    outcomes: vec![],
                    guards: vec![],
                    ramp: None,
                    metrics: None,
                    fleet: None,
                }
            })
    })
}

fn cookie_header() -> impl Strategy<Value = String> {
    let pair = (
        prop_oneof![select(COOKIES).prop_map(String::from), "[a-c ]{0,3}"],
        proptest::option::of(value()),
        select(&["", " ", "  "][..]),
    )
        .prop_map(|(name, value, pad)| match value {
            Some(v) => format!("{pad}{name}={v}{pad}"),
            None => format!("{pad}{name}"),
        });
    (
        proptest::collection::vec(pair, 0..5),
        select(&[";", "; "][..]),
    )
        .prop_map(|(pairs, sep)| pairs.join(sep))
}

fn path_header() -> impl Strategy<Value = String> {
    let param = (
        prop_oneof![select(PARAMS).prop_map(String::from), "[a-c]{0,2}"],
        proptest::option::of(value()),
    )
        .prop_map(|(name, value)| match value {
            Some(v) => format!("{name}={v}"),
            None => name,
        });
    (
        select(PATHS),
        proptest::option::of(proptest::collection::vec(param, 0..4)),
    )
        .prop_map(|(path, query)| match query {
            Some(params) => format!("{path}?{}", params.join("&")),
            None => path.to_string(),
        })
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let header = prop_oneof![
        4 => (select(HEADERS).prop_map(String::from), value().prop_map(String::into_bytes)),
        2 => cookie_header().prop_map(|c| ("cookie".to_string(), c.into_bytes())),
        2 => path_header().prop_map(|p| (":path".to_string(), p.into_bytes())),
        1 => (Just(":method".to_string()), select(&["GET", "POST"][..]).prop_map(|m| m.as_bytes().to_vec())),
        1 => ("x-many-[0-9]{1,2}", value().prop_map(String::into_bytes)),
        1 => ("[a-z:-]{0,12}", proptest::collection::vec(any::<u8>(), 0..40)),
    ];
    proptest::collection::vec(header, 0..12)
}

fn source_ip() -> impl Strategy<Value = Option<IpAddr>> {
    proptest::option::of(
        select(
            &[
                "10.1.2.3",
                "192.0.2.7",
                "198.51.100.1",
                "2001:db8::1",
                "::ffff:10.0.0.1",
            ][..],
        )
        .prop_map(|s| s.parse().unwrap()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn the_router_decides_as_the_plan_does(
        plan in plan(),
        requests in proptest::collection::vec((headers(), source_ip()), 1..8),
    ) {
        plan.check().expect("generated plans are valid");
        let router = Router::new(plan.clone());
        for (headers, ip) in &requests {
            let mut request = HeaderList::new(headers);
            request.source_ip = *ip;
            let decision = plan.decide(&request);
            prop_assert_eq!(router.decide(&request), decision, "{:?}", headers);
            // The filter fetches only the headers the plan says it reads.
            let read = plan.headers_read();
            let fetched: Vec<_> = headers.iter().filter(|(k, _)| read.contains(&k.as_str())).collect();
            let fetched: Vec<(&str, &[u8])> = fetched.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let mut only_read = HeaderList::new(&fetched);
            only_read.source_ip = *ip;
            prop_assert_eq!(plan.decide(&only_read), decision, "{:?}", headers);
        }
    }
}

#[test]
fn an_unsorted_list_means_what_binary_search_makes_of_it() {
    // The compiler sorts `any_of` lists; `Test::holds` binary-searches them, which misses `a`
    // in this hand-written one. The router must miss it too.
    let list = ["c", "b", "a"].map(String::from).to_vec();
    for test in [Test::AnyOf(list.clone()), Test::NoneOf(list)] {
        let mut plan = minimal();
        let rule = |name: &str, test| Rule {
            name: "r".into(),
            all: vec![Matcher::Header {
                name: name.into(),
                test,
            }],
            action: Action::Pin { arm: 1 },
        };
        // A second rule, so that the router reads in a pass rather than by name.
        plan.rules = vec![rule("x-t", test), rule("x-u", Test::Present)];
        let router = Router::new(plan.clone());
        assert!(!router.by_name);
        for value in ["a", "b", "c", "d"] {
            let headers = [("x-t", value)];
            let request = HeaderList::new(&headers);
            assert_eq!(router.decide(&request), plan.decide(&request), "{value}");
        }
    }
}

/// A plan with two arms and nothing else, as JSON of this build's format.
fn minimal() -> Plan {
    let json = format!(
        r#"{{"format":{PLAN_FORMAT},"policy":"t","digest":"","routing_header":"x-serin-arm","arms":[{{"name":"stable","value":"stable"}},{{"name":"canary","value":"canary"}}],"stable":0,"default":{{"pin":{{"arm":0}}}}}}"#
    );
    Plan::from_json(json.as_bytes()).unwrap()
}

#[test]
fn a_plan_that_reads_one_value_is_read_by_name() {
    let mut plan = minimal();
    assert!(Router::new(plan.clone()).by_name, "reads nothing");
    plan.rules = vec![Rule {
        name: "r".into(),
        all: vec![Matcher::Query {
            name: "m".into(),
            test: Test::Present,
        }],
        action: Action::Pin { arm: 1 },
    }];
    assert!(Router::new(plan.clone()).by_name, "reads one parameter");
    plan.rules[0].all.push(Matcher::PathPrefix {
        any_of: vec!["/a".into()],
    });
    assert!(!Router::new(plan).by_name, "reads two values");
}

#[test]
fn names_past_the_slots_are_still_read() {
    // Twenty distinct names: the last ones have no slot and are asked for by name.
    let rules: Vec<Rule> = (0..20)
        .map(|i| Rule {
            name: format!("r{i}"),
            all: vec![Matcher::Header {
                name: format!("x-h{i}"),
                test: Test::Exact("yes".into()),
            }],
            action: Action::Pin { arm: 1 },
        })
        .collect();
    let plan = Plan { rules, ..minimal() };
    let router = Router::new(plan.clone());
    assert!(!router.by_name);
    for i in 0..20 {
        let name = format!("x-h{i}");
        let headers = [(name.as_str(), "yes")];
        let decision = router.decide(&HeaderList::new(&headers));
        assert_eq!(decision.reason, Reason::Rule(i), "{name}");
        assert_eq!(decision, plan.decide(&HeaderList::new(&headers)));
    }
}

/// The router's shortcuts on the cookie header and the query string, against `Plan::decide`:
/// a walk that stops once every name it reads is found, and path prefixes tested on the whole
/// `:path` when no parameter is read.
#[test]
fn shortcuts_decide_as_the_plan_does() {
    let rule = |m: Matcher| Rule {
        name: "r".into(),
        all: vec![m],
        action: Action::Pin { arm: 1 },
    };
    let cookie = |name: &str, test: Test| {
        rule(Matcher::Cookie {
            name: name.into(),
            test,
        })
    };
    let param = |name: &str, test: Test| {
        rule(Matcher::Query {
            name: name.into(),
            test,
        })
    };
    let prefix = |p: &[&str]| {
        rule(Matcher::PathPrefix {
            any_of: p.iter().map(|p| p.to_string()).collect(),
        })
    };
    let exact = |v: &str| Test::Exact(v.into());
    let plans = [
        // Two cookies, one a prefix of the other; a name with `=`, read by name.
        vec![
            cookie("b", exact("1")),
            cookie("beta", exact("2")),
            cookie("a=b", exact("c")),
        ],
        vec![cookie("b", Test::Present), cookie("beta", Test::Absent)],
        // Two parameters, one a prefix of the other, and a path prefix.
        vec![
            param("m", exact("")),
            param("m2", exact("v2")),
            prefix(&["/admin"]),
        ],
        vec![param("flag", Test::Present), param("a=b", exact("c"))],
        // Path prefixes alone (tested on the whole `:path`), some holding a `?`.
        vec![
            prefix(&["/a?b", "/x"]),
            prefix(&["/admin", "/v1?"]),
            prefix(&["?", ""]),
        ],
        vec![
            prefix(&["/v1/models"]),
            rule(Matcher::Method {
                any_of: vec!["GET".into()],
            }),
        ],
    ];
    let cookies = [
        "",
        ";",
        ";;",
        " ; ;b=1",
        "b=1",
        "b=1;b=2",
        "b = 1; b=2",
        "  b=1  ;beta=2",
        "beta=2;b=0;b=1",
        "bet=2; betaa=2; beta=2; b=1; b=3",
        "b",
        "b;beta=2",
        "=;b=1",
        "a=b=c; a=b",
        "b=1=2; beta==2",
    ];
    let paths = [
        "",
        "/",
        "?",
        "/admin",
        "/admin?x",
        "/a?b",
        "/a?bc",
        "/x?m=1",
        "/v1?",
        "/v1?m",
        "/v1?m=&m=v2",
        "/v1?m2=v2&m=",
        "/v1?m2&m2=v2",
        "/v1?flag",
        "/v1?flag=&&",
        "/v1?&&m2=v2",
        "/v1?a=b=c",
        "/v1?m2=v2?m=1",
        "/v1/models/fraud:predict?trace=1&m2=v2",
    ];
    for rules in plans {
        let plan = Plan { rules, ..minimal() };
        let router = Router::new(plan.clone());
        assert!(!router.by_name);
        for cookie in cookies {
            for path in paths {
                let headers = [("cookie", cookie), (":path", path), (":method", "GET")];
                let request = HeaderList::new(&headers);
                assert_eq!(
                    router.decide(&request),
                    plan.decide(&request),
                    "{cookie:?} {path:?} {:?}",
                    plan.rules
                );
            }
        }
    }
}
