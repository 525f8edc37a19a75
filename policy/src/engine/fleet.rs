//! The engine in fleet mode ([`crate::fleet`]): when to ask Prometheus, what an answer changes,
//! and the phase a proxy routes by when its own guards and the fleet's both have a say.
//!
//! Two records per proxy live in shared data beside the local window and state:
//! - the **book** (`serin/<digest>/fleet`): when the query was last sent and answered, whether
//!   the proxy has joined, the totals of the last answer, the answers refused;
//! - the **fleet state** (`serin/<digest>/fleet-state`): a [`RolloutState`] of the same guards
//!   fed with the fleet's counts, whose phase is the proxy's ramp step.

use serde::{Deserialize, Serialize};

use super::{Engine, SharedData};
use crate::fleet::{self, Call, Fleet, Refused, Snapshot};
use crate::guard::{Phase, Rollout, Transition};

/// The guard index a rollback learnt from the fleet reports: no guard of this proxy breached.
pub const FLEET_GUARD: u16 = u16::MAX;

/// Fleet mode's part of an engine.
pub(super) struct FleetCx {
    pub fleet: Fleet,
    /// The same guards, fed with the fleet's counts; it alone advances the ramp.
    pub rollout: Rollout,
    pub book_key: String,
    pub state_key: String,
}

/// A proxy's fleet bookkeeping, shared by its workers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    pub asked_ms: u64,
    pub answered_ms: u64,
    /// Whether an answer has come since the proxy started; until then it routes to stable.
    pub joined: bool,
    /// The last answer's totals: the next answer's counts are measured from them.
    pub seen: Option<Snapshot>,
    /// Answers refused since the proxy started.
    pub refused: u64,
}

impl Book {
    /// The book in shared data's bytes; a fresh one when absent or unreadable.
    fn decode(bytes: Option<&[u8]>) -> Book {
        bytes
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default()
    }

    fn read(shared: &mut impl SharedData, key: &str) -> Book {
        Book::decode(shared.read(key).as_deref())
    }
}

/// What [`Engine::fleet_answer`] did: the fleet machine's transition (log it once), or why the
/// answer was refused (log it; the proxy kept its state).
#[derive(Debug, Default)]
pub struct FleetAnswer {
    pub transition: Option<Transition>,
    pub refused: Option<Refused>,
}

impl Engine {
    /// Fleet mode: the query to dispatch now, when this worker is the first of its proxy to
    /// find the interval over. One query per proxy per interval.
    pub fn fleet_call(&mut self, now_ms: u64, shared: &mut impl SharedData) -> Option<Call> {
        let cx = self.fleet.as_ref()?;
        let interval = u64::from(cx.fleet.interval_ms.max(1));
        let mut due = false;
        let claimed = shared.update(&cx.book_key, &mut |current| {
            let mut book = Book::decode(current);
            due = book.asked_ms == 0 || now_ms >= book.asked_ms.saturating_add(interval);
            if !due {
                return None;
            }
            book.asked_ms = now_ms;
            serde_json::to_vec(&book).ok()
        });
        (due && claimed).then(|| fleet::call(&self.plan, &cx.fleet))
    }

    /// Fleet mode: the answer to [`Engine::fleet_call`] (`Err` when the call itself failed).
    pub fn fleet_answer(
        &mut self,
        now_ms: u64,
        answer: Result<&[u8], String>,
        shared: &mut impl SharedData,
    ) -> FleetAnswer {
        let snapshot = answer
            .map_err(Refused::Status)
            .and_then(|body| fleet::parse(body, &self.plan.digest));
        self.fleet_snapshot(now_ms, snapshot, shared)
    }

