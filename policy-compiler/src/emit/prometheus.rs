//! `serin emit prometheus-rules`: alerting rules that fire when a guard of the policy breaches,
//! judged from the filter's metrics with the policy's own thresholds, windows and minimum
//! samples, plus alerts on the rollout state the filter reports; and, for a policy whose fleet
//! query reads recorded sums, the recording rules it reads.

use serin_policy::Plan;
use serin_policy::fleet::{self, Query};

use super::metrics::{self, Bound, Check, ROLLOUT_STATE, slug};
use super::yaml::{self, Value, list, map, s};

/// How long a breach must last before the alert fires. The proxies act at once; the alert
/// waits out a scrape or two of noise.
pub const FOR: &str = "2m";

fn severity(c: &Check) -> &'static str {
    if c.on_breach == "rollback" {
        "critical"
    } else {
        "warning"
    }
}

fn labels(plan: &Plan, extra: &[(&str, &str)], sev: &str) -> Value {
    let mut pairs = vec![("severity", s(sev)), ("policy", s(&plan.policy))];
    pairs.extend(extra.iter().map(|(k, v)| (*k, s(*v))));
    map(pairs)
}

pub fn check_rule(plan: &Plan, c: &Check) -> Value {
    let op = match c.bound {
        Bound::Max => "above",
        Bound::Min => "below",
    };
    let seg = if c.per_segment {
        " (segment value {{ $labels.segment_value }})"
    } else {
        ""
    };
    map([
        ("alert", s("SerinGuardBreach")),
        ("expr", s(c.breach_expr())),
        ("for", s(FOR)),
        (
            "labels",
            labels(
                plan,
                &[
                    ("guard", c.guard.as_str()),
                    ("check", c.id.as_str()),
                    ("arm", c.arm.as_str()),
                    ("on_breach", c.on_breach),
                ],
                severity(c),
            ),
        ),
        (
            "annotations",
            map([
                (
                    "summary",
                    s(format!(
                        "Serin guard `{}` breached on arm `{}`{seg}",
                        c.guard, c.arm
                    )),
                ),
                (
                    "description",
                    s(format!(
                        "{} of arm `{}` is {{{{ $value | humanize }}}}, {op} {} over {} with at least {} samples. The proxies {} the rollout of policy `{}`.",
                        c.what,
                        c.arm,
                        c.threshold,
                        c.window,
                        c.min_samples,
                        if c.on_breach == "rollback" {
                            "roll back"
                        } else {
                            "hold"
                        },
                        plan.policy
                    )),
                ),
            ]),
        ),
    ])
}

fn state_rule(plan: &Plan, alert: &str, code: u8, for_: &str, sev: &str, what: &str) -> Value {
    map([
        ("alert", s(alert)),
        ("expr", s(format!("max({ROLLOUT_STATE}) == {code}"))),
        ("for", s(for_)),
        ("labels", labels(plan, &[], sev)),
        (
            "annotations",
            map([(
                "summary",
                s(format!("Serin policy `{}` {what}", plan.policy)),
            )]),
        ),
    ])
}

/// The rules file: one group per policy.
pub fn rules(plan: &Plan) -> Value {
    let mut rules: Vec<Value> = metrics::checks(plan)
        .iter()
        .map(|c| check_rule(plan, c))
        .collect();
    rules.push(state_rule(
        plan,
        "SerinRolledBack",
        metrics::STATE_ROLLED_BACK,
        "0m",
        "critical",
        "rolled back: every new request goes to the stable arm",
    ));
    rules.push(state_rule(
        plan,
        "SerinRolloutHeld",
        metrics::STATE_HELD,
        "15m",
        "warning",
        "has held its ramp for 15 minutes: a guard with on_breach = \"hold\" breaches",
    ));
    let mut groups = vec![map([
        ("name", s(format!("serin-{}", slug(&plan.policy)))),
        ("rules", list(rules)),
    ])];
    if plan.fleet.as_ref().map(|f| f.query) == Some(Query::Recorded) {
        groups.push(fleet_group(plan));
    }
    map([("groups", list(groups))])
}

/// The recording rules that `query = "recorded"` reads (`serin_policy::fleet::recording_rules`),
/// evaluated at the policy's query interval. They are the same for every policy (their series
/// are per `digest`): a Prometheus needs one copy, and this group's name says which.
fn fleet_group(plan: &Plan) -> Value {
    let interval_s = plan
        .fleet
        .as_ref()
        .map_or(5, |f| f.interval_ms / 1000)
        .max(1);
    let rules: Vec<Value> = fleet::recording_rules()
        .into_iter()
        .map(|(record, expr)| map([("record", s(record)), ("expr", s(expr))]))
        .collect();
    map([
        ("name", s("serin-fleet")),
        ("interval", s(format!("{interval_s}s"))),
        ("rules", list(rules)),
    ])
}

pub fn file(plan: &Plan, source: &str) -> String {
    format!(
        "{}{}",
        super::header(&[
            &format!(
                "Prometheus alerting rules for Serin policy `{}`, generated by {} from {source}.",
                plan.policy,
                super::GENERATOR
            ),
            "The thresholds, windows and minimum samples are the policy's guards'. Check with",
            "`promtool check rules FILE`.",
        ]),
        yaml::to_string(&rules(plan))
    )
}
