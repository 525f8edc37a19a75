//! The rollout state machine: `Ramping { step } → Promoted | RolledBack | Held`, driven by
//! [`Rollout::tick`] over the merged [`Window`].
//!
//! [`Rollout`] is compiled once from the plan (its guards, ramp and segments); everything that
//! changes lives in [`RolloutState`], which has a binary encoding so that the Envoy workers can
//! share it. The sequential tests consume every sub-window of the window exactly once, in
//! order, once it has ended (and `settle_ms` more have passed): a verdict can only change at
//! the first tick after a sub-window completes, never earlier.

use serde::{Deserialize, Serialize};

use super::hist::{BUCKETS, Histogram};
use super::sprt::{Bounds, Verdict, bernoulli_llr, split_llr};
use super::window::{CELLS, Counters, Reader, Role, SLOTS, Window};
use crate::plan::{ArmId, Plan};
use crate::rollout::{Breach, Gate, GuardMetric, PPM, RampStep, Segment};

/// Basis points of traffic: 10,000 is all of it.
pub const FULL_WEIGHT: u32 = 10_000;

/// Tuning that the plan does not carry. The defaults are what BENCHMARKS.md measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Per test: the chance of a false breach before the test first finds the canary healthy.
    pub alpha: f64,
    /// Per test: the chance of calling a canary at the detection effect healthy.
    pub beta: f64,
    /// The effect each rate test is tuned to detect, as a multiple of its limit: H1 is
    /// `rate = limit × detect` (or `ratio = max_ratio × detect`).
    pub detect: f64,
    /// The latency tests' H1: the share of canary requests above the threshold is this multiple
    /// of `1 - quantile` (a +20% p99 shift of a lognormal with σ = 0.5 gives about 2.5).
    pub latency_detect: f64,
    /// Length of a sub-window (must match the [`Window`]'s).
    pub slot_ms: u32,
    /// How long after a sub-window ends before it is read, so every worker has flushed into it.
    pub settle_ms: u32,
    /// The stable latency reference is halved whenever it holds this many samples, so it
    /// follows recent traffic.
    pub reference_cap: u64,
    /// Stable samples the reference needs before a latency-ratio test uses it; at least
    /// `10 / (1 - quantile)`.
    pub min_reference: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            alpha: 0.0025,
            beta: 0.2,
            detect: 2.0,
            latency_detect: 2.5,
            slot_ms: 1000,
            settle_ms: 0,
            reference_cap: 1 << 16,
            min_reference: 2000,
        }
    }
}

/// Where the rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    /// At ramp step `step` (index into the plan's ramp steps).
    Ramping { step: u16 },
    /// A guard with `on_breach = "hold"` breached: the weight stays at `step` until it recovers.
    Held { step: u16, guard: u16 },
    /// Every step passed. Terminal.
    Promoted,
    /// A guard with `on_breach = "rollback"` breached: every new request goes to stable. Terminal.
    RolledBack { guard: u16 },
}

impl Phase {
    /// A number for a gauge: 1 ramping, 2 held, 3 promoted, 4 rolled back.
    pub fn code(&self) -> u8 {
        match self {
            Phase::Ramping { .. } => 1,
            Phase::Held { .. } => 2,
            Phase::Promoted => 3,
            Phase::RolledBack { .. } => 4,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, Phase::Promoted | Phase::RolledBack { .. })
    }
}

/// Maps model outcomes to the window's outcome cells: one cell per (outcome, segment value)
/// that some guard watches, plus one per outcome watched overall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// `(outcome, Some((segment, value index)))`, or `(outcome, None)` for the overall rate.
    pub cells: Vec<(u8, Option<(u8, u16)>)>,
}

impl Layout {
    fn cell(&mut self, key: (u8, Option<(u8, u16)>)) -> Option<u8> {
        if let Some(i) = self.cells.iter().position(|c| *c == key) {
            return Some(i as u8);
        }
        if self.cells.len() >= CELLS {
            return None;
        }
        self.cells.push(key);
        Some((self.cells.len() - 1) as u8)
    }

