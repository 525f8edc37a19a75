//! The distribution guard: is the canary's histogram of a score (or of a segment attribute)
//! the same as stable's? An anytime-valid test for multinomial counts with a predictable
//! plug-in alternative, and the population stability index (PSI) for people.
//!
//! # What is counted
//!
//! A guard with `B` buckets claims `B` consecutive outcome cells of the [`Window`]
//! (see [`super::Layout`]). An observation in bucket `j` counts `positive += 1` in cell `j`
//! and `total += 1` in every one of the `B` cells, so each cell's `total` is the arm's
//! observations and its `positive` the bucket's: the existing cells, merge and encoding
//! carry a histogram without a new window format.
//!
//! # The test
//!
//! Under the null the canary's bucket distribution equals stable's, whatever that is. As for
//! the ratio tests (see [`super::sprt`], "the two models"), the test conditions on where the
//! observations fell: given that an observation of a sub-window with arm totals `n_c`, `n_s`
//! fell in bucket `j`, it is the canary's with probability `π = n_c / (n_c + n_s)` under the
//! null, and `π_j = r_j n_c / (r_j n_c + n_s)` if the canary's share of bucket `j` is `r_j`
//! times stable's. The unknown baseline histogram drops out, and a ramp's changing split is
//! absorbed per sub-window. This is the conditional (Poisson-to-binomial) construction of
//! Lindon and Malek, "Anytime-valid inference for multinomial count data" (NeurIPS 2022),
//! for two arms with one cell per bucket. A sub-window's log-likelihood ratio is
//!
//! ```text
//! Σ_j  c_j ln(π_j / π) + s_j ln((1 - π_j) / (1 - π))
//! ```
//!
//! over the canary's (`c_j`) and stable's (`s_j`) counts in bucket `j`.
//!
//! # Why a plug-in alternative
//!
//! A drift has no "design size" and no direction: a score can move up, down, spread or
//! split, so a prior over alternatives (the mixture of the rate tests) would need one per
//! shape. Instead the ratios `r_j` are **estimated from the sub-windows already consumed**
//! and only then applied to the next one. A likelihood ratio whose alternative is chosen
//! before the data it scores (a *predictable* alternative) is still a nonnegative
//! supermartingale under the null, so Ville's inequality keeps its `α` guarantee however the
//! estimate is made (Robbins and Siegmund's method of plug-in; Waudby-Smith and Ramdas,
//! "Estimating means of bounded random variables by betting", JRSS B 2023, for predictable
//! plug-ins). The evidence then grows for every shift, at the price of learning it first.
//!
//! The estimate is each bucket's smoothed canary frequency over stable's:
//! - stable's frequencies with [`STABLE_PSEUDO`] pseudo-observations per bucket (stable is
//!   most of the traffic, so this matters only for empty buckets);
//! - the canary's with [`CANARY_PRIOR`] pseudo-observations spread **as stable's**: a prior
//!   of "no shift", so that a young canary bets `r_j ≈ 1` (nothing to lose) instead of
//!   betting on the noise of its first few dozen observations, which would slow the test
//!   down under a real shift and waste nothing under the null but time;
//! - clamped to `[1/MAX_RATIO, MAX_RATIO]`, so no single bucket can stake everything.
//!
//! As in the ratio tests the binomial stands in for the hypergeometric law of counts with
//! fixed margins; the detection bench measures the false-rollback rate this gives.
//!
//! # Healthy, and the floor
//!
//! The plug-in is one alternative, so every component of the engine's
//! [`Evidence`](super::sprt::Evidence) carries
//! the same statistic: the mixture of equal components is that statistic, and the floor and
//! the breach boundary `ln(1/α)` apply unchanged. **Healthy** is the statistic at or below
//! `ln(β/(1-α))` once the guard has its `min_samples`: the histograms seen so far fit
//! "equal" better, by that margin, than the shift they suggest. It cannot claim more: there is
//! no design shift whose absence it could certify, and a drift that starts later is still
//! caught, since the test keeps running from the floor.

use super::sprt::{Bounds, EFFECTS};
use super::state::CheckState;
use super::window::{CELLS, Counters};
use crate::plan::Plan;
use crate::rollout::{Distributed, MILLIONTHS};

