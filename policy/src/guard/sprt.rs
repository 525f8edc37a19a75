//! The sequential tests: Wald's sequential probability ratio test (SPRT), fed with
//! log-likelihood-ratio increments from two models.
//!
//! # Why an SPRT
//!
//! The rollout checks its guards on every tick. Re-running a fixed-sample test (a z-test on
//! the window) on every tick inflates false alarms without bound. Wald's SPRT (Wald, 1945,
//! "Sequential tests of statistical hypotheses") is built to be looked at after every
//! observation: with `S` the running log-likelihood ratio of H1 ("the canary breaches")
//! against H0 ("it is at the limit"), it decides **breach** at `S ≥ ln((1-β)/α)` and
//! **healthy** at `S ≤ ln(β/(1-α))`. Under H0 the likelihood ratio `e^S` is a nonnegative
//! martingale, so by Ville's inequality the chance that it *ever* reaches `1/α` is at most `α`,
//! however often it is checked. For a fixed pair of hypotheses the SPRT needs the fewest samples
//! on average of all tests with the same error rates (Wald–Wolfowitz), which is what the
//! "canary requests until rollback" target asks for.
//!
//! Two details make it fit a rollout that runs for a long time:
//! - **The statistic has a floor** at `-ln((1-β)/α)`, below the healthy boundary: good evidence
//!   earns "healthy" but is not banked without limit, so a regression that starts late is found
//!   after a bounded climb of `2·ln((1-β)/α)` (about 11.5 for α = 0.0025, β = 0.2). Until the
//!   statistic first reaches the floor this is exactly Wald's test; after it, it is Page's CUSUM
//!   with that threshold (Page, 1954): by Ville's inequality again, each climb from the floor
//!   reaches a breach with probability at most `(α/(1-β))²`. The simulator measures the
//!   resulting false-rollback rate per rollout (see BENCHMARKS.md). A floor at the healthy
//!   boundary itself detects late regressions sooner but, measured, tripled false rollbacks.
//! - **One-sided, composite nulls.** The models below have monotone likelihood ratios, so the
//!   likelihood ratio against the boundary of H0 is a supermartingale for every parameter inside
//!   H0, not just at its boundary: a canary that is *better* than the limit only drifts down.
//!
//! # The two models
//!
//! - [`bernoulli_llr`]: `x` of `n` canary requests were "bad" (failed, or slower than a
//!   threshold), with H0: `p = p0` against H1: `p = p1 > p0`.
//! - [`split_llr`]: a **conditional binomial** comparison of two arms, after Lindon et al., "Rapid
//!   Regression Detection in Software Deployments through Sequential Testing" (KDD 2022) and
//!   Lindon & Malek, "Anytime-valid inference for multinomial count data" (NeurIPS 2022). If the
//!   canary's event rate is `ρ` times stable's, then given that an event happened, it happened on
//!   the canary with probability `π(ρ) = ρ·n_c / (ρ·n_c + n_s)`, where `n_c`, `n_s` are the
//!   arms' exposures in the same sub-window. The unknown baseline rate drops out, and the changing
//!   traffic split of a ramp is absorbed per sub-window. The test is H0: `ρ = ρ0` against H1:
//!   `ρ = ρ1`. (For Bernoulli rather than Poisson counts the true conditional law is
//!   hypergeometric, which is dominated in convex order by the binomial (Hoeffding, 1963), so
//!   `E[e^S] ≤ 1` still holds under H0 with `ρ0 = 1`.)

use serde::{Deserialize, Serialize};

/// What one test says at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not enough evidence either way, or not enough samples yet.
    Continue,
    /// Enough evidence that the guard's limit is exceeded.
    Breach,
    /// Enough evidence that the canary is within the limit.
    Healthy,
}

/// The boundaries of a Wald SPRT with error rates `alpha` (false breach) and `beta` (missed breach).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// `ln((1-β)/α)`: breach at or above.
    pub breach: f64,
    /// `ln(β/(1-α))`: healthy at or below.
    pub healthy: f64,
    /// `-breach`: the statistic never goes lower, so it is never more than `2·breach` from a
    /// breach.
    pub floor: f64,
}

