//! Bytes read a word at a time: eight bytes of a slice loaded as one `u64`, and the bytes of it
//! equal to a given byte found with a few integer operations on the whole word (SWAR, "SIMD
//! within a register").
//!
//! The request path searches every `:path` for its `?`, and the query string and the cookie
//! header for their separators and `=`s: a byte-at-a-time loop there was a sixth of a
//! decision's instructions, and `memchr` (not a dependency) dispatches on every call, which
//! costs as much as it saves on values this short. The string table and path prefixes compare
//! strings a word at a time too. They all load words here, one way: lane `i` of a word (its
//! bits `8 * i..8 * i + 8`, little-endian) holds the word's `i`th byte, so that the lowest lane
//! marked is the first byte.

/// `byte` in every lane.
const fn splat(byte: u8) -> u64 {
    u64::from_le_bytes([byte; 8])
}

const ONES: u64 = splat(0x01);
const HIGHS: u64 = splat(0x80);
const LOW7: u64 = splat(0x7f);

/// The first eight bytes of `bytes` as a word.
#[inline(always)]
pub(crate) fn first_word(bytes: &[u8]) -> Option<u64> {
    bytes.first_chunk().map(|b| u64::from_le_bytes(*b))
}

/// The last eight bytes of `bytes` as a word.
#[inline(always)]
pub(crate) fn last_word(bytes: &[u8]) -> Option<u64> {
    bytes.last_chunk().map(|b| u64::from_le_bytes(*b))
}

/// A slice shorter than eight bytes as one word that holds every byte of it, without a loop
/// over them or a copy: four to seven bytes as their first four (lanes 0 to 3) and their last
/// four (lanes 4 to 7), which overlap; one to three as their first, middle and last byte (lanes
/// 0 to 2, so that lane `i < len` holds byte `i`; lanes from 3 up are zero). `None` for longer
/// and empty slices.
#[inline(always)]
pub(crate) fn short_word(bytes: &[u8]) -> Option<u64> {
    if bytes.len() >= 8 {
        None
    } else if let (Some(first), Some(last)) = (bytes.first_chunk(), bytes.last_chunk()) {
        Some(u64::from(u32::from_le_bytes(*first)) | u64::from(u32::from_le_bytes(*last)) << 32)
    } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
        let middle = bytes[bytes.len() / 2];
        Some(u64::from(first) | u64::from(middle) << 8 | u64::from(last) << 16)
    } else {
        None
    }
}

/// The first (up to) eight bytes of `bytes` as a word, zero past its end, and the mask of the
/// lanes they fill: whether a word starts with them is `(word ^ head) & mask == 0`.
pub(crate) fn head(bytes: &[u8]) -> (u64, u64) {
    let n = bytes.len().min(8);
    let mut head = [0; 8];
    head[..n].copy_from_slice(&bytes[..n]);
    (u64::from_le_bytes(head), lanes_below(n))
}

/// Every bit of lanes `0..n`, `n` at most 8.
#[inline(always)]
fn lanes_below(n: usize) -> u64 {
    u64::MAX.checked_shr(64 - 8 * n as u32).unwrap_or(0)
}

/// Eight lanes of a slice, as [`scan`] hands them over, and where each lane's byte is in the
/// slice. Each lane that holds a byte of the slice is one of `valid`; lane `l` holds the byte
/// at `at + l`, or at `at + l - gap` for `l >= 4` (the overlapping halves of a short word).
/// Where lanes 4 and up hold an index below `at + 4`, lanes below them hold it too: the lowest
/// lane marked holds the first index marked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Word {
    bits: u64,
    at: usize,
    gap: usize,
    /// The high bit of each lane that holds a byte of the slice.
    valid: u64,
}

impl Word {
    #[inline(always)]
    fn full(bits: u64, at: usize) -> Word {
        Word {
            bits,
            at,
            gap: 0,
            valid: HIGHS,
        }
    }

    /// The index in the slice of the byte in `lane`.
    #[inline(always)]
    fn index(self, lane: u32) -> usize {
        let lane = lane as usize / 8;
        self.at + lane - if lane >= 4 { self.gap } else { 0 }
    }

