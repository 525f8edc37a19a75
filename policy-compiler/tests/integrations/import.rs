//! `serin import nginx-ingress`: each fixture in `ingress/` becomes a policy that compiles and
//! routes as ingress-nginx would, and what cannot be mapped is said.

use serin_compiler::explain::{RequestSpec, explain};
use serin_compiler::import::nginx;
use serin_policy::Plan;

use crate::common::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        root()
            .join("policy-compiler/tests/integrations/ingress")
            .join(name),
    )
    .unwrap()
}

fn import(name: &str) -> (Plan, nginx::Imported) {
    let imported = nginx::import(&fixture(name), None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let plan = match serin_compiler::compile_str(&imported.toml, name) {
        Ok(c) => {
            assert!(
                c.warnings.is_empty(),
                "{name}: warnings {:?}\n{}",
                c.warnings,
                imported.toml
            );
            c.plan
        }
        Err(d) => panic!(
            "{name}: the imported policy does not compile:\n{}\n{}",
            d.render(false),
            imported.toml
        ),
    };
    (plan, imported)
}

/// The arm name a request with these headers and cookies gets.
fn arm(plan: &Plan, headers: &[(&str, &str)], cookies: &[(&str, &str)]) -> String {
    let req = RequestSpec {
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cookies: cookies
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..RequestSpec::default()
    };
    let trace = explain(plan, &req);
    let v = serde_json::to_value(&trace).unwrap();
    v["arm"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no arm in {v}"))
}

fn values(plan: &Plan) -> Vec<&str> {
    plan.arms.iter().map(|a| a.value.as_str()).collect()
}

fn canary_bp(plan: &Plan) -> u32 {
    plan.splits[0]
        .lanes
        .iter()
        .filter(|l| l.arm == 1)
        .map(|l| l.end - l.start)
        .sum()
}

#[test]
fn weight() {
    let (p, i) = import("weight.yaml");
    assert_eq!(p.policy, "scoring-canary");
    assert_eq!(values(&p), ["scoring-v1", "scoring-v2"]);
    assert_eq!(canary_bp(&p), 2000);
    assert!(p.rules.is_empty());
    assert!(
        i.notes.iter().any(|n| n.contains("sticky")),
        "{:?}",
        i.notes
    );
}

#[test]
fn weight_total_rounds_to_serins_resolution() {
    let (p, i) = import("weight-total.yaml");
    assert_eq!(values(&p), ["ranker-stable", "ranker-next"]);
    assert_eq!(canary_bp(&p), 3333);
    assert!(
        i.notes.iter().any(|n| n.contains("33.33%")),
        "{:?}",
        i.notes
    );
}

#[test]
fn header_always_and_never_before_the_weight() {
    let (p, _) = import("header-always.yaml");
    assert_eq!(arm(&p, &[("x-canary", "always")], &[]), "canary");
    assert_eq!(
        arm(&p, &[("x-canary", "never")], &[("serin-id", "x")]),
        "stable"
    );
    assert_eq!(canary_bp(&p), 500);
}

#[test]
fn header_value_then_cookie() {
    let (p, i) = import("header-value-and-cookie.yaml");
    assert_eq!(values(&p), ["search-blue", "search-green"]);
    assert!(
        p.splits.is_empty(),
        "no weight: everything else stays on stable"
    );
    assert_eq!(arm(&p, &[("x-region", "qa-eu")], &[]), "canary");
    assert_eq!(arm(&p, &[("x-region", "us")], &[]), "stable");
    assert_eq!(arm(&p, &[], &[("search_canary", "always")]), "canary");
    assert_eq!(
        arm(&p, &[("x-region", "qa-eu")], &[("search_canary", "never")]),
        "canary",
        "the header comes first"
    );
    assert_eq!(arm(&p, &[], &[("search_canary", "never")]), "stable");
    assert!(
        i.notes
            .iter()
            .any(|n| n.contains("canary-by-header-value takes precedence")),
        "{:?}",
        i.notes
    );
}

#[test]
fn header_pattern_regex_is_reported_not_guessed() {
    let (p, i) = import("header-pattern.yaml");
    assert!(p.rules.is_empty(), "the regex is left out");
    assert_eq!(canary_bp(&p), 1000);
    assert!(
        i.notes
            .iter()
            .any(|n| n.contains("no regular-expression matcher")),
        "{:?}",
        i.notes
    );
    assert!(
        i.notes
            .iter()
            .any(|n| n.contains("no main (non-canary) Ingress")),
        "{:?}",
        i.notes
    );
    assert!(
        i.notes.iter().any(|n| n.contains("canary-by-header-weird")),
        "{:?}",
        i.notes
    );
    assert_eq!(values(&p), ["stable", "recsys-v7"]);
}

#[test]
fn header_pattern_alternation_maps_to_one_of() {
    let (p, i) = import("header-pattern-literal.yaml");
    assert_eq!(arm(&p, &[("x-tier", "gold")], &[]), "canary");
    assert_eq!(arm(&p, &[("x-tier", "platinum")], &[]), "canary");
    assert_eq!(arm(&p, &[("x-tier", "silver")], &[]), "stable");
    assert!(i.notes.is_empty(), "{:?}", i.notes);
}

#[test]
fn cli_writes_the_policy_and_says_what_it_left_out() {
    let path = root().join("policy-compiler/tests/integrations/ingress/header-pattern.yaml");
    let out = serin(&["import", "nginx-ingress", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: canary-by-header-pattern `^beta-[0-9]+$` is not mapped"),
        "{stderr}"
    );
    let policy = String::from_utf8(out.stdout).unwrap();
    assert!(serin_compiler::compile_str(&policy, "stdout.toml").is_ok());

    let dir = temp_dir("import");
    let none = dir.join("none.yaml");
    std::fs::write(
        &none,
        "apiVersion: v1\nkind: Service\nmetadata: { name: x }\n",
    )
    .unwrap();
    let out = serin(&["import", "nginx-ingress", none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no canary Ingress"));
    let _ = std::fs::remove_dir_all(&dir);
}
