//! The engine in fleet mode ([`crate::fleet`]): when to ask Prometheus, what an answer changes,
//! and the phase a proxy routes by when its own guards and the fleet's both have a say.
//!
//! Two records per proxy live in shared data beside the local window and state:
//! - the **book** (`serin/<digest>/fleet`): when the query was last sent and answered, whether
//!   the proxy has joined, the totals of the last answer, the answers refused;
//! - the **fleet state** (`serin/<digest>/fleet-state`): a [`RolloutState`] of the same guards
//!   fed with the fleet's counts, whose phase is the proxy's ramp step.

use std::collections::BTreeMap;

use super::{Engine, SharedData};
use crate::fleet::{self, ArmTotals, BucketTotals, Call, Fleet, OutcomeTotals, Refused, Snapshot};
use crate::guard::{Phase, Reader, Rollout, Transition};

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
#[derive(Debug, Clone, Default, PartialEq)]
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

/// The book's encoding in shared data: these four bytes, [`BOOK_VERSION`], then `asked_ms`,
/// `answered_ms`, `joined`, `refused` and `seen` (its `rolled_back`, `weight`, then each arm's
/// name and totals), little-endian (a bool a byte, an `Option` a byte 0 or 1 and then the value, a string
/// or a list its `u32` length and then its bytes or items, an `f64` its bits). Only Serin writes
/// and reads it, so it is a binary encoding like the window's and the state's rather than JSON
/// through serde's derives (which, with the answer's, cost filter.wasm 23 KB: docs/perf-log.md,
/// "filter.wasm: reading JSON by hand").
const BOOK_MAGIC: [u8; 4] = *b"SRNF";
/// 1: the first binary book. (Before it the book was JSON; a JSON book reads as unreadable,
/// which makes the proxy join again: its next answer is adopted, not measured.)
const BOOK_VERSION: u16 = 1;

impl Book {
    /// The book in shared data's bytes; a fresh one when absent or unreadable.
    fn decode(bytes: Option<&[u8]>) -> Book {
        bytes.and_then(Book::from_bytes).unwrap_or_default()
    }

    fn read(shared: &mut dyn SharedData, key: &str) -> Book {
        Book::decode(shared.read(key).as_deref())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        w.0.extend_from_slice(&BOOK_MAGIC);
        w.u16(BOOK_VERSION);
        w.u64(self.asked_ms);
        w.u64(self.answered_ms);
        w.bool(self.joined);
        w.u64(self.refused);
        w.bool(self.seen.is_some());
        if let Some(snap) = &self.seen {
            w.bool(snap.rolled_back);
            w.bool(snap.weight.is_some());
            if let Some(weight) = snap.weight {
                w.u32(weight);
            }
            w.len(snap.arms.len());
            for (name, arm) in &snap.arms {
                w.str(name);
                for x in arm.responses {
                    w.f64(x);
                }
                w.f64(arm.resets);
                w.len(arm.outcomes.len());
                for o in &arm.outcomes {
                    w.str(&o.outcome);
                    w.str(&o.segment_value);
                    w.f64(o.total);
                    w.f64(o.positive);
                }
                w.len(arm.buckets.len());
                for b in &arm.buckets {
                    w.str(&b.guard);
                    w.str(&b.bucket);
                    w.f64(b.count);
                }
            }
        }
        w.0
    }

    /// Decode [`Book::to_bytes`]; `None` for anything else (another version, a JSON book of an
    /// older release, truncated or trailing bytes), never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Option<Book> {
        let mut r = Reader(bytes);
        if r.take(4)? != BOOK_MAGIC || r.u16()? != BOOK_VERSION {
            return None;
        }
        let mut book = Book {
            asked_ms: r.u64()?,
            answered_ms: r.u64()?,
            joined: bool_of(&mut r)?,
            refused: r.u64()?,
            seen: None,
        };
        if bool_of(&mut r)? {
            let mut snap = Snapshot {
                rolled_back: bool_of(&mut r)?,
                weight: None,
                arms: BTreeMap::new(),
            };
            if bool_of(&mut r)? {
                snap.weight = Some(r.u32()?);
            }
            // Counts are not trusted for allocation: each item reads at least a byte.
            for _ in 0..r.u32()? {
                let name = str_of(&mut r)?;
                let mut arm = ArmTotals::default();
                for x in &mut arm.responses {
                    *x = r.f64()?;
                }
                arm.resets = r.f64()?;
                for _ in 0..r.u32()? {
                    arm.outcomes.push(OutcomeTotals {
                        outcome: str_of(&mut r)?,
                        segment_value: str_of(&mut r)?,
                        total: r.f64()?,
                        positive: r.f64()?,
                    });
                }
                for _ in 0..r.u32()? {
                    arm.buckets.push(BucketTotals {
                        guard: str_of(&mut r)?,
                        bucket: str_of(&mut r)?,
                        count: r.f64()?,
                    });
                }
                snap.arms.insert(name, arm);
            }
            book.seen = Some(snap);
        }
        r.0.is_empty().then_some(book)
    }
}

fn bool_of(r: &mut Reader<'_>) -> Option<bool> {
    match r.u8()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn str_of(r: &mut Reader<'_>) -> Option<String> {
    let len = usize::try_from(r.u32()?).ok()?;
    String::from_utf8(r.take(len)?.to_vec()).ok()
}

/// The writing half of [`Reader`], for the book.
struct Writer(Vec<u8>);

impl Writer {
    fn u16(&mut self, x: u16) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f64(&mut self, x: f64) {
        self.u64(x.to_bits());
    }
    fn bool(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }
    /// A length, saturated at `u32::MAX` (a book never comes near).
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
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
    #[inline(never)]
    pub fn fleet_call(&mut self, now_ms: u64, shared: &mut dyn SharedData) -> Option<Call> {
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
            Some(book.to_bytes())
        });
        (due && claimed).then(|| fleet::call(&self.plan, &cx.fleet))
    }

    /// Fleet mode: the answer to [`Engine::fleet_call`] (`Err` when the call itself failed).
    #[inline(never)]
    pub fn fleet_answer(
        &mut self,
        now_ms: u64,
        answer: Result<&[u8], String>,
        shared: &mut dyn SharedData,
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
        shared: &mut dyn SharedData,
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
                    Some(book.to_bytes())
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
        let book_bytes = book.to_bytes();
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
    pub(super) fn effective(&mut self, local: Phase, shared: &mut dyn SharedData) -> Phase {
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
