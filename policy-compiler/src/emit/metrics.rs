//! The PromQL that every emitter (alert rules, dashboard, Argo and Flagger analysis) builds its
//! queries from, over the metrics of `serin_policy::catalogue`, the one list of what the
//! proxies export (names, kinds, labels, label values, and the Istio-style tagged names that
//! Envoy's `stats_tags` turn into labels).

use serin_policy::catalogue::{self, CLASSES, STATES as PHASES};
use serin_policy::guard::Class;
use serin_policy::{GuardMetric, PPM, Plan};

pub use serin_policy::catalogue::{FAMILIES, LABELS};

pub const REQUESTS: &str = catalogue::REQUESTS.name;
pub const RESPONSES: &str = catalogue::RESPONSES.name;
pub const RESETS: &str = catalogue::RESETS.name;
pub const DURATION: &str = catalogue::DURATION.name;
pub const OUTCOMES: &str = catalogue::OUTCOMES.name;
pub const OUTCOMES_POSITIVE: &str = catalogue::OUTCOMES_POSITIVE.name;
pub const DISTRIBUTION: &str = catalogue::DISTRIBUTION.name;
pub const ROLLOUT_STATE: &str = catalogue::ROLLOUT_STATE.name;
pub const CANARY_WEIGHT: &str = catalogue::CANARY_WEIGHT.name;

/// The values of [`ROLLOUT_STATE`] (the engine's `Phase::code`).
pub const STATES: &[(u8, &str)] = PHASES;
pub const STATE_ROLLED_BACK: u8 = 4;
pub const STATE_HELD: u8 = 2;

/// The error class.
pub const CLASS_5XX: &str = CLASSES[Class::ServerError as usize].1;

/// One `stats_config.stats_tags` entry: the tag (label) name and the regex whose first group
/// is cut from the stat name and whose second group is the value.
pub fn stats_tags() -> Vec<(&'static str, String)> {
    LABELS
        .iter()
        .map(|l| (*l, format!(r"(_{l}=\.=(.*?);\.;)")))
        .collect()
}

