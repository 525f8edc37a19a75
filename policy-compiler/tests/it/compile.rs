//! End to end through the library: policy text in, plan out, decisions checked.

use serin_compiler::compile_str;
use serin_policy::{Action, HashSpec, HeaderList, Lane, Plan, Reduce, murmur3_x86_32};

const MINIMAL: &str = r#"
[policy]
name = "fraud-model-v2"
routing_header = "x-serin-arm"
stable = "stable"

[arms.stable]
value = "stable"
[arms.canary]
value = "canary"

[split]
key = ["header:x-user-id"]
salt = "fraud-v2"
weights = { canary = 5 }
fallback = "stable"
"#;

#[test]
fn minimal_policy_compiles_to_monotone_lanes() {
    let c = compile_str(MINIMAL, "minimal.toml").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let plan = &c.plan;
    assert_eq!(plan.policy, "fraud-model-v2");
    assert_eq!(plan.default, Action::Split { split: 0 });
    let split = &plan.splits[0];
    assert_eq!(
        split.hash,
        HashSpec {
            prefix: String::new(),
            seed: murmur3_x86_32(b"", b"fraud-v2", 0),
            reduce: Reduce::MulShift { scale: 10_000 }
        }
    );
    assert_eq!(
        split.lanes,
        vec![Lane {
            arm: 1,
            start: 0,
            end: 500
        }]
    );
    plan.check().unwrap();
}

#[test]
fn plan_round_trips_and_digest_is_stable() {
    let a = compile_str(MINIMAL, "a.toml").unwrap().plan;
    let b = compile_str(MINIMAL, "b.toml").unwrap().plan;
    assert_eq!(a.digest, b.digest);
    assert!(a.digest.starts_with("sha256:") && a.digest.len() == 7 + 64);
    let back = Plan::from_json(a.to_json().as_bytes()).unwrap();
    assert_eq!(back, a);
    assert_eq!(serin_compiler::plan::digest(&back), a.digest);
}

#[test]
fn about_five_percent_go_to_the_canary() {
    let plan = compile_str(MINIMAL, "p.toml").unwrap().plan;
    let canary = (0..20_000)
        .filter(|i| {
            let id = format!("user-{i}");
            let h = [("x-user-id", id.as_str())];
            plan.decide(&HeaderList::new(&h)).arm == 1
        })
        .count();
    assert!((800..1200).contains(&canary), "{canary}");
    let none: [(&str, &str); 0] = [];
    assert_eq!(plan.decide(&HeaderList::new(&none)).arm, 0);
}

#[test]
fn errors_carry_line_and_column() {
    let src = MINIMAL.replace("weights = { canary = 5 }", "wieghts = { canary = 5 }");
    let err = compile_str(&src, "p.toml").unwrap_err();
    let short = err.render_short();
    assert!(
        short.contains("p.toml:15:1: error[unknown-key]: unknown key `wieghts` in `split`"),
        "{short}"
    );
}
