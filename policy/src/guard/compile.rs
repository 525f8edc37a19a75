//! Compiling a plan's guards and ramp into a [`Rollout`]: each bound of a guard that watches the
//! ramped arm becomes one [`Check`], and outcome guards claim their cells in the [`Layout`].

use super::check::{Check, Test};
use super::drift::Distribution;
use super::hist::Histogram;
use super::layout::{Cell, Layout, segment_value_index};
use super::machine::Rollout;
use super::params::Params;
use crate::decimal;
use crate::plan::Plan;
use crate::rollout::{Distributed, GuardMetric, PPM};

fn ppm(x: u32) -> f64 {
    f64::from(x) / f64::from(PPM)
}

/// A rate in percent, to a ten-thousandth of a percent (`2%`, `0.05%`).
fn pct(x: f64) -> String {
    format!("{}%", decimal::shortest((x * 1e6).round() as i64, 4))
}

/// A ratio given in ppm, as its decimal (`1.2`).
fn ratio(x: u32) -> String {
    decimal::shortest(i64::from(x), 6)
}

impl Rollout {
    /// Compile the guards and ramp of a checked plan. Guards or bounds the engine cannot
    /// evaluate (see the crate docs) are left out rather than refused; cells past
    /// [`CELLS`](super::CELLS) are dropped, and their guards listed in
    /// [`Layout::unplaced`] (the compiler refuses such a policy with a diagnostic).
    pub fn from_plan(plan: &Plan, params: Params) -> Rollout {
        let canary = plan
            .ramp
            .as_ref()
            .map(|r| r.arm)
            .or_else(|| {
                plan.guards
                    .iter()
                    .flat_map(|g| g.arms.iter().copied())
                    .find(|&a| a != plan.stable)
            })
            .filter(|&a| a != plan.stable);
        let mut layout = Layout::default();
        let mut checks = Vec::new();
        // Every distribution guard buckets its values for the metrics; those that watch the
        // ramped arm also get cells in the window.
        let mut distributions = Distribution::of_plan(plan);
        for (gi, g) in plan.guards.iter().enumerate() {
            if !canary.is_some_and(|c| g.arms.contains(&c)) {
                continue;
            }
            let guard = gi.min(usize::from(u16::MAX)) as u16;
            let min_samples = u64::from(g.min_samples);
            let mut push = |label: String, test: Test| {
                let design =
                    if matches!(test, Test::LatencyAbove { .. } | Test::LatencyRatio { .. }) {
                        params.latency_detect
                    } else {
                        params.detect
                    };
                checks.push(Check {
                    guard,
                    label,
                    min_samples,
                    design,
                    test,
                })
            };
            match &g.metric {
                GuardMetric::ErrorRate {
                    max_ppm,
                    max_ratio_ppm,
                } => {
                    if let Some(m) = max_ppm.map(ppm).filter(|m| *m > 0.0 && *m < 1.0) {
                        push(
                            format!("error_rate <= {}", pct(m)),
                            Test::ErrorRate { p0: m },
                        );
                    }
                    if let Some(x) = max_ratio_ppm.filter(|x| *x > 0) {
                        let r = ppm(x);
                        push(
                            format!("error_ratio <= {}", ratio(x)),
                            Test::ErrorRatio { rho0: r },
                        );
                    }
                }
                GuardMetric::Latency {
                    quantile_ppm,
                    max_ms,
                    max_ratio_ppm,
                } => {
                    let q = ppm(*quantile_ppm);
                    if !(q > 0.0 && q < 1.0) {
                        continue;
                    }
                    let p0 = 1.0 - q;
                    let qname = format!("p{}", decimal::shortest((q * 1e4).round() as i64, 2));
                    if let Some(ms) = max_ms.filter(|ms| *ms > 0) {
                        let micros = Histogram::bound_at_or_above(f64::from(ms) * 1000.0);
                        push(
                            format!("latency_{qname} <= {ms}ms"),
                            Test::LatencyAbove { micros, p0 },
                        );
                    }
                    if let Some(x) = max_ratio_ppm.filter(|x| *x > 0) {
                        let r = ppm(x);
                        push(
                            format!("latency_{qname}_ratio <= {}", ratio(x)),
                            Test::LatencyRatio {
                                quantile: q,
                                ratio: r,
                                p0,
                            },
                        );
                    }
                }
                GuardMetric::OutcomeRate {
                    outcome,
                    segment,
                    segment_values,
                    max_ppm,
                    min_ppm,
                    max_ratio_ppm,
                    min_ratio_ppm,
                } => {
                    let outcome_name = plan
                        .outcomes
                        .get(usize::from(*outcome))
                        .map_or("outcome", |o| &o.name);
                    // The cells: one overall, or one per watched value of the segment.
                    let mut cells: Vec<(String, Option<(u8, u16)>)> = Vec::new();
                    match segment
                        .and_then(|s| plan.segments.get(usize::from(s)).map(|seg| (s, seg)))
                    {
                        None => cells.push((String::new(), None)),
                        Some((s, seg)) => {
                            let values: Vec<(String, u16)> = if segment_values.is_empty() {
                                let mut all: Vec<(String, u16)> = seg
                                    .values
                                    .iter()
                                    .enumerate()
                                    .map(|(i, v)| (v.clone(), i as u16))
                                    .collect();
                                if !seg.values.is_empty() {
                                    all.push(("other".into(), seg.values.len() as u16));
                                }
                                all
                            } else {
                                segment_values
                                    .iter()
                                    .map(|v| {
                                        (v.clone(), segment_value_index(seg, Some(v.as_bytes())))
                                    })
                                    .collect()
                            };
                            for (v, i) in values {
                                cells.push((format!("[{}={v}]", seg.name), Some((s, i))));
                            }
                        }
                    }
                    for (suffix, key) in cells {
                        let Some(cell) = layout.cell(Cell::Outcome {
                            outcome: *outcome,
                            segment: key,
                        }) else {
                            layout.unplaced.push(guard);
                            continue;
                        };
                        let name = format!("{outcome_name}{suffix}");
                        if let Some(m) = max_ppm.map(ppm).filter(|m| *m > 0.0 && *m < 1.0) {
                            let t = Test::OutcomeRate {
                                cell,
                                below: false,
                                limit: m,
                            };
                            push(format!("{name}_rate <= {}", pct(m)), t);
                        }
                        if let Some(m) = min_ppm.map(ppm).filter(|m| *m > 0.0 && *m < 1.0) {
                            let t = Test::OutcomeRate {
                                cell,
                                below: true,
                                limit: m,
                            };
                            push(format!("{name}_rate >= {}", pct(m)), t);
                        }
                        if let Some(x) = max_ratio_ppm.filter(|x| *x > 0) {
                            let t = Test::OutcomeRatio {
                                cell,
                                below: false,
                                rho0: ppm(x),
                            };
                            push(format!("{name}_ratio <= {}", ratio(x)), t);
                        }
                        if let Some(x) = min_ratio_ppm.filter(|x| *x > 0) {
                            let t = Test::OutcomeRatio {
                                cell,
                                below: true,
                                rho0: 1.0 / ppm(x),
                            };
                            push(format!("{name}_ratio >= {}", ratio(x)), t);
                        }
                    }
                }
                GuardMetric::Distribution { over } => {
                    let Some(d) = distributions.iter_mut().find(|d| d.guard == guard) else {
                        continue;
                    };
                    let Some(first) = layout.buckets(guard, d.buckets) else {
                        layout.unplaced.push(guard);
                        continue;
                    };
                    d.first_cell = Some(first);
                    let what = match over {
                        Distributed::Outcome { outcome, .. } => plan
                            .outcomes
                            .get(usize::from(*outcome))
                            .map_or("outcome", |o| &o.name),
                        Distributed::Segment { segment } => plan
                            .segments
                            .get(usize::from(*segment))
                            .map_or("segment", |s| &s.name),
                    };
                    push(
                        format!("{what}_distribution == stable's ({} buckets)", d.buckets),
                        Test::Distribution {
                            first,
                            buckets: d.buckets,
                        },
                    );
                }
            }
        }
        Rollout {
            policy: plan.policy.clone(),
            digest: plan.digest.clone(),
            stable: plan.stable,
            canary,
            steps: plan
                .ramp
                .as_ref()
                .map(|r| r.steps.clone())
                .unwrap_or_default(),
            guard_names: plan.guards.iter().map(|g| g.name.clone()).collect(),
            on_breach: plan.guards.iter().map(|g| g.on_breach).collect(),
            checks,
            layout,
            distributions,
            params,
            ramps: true,
        }
    }
}
