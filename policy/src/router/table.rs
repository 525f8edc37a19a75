//! A fixed set of byte strings (the header, cookie and parameter names a plan reads, or the
//! values of an `any_of` test), built once per plan and searched for every name a request
//! carries.
//!
//! Hand-rolled rather than a `HashMap` or a sorted `Vec<String>`, because this is the request
//! path's inner loop: most names a request carries are not in the set (`host`, `user-agent`),
//! and on this path hashing a name with SipHash, or calling `memcmp` to compare one, costs more
//! than the rest of the lookup. A one-word filter rejects most strings that no entry can be;
//! the entries are grouped by length and kept in byte order within a length, and searched by a
//! [`Key`] that for strings up to 16 bytes (most header names) is the string itself, so that a
//! search compares integers.
//!
//! Tables are built from strings in byte order (a plan's `any_of` lists are sorted, and the
//! router keeps its names so), which with big-endian keys is also key order: building one sorts
//! nothing, and so brings no sorting code into the filter.

use super::bytes;

/// What a table gives for a string it holds: the slot of a name (a set's members have no use
/// for theirs).
pub(super) type Slot = u8;

/// Strings of this length or more share the last length group.
const LONG: usize = 64;

/// Up to this length a string's [`Key`] is the whole string.
const WHOLE: usize = 16;

#[derive(Debug, Clone)]
pub(super) struct StringTable {
    /// One bit per [`filter_bit`] of an entry.
    filter: u64,
    /// For each filter bit, the entry that alone has it, when it is at most [`WHOLE`] bytes
    /// long: a string the filter passes is then compared with it, without finding its length
    /// group or searching it. Most of a request's names that pass are in the table (`:path`,
    /// `cookie`), and names are few.
    only: Box<[Only; 64]>,
    /// The entries of length group `g` are `entries[starts[g]..starts[g + 1]]`.
    starts: Vec<u32>,
    entries: Vec<Entry>,
}

/// A copy of the one entry on a filter bit, or [`Only::SEARCH`].
#[derive(Debug, Clone, Copy)]
struct Only {
    key: Key,
    /// The entry's length, or `SEARCH` when several entries share the bit or the one is longer
    /// than [`WHOLE`].
    len: u8,
    slot: Slot,
}

impl Only {
    const SEARCH: Only = Only {
        key: Key { head: 0, tail: 0 },
        len: u8::MAX,
        slot: 0,
    };
}

#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    /// Compared only for strings longer than their key.
    bytes: Vec<u8>,
    slot: Slot,
}

/// Up to 16 of a string's bytes, big-endian: its first and last eight, or for a shorter string
/// one word that still holds all of it ([`bytes::short_word`]). Among strings of one length up
/// to [`WHOLE`] bytes, `(head, tail)` is the string itself and orders as its bytes do; for
/// longer strings `head` orders as their first eight bytes do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    head: u64,
    tail: u64,
}

impl Key {
    #[inline]
    fn of(s: &[u8]) -> Key {
        // The words' lanes hold the bytes in order from the lowest: swapped, the first byte is
        // the most significant, and keys order as the strings do. (A `Key` built in each branch:
        // built once after them, callgrind counted 2 more instructions per decision.)
        if let (Some(head), Some(tail)) = (bytes::first_word(s), bytes::last_word(s)) {
            Key {
                head: head.swap_bytes(),
                tail: tail.swap_bytes(),
            }
        } else {
            Key {
                head: bytes::short_word(s).unwrap_or(0).swap_bytes(),
                tail: 0,
            }
        }
    }
}

