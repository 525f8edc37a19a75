//! Stage 4, lint: warnings about policies that compile but probably do not do what was meant.
//! Lint never fails; it reports. Each rule is a small unit with a code, a doc string and a check;
//! `docs/policy.md` lists them from [`LINTS`] (a test keeps the two in step).

use serin_policy::guard::power::{self, Power};
use serin_policy::guard::{Params, Rollout};
use serin_policy::{Cidr, Matcher, Plan, Test, sim};

use crate::ast::{Bucketing, FallbackDef, Policy};
use crate::diag::{Diagnostic, Span};
use crate::validate::{Checked, fmt_bp, percent_bp};

/// One lint rule.
pub struct Lint {
    pub code: &'static str,
    pub doc: &'static str,
    pub check: fn(&Cx, &mut Vec<Diagnostic>),
}

/// What a lint reads: the policy as written, as checked, and as compiled, and the traffic the
/// user expects.
pub struct Cx<'a> {
    pub policy: &'a Policy,
    pub checked: &'a Checked,
    pub plan: &'a Plan,
    /// Requests per second at one proxy: `serin check --expect-rps`, else the ramp's
    /// `expected_rps` (with its span).
    pub expected_rps: Option<(f64, Option<Span>)>,
}

pub const LINTS: &[Lint] = &[
    Lint {
        code: "weights-do-not-sum",
        doc: "A split lists the stable arm's weight and the weights do not add up to 100. The stable arm always takes what the other arms leave, so its written weight is misleading.",
        check: weights_do_not_sum,
    },
    Lint {
        code: "unreachable-rule",
        doc: "A rule can never match because an earlier rule matches every request it would (for instance an earlier rule without conditions). Also reported for `[split]` when a rule matches every request.",
        check: unreachable_rules,
    },
    Lint {
        code: "overlapping-rules",
        doc: "Two rules with different actions test the same request attribute with tests that can both hold (say `prefix = \"/v2\"` and `prefix = \"/v2/beta\"`). The earlier rule wins for requests that match both.",
        check: overlapping_rules,
    },
    Lint {
        code: "ramp-not-monotone",
        doc: "A ramp step does not raise the weight above the previous step's.",
        check: ramp_not_monotone,
    },
    Lint {
        code: "samples-unreachable",
        doc: "At the expected rate (the ramp's `expected_rps`, or `serin check --expect-rps`), a step cannot collect the minimum samples that it or a guard needs within its duration (or the guard's window), so it can never pass its `healthy` gate.",
        check: samples_unreachable,
    },
    Lint {
        code: "guard-cannot-decide",
        doc: "At the expected rate (the ramp's `expected_rps`, or `serin check --expect-rps`) and the canary's first share of traffic, a guard catches a breach of twice its limit within its `window` in fewer than half of 200 simulated runs. `serin explain --guards` shows how long it needs.",
        check: guard_cannot_decide,
    },
    Lint {
        code: "ramp-without-guards",
        doc: "The ramp has `healthy` gates but no guards: every step passes as soon as its duration is over.",
        check: ramp_without_guards,
    },
    Lint {
        code: "override-unprotected",
        doc: "`[override]` has neither a token nor trusted sources (the filter then ignores the override header), or it trusts every source address.",
        check: override_unprotected,
    },
    Lint {
        code: "unleash-variants-with-stable",
        doc: "An `unleash` split weighs the stable arm and one other arm. That is Unleash's variant bucketing (seed 86028157), which assigns users differently from a gradual rollout of the same percentage; a gradual rollout lists only the arm being rolled out.",
        check: unleash_variants_with_stable,
    },
    Lint {
        code: "unused-definition",
        doc: "A segment or outcome is declared but no guard uses it and `[metrics]` does not label by it, so the filter reads it for nothing.",
        check: unused_definitions,
    },
    Lint {
        code: "random-fallback-not-sticky",
        doc: "A random fallback does not name its sticky cookie, or keeps it for less than a day, so clients without a key may flip between arms.",
        check: random_fallback_not_sticky,
    },
];