    /// The index of the first `byte` in this word.
    #[inline(always)]
    pub(crate) fn first(self, byte: u8) -> Option<usize> {
        // A lane equal to `byte` is zero in `x`, and borrows when one is subtracted from it; its
        // high bit is set in `found`. So is that of a lane of 0x01 that a lower lane's borrow
        // reaches, but only above a true match: the lowest bit set is a match. Fewer operations
        // than the exact marks of `all`.
        let x = self.bits ^ splat(byte);
        let found = x.wrapping_sub(ONES) & !x & self.valid;
        (found != 0).then(|| self.index(found.trailing_zeros()))
    }

    /// The indices of every `byte` in this word. The first time each is given, it is given in
    /// order, after every index given before it; an index can then be given again, by the upper
    /// lanes of a short word, or by a slice's last word, which overlaps the one before it. So
    /// the first index given that a test holds for is the first in the slice.
    #[inline(always)]
    pub(crate) fn all(self, byte: u8) -> impl Iterator<Item = usize> {
        // Exact: the low seven bits of each lane added to 0x7f carry into its high bit unless
        // they are zero, and do not carry past it; with the lane's own high bit, that marks
        // every lane that differs from `byte`.
        let x = self.bits ^ splat(byte);
        let mut found = !((x & LOW7).wrapping_add(LOW7) | x | LOW7) & self.valid;
        std::iter::from_fn(move || {
            let lane = (found != 0).then(|| found.trailing_zeros())?;
            found &= found - 1;
            Some(self.index(lane))
        })
    }
}

