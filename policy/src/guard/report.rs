//! What a tick reports: the [`Evidence`] behind every check, and a [`Transition`] as one
//! structured log line.

use serde::Serialize;

use super::machine::Rollout;
use super::sprt::{Bounds, Verdict};
use super::state::{Phase, RolloutState};
use super::window::{Role, Window};

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
    /// The mixture's log-likelihood ratio (breach at `breach_at`), and the design
    /// component's (healthy at `healthy_at`).
    pub llr: f64,
    pub design_llr: f64,
    pub breach_at: f64,
    pub healthy_at: f64,
    /// The bound under test: a rate, a ratio, or milliseconds (0 for a distribution check,
    /// whose null is "the same histogram as stable").
    pub limit: f64,
    /// The same quantity measured over the current window, for reading (not what is tested);
    /// a distribution check's is the window's PSI.
    pub window_value: Option<f64>,
    /// For distribution checks: the population stability index of the canary's histogram
    /// against stable's over the current window (see [`super::drift::psi`]), for people; the
    /// rollback is the sequential test's, beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
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

impl Rollout {
    /// The numbers behind every check at `now_ms` (what a transition logs).
    pub fn report(&self, state: &RolloutState, now_ms: u64, window: &Window) -> Vec<Evidence> {
        let bounds = self.params.bounds();
        let verdicts = self.verdicts(state, &bounds);
        self.evidence(state, &verdicts, now_ms, window, &bounds)
    }

    /// Each check's numbers at `now_ms`, given the verdicts [`Rollout::tick`] acts on.
    pub(super) fn evidence(
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
                let (limit, window_value) = c.measure(&stable_w, &canary_w);
                Evidence {
                    guard: self.guard_name(c.guard),
                    check: c.label.clone(),
                    verdict: *v,
                    llr: s.evidence.mixture(),
                    design_llr: s.evidence.design(),
                    breach_at: bounds.breach,
                    healthy_at: bounds.healthy,
                    limit,
                    window_value,
                    psi: c.distribution().and(window_value),
                    threshold_us: c.is_latency().then_some(s.threshold),
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