/// A PromQL string literal.
pub fn quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A PromQL regex literal matching exactly these values.
pub fn quote_any(values: &[String]) -> String {
    let alternatives: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    quote(&alternatives.join("|"))
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Prometheus duration for a number of seconds (`600` → `10m`).
pub fn duration(seconds: u32) -> String {
    match seconds {
        0 => "1m".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A ppm value as a plain decimal (`20000` → `0.02`).
pub fn ppm(v: u32) -> String {
    trim(f64::from(v) / f64::from(PPM))
}

/// A number as PromQL and YAML write it: no trailing zeros, no exponent.
pub fn trim(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

/// Where an outcome-rate query looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentSel {
    /// Every response.
    All,
    /// The plan's first segment, these values (empty: every value), one series per value.
    Values {
        segment: String,
        values: Vec<String>,
    },
}

impl SegmentSel {
    fn matcher(&self) -> String {
        match self {
            SegmentSel::All => String::new(),
            SegmentSel::Values { segment, values } if values.is_empty() => {
                format!(",segment={}", quote(segment))
            }
            SegmentSel::Values { segment, values } => {
                format!(
                    ",segment={},segment_value=~{}",
                    quote(segment),
                    quote_any(values)
                )
            }
        }
    }

    fn by(&self) -> &'static str {
        match self {
            SegmentSel::All => "",
            SegmentSel::Values { .. } => " by (segment_value)",
        }
    }
}

/// PromQL builders. `arm` is an arm name; `w` a range such as `10m`.
pub mod q {
    use super::*;

    fn arm_sel(arm: &str) -> String {
        format!("arm={}", quote(arm))
    }

    /// Requests per second to one arm.
    pub fn request_rate(arm: &str, w: &str) -> String {
        format!("sum(rate({REQUESTS}{{{}}}[{w}]))", arm_sel(arm))
    }

    /// Responses an arm returned over the window (a sample count).
    pub fn responses(arm: &str, w: &str) -> String {
        format!("sum(increase({RESPONSES}{{{}}}[{w}]))", arm_sel(arm))
    }

    /// Share of an arm's responses that are 5xx or resets, as the guards count errors.
    pub fn error_rate(arm: &str, w: &str) -> String {
        let a = arm_sel(arm);
        let resets = format!("sum(rate({RESETS}{{{a}}}[{w}]) or vector(0))");
        format!(
            "((sum(rate({RESPONSES}{{{a},class={c}}}[{w}])) + {resets}) / (sum(rate({RESPONSES}{{{a}}}[{w}])) + {resets}))",
            c = quote(CLASS_5XX)
        )
    }

    /// An arm's latency quantile in milliseconds; `quantile` in 0..1.
    pub fn latency(arm: &str, quantile: &str, w: &str) -> String {
        format!(
            "histogram_quantile({quantile}, sum by (le) (rate({DURATION}_bucket{{{}}}[{w}])))",
            arm_sel(arm)
        )
    }

    /// Share of an arm's responses whose outcome is positive, per segment value if `seg` names one.
    pub fn outcome_rate(arm: &str, outcome: &str, seg: &SegmentSel, w: &str) -> String {
        let sel = format!(
            "{},outcome={}{}",
            arm_sel(arm),
            quote(outcome),
            seg.matcher()
        );
        format!(
            "(sum{by} (rate({OUTCOMES_POSITIVE}{{{sel}}}[{w}])) / sum{by} (rate({OUTCOMES}{{{sel}}}[{w}])))",
            by = seg.by()
        )
    }

    /// An arm's share of a distribution guard's observations per bucket (label `bucket`),
    /// floored at 10^-4 so that an empty bucket keeps a logarithm. `guard` is the guard's
    /// label value ([`catalogue::guard_label`]).
    pub fn bucket_share(arm: &str, guard: &str, w: &str) -> String {
        let sel = format!("{},guard={}", arm_sel(arm), quote(guard));
        format!(
            "clamp_min(sum by (bucket) (rate({DISTRIBUTION}{{{sel}}}[{w}])) / scalar(sum(rate({DISTRIBUTION}{{{sel}}}[{w}]))), 0.0001)"
        )
    }

    /// The population stability index of `arm`'s histogram against `stable`'s over `w`:
    /// `Σ (p_arm - p_stable) ln(p_arm / p_stable)` over the buckets, as the proxies report it
    /// beside the test (up to the smoothing of empty buckets).
    pub fn psi(arm: &str, stable: &str, guard: &str, w: &str) -> String {
        let (a, b) = (bucket_share(arm, guard, w), bucket_share(stable, guard, w));
        format!("sum(({a} - {b}) * ln({a} / {b}))")
    }

    /// Responses that carried the outcome, per segment value if `seg` names one (a sample count).
    pub fn outcome_samples(arm: &str, outcome: &str, seg: &SegmentSel, w: &str) -> String {
        let sel = format!(
            "{},outcome={}{}",
            arm_sel(arm),
            quote(outcome),
            seg.matcher()
        );
        format!("sum{} (increase({OUTCOMES}{{{sel}}}[{w}]))", seg.by())
    }
}

/// Which side of a check's threshold is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Healthy while the value is at most the threshold.
    Max,
    /// Healthy while the value is at least the threshold.
    Min,
}

/// One threshold of one guard, for one watched arm, as a query: what alert rules, Argo and
/// Flagger evaluate. A guard with several bounds gives several checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The guard's name in the policy.
    pub guard: String,
    /// A short identifier: lower-case letters, digits and dashes.
    pub id: String,
    pub arm: String,
    /// The value the threshold applies to (a rate, a ratio to the stable arm, milliseconds).
    pub value: String,
    /// Samples behind the value; the check gives no verdict below `min_samples`.
    pub samples: String,
    pub min_samples: u32,
    pub bound: Bound,
    pub threshold: String,
    /// What the value is, for humans: `error rate`, `p99 latency (ms) / stable`, ...
    pub what: String,
    /// `rollback` or `hold`.
    pub on_breach: &'static str,
    pub window: String,
    /// Whether the query gives one series per segment value.
    pub per_segment: bool,
}

