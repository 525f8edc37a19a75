//! Validation of the parts of a policy that the rollout engine executes: segments, outcomes,
//! guards, the ramp and metrics. Part of stage 3 (`validate`).

use serin_policy::guard::CELLS;
use serin_policy::{
    ArmId, Breach, Distributed, Gate, Guard, GuardMetric, Lane, MILLIONTHS, Metrics, Outcome,
    OutcomeSource, PPM, PathStep, Positive, Ramp, RampStep, Reduce, Segment, Split,
};

use crate::ast::*;
use crate::ctx::{Ctx, fmt_bp, percent_bp, quoted};
use crate::diag::{Diagnostic, Span, did_you_mean};

/// Window of a guard when neither it nor `[guard_defaults]` sets one.
pub const DEFAULT_WINDOW_SECONDS: u64 = 300;
/// Minimum samples of a guard when neither it nor `[guard_defaults]` sets them.
pub const DEFAULT_MIN_SAMPLES: u64 = 100;
/// Latency histogram bounds (ms) when `[metrics]` sets none.
pub const DEFAULT_LATENCY_BUCKETS_MS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
/// The labels metrics may carry.
pub const METRIC_LABELS: &[&str] = &["arm", "rule", "segment", "class", "outcome"];
pub const METRIC_KINDS: &[&str] = &["error_rate", "latency", "outcome_rate", "distribution"];

/// The validated rollout parts, in the plan's types.
#[derive(Debug, Clone, Default)]
pub struct Rollout {
    pub segments: Vec<Segment>,
    pub outcomes: Vec<Outcome>,
    pub guards: Vec<Guard>,
    pub ramp: Option<Ramp>,
    pub metrics: Option<Metrics>,
}

pub(crate) fn validate(cx: &mut Ctx<'_>, split_names: &[String], splits: &[Split]) -> Rollout {
    let p = cx.policy;
    if p.segments.len() > usize::from(u8::MAX) || p.outcomes.len() > usize::from(u8::MAX) {
        cx.err(Diagnostic::error(
            "too-many",
            "at most 255 segments and 255 outcomes are supported",
            0..0,
        ));
    }
    let segments = p
        .segments
        .iter()
        .map(|s| {
            cx.header_name(&s.header, &format!("segment `{}` header", s.name.v));
            let mut values: Vec<String> = s.values.iter().map(|v| v.v.clone()).collect();
            values.sort();
            values.dedup();
            Segment {
                name: s.name.v.clone(),
                header: s.header.v.clone(),
                values,
            }
        })
        .collect();
    let outcomes = p.outcomes.iter().map(|o| outcome(cx, o)).collect();
    let guards = p.guards.iter().filter_map(|g| guard(cx, g)).collect();
    let ramp = p
        .ramp
        .as_ref()
        .and_then(|r| ramp(cx, r, split_names, splits));
    let metrics = metrics(cx, p.metrics.as_ref());
    Rollout {
        segments,
        outcomes,
        guards,
        ramp,
        metrics,
    }
}

fn outcome(cx: &mut Ctx<'_>, o: &OutcomeDef) -> Outcome {
    let source = match &o.source.v {
        OutcomeSourceDef::Header(h) => {
            cx.header_name(&S::new(h.clone(), o.source.span.clone()), "outcome header");
            OutcomeSource::Header { name: h.clone() }
        }
        OutcomeSourceDef::Json(path) => match parse_json_path(path) {
            Ok(path) => OutcomeSource::Json { path },
            Err(m) => {
                cx.err(
                    Diagnostic::error("json-path", format!("`{path}` is not a JSON field path: {m}"), o.source.span.clone())
                        .with_label("invalid path")
                        .with_help("write field names joined by `.` and array indices in brackets, e.g. `predictions[0]` or `outputs[0].data[0]`"),
                );
                OutcomeSource::Json { path: Vec::new() }
            }
        },
    };
    let positive = o.positive.as_ref().map(|positive| match &positive.v {
        PositiveDef::Equals(list) => {
            if list.is_empty() {
                cx.err(
                    Diagnostic::error(
                        "empty-list",
                        "`equals` needs at least one value",
                        positive.span.clone(),
                    )
                    .with_label("empty list"),
                );
            }
            let mut any_of: Vec<String> = list.iter().map(|s| s.v.clone()).collect();
            any_of.sort();
            any_of.dedup();
            Positive::Equals { any_of }
        }
        PositiveDef::Above(v) => Positive::Above { value: *v },
    });
    Outcome {
        name: o.name.v.clone(),
        source,
        positive,
    }
}

