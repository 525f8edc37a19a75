//! Windowed per-arm measurements: a ring of [`SLOTS`] sub-windows keyed by time.
//!
//! Each Envoy worker records into its own [`Window`]; on every tick it merges that window into
//! the shared copy (proxy-wasm shared data, compare-and-swap) and clears its own. The shared
//! copy is what [`crate::guard::Rollout::tick`] reads. For that, a window has a fixed-size
//! binary encoding ([`Window::to_bytes`], [`WINDOW_BYTES`]) and a [`Window::merge`] that is
//! commutative and associative: per ring position the newer slot wins, and equal slots add
//! (saturating). Old data ages out because a slot is reused, and ignored when read, once it is
//! more than [`SLOTS`] slot lengths old.

use super::hist::{BUCKETS, Histogram};

/// Sub-windows in the ring. The window spans `SLOTS * slot_ms`.
pub const SLOTS: usize = 8;
/// Outcome cells per arm: one per (outcome, segment value) pair a guard watches (see [`crate::guard::Layout`]).
pub const CELLS: usize = 16;
/// The two arms a rollout measures.
pub const ROLES: usize = 2;

const MAGIC: [u8; 4] = *b"SRNW";
const VERSION: u16 = 1;
const COUNTER_WORDS: usize = 7 + 2 * CELLS + BUCKETS;
const SLOT_BYTES: usize = 8 + ROLES * COUNTER_WORDS * 4;
/// The exact length of [`Window::to_bytes`].
pub const WINDOW_BYTES: usize = 4 + 2 + 4 + SLOTS * SLOT_BYTES;

/// Which side of the comparison an arm is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The plan's stable arm: the baseline.
    Stable = 0,
    /// The arm being rolled out.
    Canary = 1,
}

/// Response classes, by status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2xx.
    Success = 0,
    /// 4xx.
    ClientError = 1,
    /// 5xx.
    ServerError = 2,
    /// 1xx, 3xx and anything outside 100..=599.
    Other = 3,
}

impl Class {
    pub fn of(status: u16) -> Class {
        match status {
            200..=299 => Class::Success,
            400..=499 => Class::ClientError,
            500..=599 => Class::ServerError,
            _ => Class::Other,
        }
    }
}

/// A model outcome count in one cell: how many responses carried the outcome, and how many of
/// those were positive (for example `flagged`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub total: u32,
    pub positive: u32,
}

/// One arm's counts in one sub-window (or summed over several).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u32,
    /// Indexed by [`Class`].
    pub responses: [u32; 4],
    /// 5xx responses Envoy generated itself (no upstream answered); also counted in
    /// `responses`. Other local replies (a direct response, a 4xx from a filter) are not told
    /// apart: the filter asks Envoy only about a 5xx, because asking costs a host call.
    pub local_replies: u32,
    /// Streams reset before a response.
    pub resets: u32,
    /// Request headers to response headers, in microseconds.
    pub latency: Histogram,
    pub outcomes: [Outcomes; CELLS],
}

impl Counters {
    /// Requests that ended: responses of every class plus resets.
    pub fn completed(&self) -> u64 {
        self.responses.iter().map(|&c| u64::from(c)).sum::<u64>() + u64::from(self.resets)
    }

    /// Failed requests: 5xx responses plus resets.
    pub fn errors(&self) -> u64 {
        u64::from(self.responses[Class::ServerError as usize]) + u64::from(self.resets)
    }

    pub fn merge(&mut self, other: &Counters) {
        let add = |a: &mut u32, b: u32| *a = a.saturating_add(b);
        add(&mut self.requests, other.requests);
        for (a, b) in self.responses.iter_mut().zip(other.responses) {
            add(a, b);
        }
        add(&mut self.local_replies, other.local_replies);
        add(&mut self.resets, other.resets);
        self.latency.merge(&other.latency);
        for (a, b) in self.outcomes.iter_mut().zip(other.outcomes) {
            add(&mut a.total, b.total);
            add(&mut a.positive, b.positive);
        }
    }

    fn words(&self) -> impl Iterator<Item = u32> + '_ {
        [self.requests]
            .into_iter()
            .chain(self.responses)
            .chain([self.local_replies, self.resets])
            .chain(self.outcomes.iter().flat_map(|o| [o.total, o.positive]))
            .chain(self.latency.counts.iter().copied())
    }

    fn read(r: &mut Reader<'_>) -> Option<Counters> {
        let mut c = Counters {
            requests: r.u32()?,
            ..Counters::default()
        };
        for x in c.responses.iter_mut() {
            *x = r.u32()?;
        }
        c.local_replies = r.u32()?;
        c.resets = r.u32()?;
        for o in c.outcomes.iter_mut() {
            o.total = r.u32()?;
            o.positive = r.u32()?;
        }
        for x in c.latency.counts.iter_mut() {
            *x = r.u32()?;
        }
        Some(c)
    }
}