/// Stable's pseudo-observations per bucket.
pub const STABLE_PSEUDO: f64 = 0.5;
/// The canary's pseudo-observations, spread as stable's frequencies ("no shift").
pub const CANARY_PRIOR: f64 = 50.0;
/// The largest ratio of canary to stable frequency the alternative bets on.
pub const MAX_RATIO: f64 = 8.0;
/// Smoothing of both arms' frequencies in the reported PSI (an empty bucket has no logarithm).
pub const PSI_PSEUDO: f64 = 0.5;

/// What a distribution guard buckets, compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A numeric outcome, with the buckets' upper bounds (inclusive; the last bucket is open).
    Outcome { outcome: u8, upper_bounds: Vec<f64> },
    /// A segment's value index (its declared values, then `other`).
    Segment { segment: u8 },
}

/// One distribution guard of the plan, compiled: what it buckets, into how many buckets, and
/// where its cells are in the window (if the guard watches the ramped arm and its cells fit).
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub guard: u16,
    pub source: Source,
    pub buckets: u8,
    /// The first of its `buckets` consecutive cells.
    pub first_cell: Option<u8>,
}

impl Distribution {
    /// Every distribution guard of `plan`, in guard order, without cells yet.
    pub fn of_plan(plan: &Plan) -> Vec<Distribution> {
        plan.guards
            .iter()
            .enumerate()
            .filter_map(|(g, guard)| {
                let crate::GuardMetric::Distribution { over } = &guard.metric else {
                    return None;
                };
                let source = match over {
                    Distributed::Outcome {
                        outcome,
                        upper_bounds_millionths,
                    } => Source::Outcome {
                        outcome: *outcome,
                        upper_bounds: upper_bounds_millionths
                            .iter()
                            .map(|b| *b as f64 / MILLIONTHS)
                            .collect(),
                    },
                    Distributed::Segment { segment } => Source::Segment { segment: *segment },
                };
                Some(Distribution {
                    guard: g.min(usize::from(u16::MAX)) as u16,
                    buckets: bucket_count(plan, over).min(usize::from(u8::MAX)) as u8,
                    source,
                    first_cell: None,
                })
            })
            .collect()
    }

    /// The bucket of a numeric value (outcome distributions; `None` for a segment one, or a
    /// value that is not a number).
    pub fn bucket_of_value(&self, x: f64) -> Option<u8> {
        let Source::Outcome { upper_bounds, .. } = &self.source else {
            return None;
        };
        if x.is_nan() {
            return None;
        }
        let j = upper_bounds.partition_point(|b| *b < x);
        Some(j.min(usize::from(self.buckets.saturating_sub(1))) as u8)
    }

    /// The bucket of a segment value index (`other` and anything past it is the last).
    pub fn bucket_of_index(&self, index: u16) -> u8 {
        let last = self.buckets.saturating_sub(1);
        u8::try_from(index).map_or(last, |i| i.min(last))
    }
}

/// Buckets of a distribution guard: its bounds plus the open one, or its segment's declared
/// values plus `other`. The cells it claims (see [`CELLS`]).
pub fn bucket_count(plan: &Plan, over: &Distributed) -> usize {
    match over {
        Distributed::Outcome {
            upper_bounds_millionths,
            ..
        } => upper_bounds_millionths.len() + 1,
        Distributed::Segment { segment } => plan
            .segments
            .get(usize::from(*segment))
            .map_or(1, |s| s.values.len() + 1),
    }
}

/// The canary's and stable's counts per bucket in one sub-window (or a window), from the
/// guard's cells.
pub fn counts(first: u8, buckets: u8, stable: &Counters, canary: &Counters) -> Vec<[u64; 2]> {
    let first = usize::from(first);
    let end = (first + usize::from(buckets)).min(CELLS);
    (first..end)
        .map(|i| {
            let (c, s) = (canary.outcomes[i], stable.outcomes[i]);
            [u64::from(c.positive), u64::from(s.positive)]
        })
        .collect()
}

/// The plug-in alternative: each bucket's smoothed canary frequency over stable's, from the
/// cumulative counts `[canary, stable]` per bucket of the sub-windows already consumed.
pub fn plug_in_ratios(cumulative: &[[u64; 2]]) -> Vec<f64> {
    let b = cumulative.len() as f64;
    let n_c: f64 = cumulative.iter().map(|x| x[0] as f64).sum();
    let n_s: f64 = cumulative.iter().map(|x| x[1] as f64).sum();
    cumulative
        .iter()
        .map(|&[c, s]| {
            let p_s = (s as f64 + STABLE_PSEUDO) / (n_s + STABLE_PSEUDO * b);
            let p_c = (c as f64 + CANARY_PRIOR * p_s) / (n_c + CANARY_PRIOR);
            (p_c / p_s).clamp(1.0 / MAX_RATIO, MAX_RATIO)
        })
        .collect()
}