impl Check {
    /// The breach condition as PromQL: non-empty while the check breaches with enough samples.
    pub fn breach_expr(&self) -> String {
        let op = match self.bound {
            Bound::Max => ">",
            Bound::Min => "<",
        };
        let on = if self.per_segment {
            "on (segment_value)"
        } else {
            "on ()"
        };
        format!(
            "({value} {op} {t}) and {on} ({samples} >= {n})",
            value = self.value,
            t = self.threshold,
            samples = self.samples,
            n = self.min_samples
        )
    }

    /// One number for a fleet controller: the worst value across segments, and `0` for a `max`
    /// bound (or the threshold for a `min` bound) while there are too few samples, so that a
    /// young canary is not judged on noise, as the proxies do.
    pub fn scalar_expr(&self) -> String {
        let on = if self.per_segment {
            "on (segment_value)"
        } else {
            "on ()"
        };
        let (agg, idle) = match self.bound {
            Bound::Max => ("max", "0".to_string()),
            Bound::Min => ("min", self.threshold.clone()),
        };
        format!(
            "{agg}(({value}) and {on} ({samples} >= {n})) or on () vector({idle})",
            value = self.value,
            samples = self.samples,
            n = self.min_samples
        )
    }
}

/// A name made of lower-case letters, digits and dashes ([`catalogue::slug`], or `x` when
/// nothing is left).
pub fn slug(s: &str) -> String {
    let out = catalogue::slug(s);
    if out.is_empty() { "x".into() } else { out }
}