/// `outputs[0].data[0]` → key, index, key, index.
pub fn parse_json_path(path: &str) -> Result<Vec<PathStep>, String> {
    let mut steps = Vec::new();
    let mut rest = path;
    if rest.is_empty() {
        return Err("it is empty".into());
    }
    let mut first = true;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']').ok_or("a `[` is not closed")?;
            let idx: u32 = r[..close]
                .parse()
                .map_err(|_| format!("`[{}]` is not an array index", &r[..close]))?;
            steps.push(PathStep::Index(idx));
            rest = &r[close + 1..];
        } else {
            let r = if first {
                rest
            } else {
                rest.strip_prefix('.')
                    .ok_or("expected `.` or `[` between steps")?
            };
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return Err("a field name is empty".into());
            }
            steps.push(PathStep::Key(key.to_owned()));
            rest = &r[end..];
        }
        first = false;
    }
    Ok(steps)
}

fn ppm(cx: &mut Ctx<'_>, v: &S<f64>, what: &str, max: f64) -> Option<u32> {
    if !(0.0..=max).contains(&v.v) {
        cx.err(
            Diagnostic::error(
                "range",
                format!("`{what}` must be between 0 and {max}, found `{}`", v.v),
                v.span.clone(),
            )
            .with_label("out of range")
            .with_help(if max <= 1.0 {
                "rates are fractions: write 2% as `0.02`"
            } else {
                "ratios compare with the stable arm: `1.2` means 20% above it"
            }),
        );
        return None;
    }
    Some((v.v * f64::from(PPM)).round() as u32)
}

fn not_applicable(cx: &mut Ctx<'_>, g: &GuardDef, field: Option<Span>, key: &str) {
    if let Some(span) = field {
        cx.err(
            Diagnostic::error(
                "guard-field",
                format!("`{key}` does not apply to `{}` guards", g.metric.v),
                span,
            )
            .with_label("not used by this metric"),
        );
    }
}