/// One sub-window's log-likelihood ratio of where its observations fell, `[canary, stable]`
/// per bucket, under bucket ratios `ratios` against equal distributions. 0 when either arm has
/// no observation (nothing to compare).
pub fn increment(counts: &[[u64; 2]], ratios: &[f64]) -> f64 {
    let n_c: u64 = counts.iter().map(|x| x[0]).sum();
    let n_s: u64 = counts.iter().map(|x| x[1]).sum();
    if n_c == 0 || n_s == 0 {
        return 0.0;
    }
    let (n_c, n_s) = (n_c as f64, n_s as f64);
    let pi = n_c / (n_c + n_s);
    counts
        .iter()
        .zip(ratios)
        .map(|(&[c, s], &r)| {
            let pi_j = r * n_c / (r * n_c + n_s);
            let mut x = 0.0;
            if c > 0 {
                x += c as f64 * (pi_j / pi).ln();
            }
            if s > 0 {
                x += s as f64 * ((1.0 - pi_j) / (1.0 - pi)).ln();
            }
            x
        })
        .sum()
}

/// The population stability index of the canary's histogram against stable's,
/// `Σ (p_c - p_s) ln(p_c / p_s)`, each frequency smoothed by [`PSI_PSEUDO`]; `None` when an
/// arm has no observation. 0.1 is the conventional "moderate shift", 0.25 "major".
pub fn psi(counts: &[[u64; 2]]) -> Option<f64> {
    let b = counts.len() as f64;
    let n_c: u64 = counts.iter().map(|x| x[0]).sum();
    let n_s: u64 = counts.iter().map(|x| x[1]).sum();
    if n_c == 0 || n_s == 0 {
        return None;
    }
    let freq = |x: u64, n: u64| (x as f64 + PSI_PSEUDO) / (n as f64 + PSI_PSEUDO * b);
    Some(
        counts
            .iter()
            .map(|&[c, s]| {
                let (p_c, p_s) = (freq(c, n_c), freq(s, n_s));
                (p_c - p_s) * (p_c / p_s).ln()
            })
            .sum(),
    )
}