/// One sub-window: both arms' counters for `[start_ms, start_ms + slot_ms)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slot {
    /// `start_ms / slot_ms + 1`; 0 marks an empty slot.
    tag: u64,
    pub arms: [Counters; ROLES],
}

impl Slot {
    pub fn arm(&self, role: Role) -> &Counters {
        &self.arms[role as usize]
    }
}

/// The ring. Its length is always [`SLOTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    slot_ms: u32,
    slots: Vec<Slot>,
}

impl Window {
    /// An empty window of `SLOTS` sub-windows of `slot_ms` each (at least 1 ms).
    pub fn new(slot_ms: u32) -> Window {
        Window {
            slot_ms: slot_ms.max(1),
            slots: vec![Slot::default(); SLOTS],
        }
    }

    pub fn slot_ms(&self) -> u32 {
        self.slot_ms
    }

    /// The index of the sub-window holding time `now_ms` (sub-windows are numbered from time 0).
    pub fn slot_index(&self, now_ms: u64) -> u64 {
        now_ms / u64::from(self.slot_ms)
    }

    /// The counters of the sub-window numbered `index`, if the ring still holds it.
    pub fn slot(&self, index: u64) -> Option<&Slot> {
        let slot = &self.slots[(index % SLOTS as u64) as usize];
        (slot.tag == index.saturating_add(1)).then_some(slot)
    }

    /// The counters to record into at `now_ms`, or `None` when that time has aged out.
    pub fn counters_mut(&mut self, now_ms: u64, role: Role) -> Option<&mut Counters> {
        let index = self.slot_index(now_ms);
        let tag = index.saturating_add(1);
        let slot = &mut self.slots[(index % SLOTS as u64) as usize];
        if slot.tag < tag {
            *slot = Slot {
                tag,
                ..Slot::default()
            };
        } else if slot.tag > tag {
            return None;
        }
        Some(&mut slot.arms[role as usize])
    }

    pub fn record_request(&mut self, now_ms: u64, role: Role) {
        if let Some(c) = self.counters_mut(now_ms, role) {
            c.requests = c.requests.saturating_add(1);
        }
    }

    /// A response with its status, latency and whether Envoy generated it locally.
    pub fn record_response(
        &mut self,
        now_ms: u64,
        role: Role,
        status: u16,
        latency_us: u64,
        local: bool,
    ) {
        if let Some(c) = self.counters_mut(now_ms, role) {
            let class = &mut c.responses[Class::of(status) as usize];
            *class = class.saturating_add(1);
            if local {
                c.local_replies = c.local_replies.saturating_add(1);
            }
            c.latency.record(latency_us);
        }
    }

    pub fn record_reset(&mut self, now_ms: u64, role: Role) {
        if let Some(c) = self.counters_mut(now_ms, role) {
            c.resets = c.resets.saturating_add(1);
        }
    }

    /// A model outcome in `cell`; cells at or past [`CELLS`] are not counted.
    pub fn record_outcome(&mut self, now_ms: u64, role: Role, cell: u8, positive: bool) {
        if usize::from(cell) >= CELLS {
            return;
        }
        if let Some(c) = self.counters_mut(now_ms, role) {
            let o = &mut c.outcomes[usize::from(cell)];
            o.total = o.total.saturating_add(1);
            o.positive = o.positive.saturating_add(u32::from(positive));
        }
    }

    /// An observation in bucket `bucket` of a distribution whose `buckets` cells start at
    /// `first`: `positive` in the bucket's cell, `total` in all of them (see
    /// [`super::drift`]). Cells past [`CELLS`] are not counted.
    pub fn record_bucket(&mut self, now_ms: u64, role: Role, first: u8, buckets: u8, bucket: u8) {
        let (first, end) = (
            usize::from(first),
            usize::from(first) + usize::from(buckets),
        );
        if end > CELLS || bucket >= buckets {
            return;
        }
        if let Some(c) = self.counters_mut(now_ms, role) {
            for (i, o) in c.outcomes[first..end].iter_mut().enumerate() {
                o.total = o.total.saturating_add(1);
                if i == usize::from(bucket) {
                    o.positive = o.positive.saturating_add(1);
                }
            }
        }
    }