/// Hand `visit` the words that cover `bytes`, from the first byte on, until it returns a
/// value: the slice's eight-byte words, then its last eight bytes (overlapping the words
/// before, whose bytes `visit` has seen); a shorter slice as one [`short_word`]; an empty one
/// as none.
#[inline(always)]
pub(crate) fn scan<T>(bytes: &[u8], mut visit: impl FnMut(Word) -> Option<T>) -> Option<T> {
    if let Some(last) = last_word(bytes) {
        let (words, _) = bytes.as_chunks::<8>();
        for (i, word) in words.iter().enumerate() {
            if let found @ Some(_) = visit(Word::full(u64::from_le_bytes(*word), 8 * i)) {
                return found;
            }
        }
        visit(Word::full(last, bytes.len() - 8))
    } else {
        let bits = short_word(bytes)?;
        let len = bytes.len();
        visit(if len >= 4 {
            Word {
                bits,
                at: 0,
                gap: 8 - len,
                valid: HIGHS,
            }
        } else {
            Word {
                bits,
                at: 0,
                gap: 0,
                valid: HIGHS & lanes_below(len),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first index of `byte` that `scan` finds, and the indices that `Word::all` gives,
    /// each the first time it is given, after checking that only indices of `byte` are given
    /// and that each given again was given before.
    fn scanned(bytes: &[u8], byte: u8) -> (Option<usize>, Vec<usize>) {
        let first = scan(bytes, |w| w.first(byte));
        let mut all: Vec<usize> = Vec::new();
        scan(bytes, |w| {
            for i in w.all(byte) {
                assert_eq!(bytes[i], byte, "{bytes:?} {byte:#x}: {i}");
                match all.last() {
                    Some(&last) if i <= last => {
                        assert!(all.contains(&i), "{bytes:?} {byte:#x}: {i} after {all:?}")
                    }
                    _ => all.push(i),
                }
            }
            None::<()>
        });
        (first, all)
    }

    /// `scanned` agrees with a byte-at-a-time search.
    fn assert_finds(bytes: &[u8], byte: u8) {
        let all: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == byte).collect();
        let want = (all.first().copied(), all);
        assert_eq!(scanned(bytes, byte), want, "{bytes:?} {byte:#x}");
    }

    /// For every byte value and every length up to 16 (one word, a word and a tail of every
    /// length, two words): the byte nowhere, at every position, and at every position with more
    /// of it after, among neighbours that can fool the word arithmetic: one below and one above
    /// it, 0x01 (a borrow's next victim), its high bit flipped, and 0x00 and 0xff.
    #[test]
    fn finds_every_position_of_every_byte() {
        for byte in 0..=255u8 {
            let fillers = [
                byte.wrapping_sub(1),
                byte.wrapping_add(1),
                byte ^ 0x80,
                byte ^ 0x01,
                0x00,
                0x01,
                0xff,
            ];
            // Each filler that is not `byte` itself, and all of them in turn.
            let backgrounds = |len: usize| {
                let mut out: Vec<Vec<u8>> = fillers
                    .iter()
                    .filter(|&&f| f != byte)
                    .map(|&f| vec![f; len])
                    .collect();
                let mixed = fillers.iter().filter(|&&f| f != byte).cycle();
                out.push(mixed.take(len).copied().collect());
                out
            };
            for len in 0..=16 {
                for background in backgrounds(len) {
                    assert_eq!(
                        scanned(&background, byte),
                        (None, vec![]),
                        "{background:?} {byte:#x}"
                    );
                    for at in 0..len {
                        let mut once = background.clone();
                        once[at] = byte;
                        assert_finds(&once, byte);
                        for step in 1..=3 {
                            let mut many = once.clone();
                            many.iter_mut()
                                .skip(at)
                                .step_by(step)
                                .for_each(|b| *b = byte);
                            assert_finds(&many, byte);
                        }
                    }
                }
            }
        }
    }

    /// Longer slices, of many words and every tail: the byte in the last word only (where it
    /// overlaps the word before), in the first, in both, and everywhere.
    #[test]
    fn finds_bytes_across_words_and_tails() {
        for byte in [0x00, b'=', b';', 0x7f, 0x80, 0xff] {
            let other = byte ^ 0x01;
            for len in 17..=40 {
                for ats in [
                    vec![len - 1],
                    vec![len - 8],
                    vec![len - 9, len - 1],
                    vec![0, len - 1],
                    (0..len).collect(),
                ] {
                    let mut bytes = vec![other; len];
                    ats.iter().for_each(|&at| bytes[at] = byte);
                    assert_finds(&bytes, byte);
                }
            }
        }
    }

    /// Every byte value once in 256 bytes (32 words), in descending order, and the slice cut to
    /// lengths that leave each kind of word and tail: each value is found where it is, or not at
    /// all once cut off.
    #[test]
    fn finds_every_byte_value_among_all_the_others() {
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        for len in [0, 1, 3, 4, 7, 8, 9, 100, 255, 256] {
            for byte in 0..=255u8 {
                assert_finds(&bytes[..len], byte);
            }
        }
    }

    #[test]
    fn a_short_word_holds_every_byte_of_a_short_slice() {
        for len in 0..=16usize {
            let bytes: Vec<u8> = (0..len as u8).map(|i| 0xa0 + i).collect();
            let lanes = short_word(&bytes).map(u64::to_le_bytes);
            let want = match len {
                0 | 8.. => None,
                1 => Some([0xa0, 0xa0, 0xa0, 0, 0, 0, 0, 0]),
                2 => Some([0xa0, 0xa1, 0xa1, 0, 0, 0, 0, 0]),
                3 => Some([0xa0, 0xa1, 0xa2, 0, 0, 0, 0, 0]),
                4..=7 => {
                    let (first, last) = (&bytes[..4], &bytes[len - 4..]);
                    Some([first, last].concat().try_into().unwrap())
                }
            };
            assert_eq!(lanes, want, "{len}");
        }
    }

    #[test]
    fn words_load_lanes_in_byte_order() {
        let bytes: Vec<u8> = (1..=10).collect();
        assert_eq!(first_word(&bytes), Some(0x0807_0605_0403_0201));
        assert_eq!(last_word(&bytes), Some(0x0a09_0807_0605_0403));
        assert_eq!(first_word(&bytes[..7]), None);
        assert_eq!(last_word(&bytes[..7]), None);
        for n in 0..=10 {
            let (word, mask) = head(&bytes[..n]);
            let lanes = n.min(8);
            let mut want = [0; 8];
            want[..lanes].copy_from_slice(&bytes[..lanes]);
            assert_eq!(word, u64::from_le_bytes(want), "{n}");
            assert_eq!(mask, lanes_below(lanes), "{n}");
            assert_eq!(mask.count_ones() as usize, 8 * lanes, "{n}");
            assert_eq!(mask.trailing_ones() as usize, 8 * lanes, "{n}");
        }
    }
}