    /// [`Engine::fleet_answer`] once the answer is read (the simulator's Prometheus answers
    /// here directly).
    pub fn fleet_snapshot(
        &mut self,
        now_ms: u64,
        snapshot: Result<Snapshot, Refused>,
        shared: &mut impl SharedData,
    ) -> FleetAnswer {
        let Some(cx) = self.fleet.as_ref() else {
            return FleetAnswer::default();
        };
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(refused) => {
                shared.update(&cx.book_key, &mut |current| {
                    let mut book = Book::decode(current);
                    book.refused += 1;
                    serde_json::to_vec(&book).ok()
                });
                if let Some(series) = self.catalogue.fleet_refused() {
                    super::bump(&mut self.tallies, series);
                }
                return FleetAnswer {
                    transition: None,
                    refused: Some(refused),
                };
            }
        };
        let mut book = Book::read(shared, &cx.book_key);
        let mut state = shared
            .read(&cx.state_key)
            .map(|b| cx.rollout.restore(&b))
            .unwrap_or_else(|| cx.rollout.fresh());
        let from = state.phase;
        let mut transition = None;
        if !book.joined {
            // Joining: adopt the step a live proxy routes by (none: the ramp's start).
            if let Some(step) = snapshot.weight.and_then(|w| self.step_of(w)) {
                state.phase = Phase::Ramping { step };
            }
            state.started = true;
            state.step_started_ms = now_ms;
            book.joined = true;
        } else if let Some(seen) = &book.seen {
            let role = |s: &Snapshot, arm| {
                s.arms
                    .get(&self.plan.arm(arm).name)
                    .cloned()
                    .unwrap_or_default()
            };
            let counts = |arm| {
                fleet::between(
                    &self.plan,
                    &cx.rollout.layout,
                    &role(seen, arm),
                    &role(&snapshot, arm),
                )
            };
            let canary = cx.rollout.canary.and_then(counts);
            if let (Some(stable), Some(canary)) = (counts(self.plan.stable), canary) {
                // The fleet's verdict names its guard as `fleet: <guard>` in the log.
                transition = cx
                    .rollout
                    .judge(&mut state, now_ms, &stable, &canary, &self.window)
                    .map(|mut t| {
                        t.cause = format!("fleet: {}", t.cause);
                        t
                    });
            }
            // Lockstep: a live proxy already at a later step pulls this one there.
            let behind = |step: u16| {
                snapshot
                    .weight
                    .and_then(|w| self.step_of(w))
                    .filter(|s| *s > step)
            };
            if let Phase::Ramping { step } = state.phase
                && let Some(ahead) = behind(step)
            {
                state.phase = Phase::Ramping { step: ahead };
                state.step_started_ms = now_ms;
                state.step_canary = 0;
            }
        }
        if snapshot.rolled_back && !matches!(state.phase, Phase::RolledBack { .. }) {
            state.phase = Phase::RolledBack { guard: FLEET_GUARD };
        }
        if transition.is_none() && state.phase != from {
            transition = Some(Transition {
                at_ms: now_ms,
                policy: self.plan.policy.clone(),
                digest: self.plan.digest.clone(),
                from,
                to: state.phase,
                canary_weight: cx.rollout.canary_weight(&state),
                cause: "fleet".to_owned(),
                evidence: Vec::new(),
            });
        }
        book.answered_ms = now_ms;
        book.seen = Some(snapshot);
        let book_bytes = serde_json::to_vec(&book).unwrap_or_default();
        shared.update(&cx.book_key, &mut |_| Some(book_bytes.clone()));
        let state_bytes = state.to_bytes();
        shared.update(&cx.state_key, &mut |_| Some(state_bytes.clone()));
        let local = shared
            .read(&self.state_key)
            .map(|b| self.rollout.restore(&b).phase())
            .unwrap_or(Phase::Ramping { step: 0 });
        let phase = self.effective(local, shared);
        self.apply(phase);
        FleetAnswer {
            transition,
            refused: None,
        }
    }

    /// The phase this proxy routes by: its own guards' rollback or hold, and otherwise (in fleet
    /// mode) the fleet's phase; `joining` until the first fleet answer.
    pub(super) fn effective(&mut self, local: Phase, shared: &mut impl SharedData) -> Phase {
        let Some(cx) = self.fleet.as_ref() else {
            return local;
        };
        let book = Book::read(shared, &cx.book_key);
        self.joining = !book.joined && !matches!(local, Phase::RolledBack { .. });
        if matches!(local, Phase::RolledBack { .. }) {
            return local;
        }
        let fleet = shared
            .read(&cx.state_key)
            .map(|b| cx.rollout.restore(&b).phase())
            .unwrap_or(Phase::Ramping { step: 0 });
        match (fleet, local) {
            (Phase::Ramping { step } | Phase::Held { step, .. }, Phase::Held { guard, .. }) => {
                Phase::Held { step, guard }
            }
            (fleet, _) => fleet,
        }
    }

    /// The ramp step routed at `weight` basis points: the last step at or under it.
    fn step_of(&self, weight: u32) -> Option<u16> {
        let steps = &self.plan.ramp.as_ref()?.steps;
        steps
            .iter()
            .rposition(|s| s.weight <= weight)
            .map(|i| i.min(usize::from(u16::MAX)) as u16)
    }
}

/// The fleet's copy of the guards, compiled from the same plan.
pub(super) fn fleet_cx(plan: &crate::Plan, rollout: &Rollout) -> Option<FleetCx> {
    let fleet = plan.fleet.clone()?;
    let mut fleet_rollout = rollout.clone();
    fleet_rollout.ramps = true;
    Some(FleetCx {
        fleet,
        rollout: fleet_rollout,
        book_key: format!("serin/{}/fleet", plan.digest),
        state_key: format!("serin/{}/fleet-state", plan.digest),
    })
}