impl StringTable {
    /// A table of distinct strings, given in byte order, each with its slot.
    pub(super) fn new(strings: &[(&[u8], Slot)]) -> StringTable {
        debug_assert!(
            strings.is_sorted_by(|a, b| a.0 < b.0),
            "distinct, in byte order"
        );
        let mut entries = Vec::with_capacity(strings.len());
        let mut starts = vec![0];
        // Taking each length group in turn keeps every group in byte order.
        for group in 0..=LONG {
            let members = strings.iter().filter(|(s, _)| s.len().min(LONG) == group);
            entries.extend(members.map(|&(bytes, slot)| Entry {
                key: Key::of(bytes),
                bytes: bytes.to_vec(),
                slot,
            }));
            starts.push(entries.len() as u32);
        }
        let mut only = Box::new([Only::SEARCH; 64]);
        let mut sharers = [0usize; 64];
        for e in &entries {
            sharers[filter_index(&e.bytes) as usize] += 1;
        }
        for e in &entries {
            let bit = filter_index(&e.bytes) as usize;
            if sharers[bit] == 1 && e.bytes.len() <= WHOLE {
                only[bit] = Only {
                    key: e.key,
                    len: e.bytes.len() as u8,
                    slot: e.slot,
                };
            }
        }
        StringTable {
            filter: entries
                .iter()
                .fold(0, |bits, e| bits | filter_bit(&e.bytes)),
            only,
            starts,
            entries,
        }
    }

