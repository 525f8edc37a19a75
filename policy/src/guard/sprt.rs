//! The sequential test: a mixture of sequential probability ratio tests, with power against
//! every breach of the limit, fed with log-likelihood-ratio increments from two models.
//!
//! # Why a sequential test
//!
//! The rollout checks its guards on every tick. Re-running a fixed-sample test (a z-test on
//! the window) on every tick inflates false alarms without bound. A likelihood ratio of "the
//! canary breaches" against "it is at the limit" is a nonnegative martingale while the canary
//! is at the limit, so by Ville's inequality the chance that it *ever* reaches `1/α` is at most
//! `α`, however often it is looked at (Wald, 1945; Ville, 1939).
//!
//! # Why a mixture
//!
//! Wald's SPRT tests the limit against one fixed alternative. For a true value between the two
//! its statistic drifts back toward the limit, so a breach smaller than the alternative is
//! caught only by chance. The mixture SPRT (Robbins, 1970; Johari, Pekelis and Walsh, "Always
//! valid inference", 2022) averages the likelihood ratios of many alternatives under a prior:
//! the average of martingales is a martingale, so the same `1/α` boundary keeps the same
//! guarantee, and the component nearest the true value dominates, so the test's cost adapts
//! to the size of the breach and its power grows without bound for any breach.
//!
//! The prior ("mixing distribution") is discrete, over [`EFFECTS`] breach sizes, and chosen
//! this way:
//! - **Half of its weight on the design effect** (2× the limit; 2.5× the tail share for
//!   latency): the size the engine was tuned to catch before, and the size users write their
//!   limits around. Reaching `1/α` through that component costs `ln 2` more evidence than a
//!   test that knew the breach size, so at and beyond it the test is nearly as fast as the
//!   fixed SPRT it replaces.
//! - **Half spread evenly over a log-scale grid**, `2^(k/7)` for `k = 1..=11`: breaches from
//!   1.10× to 2.97× the limit, 10% apart. The grid stops near 3× because larger breaches are
//!   caught within a guard's `min_samples` by the design component alone; every component
//!   left out raises the weight of the others, and the evidence a small breach needs falls by
//!   the log of that weight. A discrete grid (rather than a conjugate continuous prior) keeps
//!   the statistic exact for both models below, including the conditional model whose
//!   exposures change every sub-window, costs a dozen logarithms per check per sub-window, and
//!   stores in a fixed number of bytes in the workers' shared state. Neighbours in the grid are
//!   close enough that a breach between two of them loses under 10% of its evidence rate;
//!   below 1.09× no component gains evidence, which is the smallest breach the test promises
//!   to catch.
//!
//! # Healthy, and the floor
//!
//! - **Healthy** (what a ramp step's `healthy` gate waits for) is the design component's own
//!   verdict: its statistic at or below `ln(β/(1-α))`, i.e. the data reject a breach of the
//!   design size at level `β`. A canary at 1.3× the limit may pass a gate; the breach test
//!   keeps running and rolls it back later.
//! - **The floor.** Each component's statistic never falls below `-F`, `F = 2·ln(1/α)`: good
//!   evidence is not banked without limit, so a regression that starts late is found after a
//!   bounded climb. Until a component first reaches its floor this is exactly the mixture test.
//!   - *What it costs the guarantee, exactly.* By Lindley's recursion a floored component is the
//!     larger of its plain statistic and, for each earlier sub-window `j`, `-F` plus the
//!     statistic restarted at `j` (Page's CUSUM, 1954). So the mixture is at most
//!     `M_0 + e^{-F}·Σ_j M_j`, where `M_j` is the mixture restarted at `j`, a nonnegative
//!     supermartingale at or under the limit. The bound grows by at most `e^{-F}` a sub-window in
//!     expectation, and Ville's inequality gives: a canary at or under its limit is rolled back
//!     within `N` sub-windows with probability at most `α·(1 + N·e^{-F}) = α + N·α³`, whatever
//!     the traffic. That is at most 2α over `1/α²` sub-windows (31 hours of one-second
//!     sub-windows at α = 0.003), then α³ more a sub-window (1% after three days).
//!   - *What it costs a late breach.* From the floor a component climbs `F + ln(1/α) =
//!     3·ln(1/α)` plus the prior's cost, against `ln(1/α)` plus that cost fresh: about 2.8× the
//!     fresh median at twice the limit (the detection bench's late-breach table;
//!     `policy/tests/it/floor.rs` bounds the mean at 3×). That is the least any test can pay
//!     for the same promise: a test that false-alarms about once per `1/α³` sub-windows needs
//!     about `ln(1/α³)` of evidence to catch a change that starts at an unknown time (Lorden,
//!     1971, whose bound Page's CUSUM attains).
//!   - *Why this depth.* The depth is the horizon of the promise. `F = ln(1/α)`, about the depth
//!     of the fixed SPRT this test replaced, keeps 2α for only `1/α` sub-windows, five minutes:
//!     with it, this mixture rolled back a busy canary at its limit in 1.2% of hour-long runs
//!     (15 samples a second, α = 0.3%). A rollout's guards watch for hours, so the floor keeps
//!     α's promise (within 2×) for a day and more, and pays the late climb that Lorden's bound
//!     sets for that horizon. The
//!     property test (`policy/tests/it/guarantee.rs`) and the detection bench measure it, the
//!     bench against Page's CUSUM told the true breach size and calibrated on its own traffic
//!     for one hour, a narrower promise than this one.
//! - **One-sided, composite nulls.** Both models have monotone likelihood ratios, so each
//!   component is a supermartingale for every value inside the null, not only at its
//!   boundary: a canary that is *better* than the limit only drifts down.
//!
//! # The two models
//!
//! - [`Model::Rate`] ([`bernoulli_llr`]): `x` of `n` canary requests were "bad" (failed, slower
//!   than a threshold, or an outcome past a bound), at most `p0` under the null.
//! - [`Model::Ratio`] ([`split_llr`]): a **conditional binomial** comparison of two arms, after
//!   Lindon et al., "Rapid Regression Detection in Software Deployments through Sequential
//!   Testing" (KDD 2022) and Lindon & Malek, "Anytime-valid inference for multinomial count
//!   data" (NeurIPS 2022). If the canary's event rate is `ρ` times stable's, then given that an
//!   event happened, it happened on the canary with probability `π(ρ) = ρ·n_c / (ρ·n_c + n_s)`,
//!   where `n_c`, `n_s` are the arms' exposures in the same sub-window. The unknown baseline
//!   rate drops out, and the changing traffic split of a ramp is absorbed per sub-window. (For
//!   Bernoulli rather than Poisson counts the true conditional law is hypergeometric, which is
//!   dominated in convex order by the binomial (Hoeffding, 1963), so `E[e^S] ≤ 1` still holds
//!   under the null.)

