//! What a tick reports: the [`Evidence`] behind every check, and a [`Transition`] as one
//! structured log line.

use super::machine::Rollout;
use super::sprt::{Bounds, Verdict};
use super::state::{Phase, RolloutState};
use super::window::{Role, Window};
use crate::json::write::ObjectWriter;

/// A state change, with the numbers behind it: one structured log line.
#[derive(Debug, Clone, PartialEq)]
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
    /// The transition as one line of JSON, its floats to six significant digits.
    pub fn log_line(&self) -> String {
        let mut evidence = String::from("[");
        for (i, e) in self.evidence.iter().enumerate() {
            if i > 0 {
                evidence.push(',');
            }
            e.write(&mut evidence);
        }
        evidence.push(']');
        let mut out = String::new();
        let mut line = ObjectWriter::new(&mut out);
        line.u64("at_ms", self.at_ms)
            .str("policy", &self.policy)
            .str("digest", &self.digest)
            .raw("from", &phase(self.from))
            .raw("to", &phase(self.to))
            .opt_u64("canary_weight", self.canary_weight.map(u64::from))
            .str("cause", &self.cause)
            .raw("evidence", &evidence);
        line.finish();
        out
    }
}

/// A phase as its tag and fields: `{"state":"held","step":1,"guard":2}`.
fn phase(phase: Phase) -> String {
    let mut out = String::new();
    let mut o = ObjectWriter::new(&mut out);
    match phase {
        Phase::Ramping { step } => o.str("state", "ramping").u64("step", step.into()),
        Phase::Held { step, guard } => o
            .str("state", "held")
            .u64("step", step.into())
            .u64("guard", guard.into()),
        Phase::Promoted => o.str("state", "promoted"),
        Phase::RolledBack { guard } => o.str("state", "rolled_back").u64("guard", guard.into()),
    };
    o.finish();
    out
}

impl Evidence {
    fn write(&self, out: &mut String) {
        let verdict = match self.verdict {
            Verdict::Continue => "continue",
            Verdict::Breach => "breach",
            Verdict::Healthy => "healthy",
        };
        let mut o = ObjectWriter::new(out);
        o.str("guard", &self.guard)
            .str("check", &self.check)
            .str("verdict", verdict)
            .f64("llr", self.llr)
            .f64("design_llr", self.design_llr)
            .f64("breach_at", self.breach_at)
            .f64("healthy_at", self.healthy_at)
            .f64("limit", self.limit)
            .opt_f64("window_value", self.window_value);
        if let Some(psi) = self.psi {
            o.f64("psi", psi);
        }
        o.opt_f64("threshold_us", self.threshold_us)
            .u64("canary_events", self.canary_events)
            .u64("canary_samples", self.canary_samples)
            .u64("stable_events", self.stable_events)
            .u64("stable_samples", self.stable_samples)
            .u64("min_samples", self.min_samples);
        o.finish();
    }
}

/// One check's numbers at a tick.
#[derive(Debug, Clone, PartialEq)]
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
    /// rollback is the sequential test's, beside it. Left out of the log line when `None`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn evidence(psi: Option<f64>) -> Evidence {
        Evidence {
            guard: "error \"rate\"".into(),
            check: "error_rate <= 2%".into(),
            verdict: Verdict::Breach,
            llr: 5.298317366548036,
            design_llr: -1.0 / 3.0,
            breach_at: 5.298317366548036,
            healthy_at: -2.0,
            limit: 0.02,
            window_value: Some(0.041234567),
            psi,
            threshold_us: None,
            canary_events: 41,
            canary_samples: 1_000,
            stable_events: 200,
            stable_samples: 10_000,
            min_samples: 500,
        }
    }

    #[test]
    fn the_log_line_is_one_json_object_with_every_field() {
        let t = Transition {
            at_ms: 1_700_000_000_123,
            policy: "fraud-model-v2".into(),
            digest: "sha256:01".into(),
            from: Phase::Held { step: 1, guard: 2 },
            to: Phase::RolledBack { guard: 0 },
            canary_weight: None,
            cause: "error rate".into(),
            evidence: vec![evidence(None), evidence(Some(0.25))],
        };
        let line = t.log_line();
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let check = |psi: Option<f64>| {
            let mut e = json!({
                "guard": "error \"rate\"", "check": "error_rate <= 2%", "verdict": "breach",
                "llr": 5.29832, "design_llr": -0.333333, "breach_at": 5.29832, "healthy_at": -2.0,
                "limit": 0.02, "window_value": 0.0412346, "threshold_us": null,
                "canary_events": 41, "canary_samples": 1000, "stable_events": 200,
                "stable_samples": 10000, "min_samples": 500
            });
            if let Some(psi) = psi {
                e["psi"] = json!(psi);
            }
            e
        };
        assert_eq!(
            value,
            json!({
                "at_ms": 1_700_000_000_123u64, "policy": "fraud-model-v2", "digest": "sha256:01",
                "from": {"state": "held", "step": 1, "guard": 2},
                "to": {"state": "rolled_back", "guard": 0},
                "canary_weight": null, "cause": "error rate",
                "evidence": [check(None), check(Some(0.25))]
            })
        );
        // The phases are tagged as `Phase`'s serde form, which the simulator's output uses.
        for phase in [
            Phase::Ramping { step: 3 },
            Phase::Held { step: 1, guard: 2 },
            Phase::Promoted,
            Phase::RolledBack { guard: 0 },
        ] {
            let ours: serde_json::Value = serde_json::from_str(&super::phase(phase)).unwrap();
            assert_eq!(ours, serde_json::to_value(phase).unwrap());
        }
    }
}