fn guard(cx: &mut Ctx<'_>, g: &GuardDef) -> Option<Guard> {
    let d = &cx.policy.guard_defaults;
    let window = g
        .window_seconds
        .as_ref()
        .or(d.window_seconds.as_ref())
        .map_or(DEFAULT_WINDOW_SECONDS, |w| w.v);
    let min_samples = g
        .min_samples
        .as_ref()
        .or(d.min_samples.as_ref())
        .map_or(DEFAULT_MIN_SAMPLES, |m| m.v);
    let on_breach_s = g.on_breach.as_ref().or(d.on_breach.as_ref()).cloned();
    let on_breach = match on_breach_s.as_ref().map(|s| s.v.as_str()) {
        None | Some("rollback") => Breach::Rollback,
        Some("hold") => Breach::Hold,
        Some(other) => {
            let s = on_breach_s
                .as_ref()
                .map(|s| s.span.clone())
                .unwrap_or_default();
            cx.err(
                Diagnostic::error("on-breach", format!("`{other}` is not a breach action"), s)
                    .with_label("expected `rollback` or `hold`"),
            );
            Breach::Rollback
        }
    };
    if window == 0 || window > u64::from(u32::MAX) {
        let s = g
            .window_seconds
            .as_ref()
            .or(d.window_seconds.as_ref())
            .map(|w| w.span.clone())
            .unwrap_or_default();
        cx.err(
            Diagnostic::error("range", "a guard's window must be at least one second", s)
                .with_label("invalid window"),
        );
    }
    let mut arms: Vec<ArmId> = Vec::new();
    for a in &g.arms {
        if let Some(id) = cx.resolve_arm(a, &format!("guard `{}`", g.name.v)) {
            if id == cx.stable {
                cx.err(
                    Diagnostic::error("guard-stable", format!("guard `{}` watches the stable arm", g.name.v), a.span.clone())
                        .with_label("the baseline")
                        .with_help("guards compare the other arms with the stable arm, and a rollback sends traffic to it; list only the arms being tried"),
                );
            }
            arms.push(id);
        }
    }
    if g.arms.is_empty() {
        arms = (0..cx.policy.arms.len() as ArmId)
            .filter(|a| *a != cx.stable)
            .collect();
    }

    let span = |o: &Option<S<f64>>| o.as_ref().map(|v| v.span.clone());
    let metric = match g.metric.v.as_str() {
        "error_rate" => {
            not_applicable(cx, g, g.buckets.as_ref().map(|b| b.span.clone()), "buckets");
            not_applicable(cx, g, span(&g.quantile), "quantile");
            not_applicable(cx, g, span(&g.min), "min");
            not_applicable(cx, g, span(&g.min_ratio), "min_ratio");
            not_applicable(cx, g, g.outcome.as_ref().map(|o| o.span.clone()), "outcome");
            not_applicable(cx, g, g.segment.as_ref().map(|o| o.span.clone()), "segment");
            let max_ppm = g.max.as_ref().and_then(|v| ppm(cx, v, "max", 1.0));
            let max_ratio_ppm = g
                .max_ratio
                .as_ref()
                .and_then(|v| ppm(cx, v, "max_ratio", 1000.0));
            if g.max.is_none() && g.max_ratio.is_none() {
                no_bound(
                    cx,
                    g,
                    "`max = 0.02` (an absolute rate) or `max_ratio = 1.5` (relative to the stable arm)",
                );
            }
            GuardMetric::ErrorRate {
                max_ppm,
                max_ratio_ppm,
            }
        }
        "latency" => {
            not_applicable(cx, g, g.buckets.as_ref().map(|b| b.span.clone()), "buckets");
            not_applicable(cx, g, span(&g.min), "min");
            not_applicable(cx, g, span(&g.min_ratio), "min_ratio");
            not_applicable(cx, g, g.outcome.as_ref().map(|o| o.span.clone()), "outcome");
            not_applicable(cx, g, g.segment.as_ref().map(|o| o.span.clone()), "segment");
            let quantile = match &g.quantile {
                Some(q) if q.v > 0.0 && q.v < 1.0 => (q.v * f64::from(PPM)).round() as u32,
                Some(q) => {
                    cx.err(
                        Diagnostic::error(
                            "range",
                            format!("quantile `{}` must be between 0 and 1", q.v),
                            q.span.clone(),
                        )
                        .with_label("out of range")
                        .with_help("p99 is `0.99`"),
                    );
                    0
                }
                None => {
                    cx.err(
                        Diagnostic::error(
                            "missing-key",
                            format!("latency guard `{}` needs a `quantile`", g.name.v),
                            g.metric.span.clone(),
                        )
                        .with_label("which quantile?")
                        .with_help("e.g. `quantile = 0.99` for p99"),
                    );
                    0
                }
            };
            let max_ms = g.max.as_ref().and_then(|v| {
                if v.v > 0.0 && v.v < f64::from(u32::MAX) {
                    Some(v.v.round() as u32)
                } else {
                    cx.err(
                        Diagnostic::error(
                            "range",
                            "a latency `max` is a positive number of milliseconds",
                            v.span.clone(),
                        )
                        .with_label("out of range"),
                    );
                    None
                }
            });
            let max_ratio_ppm = g
                .max_ratio
                .as_ref()
                .and_then(|v| ppm(cx, v, "max_ratio", 1000.0));
            if g.max.is_none() && g.max_ratio.is_none() {
                no_bound(
                    cx,
                    g,
                    "`max_ratio = 1.2` (20% above the stable arm) or `max = 250` (milliseconds)",
                );
            }
            GuardMetric::Latency {
                quantile_ppm: quantile,
                max_ms,
                max_ratio_ppm,
            }
        }
        "outcome_rate" => {
            not_applicable(cx, g, span(&g.quantile), "quantile");
            not_applicable(cx, g, g.buckets.as_ref().map(|b| b.span.clone()), "buckets");
            let outcome = match &g.outcome {
                Some(o) => match cx.policy.outcomes.iter().position(|d| d.name.v == o.v) {
                    Some(i) => {
                        let def = &cx.policy.outcomes[i];
                        if def.positive.is_none() {
                            cx.err(
                                Diagnostic::error(
                                    "outcome",
                                    format!("outcome `{}` has no positive test", o.v),
                                    o.span.clone(),
                                )
                                .with_label("a rate of what?")
                                .with_related(def.name.span.clone(), "declared here")
                                .with_help("give the outcome `equals = [\"fraud\"]` or `above = 0.5`; a numeric outcome without one is read by `distribution` guards"),
                            );
                        }
                        i as u8
                    }
                    None => {
                        let names: Vec<&str> = cx
                            .policy
                            .outcomes
                            .iter()
                            .map(|d| d.name.v.as_str())
                            .collect();
                        undefined(cx, "outcome", o, &g.name.v, &names);
                        0
                    }
                },
                None => {
                    cx.err(
                        Diagnostic::error(
                            "missing-key",
                            format!("outcome guard `{}` needs an `outcome`", g.name.v),
                            g.metric.span.clone(),
                        )
                        .with_label("which outcome?")
                        .with_help("name one of the `[outcomes.NAME]` tables"),
                    );
                    0
                }
            };
            let segment = g.segment.as_ref().and_then(|s| {
                match cx.policy.segments.iter().position(|d| d.name.v == s.v) {
                    Some(i) => Some(i as u8),
                    None => {
                        let names: Vec<&str> = cx
                            .policy
                            .segments
                            .iter()
                            .map(|d| d.name.v.as_str())
                            .collect();
                        undefined(cx, "segment", s, &g.name.v, &names);
                        None
                    }
                }
            });
            if let (Some(i), false) = (segment, g.segment_values.is_empty()) {
                let def = &cx.policy.segments[usize::from(i)];
                if !def.values.is_empty() {
                    for v in &g.segment_values {
                        if !def.values.iter().any(|d| d.v == v.v) {
                            let known: Vec<&str> =
                                def.values.iter().map(|d| d.v.as_str()).collect();
                            let mut e = Diagnostic::error(
                                "unknown-segment-value",
                                format!("`{}` is not a value of segment `{}`", v.v, def.name.v),
                                v.span.clone(),
                            )
                            .with_label("never matches")
                            .with_related(def.name.span.clone(), "segment declared here");
                            e = match did_you_mean(&v.v, known.iter().copied()) {
                                Some(m) => e.with_help(format!("did you mean `{m}`?")),
                                None => e.with_help(format!("its values are {}", quoted(&known))),
                            };
                            cx.err(e);
                        }
                    }
                }
            }
            if g.segment.is_none() && !g.segment_values.is_empty() {
                cx.err(
                    Diagnostic::error(
                        "guard-field",
                        "`segment_values` needs a `segment`",
                        g.segment_values[0].span.clone(),
                    )
                    .with_label("values of which segment?"),
                );
            }
            let max_ppm = g.max.as_ref().and_then(|v| ppm(cx, v, "max", 1.0));
            let min_ppm = g.min.as_ref().and_then(|v| ppm(cx, v, "min", 1.0));
            let max_ratio_ppm = g
                .max_ratio
                .as_ref()
                .and_then(|v| ppm(cx, v, "max_ratio", 1000.0));
            let min_ratio_ppm = g
                .min_ratio
                .as_ref()
                .and_then(|v| ppm(cx, v, "min_ratio", 1000.0));
            if g.max.is_none() && g.min.is_none() && g.max_ratio.is_none() && g.min_ratio.is_none()
            {
                no_bound(
                    cx,
                    g,
                    "`max_ratio = 1.25` (at most 25% above the stable arm's rate), `min_ratio`, `max` or `min`",
                );
            }
            let mut segment_values: Vec<String> =
                g.segment_values.iter().map(|s| s.v.clone()).collect();
            segment_values.sort();
            segment_values.dedup();
            GuardMetric::OutcomeRate {
                outcome,
                segment,
                segment_values,
                max_ppm,
                min_ppm,
                max_ratio_ppm,
                min_ratio_ppm,
            }
        }
        "distribution" => distribution(cx, g)?,
        other => {
            let mut e = Diagnostic::error(
                "metric",
                format!("`{other}` is not a guard metric"),
                g.metric.span.clone(),
            )
            .with_label("unknown metric");
            e = match did_you_mean(other, METRIC_KINDS.iter().copied()) {
                Some(m) => e.with_help(format!("did you mean `{m}`?")),
                None => e.with_help(format!("expected one of {}", quoted(METRIC_KINDS))),
            };
            cx.err(e);
            return None;
        }
    };
    Some(Guard {
        name: g.name.v.clone(),
        arms,
        metric,
        window_seconds: window.min(u64::from(u32::MAX)) as u32,
        min_samples: min_samples.min(u64::from(u32::MAX)) as u32,
        on_breach,
    })
}