impl Bounds {
    /// Wald's boundaries. Rates outside `(0, 0.5)` are clamped into `[1e-9, 0.5]`.
    pub fn wald(alpha: f64, beta: f64) -> Bounds {
        let clamp = |x: f64| {
            if x.is_finite() {
                x.clamp(1e-9, 0.5)
            } else {
                0.05
            }
        };
        let (a, b) = (clamp(alpha), clamp(beta));
        let breach = ((1.0 - b) / a).ln();
        Bounds {
            breach,
            healthy: (b / (1.0 - a)).ln().max(-breach),
            floor: -breach,
        }
    }

    /// Add an increment to a statistic, keeping it at or above the floor. Non-finite
    /// increments are ignored.
    pub fn add(&self, llr: f64, increment: f64) -> f64 {
        let llr = if llr.is_finite() { llr } else { 0.0 };
        if !increment.is_finite() {
            return llr.max(self.floor);
        }
        (llr + increment).max(self.floor)
    }

    pub fn verdict(&self, llr: f64) -> Verdict {
        if llr >= self.breach {
            Verdict::Breach
        } else if llr <= self.healthy {
            Verdict::Healthy
        } else {
            Verdict::Continue
        }
    }
}

/// Log-likelihood ratio of `x` bad out of `n` under `p = p1` against `p = p0`.
/// Returns 0 unless `0 < p0 < p1 < 1` and `x <= n`.
pub fn bernoulli_llr(x: u64, n: u64, p0: f64, p1: f64) -> f64 {
    if !(0.0 < p0 && p0 < p1 && p1 < 1.0) || x > n {
        return 0.0;
    }
    x as f64 * (p1 / p0).ln() + (n - x) as f64 * ((1.0 - p1) / (1.0 - p0)).ln()
}

/// The canary's share of events under rate ratio `rho`, given exposures `n_c` and `n_s`.
pub fn canary_share(rho: f64, n_c: u64, n_s: u64) -> f64 {
    let c = rho * n_c as f64;
    c / (c + n_s as f64)
}

/// Log-likelihood ratio of where `x_c + x_s` events fell, with exposures `n_c` (canary) and
/// `n_s` (stable), under rate ratio `rho1` against `rho0`. Returns 0 unless both exposures are
/// positive and `0 < rho0 < rho1`.
pub fn split_llr(x_c: u64, x_s: u64, n_c: u64, n_s: u64, rho0: f64, rho1: f64) -> f64 {
    if n_c == 0 || n_s == 0 || !(0.0 < rho0 && rho0 < rho1 && rho1.is_finite()) {
        return 0.0;
    }
    let (pi0, pi1) = (canary_share(rho0, n_c, n_s), canary_share(rho1, n_c, n_s));
    x_c as f64 * (pi1 / pi0).ln() + x_s as f64 * ((1.0 - pi1) / (1.0 - pi0)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wald_bounds() {
        let b = Bounds::wald(0.05, 0.2);
        assert!((b.breach - (0.8f64 / 0.05).ln()).abs() < 1e-12);
        assert!((b.healthy - (0.2f64 / 0.95).ln()).abs() < 1e-12);
        assert_eq!(b.verdict(b.breach), Verdict::Breach);
        assert_eq!(b.verdict(0.0), Verdict::Continue);
        assert_eq!(b.add(0.0, -100.0), b.floor);
        assert!(b.floor < b.healthy);
        assert_eq!(b.add(0.0, f64::NAN), 0.0);
        assert_eq!(b.verdict(b.add(f64::INFINITY, 0.0)), Verdict::Continue);
        let silly = Bounds::wald(f64::NAN, -1.0);
        assert!(silly.breach.is_finite() && silly.healthy.is_finite());
    }

    #[test]
    fn likelihood_ratios() {
        assert!(bernoulli_llr(5, 100, 0.01, 0.02) > 0.0);
        assert!(bernoulli_llr(0, 100, 0.01, 0.02) < 0.0);
        assert_eq!(bernoulli_llr(5, 4, 0.01, 0.02), 0.0);
        assert_eq!(bernoulli_llr(1, 4, 0.02, 0.01), 0.0);
        // Equal traffic, events 2:1 towards the canary favour ratio 2 over ratio 1.
        assert!(split_llr(20, 10, 1000, 1000, 1.0, 2.0) > 0.0);
        assert!(split_llr(10, 10, 1000, 1000, 1.0, 2.0) < 0.0);
        assert_eq!(split_llr(10, 0, 1000, 0, 1.0, 2.0), 0.0);
        assert!((canary_share(1.0, 50, 950) - 0.05).abs() < 1e-12);
    }
}