    /// The cells a response with outcome `outcome` counts in. `value_of(segment)` gives the
    /// request's value index in that segment (see [`segment_value_index`]).
    pub fn cells_for<'a>(
        &'a self,
        outcome: u8,
        value_of: impl Fn(u8) -> u16 + 'a,
    ) -> impl Iterator<Item = u8> + 'a {
        self.cells
            .iter()
            .enumerate()
            .filter_map(move |(i, &(o, seg))| {
                (o == outcome && seg.is_none_or(|(s, v)| value_of(s) == v)).then_some(i as u8)
            })
    }
}

/// A request's value index in a segment: the position of its value in `values`, or
/// `values.len()` for any other value or none ("other").
pub fn segment_value_index(segment: &Segment, value: Option<&[u8]>) -> u16 {
    let other = segment.values.len().min(usize::from(u16::MAX)) as u16;
    value
        .and_then(|v| segment.values.iter().position(|s| s.as_bytes() == v))
        .map_or(other, |i| i as u16)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Test {
    /// Canary errors per completed request against `p0`.
    ErrorRate { p0: f64, p1: f64 },
    /// Canary error rate against stable's times `rho0`.
    ErrorRatio { rho0: f64, rho1: f64 },
    /// Canary requests at or above `micros` against `p0 = 1 - quantile`.
    LatencyAbove { micros: u64, p0: f64, p1: f64 },
    /// Canary requests at or above `ratio ×` stable's `quantile` against `p0 = 1 - quantile`.
    LatencyRatio {
        quantile: f64,
        ratio: f64,
        p0: f64,
        p1: f64,
    },
    /// Positive (or, `below`, non-positive) outcomes in `cell` against `p0`.
    OutcomeRate {
        cell: u8,
        below: bool,
        p0: f64,
        p1: f64,
    },
    /// Canary's positive rate in `cell` against stable's times `rho0` (`below`: stable's
    /// against the canary's, for a lower bound).
    OutcomeRatio {
        cell: u8,
        below: bool,
        rho0: f64,
        rho1: f64,
    },
}

/// One sequential test of one guard bound (a guard with two bounds, or one per segment value,
/// has several).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub guard: u16,
    /// What is tested, for logs: e.g. `error_rate <= 2%`, `outcome_ratio[age=65+] <= 1.2`.
    pub label: String,
    pub min_samples: u64,
    test: Test,
}

/// A compiled rollout: what [`Rollout::tick`] needs from the plan, checked once.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub policy: String,
    pub digest: String,
    pub stable: ArmId,
    /// The arm being ramped and guarded, if the plan has one.
    pub canary: Option<ArmId>,
    pub steps: Vec<RampStep>,
    pub guard_names: Vec<String>,
    pub on_breach: Vec<Breach>,
    pub checks: Vec<Check>,
    pub layout: Layout,
    pub params: Params,
}

fn ppm(x: u32) -> f64 {
    f64::from(x) / f64::from(PPM)
}

/// H1 for a rate `p0`: `p0 × factor`, kept below 1.
fn raise(p0: f64, factor: f64) -> f64 {
    let p1 = p0 * factor;
    if p1 < 1.0 { p1 } else { (p0 + 1.0) / 2.0 }
}

fn pct(x: f64) -> String {
    format!("{}%", (x * 1e6).round() / 1e4)
}