/// A `distribution` guard: an outcome with `buckets`, or a segment.
fn distribution(cx: &mut Ctx<'_>, g: &GuardDef) -> Option<GuardMetric> {
    let span = |o: &Option<S<f64>>| o.as_ref().map(|v| v.span.clone());
    for (key, at) in [
        ("max", span(&g.max)),
        ("min", span(&g.min)),
        ("max_ratio", span(&g.max_ratio)),
        ("min_ratio", span(&g.min_ratio)),
        ("quantile", span(&g.quantile)),
        (
            "segment_values",
            g.segment_values.first().map(|v| v.span.clone()),
        ),
    ] {
        not_applicable(cx, g, at, key);
    }
    let over = match (&g.outcome, &g.segment) {
        (Some(_), Some(s)) => {
            cx.err(
                Diagnostic::error(
                    "distribution-source",
                    format!(
                        "distribution guard `{}` reads an `outcome` or a `segment`, not both",
                        g.name.v
                    ),
                    s.span.clone(),
                )
                .with_label("a second source")
                .with_help("one guard compares one histogram; write a guard for each"),
            );
            return None;
        }
        (None, None) => {
            cx.err(
                Diagnostic::error(
                    "missing-key",
                    format!(
                        "distribution guard `{}` needs an `outcome` or a `segment`",
                        g.name.v
                    ),
                    g.metric.span.clone(),
                )
                .with_label("a distribution of what?")
                .with_help("`outcome = \"score\"` with `buckets = [0.1, 0.3, 0.5, 0.7, 0.9]`, or `segment = \"age_band\"`"),
            );
            return None;
        }
        (Some(o), None) => {
            let Some(i) = cx.policy.outcomes.iter().position(|d| d.name.v == o.v) else {
                let names: Vec<&str> = cx
                    .policy
                    .outcomes
                    .iter()
                    .map(|d| d.name.v.as_str())
                    .collect();
                undefined(cx, "outcome", o, &g.name.v, &names);
                return None;
            };
            let def = &cx.policy.outcomes[i];
            if let Some(p) = def
                .positive
                .as_ref()
                .filter(|p| matches!(p.v, PositiveDef::Equals(_)))
            {
                cx.err(
                    Diagnostic::error(
                        "non-numeric-outcome",
                        format!("outcome `{}` is categorical, not a number", o.v),
                        o.span.clone(),
                    )
                    .with_label("bucketed by value")
                    .with_related(p.span.clone(), "its values are compared as text")
                    .with_help("a distribution guard buckets a numeric outcome (a score); declare one without `equals`, or bucket a `segment` instead"),
                );
                return None;
            }
            let Some(buckets) = &g.buckets else {
                cx.err(
                    Diagnostic::error(
                        "missing-key",
                        format!(
                            "distribution guard `{}` needs `buckets` for outcome `{}`",
                            g.name.v, o.v
                        ),
                        o.span.clone(),
                    )
                    .with_label("bucketed where?")
                    .with_help("list the buckets' upper bounds, e.g. `buckets = [0.1, 0.3, 0.5, 0.7, 0.9]`"),
                );
                return None;
            };
            let bounds = bucket_bounds(cx, buckets)?;
            Distributed::Outcome {
                outcome: i as u8,
                upper_bounds_millionths: bounds,
            }
        }
        (None, Some(s)) => {
            let Some(i) = cx.policy.segments.iter().position(|d| d.name.v == s.v) else {
                let names: Vec<&str> = cx
                    .policy
                    .segments
                    .iter()
                    .map(|d| d.name.v.as_str())
                    .collect();
                undefined(cx, "segment", s, &g.name.v, &names);
                return None;
            };
            if let Some(b) = &g.buckets {
                cx.err(
                    Diagnostic::error(
                        "guard-field",
                        "`buckets` does not apply to a segment's distribution",
                        b.span.clone(),
                    )
                    .with_label("not used with `segment`")
                    .with_help("a segment's buckets are its declared values and `other`"),
                );
                return None;
            }
            let def = &cx.policy.segments[i];
            let mut values: Vec<&str> = def.values.iter().map(|v| v.v.as_str()).collect();
            values.sort_unstable();
            values.dedup();
            if values.is_empty() {
                cx.err(
                    Diagnostic::error(
                        "distribution-source",
                        format!("segment `{}` declares no values to bucket by", s.v),
                        s.span.clone(),
                    )
                    .with_label("one bucket, nothing to compare")
                    .with_related(def.name.span.clone(), "declared here")
                    .with_help("list the segment's `values`; any other value counts as `other`"),
                );
                return None;
            }
            let n = values.len() + 1;
            if n > CELLS {
                cx.err(too_many_buckets(n, s.span.clone()));
                return None;
            }
            Distributed::Segment { segment: i as u8 }
        }
    };
    Some(GuardMetric::Distribution { over })
}