/// Feed one completed sub-window's counts `[canary, stable]` per bucket to a distribution
/// test: score it against the alternative learnt from the earlier sub-windows, then learn
/// from it. The statistic goes into every component of the evidence (see the module docs).
pub fn feed(state: &mut CheckState, counts: &[[u64; 2]], bounds: &Bounds) {
    if state.buckets.len() != counts.len() {
        state.buckets = vec![[0; 2]; counts.len()];
    }
    let inc = increment(counts, &plug_in_ratios(&state.buckets));
    state.evidence.add(&[inc; EFFECTS], bounds);
    for (cum, now) in state.buckets.iter_mut().zip(counts) {
        cum[0] = cum[0].saturating_add(now[0]);
        cum[1] = cum[1].saturating_add(now[1]);
    }
    let (n_c, n_s) = counts
        .iter()
        .fold((0u64, 0u64), |(a, b), x| (a + x[0], b + x[1]));
    state.canary_samples = state.canary_samples.saturating_add(n_c);
    state.stable_samples = state.stable_samples.saturating_add(n_s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SplitMix64;

    fn distribution(bounds: &[f64]) -> Distribution {
        Distribution {
            guard: 0,
            source: Source::Outcome {
                outcome: 0,
                upper_bounds: bounds.to_vec(),
            },
            buckets: bounds.len() as u8 + 1,
            first_cell: Some(0),
        }
    }

    #[test]
    fn values_fall_in_the_first_bucket_whose_upper_bound_they_do_not_pass() {
        let d = distribution(&[0.1, 0.3, 0.5]);
        assert_eq!(d.bucket_of_value(-4.0), Some(0));
        assert_eq!(
            d.bucket_of_value(0.1),
            Some(0),
            "upper bounds are inclusive"
        );
        assert_eq!(d.bucket_of_value(0.100001), Some(1));
        assert_eq!(d.bucket_of_value(0.5), Some(2));
        assert_eq!(d.bucket_of_value(0.51), Some(3), "the last bucket is open");
        assert_eq!(d.bucket_of_value(f64::INFINITY), Some(3));
        assert_eq!(d.bucket_of_value(f64::NAN), None);
        let seg = Distribution {
            source: Source::Segment { segment: 0 },
            buckets: 4,
            ..d
        };
        assert_eq!(seg.bucket_of_index(2), 2);
        assert_eq!(seg.bucket_of_index(3), 3, "other");
        assert_eq!(seg.bucket_of_index(u16::MAX), 3);
        assert_eq!(seg.bucket_of_value(0.2), None);
    }

    #[test]
    fn the_increment_is_the_conditional_log_likelihood_ratio() {
        // Equal traffic, one bucket twice as likely on the canary: r = (2, 0.5).
        let counts = [[20, 10], [5, 15]];
        let r = [2.0, 0.5];
        let (pi, p0, p1): (f64, f64, f64) = (0.5, 50.0 / 75.0, 12.5 / 37.5);
        let want = 20.0 * (p0 / pi).ln()
            + 10.0 * ((1.0 - p0) / (1.0 - pi)).ln()
            + 5.0 * (p1 / pi).ln()
            + 15.0 * ((1.0 - p1) / (1.0 - pi)).ln();
        assert!((increment(&counts, &r) - want).abs() < 1e-12);
        assert!(increment(&counts, &r) > 0.0, "the data lean the bet's way");
        assert!(
            increment(&[[10, 20], [15, 5]], &r) < 0.0,
            "and here against it"
        );
        assert_eq!(increment(&counts, &[1.0, 1.0]), 0.0, "no bet, no evidence");
        assert_eq!(increment(&[[3, 0], [2, 0]], &r), 0.0, "one arm alone");
        // A ratio common to every bucket only says how the traffic split, which the test
        // conditions on: it never gains.
        assert!(increment(&counts, &[2.0, 2.0]) < 0.0);
    }

    #[test]
    fn the_plug_in_bets_nothing_before_data_and_follows_a_shift_after() {
        let r = plug_in_ratios(&[[0, 0]; 4]);
        assert!(r.iter().all(|x| (x - 1.0).abs() < 1e-12), "{r:?}");
        // Stable uniform, the canary all in bucket 0.
        let r = plug_in_ratios(&[[400, 1000], [0, 1000], [0, 1000], [0, 1000]]);
        assert!(r[0] > 3.0 && r[1] < 0.2, "{r:?}");
        let extreme = plug_in_ratios(&[[100_000, 1], [0, 100_000]]);
        assert!(
            (extreme[0] - MAX_RATIO).abs() < 1e-12 && (extreme[1] - 1.0 / MAX_RATIO).abs() < 1e-12
        );
    }

    #[test]
    fn psi_is_zero_for_equal_histograms_and_grows_with_the_shift() {
        assert!(psi(&[[10, 100], [30, 300], [60, 600]]).unwrap().abs() < 1e-3);
        let small = psi(&[[12, 100], [30, 300], [58, 600]]).unwrap();
        let large = psi(&[[40, 100], [30, 300], [30, 600]]).unwrap();
        assert!(0.0 < small && small < large, "{small} {large}");
        assert_eq!(psi(&[[0, 5], [0, 5]]), None);
    }

    /// Equal arms drift down; a shifted canary climbs past the breach boundary.
    #[test]
    fn the_statistic_falls_for_equal_arms_and_climbs_for_a_shift() {
        let bounds = crate::guard::Params::default().bounds();
        let stable = [0.1, 0.2, 0.4, 0.2, 0.1];
        let shifted = [0.05, 0.15, 0.35, 0.25, 0.2];
        let draw = |rng: &mut SplitMix64, p: &[f64]| {
            let mut u = rng.unit();
            p.iter()
                .position(|q| {
                    u -= q;
                    u < 0.0
                })
                .unwrap_or(p.len() - 1)
        };
        for (canary, climbs) in [(&stable, false), (&shifted, true)] {
            let mut s = CheckState::default();
            let mut rng = SplitMix64(9);
            for _ in 0..400 {
                let mut counts = vec![[0u64; 2]; 5];
                for _ in 0..10 {
                    counts[draw(&mut rng, canary)][0] += 1;
                }
                for _ in 0..90 {
                    counts[draw(&mut rng, &stable)][1] += 1;
                }
                feed(&mut s, &counts, &bounds);
            }
            assert_eq!(s.canary_samples, 4000);
            let stat = s.evidence.mixture();
            if climbs {
                assert!(stat >= bounds.breach, "{stat}");
            } else {
                assert!(stat <= bounds.healthy, "{stat}");
            }
        }
    }
}
