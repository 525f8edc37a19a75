//! The rollout state machine: `Ramping { step } → Promoted | RolledBack | Held`, driven by
//! [`Rollout::tick`] over the merged [`Window`].
//!
//! [`Rollout`] is compiled once from the plan (its guards, ramp and segments: `compile.rs`);
//! everything that changes lives in [`RolloutState`], which has a binary encoding so that the
//! Envoy workers can share it (`state.rs`). The sequential tests consume every sub-window of
//! the window exactly once, in order, once it has ended (and `settle_ms` more have passed): a
//! verdict can only change at the first tick after a sub-window completes, never earlier.

use super::check::Check;
use super::drift::Distribution;
use super::hist::Histogram;
use super::layout::Layout;
use super::params::Params;
use super::report::Transition;
use super::sprt::{Bounds, Verdict};
use super::state::{CheckState, Phase, RolloutState};
use super::window::{Counters, Role, SLOTS, Window};
use crate::plan::ArmId;
use crate::rollout::{Breach, Gate, RampStep};

/// Basis points of traffic: 10,000 is all of it.
pub const FULL_WEIGHT: u32 = 10_000;

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
    /// Every distribution guard of the plan (what a response's value is bucketed by).
    pub distributions: Vec<Distribution>,
    pub params: Params,
    /// Whether this state machine advances the ramp. In fleet mode the proxy's own machine
    /// only rolls back or holds; the fleet's advances.
    pub ramps: bool,
}

impl Rollout {
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
        state.phase.weight(&self.steps)
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
        self.decide(state, now_ms, window)
    }

    /// Feed one batch of counts that no window holds (a fleet's, from Prometheus) to every
    /// test, then decide as [`Rollout::tick`] does. `window` is only shown in the evidence.
    pub fn judge(
        &self,
        state: &mut RolloutState,
        now_ms: u64,
        stable: &Counters,
        canary: &Counters,
        window: &Window,
    ) -> Option<Transition> {
        if state.phase.is_terminal() {
            return None;
        }
        if !state.started {
            state.started = true;
            state.step_started_ms = now_ms;
        }
        state.last_tick_ms = state.last_tick_ms.max(now_ms);
        self.consume(state, stable, canary);
        self.decide(state, now_ms, window)
    }

    /// The verdicts on the evidence so far, and the transition they call for.
    fn decide(&self, state: &mut RolloutState, now_ms: u64, window: &Window) -> Option<Transition> {
        let bounds = self.params.bounds();
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
    pub(super) fn verdicts(&self, state: &RolloutState, bounds: &Bounds) -> Vec<Verdict> {
        self.checks
            .iter()
            .zip(&state.checks)
            .map(|(c, s)| {
                if s.canary_samples < c.min_samples {
                    Verdict::Continue
                } else {
                    s.evidence.verdict(bounds)
                }
            })
            .collect()
    }

    pub fn guard_name(&self, guard: u16) -> String {
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
        let Some(s) = self.steps.get(usize::from(step)).filter(|_| self.ramps) else {
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
        let bounds = self.params.bounds();
        for (check, s) in self.checks.iter().zip(state.checks.iter_mut()) {
            check.feed(
                s,
                stable,
                canary,
                &state.reference,
                self.params.min_reference,
                &bounds,
            );
        }
    }
}