use serde::{Deserialize, Serialize};

/// What one test says at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Not enough evidence either way, or not enough samples yet.
    Continue,
    /// Enough evidence that the guard's limit is exceeded.
    Breach,
    /// Enough evidence that the canary is not breaching by the design effect.
    Healthy,
}

/// Breach sizes on the log-scale grid: `2^(k/7)`, `k = 1..=GRID`.
pub const GRID: usize = 11;
/// The mixture's components: the grid, then the design effect.
pub const EFFECTS: usize = GRID + 1;
/// Index of the design effect's component.
pub const DESIGN: usize = GRID;

/// The breach sizes of the components, as multiples of the limit, for a design effect.
pub fn effects(design: f64) -> [f64; EFFECTS] {
    let mut e = [design; EFFECTS];
    for (k, x) in e.iter_mut().take(GRID).enumerate() {
        *x = ((k + 1) as f64 / 7.0).exp2();
    }
    e
}

/// The prior's log-weights: half on the design effect, half spread evenly over the grid.
fn log_weights() -> [f64; EFFECTS] {
    let mut w = [(0.5 / GRID as f64).ln(); EFFECTS];
    w[DESIGN] = 0.5f64.ln();
    w
}

/// The boundaries for false-breach rate `alpha` and missed-design-breach rate `beta`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// `ln(1/α)`: breach when the mixture's log-likelihood ratio is at or above it.
    pub breach: f64,
    /// `ln(β/(1-α))`: healthy when the design component's is at or below it.
    pub healthy: f64,
    /// `-2·breach`: no component's statistic goes lower.
    pub floor: f64,
}

