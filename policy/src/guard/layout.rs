//! Which outcome cells of the [`Window`](super::Window) a response counts in.

use super::window::CELLS;
use crate::rollout::Segment;

/// What one outcome cell counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Responses with outcome `outcome` (and positive ones), overall (`segment: None`) or for
    /// one value index of one segment.
    Outcome {
        outcome: u8,
        segment: Option<(u8, u16)>,
    },
    /// Bucket `bucket` of distribution guard `guard`: `positive` counts the bucket's
    /// observations, `total` all of the guard's (see [`super::drift`]).
    Bucket { guard: u16, bucket: u8 },
}

/// Maps model outcomes and distribution buckets to the window's outcome cells: one cell per
/// (outcome, segment value) that some guard watches, one per outcome watched overall, and one
/// per bucket of each distribution guard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub cells: Vec<Cell>,
    /// Guards whose cells did not fit in [`CELLS`] (the compiler refuses such a policy).
    pub unplaced: Vec<u16>,
}

impl Layout {
    /// The cell for `key`, claimed if new; `None` once all [`CELLS`] are taken.
    pub(super) fn cell(&mut self, key: Cell) -> Option<u8> {
        if let Some(i) = self.cells.iter().position(|c| *c == key) {
            return Some(i as u8);
        }
        if self.cells.len() >= CELLS {
            return None;
        }
        self.cells.push(key);
        Some((self.cells.len() - 1) as u8)
    }

    /// `buckets` consecutive cells for distribution guard `guard`; the first, or `None` (and
    /// nothing claimed) when they do not all fit.
    pub(super) fn buckets(&mut self, guard: u16, buckets: u8) -> Option<u8> {
        if self.cells.len() + usize::from(buckets) > CELLS || buckets == 0 {
            return None;
        }
        let first = self.cells.len() as u8;
        self.cells
            .extend((0..buckets).map(|bucket| Cell::Bucket { guard, bucket }));
        Some(first)
    }

    /// The cells a response with outcome `outcome` counts in. `value_of(segment)` gives the
    /// request's value index in that segment (see [`segment_value_index`]).
    pub fn cells_for<'a>(
        &'a self,
        outcome: u8,
        value_of: impl Fn(u8) -> u16 + 'a,
    ) -> impl Iterator<Item = u8> + 'a {
        self.cells
            .iter()
            .enumerate()
            .filter_map(move |(i, cell)| match *cell {
                Cell::Outcome {
                    outcome: o,
                    segment,
                } => (o == outcome && segment.is_none_or(|(s, v)| value_of(s) == v))
                    .then_some(i as u8),
                Cell::Bucket { .. } => None,
            })
    }
}

/// A request's value index in a segment: the position of its value in `values`, or
/// `values.len()` for any other value or none ("other").
pub fn segment_value_index(segment: &Segment, value: Option<&[u8]>) -> u16 {
    let other = segment.values.len().min(usize::from(u16::MAX)) as u16;
    value
        .and_then(|v| segment.values.iter().position(|s| s.as_bytes() == v))
        .map_or(other, |i| i as u16)
}