/// A distribution's bucket bounds in millionths: finite, strictly increasing (also once
/// rounded to millionths), and few enough for the window's cells.
fn bucket_bounds(cx: &mut Ctx<'_>, buckets: &S<Vec<S<f64>>>) -> Option<Vec<i64>> {
    if buckets.v.is_empty() {
        cx.err(
            Diagnostic::error(
                "empty-list",
                "`buckets` needs at least one bound",
                buckets.span.clone(),
            )
            .with_label("empty list")
            .with_help("one bound makes two buckets: at most it, and above it"),
        );
        return None;
    }
    let n = buckets.v.len() + 1;
    if n > CELLS {
        cx.err(too_many_buckets(n, buckets.span.clone()));
        return None;
    }
    let mut out: Vec<i64> = Vec::with_capacity(buckets.v.len());
    for b in &buckets.v {
        if !b.v.is_finite() || b.v.abs() >= 1e12 {
            cx.err(
                Diagnostic::error(
                    "buckets",
                    format!("bucket bound `{}` is out of range", b.v),
                    b.span.clone(),
                )
                .with_label("out of range")
                .with_help("bounds are finite numbers below 10^12 in size"),
            );
            return None;
        }
        let m = (b.v * MILLIONTHS).round() as i64;
        if out.last().is_some_and(|last| *last >= m) {
            cx.err(
                Diagnostic::error(
                    "buckets",
                    "bucket bounds must be strictly increasing",
                    b.span.clone(),
                )
                .with_label("not above the bound before it")
                .with_help("list each bucket's upper bound once, smallest first (bounds closer than a millionth are the same bound)"),
            );
            return None;
        }
        out.push(m);
    }
    Some(out)
}