/// The lint reference in `docs/policy.md`, between its `lints` markers (a test keeps it current).
pub fn docs_markdown() -> String {
    let mut out = String::from("| code | what it reports |\n| --- | --- |\n");
    for l in LINTS {
        out.push_str(&format!("| `{}` | {} |\n", l.code, l.doc));
    }
    out
}

/// Run every lint.
pub fn lint(cx: &Cx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for l in LINTS {
        (l.check)(cx, &mut out);
    }
    out
}

fn weights_do_not_sum(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let (p, c) = (cx.policy, cx.checked);
    for s in p.split.iter().chain(&p.splits) {
        if !matches!(s.bucketing.v, Bucketing::Serin) {
            continue;
        }
        let stable = &c.arms[usize::from(c.stable)].name;
        if !s.weights.v.iter().any(|w| &w.arm.v == stable) {
            continue;
        }
        let total: u32 = s
            .weights
            .v
            .iter()
            .filter_map(|w| percent_bp(&w.value.v).ok())
            .sum();
        if total != 10_000 {
            out.push(
                Diagnostic::warning(
                    "weights-do-not-sum",
                    format!("the weights of split `{}` add up to {} percent, not 100", s.name.v, fmt_bp(total)),
                    s.weights.span.clone(),
                )
                .with_label("does not add up to 100")
                .with_help(format!(
                    "the stable arm `{stable}` takes whatever the other arms leave, whatever its weight says; fix its weight or leave it out"
                )),
            );
        }
    }
}

