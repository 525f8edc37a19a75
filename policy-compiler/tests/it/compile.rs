//! End to end through the library: policy text in, plan out, decisions checked.

use serin_compiler::compile_str;
use serin_policy::{
    Action, Distributed, GuardMetric, HashSpec, HeaderList, Lane, Plan, Reduce, murmur3_x86_32,
};

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
fn a_distribution_guard_round_trips_through_the_plan() {
    let source = format!(
        "{MINIMAL}\n[segments.age_band]\nheader = \"x-age-band\"\nvalues = [\"65+\", \"18-64\"]\n\n[outcomes.score]\njson = \"predictions[0]\"\n\n[[guards]]\nname = \"score drift\"\nmetric = \"distribution\"\noutcome = \"score\"\nbuckets = [0.1, 0.3, 0.5]\n\n[[guards]]\nname = \"age mix\"\nmetric = \"distribution\"\nsegment = \"age_band\"\n"
    );
    let plan = compile_str(&source, "d.toml").unwrap().plan;
    assert_eq!(plan.format, serin_policy::PLAN_FORMAT);
    assert_eq!(plan.outcomes[0].positive, None, "a numeric outcome");
    assert_eq!(
        plan.guards[0].metric,
        GuardMetric::Distribution {
            over: Distributed::Outcome {
                outcome: 0,
                upper_bounds_millionths: vec![100_000, 300_000, 500_000],
            }
        }
    );
    assert_eq!(
        plan.guards[1].metric,
        GuardMetric::Distribution {
            over: Distributed::Segment { segment: 0 }
        }
    );
    let back = Plan::from_json(plan.to_json().as_bytes()).unwrap();
    assert_eq!(back, plan);
    // The engine lays out 4 + 3 cells and compiles one test per guard.
    let rollout = serin_policy::guard::Rollout::from_plan(&back, Default::default());
    assert_eq!(rollout.layout.cells.len(), 7);
    assert!(rollout.layout.unplaced.is_empty());
    assert_eq!(rollout.checks.len(), 2);
    assert!(rollout.checks.iter().all(|c| c.distribution().is_some()));
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

fn abn(a: &str, b: &str) -> Plan {
    let src = format!(
        "[policy]\nname = \"abn\"\n[arms.stable]\n[arms.a]\n[arms.b]\n[split]\nkey = \"header:x-user-id\"\nweights = {{ a = {a}, b = {b} }}\n"
    );
    compile_str(&src, "abn.toml").unwrap().plan
}

fn arm_of(plan: &Plan, user: &str) -> u8 {
    plan.assign(0, user.as_bytes()).unwrap().arm
}

#[test]
fn raising_a_weight_never_moves_a_user_out_of_an_arm() {
    let weights = [
        ("1", "0.5"),
        ("5", "1"),
        ("12.5", "5"),
        ("30", "20"),
        ("50", "50"),
    ];
    let plans: Vec<Plan> = weights.iter().map(|(a, b)| abn(a, b)).collect();
    for i in 0..20_000 {
        let user = format!("user-{i}");
        for pair in plans.windows(2) {
            let (before, after) = (arm_of(&pair[0], &user), arm_of(&pair[1], &user));
            if before != 0 {
                assert_eq!(before, after, "{user} left arm {before}");
            }
        }
    }
}

#[test]
fn ramp_steps_extend_one_lane() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/multi-step-ramp.toml"
    ))
    .unwrap();
    let plan = compile_str(&src, "ramp.toml").unwrap().plan;
    let ramp = plan.ramp.as_ref().unwrap();
    assert_eq!(
        ramp.steps[0].lanes,
        plan.splits[usize::from(ramp.split)].lanes,
        "a plan starts at step 0"
    );
    for pair in ramp.steps.windows(2) {
        let (a, b) = (&pair[0].lanes[0], &pair[1].lanes[0]);
        assert_eq!(a.start, b.start);
        assert!(a.end < b.end);
    }
    assert_eq!(ramp.steps.last().unwrap().lanes[0].end, 10_000);
}

#[test]
fn formatting_never_changes_the_plan() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue; // examples/scenarios/ holds simulation scenarios, not policies
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let messy = src.replace(" = ", "=").replace('\n', "\n\n");
        let tidy = serin_compiler::format::format(&messy).unwrap();
        let a = compile_str(&src, "a.toml").unwrap().plan;
        let b = compile_str(&tidy, "b.toml").unwrap().plan;
        assert_eq!(a.digest, b.digest, "{}", path.display());
    }
}

/// Every plan the compiler writes for the examples (and for the corpus cases that compile, with
/// their warnings) reads back through `Plan::from_json`, the filter's hand-written reader, as the
/// plan it was, and writes the same JSON again.
#[test]
fn every_example_plan_reads_back_through_the_filter_s_reader() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut read = [0, 0];
    for (dir, count) in ["examples", "policy-compiler/tests/corpus"]
        .into_iter()
        .zip(&mut read)
    {
        let mut paths: Vec<_> = std::fs::read_dir(format!("{root}/{dir}"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).unwrap();
            let Ok(compiled) = compile_str(&source, &name) else {
                assert_ne!(dir, "examples", "{name} does not compile");
                continue;
            };
            let json = compiled.plan.to_json();
            let back = Plan::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(back, compiled.plan, "{name}");
            assert_eq!(back.to_json(), json, "{name}");
            *count += 1;
        }
    }
    // Every example, and the corpus's warnings.
    assert!(read[0] >= 8 && read[1] >= 10, "{read:?}");
}

#[test]
fn the_fraud_example_guards_the_elderly_segment() {
    use serin_policy::{GuardMetric, OutcomeSource, PathStep};
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fraud-model.toml"
    ))
    .unwrap();
    let plan = compile_str(&src, "fraud-model.toml").unwrap().plan;
    assert_eq!(
        plan.splits[0].lanes,
        vec![Lane {
            arm: 1,
            start: 0,
            end: 500
        }]
    );
    assert_eq!(plan.segments[0].header, "x-age-band");
    assert_eq!(
        plan.outcomes[0].source,
        OutcomeSource::Json {
            path: vec![PathStep::Key("predictions".into()), PathStep::Index(0)]
        }
    );
    let elderly = plan
        .guards
        .iter()
        .find(|g| g.name == "elderly customers flagged")
        .unwrap();
    assert_eq!(
        elderly.metric,
        GuardMetric::OutcomeRate {
            outcome: 0,
            segment: Some(0),
            segment_values: vec!["65+".into()],
            max_ppm: None,
            min_ppm: None,
            max_ratio_ppm: Some(1_200_000),
            min_ratio_ppm: None,
        }
    );
    let latency = plan
        .guards
        .iter()
        .find(|g| g.name == "p99 latency")
        .unwrap();
    assert_eq!(
        latency.metric,
        GuardMetric::Latency {
            quantile_ppm: 990_000,
            max_ms: None,
            max_ratio_ppm: Some(1_200_000)
        }
    );
    plan.check_rollout().unwrap();
}