    /// Add `other` into `self`. Per ring position the newer sub-window wins and equal ones add,
    /// so merging is commutative and associative. Windows with different slot lengths do not
    /// merge (returns `false`).
    pub fn merge(&mut self, other: &Window) -> bool {
        if self.slot_ms != other.slot_ms {
            return false;
        }
        for (a, b) in self.slots.iter_mut().zip(&other.slots) {
            if b.tag > a.tag {
                *a = b.clone();
            } else if b.tag == a.tag && b.tag != 0 {
                for (x, y) in a.arms.iter_mut().zip(&b.arms) {
                    x.merge(y);
                }
            }
        }
        true
    }

    /// Whether nothing was recorded into the window (no sub-window in use).
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| s.tag == 0)
    }

    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = Slot::default());
    }

    /// One arm's counts over the window that ends at `now_ms` (the current sub-window and the
    /// `SLOTS - 1` before it).
    pub fn totals(&self, now_ms: u64, role: Role) -> Counters {
        let current = self.slot_index(now_ms);
        let mut sum = Counters::default();
        for index in current.saturating_sub(SLOTS as u64 - 1)..=current {
            if let Some(slot) = self.slot(index) {
                sum.merge(slot.arm(role));
            }
        }
        sum
    }

    /// The fixed-size encoding ([`WINDOW_BYTES`] long, little-endian).
    /// An unused sub-window (tag 0) is all zeros, so it is left as the zeroed buffer has it:
    /// a window is mostly unused sub-windows, and every worker encodes one each tick.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0; WINDOW_BYTES];
        let (head, slots) = out.split_at_mut(WINDOW_BYTES - SLOTS * SLOT_BYTES);
        head[..4].copy_from_slice(&MAGIC);
        head[4..6].copy_from_slice(&VERSION.to_le_bytes());
        head[6..].copy_from_slice(&self.slot_ms.to_le_bytes());
        for (slot, bytes) in self.slots.iter().zip(slots.chunks_exact_mut(SLOT_BYTES)) {
            if slot.tag == 0 {
                continue;
            }
            let (tag, words) = bytes.split_at_mut(8);
            tag.copy_from_slice(&slot.tag.to_le_bytes());
            let values = slot.arms.iter().flat_map(Counters::words);
            for (w, b) in values.zip(words.chunks_exact_mut(4)) {
                b.copy_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    /// Decode [`Window::to_bytes`]; `None` for anything else, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Option<Window> {
        if bytes.len() != WINDOW_BYTES {
            return None;
        }
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC || r.u16()? != VERSION {
            return None;
        }
        let slot_ms = r.u32()?;
        if slot_ms == 0 {
            return None;
        }
        let mut slots = Vec::with_capacity(SLOTS);
        for _ in 0..SLOTS {
            let tag = r.u64()?;
            if tag == 0 {
                // An unused sub-window: whatever its bytes say is never read (recording into
                // it starts from zero), so skip them and keep it empty.
                r.take(SLOT_BYTES - 8)?;
                slots.push(Slot::default());
                continue;
            }
            let stable = Counters::read(&mut r)?;
            let canary = Counters::read(&mut r)?;
            slots.push(Slot {
                tag,
                arms: [stable, canary],
            });
        }
        Some(Window { slot_ms, slots })
    }
}