    /// A table that only answers whether it holds a string; of distinct strings in byte order.
    pub(super) fn set<'a>(strings: impl Iterator<Item = &'a [u8]>) -> StringTable {
        let strings: Vec<(&[u8], Slot)> = strings.map(|s| (s, 0)).collect();
        StringTable::new(&strings)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline(always)]
    pub(super) fn contains(&self, s: &[u8]) -> bool {
        self.get(s).is_some()
    }

    /// The slot of `s`, if the table holds it.
    #[inline(always)]
    pub(super) fn get(&self, s: &[u8]) -> Option<Slot> {
        let bit = filter_index(s);
        if self.filter & 1 << bit == 0 {
            return None;
        }
        let only = &self.only[bit as usize % 64];
        if only.len != Only::SEARCH.len {
            // The one entry on the bit, of at most `WHOLE` bytes.
            return (usize::from(only.len) == s.len() && only.key == Key::of(s))
                .then_some(only.slot);
        }
        if s.len() <= WHOLE {
            self.search_by_key(s)
        } else {
            self.search_by_bytes(s)
        }
    }

    /// The members of `s`'s length group.
    #[inline(always)]
    fn group(&self, s: &[u8]) -> &[Entry] {
        let group = s.len().min(LONG);
        match self.starts.get(group..group + 2) {
            Some(&[start, end]) => self
                .entries
                .get(start as usize..end as usize)
                .unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Search for a string up to [`WHOLE`] bytes long, whose key is the whole string: integer
    /// compares only, no library call, so that it can inline into the request's pass.
    #[inline]
    fn search_by_key(&self, s: &[u8]) -> Option<Slot> {
        let candidates = self.group(s);
        let key = Key::of(s);
        // A group of names is a few entries, where comparing each beats the branches of a
        // binary search; a long `any_of` list is searched.
        if candidates.len() <= 8 {
            return candidates.iter().find(|e| e.key == key).map(|e| e.slot);
        }
        let found =
            candidates.binary_search_by(|e| (e.key.head, e.key.tail).cmp(&(key.head, key.tail)));
        found.ok().map(|i| candidates[i].slot)
    }

    /// Search for a string longer than its key: rare, and compared byte for byte.
    #[inline(never)]
    fn search_by_bytes(&self, s: &[u8]) -> Option<Slot> {
        let candidates = self.group(s);
        let head = Key::of(s).head;
        let found =
            candidates.binary_search_by(|e| e.key.head.cmp(&head).then_with(|| (*e.bytes).cmp(s)));
        found.ok().map(|i| candidates[i].slot)
    }
}

/// A bit for a string's length and last byte. Names of one length are common (`x-tester-1`,
/// `user-agent`) and so are names with one last byte (`-id`), but rarely both.
#[inline(always)]
fn filter_bit(s: &[u8]) -> u64 {
    1 << filter_index(s)
}

/// The index of [`filter_bit`].
#[inline(always)]
fn filter_index(s: &[u8]) -> u32 {
    let last = s.last().copied().unwrap_or(0);
    (s.len() as u32)
        .wrapping_mul(7)
        .wrapping_add(u32::from(last))
        % 64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `strings` (sorted first, as tables take them), each with its index as slot.
    fn table_of(strings: &[String]) -> StringTable {
        let mut with_slots: Vec<(&[u8], Slot)> = strings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_bytes(), i as Slot))
            .collect();
        with_slots.sort();
        StringTable::new(&with_slots)
    }

    #[test]
    fn finds_exactly_its_strings() {
        let long = |i: u32| {
            format!("x-a-very-long-header-name-{i}-and-then-some-more-to-pass-64-bytes-{i}")
        };
        let others = [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "cookie",
            ":path",
            "x-long-name-1-abcdefghijk",
            "x-long-name-2-abcdefghijk",
        ];
        // Forty names of lengths 10 and 11: groups past eight entries are binary-searched.
        let strings: Vec<String> = (0..40)
            .map(|i| format!("x-tester-{i}"))
            .chain((0..5).map(long))
            .chain(others.map(String::from))
            .collect();
        let table = table_of(&strings);
        for (i, s) in strings.iter().enumerate() {
            assert_eq!(table.get(s.as_bytes()), Some(i as Slot), "{s:?}");
        }
        let misses = [
            "x-tester-40",
            "x-tester-",
            "b",
            "ac",
            "abd",
            "abce",
            "Cookie",
            "x-long-name-3-abcdefghijk",
            "host",
        ];
        for miss in misses
            .map(String::from)
            .into_iter()
            .chain([long(5), long(1) + "x"])
        {
            assert_eq!(table.get(miss.as_bytes()), None, "{miss}");
        }
        assert_eq!(table.get(&[0xff, 0, 1]), None);
        let empty = StringTable::new(&[]);
        assert!(empty.is_empty());
        assert_eq!(empty.get(b""), None);
        assert_eq!(empty.get(b"anything"), None);
    }

    #[test]
    fn long_strings_that_share_their_first_and_last_eight_bytes() {
        // Twelve of one length (binary-searched) and twelve of 64 bytes and more.
        let strings: Vec<String> = (0..12)
            .map(|i| format!("a-value-{i:03}-suffix!"))
            .chain((0..12).map(|i| format!("a-value-{}{i}-suffix!", "x".repeat(60 + i % 3))))
            .collect();
        let table = table_of(&strings);
        for (i, s) in strings.iter().enumerate() {
            assert_eq!(table.get(s.as_bytes()), Some(i as Slot), "{s:?}");
        }
        let misses = [
            "a-value-012-suffix!".to_string(),
            format!("a-value-{}0-suffix!", "x".repeat(61)),
        ];
        for miss in misses {
            assert_eq!(table.get(miss.as_bytes()), None, "{miss}");
        }
    }

    #[test]
    fn a_string_on_the_filter_bit_of_one_entry_is_compared_with_it() {
        let strings: Vec<String> = ["abcda", ":path", "cookie", "x-user-id"]
            .map(String::from)
            .into();
        let table = table_of(&strings);
        for (i, s) in strings.iter().enumerate() {
            let only = table.only[filter_index(s.as_bytes()) as usize];
            assert_eq!(usize::from(only.len), s.len(), "{s:?}");
            assert_eq!(table.get(s.as_bytes()), Some(i as Slot), "{s:?}");
        }
        // On the bit of an entry that alone has it: of its length and last byte, of another
        // length (7 * 6 + b'Z' and 7 * 5 + b'a' agree modulo 64), longer than a key (69 bytes).
        let long = format!("{}a", "x".repeat(68));
        let misses = [
            "abcea",
            "bbcda",
            "abcdeZ",
            ":pbth",
            "x-user-Id",
            long.as_str(),
        ];
        for miss in misses {
            assert!(
                table.filter & filter_bit(miss.as_bytes()) != 0,
                "{miss:?} passes the filter"
            );
            assert_eq!(table.get(miss.as_bytes()), None, "{miss:?}");
        }
    }

    #[test]
    fn a_set_holds_its_members() {
        let set = StringTable::set(["", "a", "b"].iter().map(|s| s.as_bytes()));
        assert!(set.contains(b"a") && set.contains(b"b") && set.contains(b""));
        assert!(!set.contains(b"c") && !set.contains(b"ab"));
    }
}