fn too_many_buckets(n: usize, span: Span) -> Diagnostic {
    Diagnostic::error(
        "too-many-buckets",
        format!("{n} buckets need {n} window cells, and at most {CELLS} fit"),
        span,
    )
    .with_label("too many buckets")
    .with_help(format!(
        "each bucket takes one of the proxy's {CELLS} outcome cells per arm; merge buckets"
    ))
}

/// Guards whose cells do not fit in the window beside the others' (outcome cells per segment
/// value, distribution buckets): the engine's own layout of the compiled plan says which.
pub fn cells_fit(policy: &Policy, plan: &serin_policy::Plan) -> Vec<Diagnostic> {
    let rollout =
        serin_policy::guard::Rollout::from_plan(plan, serin_policy::guard::Params::default());
    let mut unplaced = rollout.layout.unplaced.clone();
    unplaced.sort_unstable();
    unplaced.dedup();
    unplaced
        .into_iter()
        .filter_map(|g| {
            let def = policy.guards.get(usize::from(g))?;
            Some(
                Diagnostic::error(
                    "too-many-cells",
                    format!(
                        "guard `{}` needs more window cells than the guards before it left",
                        def.name.v
                    ),
                    def.span.clone(),
                )
                .with_label("does not fit")
                .with_help(format!(
                    "the proxy keeps {CELLS} outcome cells per arm: one per outcome guard (per segment value with `segment`) and one per distribution bucket; merge buckets or drop a guard"
                )),
            )
        })
        .collect()
}

fn no_bound(cx: &mut Ctx<'_>, g: &GuardDef, example: &str) {
    cx.err(
        Diagnostic::error(
            "guard-bound",
            format!("guard `{}` sets no bound", g.name.v),
            g.metric.span.clone(),
        )
        .with_label("never breaches")
        .with_help(format!("add {example}")),
    );
}