impl Bounds {
    /// The boundaries. Rates outside `(0, 0.5)` are clamped into `[1e-9, 0.5]`.
    pub fn new(alpha: f64, beta: f64) -> Bounds {
        let clamp = |x: f64| {
            if x.is_finite() {
                x.clamp(1e-9, 0.5)
            } else {
                0.05
            }
        };
        let (a, b) = (clamp(alpha), clamp(beta));
        let breach = (1.0 / a).ln();
        Bounds {
            breach,
            healthy: (b / (1.0 - a)).ln().max(-breach),
            floor: -2.0 * breach,
        }
    }
}

/// One test's running evidence: a log-likelihood ratio per component, each floored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence(pub [f64; EFFECTS]);

impl Default for Evidence {
    fn default() -> Self {
        Evidence([0.0; EFFECTS])
    }
}

impl Evidence {
    /// Add one sub-window's increments, keeping each component at or above the floor.
    /// Non-finite values are ignored.
    pub fn add(&mut self, increments: &[f64; EFFECTS], bounds: &Bounds) {
        for (s, inc) in self.0.iter_mut().zip(increments) {
            let base = if s.is_finite() { *s } else { 0.0 };
            let next = if inc.is_finite() { base + inc } else { base };
            *s = next.max(bounds.floor);
        }
    }

    /// The mixture's log-likelihood ratio: `ln Σ w_k e^{S_k}`, computed without overflow.
    pub fn mixture(&self) -> f64 {
        let mut terms = log_weights();
        for (t, s) in terms.iter_mut().zip(&self.0) {
            *t += if s.is_finite() { *s } else { 0.0 };
        }
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
    }

    /// The largest component: the mixture is never above it (the weights sum to one), so
    /// below the breach boundary it settles the verdict without the exponentials.
    fn largest(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// The design component's log-likelihood ratio (what "healthy" reads).
    pub fn design(&self) -> f64 {
        self.0[DESIGN]
    }

    pub fn verdict(&self, bounds: &Bounds) -> Verdict {
        if self.largest() >= bounds.breach && self.mixture() >= bounds.breach {
            Verdict::Breach
        } else if self.design() <= bounds.healthy {
            Verdict::Healthy
        } else {
            Verdict::Continue
        }
    }
}

/// What a test's counts mean: the null at the limit, and how a breach of `g` times the limit
/// reads in the model's parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// The watched arm's bad events per sample are at most `p0` (see [`Model::rate`]).
    Rate { p0: f64, falling: bool },
    /// The watched arm's event rate is at most `rho0` times the other arm's.
    Ratio { rho0: f64 },
}

impl Model {
    /// A rate bound `limit`: an upper bound counts the events themselves; a lower bound
    /// (`falling`) counts the others, whose share is at most `1 - limit` under the null.
    pub fn rate(limit: f64, falling: bool) -> Model {
        Model::Rate {
            p0: if falling { 1.0 - limit } else { limit },
            falling,
        }
    }

    /// The model's parameter for a breach of `g` times the limit: a rate `g` times the limit
    /// (kept below 1), a lower-bound rate divided by `g`, a ratio `g` times the limit.
    pub fn alternative(&self, g: f64) -> f64 {
        match *self {
            Model::Rate { p0, falling: false } => raise(p0, g),
            Model::Rate { p0, falling: true } => 1.0 - (1.0 - p0) / g,
            Model::Ratio { rho0 } => rho0 * g,
        }
    }

    /// The null's parameter.
    pub fn null(&self) -> f64 {
        match *self {
            Model::Rate { p0, .. } => p0,
            Model::Ratio { rho0 } => rho0,
        }
    }

    /// One sub-window's increments for every component: `x_c` of `n_c` watched samples were
    /// events, and `x_s` of `n_s` on the other arm (a rate test ignores the other arm).
    pub fn increments(
        &self,
        design: f64,
        (x_c, n_c, x_s, n_s): (u64, u64, u64, u64),
    ) -> [f64; EFFECTS] {
        let effects = effects(design);
        let null = self.null();
        let mut out = [0.0; EFFECTS];
        for (inc, g) in out.iter_mut().zip(effects) {
            let alt = self.alternative(g);
            *inc = match self {
                Model::Rate { .. } => bernoulli_llr(x_c, n_c, null, alt),
                Model::Ratio { .. } => split_llr(x_c, x_s, n_c, n_s, null, alt),
            };
        }
        out
    }
}