/// Every check of every guard in the plan, in guard order.
pub fn checks(plan: &Plan) -> Vec<Check> {
    let stable = &plan.arm(plan.stable).name;
    let mut out = Vec::new();
    for g in &plan.guards {
        let w = duration(g.window_seconds);
        let on_breach = match g.on_breach {
            serin_policy::Breach::Rollback => "rollback",
            serin_policy::Breach::Hold => "hold",
        };
        for &arm_id in &g.arms {
            let arm = &plan.arm(arm_id).name;
            let multi = g.arms.len() > 1;
            let mut push = |suffix: &str,
                            value: String,
                            samples: String,
                            bound: Bound,
                            threshold: String,
                            what: String,
                            per_segment: bool| {
                let mut id = format!("{}-{suffix}", slug(&g.name));
                if multi {
                    id = format!("{}-{}", slug(arm), id);
                }
                out.push(Check {
                    guard: g.name.clone(),
                    id,
                    arm: arm.clone(),
                    value,
                    samples,
                    min_samples: g.min_samples,
                    bound,
                    threshold,
                    what,
                    on_breach,
                    window: w.clone(),
                    per_segment,
                });
            };
            let ratio = |a: String, b: String| format!("({a} / {b})");
            match &g.metric {
                GuardMetric::ErrorRate {
                    max_ppm,
                    max_ratio_ppm,
                } => {
                    let samples = q::responses(arm, &w);
                    if let Some(m) = max_ppm {
                        push(
                            "max",
                            q::error_rate(arm, &w),
                            samples.clone(),
                            Bound::Max,
                            ppm(*m),
                            "error rate".into(),
                            false,
                        );
                    }
                    if let Some(r) = max_ratio_ppm {
                        push(
                            "ratio",
                            ratio(q::error_rate(arm, &w), q::error_rate(stable, &w)),
                            samples,
                            Bound::Max,
                            ppm(*r),
                            format!("error rate / {stable}'s"),
                            false,
                        );
                    }
                }
                GuardMetric::Latency {
                    quantile_ppm,
                    max_ms,
                    max_ratio_ppm,
                } => {
                    let qs = ppm(*quantile_ppm);
                    let pname = format!("p{}", trim(f64::from(*quantile_ppm) / 10_000.0));
                    let samples = q::responses(arm, &w);
                    if let Some(m) = max_ms {
                        push(
                            "max",
                            q::latency(arm, &qs, &w),
                            samples.clone(),
                            Bound::Max,
                            m.to_string(),
                            format!("{pname} latency (ms)"),
                            false,
                        );
                    }
                    if let Some(r) = max_ratio_ppm {
                        push(
                            "ratio",
                            ratio(q::latency(arm, &qs, &w), q::latency(stable, &qs, &w)),
                            samples,
                            Bound::Max,
                            ppm(*r),
                            format!("{pname} latency / {stable}'s"),
                            false,
                        );
                    }
                }
                // No threshold to query: a distribution guard's null is "the same histogram",
                // and only the proxies' sequential test can say when the evidence against it
                // suffices (a fixed PSI cut-off would be a different, weaker test). Its PSI is
                // on the dashboard ([`q::psi`]); its rollback fires `SerinRolledBack`.
                GuardMetric::Distribution { .. } => {}
                GuardMetric::OutcomeRate {
                    outcome,
                    segment,
                    segment_values,
                    max_ppm,
                    min_ppm,
                    max_ratio_ppm,
                    min_ratio_ppm,
                } => {
                    let outcome = &plan.outcomes[usize::from(*outcome)].name;
                    // The filter breaks outcomes down by the plan's first segment only; a guard
                    // on another segment is judged here on the overall rate.
                    let seg = match segment {
                        Some(0) => SegmentSel::Values {
                            segment: plan.segments[0].name.clone(),
                            values: segment_values.clone(),
                        },
                        _ => SegmentSel::All,
                    };
                    let per_segment = seg != SegmentSel::All;
                    let own = q::outcome_rate(arm, outcome, &seg, &w);
                    let base = q::outcome_rate(stable, outcome, &seg, &w);
                    let samples = q::outcome_samples(arm, outcome, &seg, &w);
                    let what = format!("`{outcome}` rate");
                    let rel = format!("`{outcome}` rate / {stable}'s");
                    let ratio_expr = if per_segment {
                        format!("({own} / on (segment_value) {base})")
                    } else {
                        ratio(own.clone(), base.clone())
                    };
                    for (suffix, v, bound, rel_to_stable) in [
                        ("max", max_ppm, Bound::Max, false),
                        ("min", min_ppm, Bound::Min, false),
                        ("ratio", max_ratio_ppm, Bound::Max, true),
                        ("min-ratio", min_ratio_ppm, Bound::Min, true),
                    ] {
                        if let Some(v) = v {
                            let (value, what) = if rel_to_stable {
                                (ratio_expr.clone(), rel.clone())
                            } else {
                                (own.clone(), what.clone())
                            };
                            push(
                                suffix,
                                value,
                                samples.clone(),
                                bound,
                                ppm(*v),
                                what,
                                per_segment,
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(duration(600), "10m");
        assert_eq!(duration(7200), "2h");
        assert_eq!(duration(90), "90s");
        assert_eq!(ppm(20_000), "0.02");
        assert_eq!(ppm(1_200_000), "1.2");
        assert_eq!(ppm(990_000), "0.99");
        assert_eq!(slug("p99 latency"), "p99-latency");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote_any(&["65+".into(), "a.b".into()]), r#""65\\+|a\\.b""#);
    }

    #[test]
    fn state_codes_match_the_engine() {
        use serin_policy::guard::Phase;
        let phases = [
            Phase::Ramping { step: 0 },
            Phase::Held { step: 0, guard: 0 },
            Phase::Promoted,
            Phase::RolledBack { guard: 0 },
        ];
        // 0 is "joining", an engine's state before its first fleet answer, not a phase.
        assert_eq!(STATES[0].0, 0);
        for (p, (code, _)) in phases.iter().zip(&STATES[1..]) {
            assert_eq!(p.code(), *code);
        }
        assert_eq!(Phase::RolledBack { guard: 0 }.code(), STATE_ROLLED_BACK);
        assert_eq!(Phase::Held { step: 0, guard: 0 }.code(), STATE_HELD);
    }

    #[test]
    fn stats_tags_cut_the_catalogue_tags() {
        assert_eq!(catalogue::tag("arm", "canary"), "_arm=.=canary;.;");
        let (name, re) = &stats_tags()[0];
        assert_eq!(*name, "arm");
        assert_eq!(re, r"(_arm=\.=(.*?);\.;)");
    }
}
