//! Everything about a rollout that changes: its [`Phase`] and each check's running test, with a
//! binary encoding so that the Envoy workers can share it.

use serde::{Deserialize, Serialize};

use super::FULL_WEIGHT;
use super::hist::{BUCKETS, Histogram};
use super::sprt::{EFFECTS, Evidence};
use super::window::Reader;
use crate::rollout::RampStep;

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

    /// The ramped arm's weight in basis points at this phase of a ramp with `steps`: the
    /// step's while ramping or held, all of it once promoted, none once rolled back; `None` for
    /// a step the ramp does not have. The one place that says what a phase weighs
    /// ([`crate::ramp_at`] adds its lanes).
    pub fn weight(&self, steps: &[RampStep]) -> Option<u32> {
        match *self {
            Phase::Promoted => Some(FULL_WEIGHT),
            Phase::RolledBack { .. } => Some(0),
            Phase::Ramping { step } | Phase::Held { step, .. } => steps
                .get(usize::from(step))
                .map(|s| s.weight.min(FULL_WEIGHT)),
        }
    }
}

/// One check's running test, in the shared state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckState {
    /// The sequential test's running evidence (see [`super::sprt`]).
    pub evidence: Evidence,
    pub canary_events: u64,
    pub canary_samples: u64,
    pub stable_events: u64,
    pub stable_samples: u64,
    /// The latency threshold last tested (µs).
    pub threshold: f64,
    /// A distribution test's cumulative `[canary, stable]` counts per bucket over the
    /// consumed sub-windows: what its plug-in alternative is learnt from (empty for others).
    pub buckets: Vec<[u64; 2]>,
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
/// 2: a log-likelihood ratio per mixture component (was one).
/// 3: each check's cumulative bucket counts (distribution guards).
const STATE_VERSION: u16 = 3;
/// Buckets a check's state may carry (a distribution has at most one per window cell).
const MAX_BUCKETS: usize = super::window::CELLS;
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
        let mut out = Vec::with_capacity(64 + self.checks.len() * (40 + 8 * EFFECTS) + BUCKETS * 4);
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
            for s in c.evidence.0 {
                out.extend_from_slice(&s.to_bits().to_le_bytes());
            }
            for x in [
                c.canary_events,
                c.canary_samples,
                c.stable_events,
                c.stable_samples,
            ] {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out.extend_from_slice(&c.threshold.to_bits().to_le_bytes());
            let buckets = &c.buckets[..c.buckets.len().min(MAX_BUCKETS)];
            out.push(buckets.len() as u8);
            for x in buckets.iter().flatten() {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        for c in &self.reference.counts {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Decode [`RolloutState::to_bytes`]; `None` for anything else, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Option<RolloutState> {
        let mut r = Reader(bytes);
        if r.take(4)? != STATE_MAGIC {
            return None;
        }
        // Version 1 held one statistic per check, of the fixed-alternative test. Its phase,
        // counts and reference still hold (a rollback survives the upgrade); its statistic
        // means nothing to the mixture, which starts afresh. Version 2 lacked the bucket
        // counts, which only distribution guards (new with version 3) keep.
        let version = r.u16()?;
        if !(1..=STATE_VERSION).contains(&version) {
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
            let mut evidence = Evidence::default();
            if version == 1 {
                r.f64()?;
            } else {
                for s in evidence.0.iter_mut() {
                    let x = r.f64()?;
                    *s = if x.is_finite() { x } else { 0.0 };
                }
            }
            let mut c = CheckState {
                evidence,
                canary_events: r.u64()?,
                canary_samples: r.u64()?,
                stable_events: r.u64()?,
                stable_samples: r.u64()?,
                threshold: r.f64()?,
                buckets: Vec::new(),
            };
            if version >= 3 {
                let n = usize::from(r.u8()?);
                if n > MAX_BUCKETS {
                    return None;
                }
                for _ in 0..n {
                    c.buckets.push([r.u64()?, r.u64()?]);
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: usize = 4 + 2 + 2 + 1 + 2 + 2 + 1 + 4 * 8 + 2 + 2;

    /// `state` (without bucket counts) as version 2 wrote it: no bucket counts.
    fn version_2(state: &RolloutState) -> Vec<u8> {
        let v3 = state.to_bytes();
        let header = HEADER + state.digest.len();
        let mut out = v3[..header].to_vec();
        out[4..6].copy_from_slice(&2u16.to_le_bytes());
        let chunk = 8 * EFFECTS + 40 + 1;
        for c in v3[header..header + chunk * state.checks.len()].chunks(chunk) {
            assert_eq!(c[chunk - 1], 0, "no bucket counts");
            out.extend_from_slice(&c[..chunk - 1]);
        }
        out.extend_from_slice(&v3[header + chunk * state.checks.len()..]);
        out
    }

    /// `state` (without bucket counts) as version 1 wrote it: one statistic per check.
    fn version_1(state: &RolloutState) -> Vec<u8> {
        let v2 = version_2(state);
        let header = HEADER + state.digest.len();
        let mut out = v2[..header].to_vec();
        out[4..6].copy_from_slice(&1u16.to_le_bytes());
        let chunk = 8 * EFFECTS + 40;
        for c in v2[header..header + chunk * state.checks.len()].chunks(chunk) {
            out.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
            out.extend_from_slice(&c[8 * EFFECTS..]);
        }
        out.extend_from_slice(&v2[header + chunk * state.checks.len()..]);
        out
    }

    #[test]
    fn bucket_counts_round_trip_and_version_2_states_keep_everything_else() {
        let mut drift = CheckState {
            canary_samples: 40,
            buckets: vec![[3, 30], [1, 70]],
            ..CheckState::default()
        };
        drift.evidence.0 = [2.5; EFFECTS];
        let mut state = RolloutState {
            digest: "sha256:02".into(),
            phase: Phase::Ramping { step: 1 },
            started: true,
            step_started_ms: 1,
            step_canary: 2,
            next_slot: 3,
            last_tick_ms: 4,
            approved: 1,
            checks: vec![drift, CheckState::default()],
            reference: Histogram::default(),
        };
        assert_eq!(
            RolloutState::from_bytes(&state.to_bytes()),
            Some(state.clone())
        );
        state.checks[0].buckets.clear();
        let decoded = RolloutState::from_bytes(&version_2(&state)).expect("version 2 decodes");
        assert_eq!(decoded, state);
        let mut bad = state.to_bytes();
        let at = HEADER + state.digest.len() + 8 * EFFECTS + 40;
        bad[at] = (MAX_BUCKETS + 1) as u8;
        assert_eq!(RolloutState::from_bytes(&bad), None, "too many buckets");
    }

    #[test]
    fn a_rollback_written_by_version_1_survives_the_upgrade_with_fresh_evidence() {
        let mut check = CheckState {
            canary_events: 7,
            canary_samples: 900,
            ..CheckState::default()
        };
        check.evidence.0[3] = 4.0;
        let state = RolloutState {
            digest: "sha256:01".into(),
            phase: Phase::RolledBack { guard: 1 },
            started: true,
            step_started_ms: 5,
            step_canary: 6,
            next_slot: 7,
            last_tick_ms: 8,
            approved: 0,
            checks: vec![check.clone(), CheckState::default()],
            reference: Histogram::default(),
        };
        let decoded = RolloutState::from_bytes(&version_1(&state)).expect("version 1 decodes");
        assert_eq!(decoded.phase, Phase::RolledBack { guard: 1 });
        assert_eq!(decoded.checks[0].canary_samples, 900);
        assert_eq!(decoded.checks[0].evidence, Evidence::default());
        let mut bad = version_1(&state);
        bad[4..6].copy_from_slice(&4u16.to_le_bytes());
        assert_eq!(RolloutState::from_bytes(&bad), None, "an unknown version");
    }
}