/// A rate `p0` raised `factor` times, kept below 1.
pub fn raise(p0: f64, factor: f64) -> f64 {
    let p1 = p0 * factor;
    if p1 < 1.0 { p1 } else { (p0 + 1.0) / 2.0 }
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
    fn bounds() {
        let b = Bounds::new(0.005, 0.2);
        assert!((b.breach - 200f64.ln()).abs() < 1e-12);
        assert!((b.healthy - (0.2f64 / 0.995).ln()).abs() < 1e-12);
        assert!(b.floor < b.healthy);
        let silly = Bounds::new(f64::NAN, -1.0);
        assert!(silly.breach.is_finite() && silly.healthy.is_finite());
    }

    #[test]
    fn the_grid_runs_from_ten_percent_to_three_times_with_the_design_effect_last() {
        let e = effects(2.5);
        assert!((e[0] - 1.104).abs() < 1e-3 && (e[GRID - 1] - 2.97).abs() < 1e-2);
        assert!(e.windows(2).take(GRID - 1).all(|w| w[1] > w[0]));
        assert_eq!(e[DESIGN], 2.5);
        let total: f64 = log_weights().iter().map(|w| w.exp()).sum();
        assert!(
            (total - 1.0).abs() < 1e-12,
            "the prior sums to one: {total}"
        );
    }

    #[test]
    fn the_mixture_is_a_weighted_average_of_the_components() {
        let b = Bounds::new(0.005, 0.2);
        let mut e = Evidence::default();
        assert!(e.mixture().abs() < 1e-12, "every ratio at 1 averages to 1");
        e.0[DESIGN] = 10.0;
        assert!((e.mixture() - (0.5 * 10f64.exp() + 0.5).ln()).abs() < 1e-9);
        assert_eq!(e.verdict(&b), Verdict::Breach);
        e.add(&[-100.0; EFFECTS], &b);
        assert!(e.0.iter().all(|s| *s == b.floor));
        assert_eq!(e.verdict(&b), Verdict::Healthy);
        e.add(&[f64::NAN; EFFECTS], &b);
        assert!(e.0.iter().all(|s| *s == b.floor));
    }

    #[test]
    fn every_component_gains_from_a_breach_of_its_size() {
        // 1.5% errors against a 1% limit: the components up to 2× gain evidence (the root of
        // `(g - 1) / ln g = 1.5` is near 2.2, between two components).
        let m = Model::rate(0.01, false);
        let inc = m.increments(2.0, (150, 10_000, 0, 0));
        let e = effects(2.0);
        for (g, i) in e.iter().zip(inc) {
            assert_eq!(i > 0.0, *g < 2.1, "{g}: {i}");
        }
        // A lower bound: a positive rate of 40% against a minimum of 50% is a breach of 1.25×.
        let m = Model::rate(0.5, true);
        assert!((m.alternative(1.25) - 0.6).abs() < 1e-12);
        assert!(m.increments(2.0, (600, 1000, 0, 0))[1] > 0.0);
        // Equal traffic, events 2:1 towards the canary favour ratio 2 over ratio 1.
        let m = Model::Ratio { rho0: 1.0 };
        assert!(m.increments(2.0, (20, 1000, 10, 1000))[DESIGN] > 0.0);
        assert!(m.increments(2.0, (10, 1000, 10, 1000))[DESIGN] < 0.0);
    }

    #[test]
    fn likelihood_ratios() {
        assert!(bernoulli_llr(5, 100, 0.01, 0.02) > 0.0);
        assert!(bernoulli_llr(0, 100, 0.01, 0.02) < 0.0);
        assert_eq!(bernoulli_llr(5, 4, 0.01, 0.02), 0.0);
        assert_eq!(bernoulli_llr(1, 4, 0.02, 0.01), 0.0);
        assert!(split_llr(20, 10, 1000, 1000, 1.0, 2.0) > 0.0);
        assert_eq!(split_llr(10, 0, 1000, 0, 1.0, 2.0), 0.0);
        assert!((canary_share(1.0, 50, 950) - 0.05).abs() < 1e-12);
        assert_eq!(raise(0.6, 2.0), 0.8);
    }
}
