//! A fixed latency histogram with log-linear buckets (HdrHistogram's layout): values below
//! `2^SUB_BITS` microseconds get one bucket each, and every octave above is cut into
//! `2^SUB_BITS` equal buckets, so a bucket is never wider than 1/16 (6.25%) of its lower bound.
//! Indexing is integer-only (a leading-zero count and a shift): no floats on the request path.

/// Sub-buckets per octave, as a power of two.
pub const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// The largest octave kept: values of `2^(MAX_OCTAVE + 1)` µs (about 16.8 s) and more land in
/// the last bucket.
const MAX_OCTAVE: u32 = 23;
/// Number of buckets: `SUB` exact ones, then `SUB` per octave from `SUB_BITS` to `MAX_OCTAVE`.
pub const BUCKETS: usize = (MAX_OCTAVE as usize - SUB_BITS as usize + 2) * SUB;

/// The bucket a latency (in microseconds) falls in.
pub fn bucket_of(micros: u64) -> usize {
    if micros < SUB as u64 {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros();
    if octave > MAX_OCTAVE {
        return BUCKETS - 1;
    }
    let shift = octave - SUB_BITS;
    (((shift as usize) << SUB_BITS) + (micros >> shift) as usize).min(BUCKETS - 1)
}

/// The smallest value (µs) in bucket `i`; `lower_bound(BUCKETS)` is the top of the last bucket.
pub fn lower_bound(i: usize) -> u64 {
    let group = i >> SUB_BITS;
    if group == 0 {
        return i as u64;
    }
    let mantissa = (i - ((group - 1) << SUB_BITS)) as u64;
    mantissa << (group - 1)
}

/// Counts per bucket. Saturating, so merging stays associative and never overflows.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    pub counts: [u32; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nonzero: Vec<(u64, u32)> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (lower_bound(i), *c))
            .collect();
        f.debug_struct("Histogram")
            .field("total", &self.total())
            .field("by_lower_bound_us", &nonzero)
            .finish()
    }
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        let c = &mut self.counts[bucket_of(micros)];
        *c = c.saturating_add(1);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// Halve every count (rounding up), so a long-lived reference weighs recent data more.
    pub fn decay(&mut self) {
        for c in self.counts.iter_mut() {
            *c = c.div_ceil(2);
        }
    }

    /// Number of values at or above `micros`, counted exactly when `micros` is a bucket bound.
    pub fn count_at_or_above(&self, micros: u64) -> u64 {
        let from = bucket_of(micros);
        let partial = lower_bound(from) < micros;
        self.counts[from..]
            .iter()
            .skip(usize::from(partial))
            .map(|&c| u64::from(c))
            .sum()
    }

    /// The `q`-quantile in microseconds, interpolated linearly inside its bucket; `None` when
    /// empty or `q` is not in `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            let c = u64::from(c);
            if c > 0 && (below + c) as f64 >= rank {
                let lo = lower_bound(i) as f64;
                let hi = lower_bound(i + 1) as f64;
                let frac = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
                return Some(lo + (hi - lo) * frac);
            }
            below += c;
        }
        Some(lower_bound(BUCKETS) as f64)
    }

    /// The smallest bucket bound at or above `micros`: thresholds taken from here make
    /// [`Histogram::count_at_or_above`] exact.
    pub fn bound_at_or_above(micros: f64) -> u64 {
        if micros.is_nan() || micros <= 0.0 {
            return 0;
        }
        let top = lower_bound(BUCKETS);
        if micros >= top as f64 {
            return top;
        }
        let i = bucket_of(micros.ceil() as u64);
        let lo = lower_bound(i);
        if lo as f64 >= micros {
            lo
        } else {
            lower_bound(i + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        assert_eq!(lower_bound(0), 0);
        for i in 0..BUCKETS {
            let (lo, hi) = (lower_bound(i), lower_bound(i + 1));
            assert!(hi > lo, "bucket {i}");
            assert_eq!(bucket_of(lo), i);
            assert_eq!(bucket_of(hi - 1), i);
            if lo >= SUB as u64 {
                assert!((hi - lo) as f64 / lo as f64 <= 1.0 / SUB as f64 + 1e-12);
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(lower_bound(BUCKETS)), BUCKETS - 1);
    }

    #[test]
    fn quantiles_and_tails() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 10);
        }
        let p99 = h.quantile(0.99).unwrap();
        assert!((p99 / 99_000.0 - 1.0).abs() < 0.07, "{p99}");
        let t = Histogram::bound_at_or_above(p99);
        assert!(t as f64 >= p99 && (t as f64) < p99 * 1.07);
        let above = h.count_at_or_above(t);
        assert_eq!(
            above,
            (1..=10_000u64).filter(|v| v * 10 >= t).count() as u64
        );
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(h.quantile(f64::NAN), None);
    }
}