/// The request attribute a matcher reads.
#[derive(PartialEq, Eq)]
enum Attr<'a> {
    Header(&'a str),
    Cookie(&'a str),
    Query(&'a str),
    Path,
    Method,
    Source,
}

fn attr(m: &Matcher) -> Attr<'_> {
    match m {
        Matcher::Header { name, .. } => Attr::Header(name),
        Matcher::Cookie { name, .. } => Attr::Cookie(name),
        Matcher::Query { name, .. } => Attr::Query(name),
        Matcher::PathPrefix { .. } => Attr::Path,
        Matcher::Method { .. } => Attr::Method,
        Matcher::SourceIp { .. } => Attr::Source,
    }
}

fn test_of(m: &Matcher) -> Option<&Test> {
    match m {
        Matcher::Header { test, .. }
        | Matcher::Cookie { test, .. }
        | Matcher::Query { test, .. } => Some(test),
        _ => None,
    }
}

/// Whether every value passing `a` also passes `b`.
fn test_implies(a: &Test, b: &Test) -> bool {
    use Test::*;
    match (a, b) {
        (Absent, Absent) => true,
        (Absent, NoneOf(_)) => true,
        (_, Absent) => false,
        (Absent, _) => false,
        (NoneOf(x), NoneOf(y)) => y.iter().all(|v| x.contains(v)),
        (NoneOf(_), _) => false,
        (_, Present) => !matches!(a, AnyOf(l) if l.is_empty()),
        (Present, _) => false,
        (Exact(v), b) => value_passes(v, b),
        (AnyOf(l), b) => l.iter().all(|v| value_passes(v, b)),
        (Prefix(p), Prefix(q)) => p.starts_with(q.as_str()),
        (Suffix(s), Suffix(t)) => s.ends_with(t.as_str()),
        _ => false,
    }
}

fn value_passes(v: &str, t: &Test) -> bool {
    match t {
        Test::Present => true,
        Test::Absent => false,
        Test::Exact(x) => v == x,
        Test::Prefix(p) => v.starts_with(p.as_str()),
        Test::Suffix(s) => v.ends_with(s.as_str()),
        Test::AnyOf(l) => l.iter().any(|x| x == v),
        Test::NoneOf(l) => !l.iter().any(|x| x == v),
    }
}

/// Whether some value could pass both tests (conservative: `true` when unsure).
fn tests_compatible(a: &Test, b: &Test) -> bool {
    use Test::*;
    match (a, b) {
        (Absent, Absent) | (Absent, NoneOf(_)) | (NoneOf(_), Absent) => true,
        (Absent, _) | (_, Absent) => false,
        (Exact(v), t) | (t, Exact(v)) => value_passes(v, t),
        (AnyOf(l), t) | (t, AnyOf(l)) => l.iter().any(|v| value_passes(v, t)),
        (Prefix(p), Prefix(q)) => p.starts_with(q.as_str()) || q.starts_with(p.as_str()),
        (Suffix(p), Suffix(q)) => p.ends_with(q.as_str()) || q.ends_with(p.as_str()),
        _ => true,
    }
}

fn cidr_within(inner: &Cidr, outer: &Cidr) -> bool {
    inner.addr.is_ipv4() == outer.addr.is_ipv4()
        && outer.prefix <= inner.prefix
        && outer.contains(inner.addr)
}

/// Whether matcher `a` (of a later rule) implies matcher `b` (of an earlier one).
fn implies(a: &Matcher, b: &Matcher) -> bool {
    if attr(a) != attr(b) {
        return false;
    }
    match (a, b) {
        (Matcher::PathPrefix { any_of: x }, Matcher::PathPrefix { any_of: y }) => x
            .iter()
            .all(|p| y.iter().any(|q| p.starts_with(q.as_str()))),
        (Matcher::Method { any_of: x }, Matcher::Method { any_of: y }) => {
            x.iter().all(|m| y.contains(m))
        }
        (Matcher::SourceIp { any_of: x }, Matcher::SourceIp { any_of: y }) => {
            x.iter().all(|n| y.iter().any(|o| cidr_within(n, o)))
        }
        _ => match (test_of(a), test_of(b)) {
            (Some(ta), Some(tb)) => test_implies(ta, tb),
            _ => false,
        },
    }
}

fn compatible(a: &Matcher, b: &Matcher) -> bool {
    match (a, b) {
        (Matcher::PathPrefix { any_of: x }, Matcher::PathPrefix { any_of: y }) => {
            x.iter().any(|p| {
                y.iter()
                    .any(|q| p.starts_with(q.as_str()) || q.starts_with(p.as_str()))
            })
        }
        (Matcher::Method { any_of: x }, Matcher::Method { any_of: y }) => {
            x.iter().any(|m| y.contains(m))
        }
        (Matcher::SourceIp { any_of: x }, Matcher::SourceIp { any_of: y }) => x
            .iter()
            .any(|n| y.iter().any(|o| cidr_within(n, o) || cidr_within(o, n))),
        _ => match (test_of(a), test_of(b)) {
            (Some(ta), Some(tb)) => tests_compatible(ta, tb),
            _ => true,
        },
    }
}

/// Whether every request matching `later` also matches `earlier`.
fn subsumes(earlier: &[Matcher], later: &[Matcher]) -> bool {
    earlier.iter().all(|b| later.iter().any(|a| implies(a, b)))
}

fn rule_span(p: &Policy, i: usize) -> Span {
    p.rules[i].name.span.clone()
}

fn unreachable_rules(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let (p, c) = (cx.policy, cx.checked);
    let catch_all = c.rules.iter().position(|r| r.all.is_empty());
    for (j, later) in c.rules.iter().enumerate() {
        // An earlier catch-all explains every later rule; report that first.
        let by = match catch_all {
            Some(i) if i < j => Some(i),
            _ => (0..j).find(|&i| subsumes(&c.rules[i].all, &later.all)),
        };
        if let Some(i) = by {
            let earlier = &c.rules[i];
            let why = if earlier.all.is_empty() {
                format!(
                    "rule `{}` has no conditions and matches every request",
                    earlier.name
                )
            } else {
                format!(
                    "rule `{}` matches every request that this rule would",
                    earlier.name
                )
            };
            out.push(
                Diagnostic::warning("unreachable-rule", format!("rule `{}` can never match", later.name), rule_span(p, j))
                    .with_label("unreachable")
                    .with_related(rule_span(p, i), "matches first")
                    .with_help(format!("{why}; rules are tried in order and the first match wins, so move this rule up or remove it")),
            );
        }
    }
    if let (Some(i), Some(split)) = (catch_all, &p.split) {
        out.push(
            Diagnostic::warning(
                "unreachable-rule",
                "`[split]` is never used",
                split.name.span.clone(),
            )
            .with_label("unreachable")
            .with_related(rule_span(p, i), "matches every request")
            .with_help(format!(
                "rule `{}` has no conditions, so no request reaches the default split",
                c.rules[i].name
            )),
        );
    }
}

fn overlapping_rules(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let (p, c) = (cx.policy, cx.checked);
    for (j, later) in c.rules.iter().enumerate() {
        if later.all.is_empty() {
            continue;
        }
        for (i, earlier) in c.rules[..j].iter().enumerate() {
            if earlier.all.is_empty()
                || earlier.action == later.action
                || subsumes(&earlier.all, &later.all)
            {
                continue;
            }
            let mut shared = false;
            let mut disjoint = false;
            for a in &later.all {
                for b in &earlier.all {
                    if attr(a) == attr(b) {
                        shared = true;
                        if !compatible(a, b) {
                            disjoint = true;
                        }
                    }
                }
            }
            if shared && !disjoint {
                out.push(
                    Diagnostic::warning(
                        "overlapping-rules",
                        format!("rules `{}` and `{}` overlap and do different things", earlier.name, later.name),
                        rule_span(p, j),
                    )
                    .with_label("overlaps an earlier rule")
                    .with_related(rule_span(p, i), "wins for requests matching both")
                    .with_help("a request can match both rules, and the earlier one wins; make the conditions exclusive or reorder them on purpose"),
                );
                break;
            }
        }
    }
}

fn ramp_not_monotone(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let p = cx.policy;
    let Some(r) = &p.ramp else { return };
    let mut prev: Option<u32> = None;
    for (i, s) in r.steps.iter().enumerate() {
        let Ok(w) = percent_bp(&s.weight.v) else {
            continue;
        };
        if let Some(pw) = prev
            && w <= pw
        {
            out.push(
                Diagnostic::warning(
                    "ramp-not-monotone",
                    format!("ramp step {} ({} percent) does not raise the weight of step {i} ({} percent)", i + 1, fmt_bp(w), fmt_bp(pw)),
                    s.weight.span.clone(),
                )
                .with_label(if w == pw { "same weight" } else { "lower weight" })
                .with_help("each step should raise the weight; to go back, roll back instead of ramping down"),
            );
        }
        prev = Some(w);
    }
}

fn samples_unreachable(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let (p, c) = (cx.policy, cx.checked);
    let (Some(r), Some(plan_ramp)) = (&p.ramp, &c.rollout.ramp) else {
        return;
    };
    let Some((rps, rps_span)) = &cx.expected_rps else {
        return;
    };
    for (s, step) in r.steps.iter().zip(&plan_ramp.steps) {
        let share = f64::from(step.weight) / 10_000.0;
        let duration = f64::from(step.min_duration_seconds);
        let mut needs: Vec<(u64, f64, String)> = Vec::new();
        if step.min_samples > 0 {
            needs.push((u64::from(step.min_samples), duration, "the step".to_owned()));
        }
        for g in &c.rollout.guards {
            if g.arms.contains(&plan_ramp.arm) {
                let window = f64::from(g.window_seconds).min(duration);
                needs.push((
                    u64::from(g.min_samples),
                    window,
                    format!("guard `{}`", g.name),
                ));
            }
        }
        for (need, seconds, who) in needs {
            let expected = rps * share * seconds;
            if expected < need as f64 {
                let mut d = Diagnostic::warning(
                    "samples-unreachable",
                    format!("this step cannot reach the {need} samples that {who} needs"),
                    s.span.clone(),
                )
                .with_label(format!("about {} samples", expected.floor()))
                .with_help(format!(
                    "at {} requests per second, {} percent for {}s gives about {} requests; lengthen the step, raise its weight or lower the minimum",
                    rps,
                    fmt_bp(step.weight),
                    seconds,
                    expected.floor()
                ));
                if let Some(span) = rps_span {
                    d = d.with_related(span.clone(), "the stated rate");
                }
                out.push(d);
            }
        }
    }
}

fn guard_cannot_decide(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let Some((rps, rps_span)) = &cx.expected_rps else {
        return;
    };
    let rollout = Rollout::from_plan(cx.plan, Params::default());
    let share = sim::starting_share(cx.plan, &rollout);
    let baseline = power::assumed_baseline(cx.plan, *rps, share);
    let mut warned = Vec::new();
    for check in &rollout.checks {
        let (Some(def), Some(guard)) = (
            cx.policy.guards.get(usize::from(check.guard)),
            cx.plan.guards.get(usize::from(check.guard)),
        ) else {
            continue;
        };
        if warned.contains(&check.guard) {
            continue;
        }
        // A distribution check has no limit to breach twice over (see `power_table`).
        let Some(trial) = check.trial(&rollout.params) else {
            continue;
        };
        let slots = u64::from(guard.window_seconds) * 1000 / u64::from(rollout.params.slot_ms);
        let traffic = rollout.traffic(check, &baseline);
        let p = Power::measure(&trial, traffic, 2.0, slots, 200, 1);
        if p.rate() >= 0.5 {
            continue;
        }
        warned.push(check.guard);
        let mut d = Diagnostic::warning(
            "guard-cannot-decide",
            format!(
                "guard `{}` cannot catch a breach of twice its limit within its window",
                guard.name
            ),
            def.span.clone(),
        )
        .with_label(format!(
            "`{}` catches it within {} in {:.0}% of simulated runs",
            check.label,
            power::duration(f64::from(guard.window_seconds)),
            100.0 * p.rate()
        ))
        .with_help(format!(
            "at {rps} requests per second with {:.1} percent on the canary, it sees about {:.1} samples a second; lengthen `window`, raise the canary's first share, or run `serin explain --guards` for the time it needs",
            100.0 * share,
            traffic.watched * 1000.0 / f64::from(rollout.params.slot_ms)
        ));
        if let Some(span) = rps_span {
            d = d.with_related(span.clone(), "the stated rate");
        }
        out.push(d);
    }
}

fn ramp_without_guards(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let (p, c) = (cx.policy, cx.checked);
    let (Some(r), Some(ramp)) = (&p.ramp, &c.rollout.ramp) else {
        return;
    };
    let healthy = ramp
        .steps
        .iter()
        .any(|s| s.gates.contains(&serin_policy::Gate::Healthy));
    if healthy && c.rollout.guards.is_empty() {
        out.push(
            Diagnostic::warning("ramp-without-guards", "the ramp advances on health but the policy has no guards", r.span.clone())
                .with_label("nothing to check")
                .with_help("add `[[guards]]` (error rate, latency, outcomes) so that a bad canary rolls back instead of being promoted"),
        );
    }
}

fn override_unprotected(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let (p, c) = (cx.policy, cx.checked);
    let (Some(def), Some(o)) = (&p.override_, &c.override_) else {
        return;
    };
    if o.token.is_none() && o.trusted_sources.is_empty() {
        out.push(
            Diagnostic::warning("override-unprotected", "the override has neither a token nor trusted sources", def.header.span.clone())
                .with_label("unprotected override")
                .with_help("anyone could force an arm, so the filter ignores the override header; add `token = { header = \"...\", value = \"...\" }` or `trusted_sources = [\"10.0.0.0/8\"]`"),
        );
    }
    for (n, s) in o.trusted_sources.iter().zip(&def.trusted_sources) {
        if n.prefix == 0 {
            out.push(
                Diagnostic::warning(
                    "override-unprotected",
                    format!("trusted source `{}` trusts every address", s.v),
                    s.span.clone(),
                )
                .with_label("every client")
                .with_help("any client can then force an arm; list only your testers' networks"),
            );
        }
    }
}

fn unleash_variants_with_stable(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let (p, c) = (cx.policy, cx.checked);
    let stable = &c.arms[usize::from(c.stable)].name;
    for s in p.split.iter().chain(&p.splits) {
        if matches!(s.bucketing.v, Bucketing::Unleash { .. })
            && s.weights.v.len() == 2
            && s.weights.v.iter().any(|w| &w.arm.v == stable)
        {
            out.push(
                Diagnostic::warning(
                    "unleash-variants-with-stable",
                    format!("split `{}` uses Unleash's variant bucketing, not its gradual rollout", s.name.v),
                    s.weights.span.clone(),
                )
                .with_label(format!("weighs the stable arm `{stable}`"))
                .with_help(format!(
                    "Unleash assigns variants with another seed than rollouts; to match a gradual rollout, leave `{stable}` out of the weights"
                )),
            );
        }
    }
}

fn unused_definitions(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let p = cx.policy;
    let labelled = |l: &str| {
        p.metrics
            .as_ref()
            .is_some_and(|m| m.labels.iter().any(|x| x.v == l))
    };
    for s in &p.segments {
        let used = p
            .guards
            .iter()
            .any(|g| g.segment.as_ref().is_some_and(|x| x.v == s.name.v));
        if !used && !labelled("segment") {
            out.push(
                Diagnostic::warning(
                    "unused-definition",
                    format!("segment `{}` is declared but nothing uses it", s.name.v),
                    s.name.span.clone(),
                )
                .with_label("unused")
                .with_help(
                    "name it in a guard's `segment`, or add `segment` to `[metrics] labels`",
                ),
            );
        }
    }
    for o in &p.outcomes {
        let used = p
            .guards
            .iter()
            .any(|g| g.outcome.as_ref().is_some_and(|x| x.v == o.name.v));
        if !used && !labelled("outcome") {
            out.push(
                Diagnostic::warning(
                    "unused-definition",
                    format!("outcome `{}` is declared but nothing uses it", o.name.v),
                    o.name.span.clone(),
                )
                .with_label("unused")
                .with_help(
                    "name it in an `outcome_rate` or `distribution` guard, or add `outcome` to `[metrics] labels`",
                ),
            );
        }
    }
}

fn random_fallback_not_sticky(cx: &Cx, out: &mut Vec<Diagnostic>) {
    let p = cx.policy;
    for s in p.split.iter().chain(&p.splits) {
        let Some(f) = &s.fallback else { continue };
        let FallbackDef::Random {
            cookie,
            max_age_seconds,
        } = &f.v
        else {
            continue;
        };
        if cookie.is_none() {
            out.push(
                Diagnostic::warning("random-fallback-not-sticky", format!("the random fallback of split `{}` names no sticky cookie", s.name.v), f.span.clone())
                    .with_label("no `cookie`")
                    .with_help(format!(
                        "without a cookie a client without a key would get a new arm on every request; serin uses `{}`, but name it: `cookie = \"{}\"`",
                        crate::validate::DEFAULT_STICKY_COOKIE,
                        crate::validate::DEFAULT_STICKY_COOKIE
                    )),
            );
        }
        if let Some(m) = max_age_seconds.as_ref().filter(|m| m.v < 86_400) {
            out.push(
                Diagnostic::warning("random-fallback-not-sticky", format!("the sticky cookie of split `{}` expires after {}s", s.name.v, m.v), m.span.clone())
                    .with_label("under a day")
                    .with_help("clients will move between arms when it expires; keep it for the whole rollout, e.g. `max_age = \"30d\"`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(test: Test) -> Matcher {
        Matcher::Header {
            name: "x".into(),
            test,
        }
    }

    #[test]
    fn implication() {
        assert!(implies(&h(Test::Exact("a".into())), &h(Test::Present)));
        assert!(implies(
            &h(Test::Exact("ab".into())),
            &h(Test::Prefix("a".into()))
        ));
        assert!(implies(
            &h(Test::AnyOf(vec!["a".into()])),
            &h(Test::Exact("a".into()))
        ));
        assert!(!implies(&h(Test::Present), &h(Test::Exact("a".into()))));
        assert!(implies(
            &h(Test::Absent),
            &h(Test::NoneOf(vec!["a".into()]))
        ));
        assert!(!implies(&h(Test::Absent), &h(Test::Present)));
        let p = |v: &[&str]| Matcher::PathPrefix {
            any_of: v.iter().map(|s| s.to_string()).collect(),
        };
        assert!(implies(&p(&["/v2/beta"]), &p(&["/v2"])));
        assert!(!implies(&p(&["/v2"]), &p(&["/v2/beta"])));
    }

    #[test]
    fn compatibility() {
        assert!(!tests_compatible(
            &Test::Exact("a".into()),
            &Test::Exact("b".into())
        ));
        assert!(tests_compatible(
            &Test::Prefix("/a".into()),
            &Test::Prefix("/ab".into())
        ));
        assert!(!tests_compatible(&Test::Present, &Test::Absent));
        assert!(tests_compatible(
            &Test::AnyOf(vec!["a".into(), "b".into()]),
            &Test::Exact("b".into())
        ));
    }
}