/// A cursor over bytes that returns `None` instead of reading past the end.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(crate) fn f64(&mut self) -> Option<f64> {
        Some(f64::from_bits(self.u64()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u64, slot_ms: u32) -> Window {
        let mut w = Window::new(slot_ms);
        let mut x = seed;
        for i in 0..300u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let now = 10_000 + i * 37 + (x >> 60);
            let role = if x & 1 == 0 {
                Role::Stable
            } else {
                Role::Canary
            };
            w.record_request(now, role);
            match (x >> 8) % 5 {
                0 => w.record_reset(now, role),
                1 => w.record_response(now, role, 503, (x >> 20) % 2_000_000, true),
                _ => w.record_response(now, role, 200, (x >> 20) % 200_000, false),
            }
            w.record_outcome(now, role, ((x >> 40) % 17) as u8, x & 4 == 0);
        }
        w
    }

    #[test]
    fn encoding_round_trips_and_has_a_fixed_size() {
        let w = sample(7, 1000);
        let bytes = w.to_bytes();
        assert_eq!(bytes.len(), WINDOW_BYTES);
        assert_eq!(Window::from_bytes(&bytes), Some(w));
        assert_eq!(Window::new(250).to_bytes().len(), WINDOW_BYTES);
    }

    #[test]
    fn an_unused_sub_window_encodes_as_zeros_and_decodes_as_empty() {
        let mut w = Window::new(1000);
        assert!(w.is_empty());
        w.record_request(5_500, Role::Canary);
        assert!(!w.is_empty());
        let mut bytes = w.to_bytes();
        let slot = |i: usize| 10 + i * SLOT_BYTES..10 + (i + 1) * SLOT_BYTES;
        assert!(bytes[slot(0)].iter().all(|&b| b == 0));
        assert_eq!(bytes[slot(5)][..8], 6u64.to_le_bytes());
        // Counts under a zero tag are never read; decoding drops them.
        bytes[slot(2)][100] = 7;
        assert_eq!(Window::from_bytes(&bytes), Some(w));
    }

    #[test]
    fn decoding_garbage_is_none_not_a_panic() {
        let bytes = sample(3, 1000).to_bytes();
        assert_eq!(Window::from_bytes(&[]), None);
        assert_eq!(Window::from_bytes(&bytes[..bytes.len() - 1]), None);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Window::from_bytes(&longer), None);
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert_eq!(Window::from_bytes(&bad), None);
        let mut zero_slot = bytes.clone();
        zero_slot[6..10].copy_from_slice(&[0; 4]);
        assert_eq!(Window::from_bytes(&zero_slot), None);
        // Any flip past the header still decodes to some window.
        let mut x = 1u64;
        for _ in 0..200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut b = bytes.clone();
            let at = 10 + (x >> 33) as usize % (b.len() - 10);
            b[at] = (x >> 13) as u8;
            assert!(Window::from_bytes(&b).is_some());
        }
    }

    #[test]
    fn merge_is_associative_and_commutative() {
        let (a, b, c) = (sample(1, 1000), sample(2, 1000), sample(3, 1000));
        let mut ab_c = a.clone();
        ab_c.merge(&b);
        ab_c.merge(&c);
        let mut bc = b.clone();
        bc.merge(&c);
        let mut a_bc = a.clone();
        a_bc.merge(&bc);
        assert_eq!(ab_c, a_bc);
        let mut ba = b.clone();
        ba.merge(&a);
        let mut ab = a.clone();
        ab.merge(&b);
        assert_eq!(ab, ba);
        assert!(!ab.merge(&Window::new(999)));
    }

    #[test]
    fn merge_of_worker_deltas_equals_recording_in_one_place() {
        let mut one = Window::new(1000);
        let mut shared = Window::new(1000);
        let mut workers = [Window::new(1000), Window::new(1000), Window::new(1000)];
        for i in 0..3000u64 {
            let now = i * 7;
            let role = if i % 10 == 0 {
                Role::Canary
            } else {
                Role::Stable
            };
            one.record_response(now, role, 200 + (i % 4) as u16 * 100, i % 977, false);
            workers[(i % 3) as usize].record_response(
                now,
                role,
                200 + (i % 4) as u16 * 100,
                i % 977,
                false,
            );
            if i % 50 == 49 {
                for w in workers.iter_mut() {
                    shared.merge(w);
                    w.clear();
                }
            }
        }
        for w in workers.iter_mut() {
            shared.merge(w);
        }
        assert_eq!(shared, one);
    }

    #[test]
    fn a_bucket_counts_in_its_cell_and_in_every_total_of_its_distribution() {
        let mut w = Window::new(1000);
        w.record_bucket(10, Role::Canary, 3, 4, 2);
        w.record_bucket(20, Role::Canary, 3, 4, 0);
        w.record_bucket(30, Role::Canary, 3, 4, 4);
        w.record_bucket(30, Role::Canary, 14, 4, 0);
        let c = w.totals(999, Role::Canary);
        let cells: Vec<(u32, u32)> = c.outcomes[2..8]
            .iter()
            .map(|o| (o.positive, o.total))
            .collect();
        assert_eq!(cells, [(0, 0), (1, 2), (0, 2), (1, 2), (0, 2), (0, 0)]);
    }

    #[test]
    fn old_data_ages_out() {
        let mut w = Window::new(1000);
        w.record_request(500, Role::Canary);
        w.record_request(1500, Role::Canary);
        assert_eq!(w.totals(1999, Role::Canary).requests, 2);
        // The window ending at slot 8 no longer covers slot 0, slot 9 no longer covers slot 1.
        assert_eq!(w.totals(8_000, Role::Canary).requests, 1);
        assert_eq!(w.totals(9_000, Role::Canary).requests, 0);
        // Recording far ahead reuses the ring position; recording into an aged-out time is dropped.
        w.record_request(8_100, Role::Canary);
        assert!(w.slot(0).is_none());
        w.record_request(100, Role::Canary);
        assert_eq!(w.totals(8_100, Role::Canary).requests, 2);
        // A merge cannot resurrect an aged-out sub-window either.
        let mut old = Window::new(1000);
        old.record_request(200, Role::Canary);
        w.merge(&old);
        assert!(w.slot(0).is_none());
    }
}
