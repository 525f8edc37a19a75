//! Which outcome cells of the [`Window`](super::Window) a response counts in.

use super::window::CELLS;
use crate::rollout::Segment;

/// Maps model outcomes to the window's outcome cells: one cell per (outcome, segment value)
/// that some guard watches, plus one per outcome watched overall.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// `(outcome, Some((segment, value index)))`, or `(outcome, None)` for the overall rate.
    pub cells: Vec<(u8, Option<(u8, u16)>)>,
}

impl Layout {
    /// The cell for `key`, claimed if new; `None` once all [`CELLS`] are taken.
    pub(super) fn cell(&mut self, key: (u8, Option<(u8, u16)>)) -> Option<u8> {
        if let Some(i) = self.cells.iter().position(|c| *c == key) {
            return Some(i as u8);
        }
        if self.cells.len() >= CELLS {
            return None;
        }
        self.cells.push(key);
        Some((self.cells.len() - 1) as u8)
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
            .filter_map(move |(i, &(o, seg))| {
                (o == outcome && seg.is_none_or(|(s, v)| value_of(s) == v)).then_some(i as u8)
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