impl Rollout {
    /// Compile the guards and ramp of a checked plan. Guards or bounds the engine cannot
    /// evaluate (see the crate docs) are left out rather than refused; cells past [`CELLS`]
    /// are dropped.
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
        for (gi, g) in plan.guards.iter().enumerate() {
            if !canary.is_some_and(|c| g.arms.contains(&c)) {
                continue;
            }
            let guard = gi.min(usize::from(u16::MAX)) as u16;
            let min_samples = u64::from(g.min_samples);
            let mut push = |label: String, test: Test| {
                checks.push(Check {
                    guard,
                    label,
                    min_samples,
                    test,
                })
            };
            let d = params.detect;
            match &g.metric {
                GuardMetric::ErrorRate {
                    max_ppm,
                    max_ratio_ppm,
                } => {
                    if let Some(m) = max_ppm.map(ppm).filter(|m| *m > 0.0 && *m < 1.0) {
                        push(
                            format!("error_rate <= {}", pct(m)),
                            Test::ErrorRate {
                                p0: m,
                                p1: raise(m, d),
                            },
                        );
                    }
                    if let Some(r) = max_ratio_ppm.map(ppm).filter(|r| *r > 0.0) {
                        push(
                            format!("error_ratio <= {r}"),
                            Test::ErrorRatio {
                                rho0: r,
                                rho1: r * d,
                            },
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
                    let (p0, p1) = (1.0 - q, raise(1.0 - q, params.latency_detect));
                    let qname = format!("p{}", (q * 1e4).round() / 1e2);
                    if let Some(ms) = max_ms.filter(|ms| *ms > 0) {
                        let micros = Histogram::bound_at_or_above(f64::from(ms) * 1000.0);
                        push(
                            format!("latency_{qname} <= {ms}ms"),
                            Test::LatencyAbove { micros, p0, p1 },
                        );
                    }
                    if let Some(r) = max_ratio_ppm.map(ppm).filter(|r| *r > 0.0) {
                        push(
                            format!("latency_{qname}_ratio <= {r}"),
                            Test::LatencyRatio {
                                quantile: q,
                                ratio: r,
                                p0,
                                p1,
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
                        let Some(cell) = layout.cell((*outcome, key)) else {
                            continue;
                        };
                        let name = format!("{outcome_name}{suffix}");
                        if let Some(m) = max_ppm.map(ppm).filter(|m| *m > 0.0 && *m < 1.0) {
                            let t = Test::OutcomeRate {
                                cell,
                                below: false,
                                p0: m,
                                p1: raise(m, d),
                            };
                            push(format!("{name}_rate <= {}", pct(m)), t);
                        }
                        if let Some(m) = min_ppm.map(ppm).filter(|m| *m > 0.0 && *m < 1.0) {
                            // Rate below `m` ⇔ non-positive share above `1 - m`.
                            let t = Test::OutcomeRate {
                                cell,
                                below: true,
                                p0: 1.0 - m,
                                p1: 1.0 - m / d.max(1.0 + 1e-9),
                            };
                            push(format!("{name}_rate >= {}", pct(m)), t);
                        }
                        if let Some(r) = max_ratio_ppm.map(ppm).filter(|r| *r > 0.0) {
                            let t = Test::OutcomeRatio {
                                cell,
                                below: false,
                                rho0: r,
                                rho1: r * d,
                            };
                            push(format!("{name}_ratio <= {r}"), t);
                        }
                        if let Some(r) = min_ratio_ppm.map(ppm).filter(|r| *r > 0.0) {
                            let t = Test::OutcomeRatio {
                                cell,
                                below: true,
                                rho0: 1.0 / r,
                                rho1: d / r,
                            };
                            push(format!("{name}_ratio >= {r}"), t);
                        }
                    }
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
            params,
        }
    }

    /// Which side of the comparison requests to `arm` are on, if either.
    pub fn role_of(&self, arm: ArmId) -> Option<Role> {
        if arm == self.stable {
            Some(Role::Stable)
        } else if Some(arm) == self.canary {
            Some(Role::Canary)
        } else {
            None
        }
    }

    /// An empty window with this rollout's sub-window length.
    pub fn window(&self) -> Window {
        Window::new(self.params.slot_ms)
    }

    /// A state for a fresh start of this policy.
    pub fn fresh(&self) -> RolloutState {
        RolloutState {
            digest: self.digest.clone(),
            phase: Phase::Ramping { step: 0 },
            started: false,
            step_started_ms: 0,
            step_canary: 0,
            next_slot: 0,
            last_tick_ms: 0,
            approved: 0,
            checks: vec![CheckState::default(); self.checks.len()],
            reference: Histogram::default(),
        }
    }

    /// The state shared by the workers, if it belongs to this policy (same digest, same
    /// checks); otherwise a fresh one. Survives a reload of the same policy.
    pub fn restore(&self, bytes: &[u8]) -> RolloutState {
        RolloutState::from_bytes(bytes)
            .filter(|s| s.digest == self.digest && s.checks.len() == self.checks.len())
            .unwrap_or_else(|| self.fresh())
    }

    /// The canary's share of traffic in basis points: the current step's weight while ramping
    /// or held, [`FULL_WEIGHT`] once promoted, 0 once rolled back. `None` when the plan has no
    /// ramp and nothing was decided: the split's own lanes apply.
    pub fn canary_weight(&self, state: &RolloutState) -> Option<u32> {
        match state.phase {
            Phase::Promoted => Some(FULL_WEIGHT),
            Phase::RolledBack { .. } => Some(0),
            Phase::Ramping { step } | Phase::Held { step, .. } => self
                .steps
                .get(usize::from(step))
                .map(|s| s.weight.min(FULL_WEIGHT)),
        }
    }

    /// Let a step with a manual gate advance (an operator's approval).
    pub fn approve(&self, state: &mut RolloutState, step: u16) {
        state.approved = state.approved.max(step.saturating_add(1));
    }

    /// Advance the machine to `now_ms` with the merged window. Returns the transition, if one
    /// happened, with the numbers behind it (log it as one line with [`Transition::log_line`]).
    pub fn tick(
        &self,
        state: &mut RolloutState,
        now_ms: u64,
        window: &Window,
    ) -> Option<Transition> {
        if state.phase.is_terminal() {
            return None;
        }
        let slot_ms = u64::from(window.slot_ms());
        if !state.started {
            state.started = true;
            state.step_started_ms = now_ms;
            state.next_slot = now_ms / slot_ms;
        }
        state.last_tick_ms = state.last_tick_ms.max(now_ms);
        let ready = now_ms.saturating_sub(u64::from(self.params.settle_ms)) / slot_ms;
        for index in state.next_slot.max(ready.saturating_sub(SLOTS as u64))..ready {
            if let Some(slot) = window.slot(index) {
                self.consume(state, slot.arm(Role::Stable), slot.arm(Role::Canary));
            }
        }
        state.next_slot = state.next_slot.max(ready);

        let bounds = Bounds::wald(self.params.alpha, self.params.beta);
        let verdicts = self.verdicts(state, &bounds);
        let breach = |action: Breach| {
            self.checks.iter().zip(&verdicts).find_map(|(c, v)| {
                (*v == Verdict::Breach && self.on_breach.get(usize::from(c.guard)) == Some(&action))
                    .then_some(c.guard)
            })
        };
        let from = state.phase;
        let (to, cause) = if let Some(guard) = breach(Breach::Rollback) {
            (Phase::RolledBack { guard }, self.guard_name(guard))
        } else {
            match from {
                Phase::Ramping { step } => match breach(Breach::Hold) {
                    Some(guard) => (Phase::Held { step, guard }, self.guard_name(guard)),
                    None if self.may_advance(state, step, now_ms, &verdicts) => {
                        let next = step.saturating_add(1);
                        let to = if usize::from(next) >= self.steps.len() {
                            Phase::Promoted
                        } else {
                            Phase::Ramping { step: next }
                        };
                        (to, "healthy".to_string())
                    }
                    None => (from, String::new()),
                },
                Phase::Held { step, guard } => {
                    let still = self
                        .checks
                        .iter()
                        .zip(&verdicts)
                        .any(|(c, v)| c.guard == guard && *v == Verdict::Breach);
                    if still {
                        (from, String::new())
                    } else {
                        (Phase::Ramping { step }, "recovered".to_string())
                    }
                }
                Phase::Promoted | Phase::RolledBack { .. } => (from, String::new()),
            }
        };
        if to == from {
            return None;
        }
        state.phase = to;
        if matches!((from, to), (Phase::Ramping { step: a }, Phase::Ramping { step: b }) if a != b)
        {
            state.step_started_ms = now_ms;
            state.step_canary = 0;
        }
        Some(Transition {
            at_ms: now_ms,
            policy: self.policy.clone(),
            digest: self.digest.clone(),
            from,
            to,
            canary_weight: self.canary_weight(state),
            cause,
            evidence: self.evidence(state, &verdicts, now_ms, window, &bounds),
        })
    }

    /// Each check's verdict now: none before its minimum samples.
    fn verdicts(&self, state: &RolloutState, bounds: &Bounds) -> Vec<Verdict> {
        self.checks
            .iter()
            .zip(&state.checks)
            .map(|(c, s)| {
                if s.canary_samples < c.min_samples {
                    Verdict::Continue
                } else {
                    bounds.verdict(s.llr)
                }
            })
            .collect()
    }

    /// The numbers behind every check at `now_ms` (what a transition logs).
    pub fn report(&self, state: &RolloutState, now_ms: u64, window: &Window) -> Vec<Evidence> {
        let bounds = Bounds::wald(self.params.alpha, self.params.beta);
        let verdicts = self.verdicts(state, &bounds);
        self.evidence(state, &verdicts, now_ms, window, &bounds)
    }

    fn guard_name(&self, guard: u16) -> String {
        self.guard_names
            .get(usize::from(guard))
            .cloned()
            .unwrap_or_default()
    }

    fn may_advance(
        &self,
        state: &RolloutState,
        step: u16,
        now_ms: u64,
        verdicts: &[Verdict],
    ) -> bool {
        let Some(s) = self.steps.get(usize::from(step)) else {
            return false;
        };
        let waited = now_ms.saturating_sub(state.step_started_ms)
            >= u64::from(s.min_duration_seconds) * 1000;
        let sampled = state.step_canary >= u64::from(s.min_samples);
        let gates = s.gates.iter().all(|g| match g {
            Gate::Healthy => verdicts.iter().all(|v| *v == Verdict::Healthy),
            Gate::Manual => state.approved > step,
        });
        waited && sampled && gates
    }

    /// Feed one completed sub-window to every test.
    fn consume(&self, state: &mut RolloutState, stable: &Counters, canary: &Counters) {
        state.step_canary = state.step_canary.saturating_add(canary.completed());
        state.reference.merge(&stable.latency);
        if state.reference.total() >= self.params.reference_cap.max(2) {
            state.reference.decay();
        }
        let bounds = Bounds::wald(self.params.alpha, self.params.beta);
        for (check, s) in self.checks.iter().zip(state.checks.iter_mut()) {
            // (canary events, canary samples, stable events, stable samples, increment)
            let (xc, nc, xs, ns, inc) = match check.test {
                Test::ErrorRate { p0, p1 } => {
                    let (x, n) = (canary.errors(), canary.completed());
                    (
                        x,
                        n,
                        stable.errors(),
                        stable.completed(),
                        bernoulli_llr(x, n, p0, p1),
                    )
                }
                Test::ErrorRatio { rho0, rho1 } => {
                    let (xc, nc, xs, ns) = (
                        canary.errors(),
                        canary.completed(),
                        stable.errors(),
                        stable.completed(),
                    );
                    (xc, nc, xs, ns, split_llr(xc, xs, nc, ns, rho0, rho1))
                }
                Test::LatencyAbove { micros, p0, p1 } => {
                    s.threshold = micros as f64;
                    let (x, n) = (
                        canary.latency.count_at_or_above(micros),
                        canary.latency.total(),
                    );
                    let (xs, ns) = (
                        stable.latency.count_at_or_above(micros),
                        stable.latency.total(),
                    );
                    (x, n, xs, ns, bernoulli_llr(x, n, p0, p1))
                }
                Test::LatencyRatio {
                    quantile,
                    ratio,
                    p0,
                    p1,
                } => {
                    let need = self
                        .params
                        .min_reference
                        .max((10.0 / (1.0 - quantile)).ceil() as u64);
                    let base = state
                        .reference
                        .quantile(quantile)
                        .filter(|_| state.reference.total() >= need);
                    match base {
                        // No reference yet: the canary's requests are not tested (and not counted).
                        None => (0, 0, 0, 0, 0.0),
                        Some(q) => {
                            let micros = Histogram::bound_at_or_above(q * ratio);
                            s.threshold = micros as f64;
                            let (x, n) = (
                                canary.latency.count_at_or_above(micros),
                                canary.latency.total(),
                            );
                            let (xs, ns) = (
                                stable.latency.count_at_or_above(micros),
                                stable.latency.total(),
                            );
                            // Slowness common to both arms (a busy host, a pause, a burst)
                            // is not the canary's: in a sub-window where the stable arm itself
                            // clearly exceeds the threshold more often than `1 - quantile`, the
                            // canary is held to the stable arm's rate instead. "Clearly": a
                            // two-sigma Poisson lower bound, so that the noise of a few stable
                            // events does not blunt the test.
                            let xs_low = (xs as f64 - 2.0 * (xs as f64).sqrt()).max(0.0);
                            let stable_rate = if ns == 0 { 0.0 } else { xs_low / ns as f64 };
                            let p0_now = p0.max(stable_rate);
                            let p1_now = raise(p0_now, p1 / p0);
                            (x, n, xs, ns, bernoulli_llr(x, n, p0_now, p1_now))
                        }
                    }
                }
                Test::OutcomeRate {
                    cell,
                    below,
                    p0,
                    p1,
                } => {
                    let (c, st) = (
                        canary.outcomes[usize::from(cell)],
                        stable.outcomes[usize::from(cell)],
                    );
                    let x = if below {
                        c.total - c.positive.min(c.total)
                    } else {
                        c.positive.min(c.total)
                    };
                    let xs = if below {
                        st.total - st.positive.min(st.total)
                    } else {
                        st.positive.min(st.total)
                    };
                    let (x, n) = (u64::from(x), u64::from(c.total));
                    (
                        x,
                        n,
                        u64::from(xs),
                        u64::from(st.total),
                        bernoulli_llr(x, n, p0, p1),
                    )
                }
                Test::OutcomeRatio {
                    cell,
                    below,
                    rho0,
                    rho1,
                } => {
                    let (c, st) = (
                        canary.outcomes[usize::from(cell)],
                        stable.outcomes[usize::from(cell)],
                    );
                    let (xc, nc) = (u64::from(c.positive.min(c.total)), u64::from(c.total));
                    let (xs, ns) = (u64::from(st.positive.min(st.total)), u64::from(st.total));
                    let inc = if below {
                        split_llr(xs, xc, ns, nc, rho0, rho1)
                    } else {
                        split_llr(xc, xs, nc, ns, rho0, rho1)
                    };
                    (xc, nc, xs, ns, inc)
                }
            };
            s.llr = bounds.add(s.llr, inc);
            s.canary_events = s.canary_events.saturating_add(xc);
            s.canary_samples = s.canary_samples.saturating_add(nc);
            s.stable_events = s.stable_events.saturating_add(xs);
            s.stable_samples = s.stable_samples.saturating_add(ns);
        }
    }

    fn evidence(
        &self,
        state: &RolloutState,
        verdicts: &[Verdict],
        now_ms: u64,
        window: &Window,
        bounds: &Bounds,
    ) -> Vec<Evidence> {
        let (stable_w, canary_w) = (
            window.totals(now_ms, Role::Stable),
            window.totals(now_ms, Role::Canary),
        );
        self.checks
            .iter()
            .zip(&state.checks)
            .zip(verdicts)
            .map(|((c, s), v)| {
                let rate = |x: u64, n: u64| {
                    if n == 0 {
                        None
                    } else {
                        Some(x as f64 / n as f64)
                    }
                };
                let (limit, window_value) = match c.test {
                    Test::ErrorRate { p0, .. } => {
                        (p0, rate(canary_w.errors(), canary_w.completed()))
                    }
                    Test::ErrorRatio { rho0, .. } => (
                        rho0,
                        rate(canary_w.errors(), canary_w.completed())
                            .zip(rate(stable_w.errors(), stable_w.completed()))
                            .and_then(|(a, b)| (b > 0.0).then(|| a / b)),
                    ),
                    Test::LatencyAbove { micros, p0, .. } => (
                        micros as f64 / 1000.0,
                        canary_w.latency.quantile(1.0 - p0).map(|us| us / 1000.0),
                    ),
                    Test::LatencyRatio {
                        quantile, ratio, ..
                    } => (
                        ratio,
                        canary_w
                            .latency
                            .quantile(quantile)
                            .zip(stable_w.latency.quantile(quantile))
                            .and_then(|(a, b)| (b > 0.0).then(|| a / b)),
                    ),
                    Test::OutcomeRate {
                        cell, below, p0, ..
                    } => {
                        let o = canary_w.outcomes[usize::from(cell)];
                        let limit = if below { 1.0 - p0 } else { p0 };
                        (limit, rate(u64::from(o.positive), u64::from(o.total)))
                    }
                    Test::OutcomeRatio {
                        cell, below, rho0, ..
                    } => {
                        let (a, b) = (
                            canary_w.outcomes[usize::from(cell)],
                            stable_w.outcomes[usize::from(cell)],
                        );
                        let limit = if below { 1.0 / rho0 } else { rho0 };
                        (
                            limit,
                            rate(u64::from(a.positive), u64::from(a.total))
                                .zip(rate(u64::from(b.positive), u64::from(b.total)))
                                .and_then(|(a, b)| (b > 0.0).then(|| a / b)),
                        )
                    }
                };
                Evidence {
                    guard: self.guard_name(c.guard),
                    check: c.label.clone(),
                    verdict: *v,
                    llr: s.llr,
                    breach_at: bounds.breach,
                    healthy_at: bounds.healthy,
                    limit,
                    window_value,
                    threshold_us: matches!(
                        c.test,
                        Test::LatencyAbove { .. } | Test::LatencyRatio { .. }
                    )
                    .then_some(s.threshold),
                    canary_events: s.canary_events,
                    canary_samples: s.canary_samples,
                    stable_events: s.stable_events,
                    stable_samples: s.stable_samples,
                    min_samples: c.min_samples,
                }
            })
            .collect()
    }
}

/// One check's running test, in the shared state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckState {
    /// The log-likelihood ratio of "breach" against "at the limit", floored at the healthy bound.
    pub llr: f64,
    pub canary_events: u64,
    pub canary_samples: u64,
    pub stable_events: u64,
    pub stable_samples: u64,
    /// The latency threshold last tested (µs).
    pub threshold: f64,
}

/// Everything about a rollout that changes: shared between workers as bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutState {
    /// The plan digest this state belongs to.
    pub digest: String,
    pub phase: Phase,
    pub started: bool,
    pub step_started_ms: u64,
    /// Completed canary requests seen in the current step.
    pub step_canary: u64,
    /// The first sub-window not yet fed to the tests.
    pub next_slot: u64,
    pub last_tick_ms: u64,
    /// Manual gates approved for steps `0..approved`.
    pub approved: u16,
    pub checks: Vec<CheckState>,
    /// Stable's latency over the consumed sub-windows (decayed): the latency-ratio reference.
    pub reference: Histogram,
}

const STATE_MAGIC: [u8; 4] = *b"SRNS";
const STATE_VERSION: u16 = 1;
const MAX_DIGEST: usize = 256;
const MAX_CHECKS: usize = 1024;

impl RolloutState {
    /// The number for a state gauge (see [`Phase::code`]).
    pub fn gauge(&self) -> u8 {
        self.phase.code()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.checks.len() * 48 + BUCKETS * 4);
        out.extend_from_slice(&STATE_MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        let digest = &self.digest.as_bytes()[..self.digest.len().min(MAX_DIGEST)];
        out.extend_from_slice(&(digest.len() as u16).to_le_bytes());
        out.extend_from_slice(digest);
        let (code, a, b) = match self.phase {
            Phase::Ramping { step } => (1u8, step, 0u16),
            Phase::Held { step, guard } => (2, step, guard),
            Phase::Promoted => (3, 0, 0),
            Phase::RolledBack { guard } => (4, 0, guard),
        };
        out.push(code);
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        out.push(u8::from(self.started));
        for x in [
            self.step_started_ms,
            self.step_canary,
            self.next_slot,
            self.last_tick_ms,
        ] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.extend_from_slice(&self.approved.to_le_bytes());
        let n = self.checks.len().min(MAX_CHECKS);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for c in &self.checks[..n] {
            out.extend_from_slice(&c.llr.to_bits().to_le_bytes());
            for x in [
                c.canary_events,
                c.canary_samples,
                c.stable_events,
                c.stable_samples,
            ] {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out.extend_from_slice(&c.threshold.to_bits().to_le_bytes());
        }
        for c in &self.reference.counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Decode [`RolloutState::to_bytes`]; `None` for anything else, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Option<RolloutState> {
        let mut r = Reader(bytes);
        if r.take(4)? != STATE_MAGIC || r.u16()? != STATE_VERSION {
            return None;
        }
        let len = usize::from(r.u16()?);
        if len > MAX_DIGEST {
            return None;
        }
        let digest = String::from_utf8(r.take(len)?.to_vec()).ok()?;
        let (code, a, b) = (r.u8()?, r.u16()?, r.u16()?);
        let phase = match code {
            1 => Phase::Ramping { step: a },
            2 => Phase::Held { step: a, guard: b },
            3 => Phase::Promoted,
            4 => Phase::RolledBack { guard: b },
            _ => return None,
        };
        let started = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let (step_started_ms, step_canary, next_slot, last_tick_ms) =
            (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let approved = r.u16()?;
        let n = usize::from(r.u16()?);
        if n > MAX_CHECKS {
            return None;
        }
        let mut checks = Vec::with_capacity(n);
        for _ in 0..n {
            let llr = r.f64()?;
            let c = CheckState {
                llr: if llr.is_finite() { llr } else { 0.0 },
                canary_events: r.u64()?,
                canary_samples: r.u64()?,
                stable_events: r.u64()?,
                stable_samples: r.u64()?,
                threshold: r.f64()?,
            };
            checks.push(c);
        }
        let mut reference = Histogram::default();
        for c in reference.counts.iter_mut() {
            *c = r.u32()?;
        }
        if !r.0.is_empty() {
            return None;
        }
        Some(RolloutState {
            digest,
            phase,
            started,
            step_started_ms,
            step_canary,
            next_slot,
            last_tick_ms,
            approved,
            checks,
            reference,
        })
    }
}

/// A state change, with the numbers behind it: one structured log line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub at_ms: u64,
    pub policy: String,
    pub digest: String,
    pub from: Phase,
    pub to: Phase,
    /// The canary's weight from now on (basis points).
    pub canary_weight: Option<u32>,
    /// The breaching guard, `healthy` (a step passed) or `recovered` (a hold ended).
    pub cause: String,
    pub evidence: Vec<Evidence>,
}

impl Transition {
    /// The transition as one line of JSON.
    pub fn log_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One check's numbers at a tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub guard: String,
    pub check: String,
    pub verdict: Verdict,
    /// The test statistic and its two boundaries.
    pub llr: f64,
    pub breach_at: f64,
    pub healthy_at: f64,
    /// The bound under test: a rate, a ratio, or milliseconds.
    pub limit: f64,
    /// The same quantity measured over the current window, for reading (not what is tested).
    pub window_value: Option<f64>,
    /// For latency checks: the threshold the last sub-window was tested against (µs).
    pub threshold_us: Option<f64>,
    /// Cumulative counts the test has consumed: events (errors, slow or positive responses)
    /// out of samples.
    pub canary_events: u64,
    pub canary_samples: u64,
    pub stable_events: u64,
    pub stable_samples: u64,
    pub min_samples: u64,
}