fn undefined(cx: &mut Ctx<'_>, kind: &str, name: &S<String>, guard: &str, known: &[&str]) {
    let mut e = Diagnostic::error(
        if kind == "segment" {
            "unknown-segment"
        } else {
            "unknown-outcome"
        },
        format!(
            "guard `{guard}` names {kind} `{}`, which is not declared",
            name.v
        ),
        name.span.clone(),
    )
    .with_label(format!("no such {kind}"));
    e = match did_you_mean(&name.v, known.iter().copied()) {
        Some(m) => e.with_help(format!("did you mean `{m}`?")),
        None if known.is_empty() => e.with_help(format!("declare it as `[{kind}s.{}]`", name.v)),
        None => e.with_help(format!("declared {kind}s: {}", quoted(known))),
    };
    cx.err(e);
}

fn ramp(cx: &mut Ctx<'_>, r: &RampDef, split_names: &[String], splits: &[Split]) -> Option<Ramp> {
    let split_name = r.split.as_ref().map_or("default", |s| s.v.as_str());
    let split_span = r.split.as_ref().map_or(r.span.clone(), |s| s.span.clone());
    let Some(index) = split_names.iter().position(|n| n == split_name) else {
        let e = Diagnostic::error(
            "unknown-split",
            format!("the ramp applies to split `{split_name}`, which is not declared"),
            split_span,
        )
        .with_label("no such split");
        cx.err(if r.split.is_none() {
            e.with_help("without `split = \"NAME\"` the ramp raises the weight of `[split]`; declare `[split]`")
        } else {
            e
        });
        return None;
    };
    let split = &splits[index];
    let def = if index == 0 && cx.policy.split.is_some() {
        cx.policy.split.as_ref()?
    } else {
        cx.policy.splits.iter().find(|s| s.name.v == split_name)?
    };
    if !matches!(def.bucketing.v, Bucketing::Serin) {
        cx.err(
            Diagnostic::error("ramp-bucketing", format!("split `{split_name}` uses compatibility bucketing, which cannot ramp"), def.bucketing.span.clone())
                .with_label("not `serin`")
                .with_related(r.span.clone(), "ramp declared here")
                .with_help("a compatibility split must keep the weights of the flag system it mirrors; ramp there, or use Serin's bucketing"),
        );
        return None;
    }
    let weighted: Vec<ArmId> = split.lanes.iter().map(|l| l.arm).collect();
    let arm = match &r.arm {
        Some(a) => cx.resolve_arm(a, "the ramp")?,
        None if weighted.len() == 1 => weighted[0],
        None => {
            cx.err(
                Diagnostic::error("ramp-arm", format!("split `{split_name}` has {} arms besides the stable one; the ramp must name one", weighted.len()), r.span.clone())
                    .with_label("which arm ramps?")
                    .with_help("add `arm = \"ARM\"` to `[ramp]`"),
            );
            return None;
        }
    };
    let Some(lane_index) = split.lanes.iter().position(|l| l.arm == arm) else {
        cx.err(
            Diagnostic::error(
                "ramp-arm",
                format!("the ramped arm is not weighted in split `{split_name}`"),
                r.arm.as_ref().map_or(r.span.clone(), |a| a.span.clone()),
            )
            .with_label("no lane to ramp")
            .with_help("give the arm a weight in the split: the weight of the first step"),
        );
        return None;
    };
    let n = split.lanes.len() as u32;
    let width = serin_policy::SERIN_SCALE / n.max(1);
    if r.steps.is_empty() {
        cx.err(
            Diagnostic::error("ramp-steps", "the ramp has no steps", r.span.clone())
                .with_label("empty ramp")
                .with_help("add `[[ramp.steps]]` tables"),
        );
        return None;
    }
    let mut steps = Vec::new();
    for (i, s) in r.steps.iter().enumerate() {
        let weight = match percent_bp(&s.weight.v) {
            Ok(bp) => bp,
            Err(m) => {
                cx.err(
                    Diagnostic::error("weight", m, s.weight.span.clone())
                        .with_label("invalid percentage"),
                );
                continue;
            }
        };
        if weight > width {
            cx.err(
                Diagnostic::error("lane-width", format!("step {} weighs {} percent but the arm's lane holds at most {} percent", i + 1, fmt_bp(weight), fmt_bp(width)), s.weight.span.clone())
                    .with_label("over the lane width")
                    .with_help(format!("with {n} arms besides the stable one, each owns a fixed lane of 100/{n} percent")),
            );
            continue;
        }
        if i == 0 {
            let current = split.lanes[lane_index].end - split.lanes[lane_index].start;
            if current != weight {
                cx.err(
                    Diagnostic::error("ramp-start", format!("the first ramp step is {} percent but split `{split_name}` gives the arm {} percent", fmt_bp(weight), fmt_bp(current)), s.weight.span.clone())
                        .with_label("the ramp starts here")
                        .with_related(def.weights.span.clone(), "the split's weights")
                        .with_help("a plan starts at the first step; make the split's weight equal to it"),
                );
            }
        }
        let mut gates = Vec::new();
        for g in &s.gates {
            match g.v.as_str() {
                "healthy" => gates.push(Gate::Healthy),
                "manual" => gates.push(Gate::Manual),
                other => cx.err(
                    Diagnostic::error("gate", format!("`{other}` is not a gate"), g.span.clone())
                        .with_label("expected `healthy` or `manual`"),
                ),
            }
        }
        if s.gates.is_empty() {
            gates.push(Gate::Healthy);
        }
        let mut lanes: Vec<Lane> = split.lanes.clone();
        lanes[lane_index].end = lanes[lane_index].start + weight;
        steps.push(RampStep {
            weight,
            min_duration_seconds: s.min_duration_seconds.v.min(u64::from(u32::MAX)) as u32,
            min_samples: s
                .min_samples
                .as_ref()
                .map_or(0, |m| m.v.min(u64::from(u32::MAX)) as u32),
            gates,
            lanes,
        });
    }
    if let Some(rps) = &r.expected_rps
        && rps.v <= 0.0
    {
        cx.err(
            Diagnostic::error("range", "`expected_rps` must be above 0", rps.span.clone())
                .with_label("not a rate"),
        );
    }
    Some(Ramp {
        split: index as u16,
        arm,
        steps,
    })
}

fn metrics(cx: &mut Ctx<'_>, m: Option<&MetricsDef>) -> Option<Metrics> {
    let m = m?;
    for l in &m.labels {
        if !METRIC_LABELS.contains(&l.v.as_str()) {
            let mut e = Diagnostic::error(
                "metric-label",
                format!("`{}` is not a metric label", l.v),
                l.span.clone(),
            )
            .with_label("unknown label");
            e = match did_you_mean(&l.v, METRIC_LABELS.iter().copied()) {
                Some(s) => e.with_help(format!("did you mean `{s}`?")),
                None => e.with_help(format!("labels are {}", quoted(METRIC_LABELS))),
            };
            cx.err(e);
        }
    }
    let mut labels: Vec<String> = m.labels.iter().map(|l| l.v.clone()).collect();
    if m.labels.is_empty() {
        labels = vec!["arm".into(), "class".into()];
    }
    labels.dedup();
    let mut buckets = Vec::new();
    let mut last = 0.0;
    for b in &m.latency_buckets_ms {
        if b.v <= last || b.v > 3_600_000.0 {
            cx.err(
                Diagnostic::error(
                    "latency-buckets",
                    "latency buckets must be positive and increasing",
                    b.span.clone(),
                )
                .with_label(if b.v <= last {
                    "not above the previous bound"
                } else {
                    "over an hour"
                }),
            );
        }
        last = b.v;
        buckets.push((b.v * 1000.0).round() as u32);
    }
    if m.latency_buckets_ms.is_empty() {
        buckets = DEFAULT_LATENCY_BUCKETS_MS
            .iter()
            .map(|b| (b * 1000.0).round() as u32)
            .collect();
    }
    Some(Metrics {
        labels,
        latency_buckets_us: buckets,
    })
}

/// Whether a split uses Serin's `MulShift` over 10,000 buckets.
pub fn is_serin_scale(split: &Split) -> bool {
    split.hash.reduce
        == Reduce::MulShift {
            scale: serin_policy::SERIN_SCALE,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        use PathStep::*;
        assert_eq!(
            parse_json_path("predictions[0]").unwrap(),
            vec![Key("predictions".into()), Index(0)]
        );
        assert_eq!(
            parse_json_path("outputs[0].data[0]").unwrap(),
            vec![
                Key("outputs".into()),
                Index(0),
                Key("data".into()),
                Index(0)
            ]
        );
        assert_eq!(parse_json_path("[2]").unwrap(), vec![Index(2)]);
        assert!(parse_json_path("a..b").is_err());
        assert!(parse_json_path("a[x]").is_err());
        assert!(parse_json_path("a[1").is_err());
        assert!(parse_json_path("").is_err());
    }
}
