//! A header map with Envoy's semantics: keys are lower-cased on every operation, pseudo-headers
//! (`:path`, ...) stay in front of the others, `replace` removes every entry for the key and
//! appends one, `get` sees the first entry.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// An ordered multimap of HTTP fields, as Envoy keeps them.
///
/// Keys (lower-cased) and values live back to back in one buffer, so that building a map (the
/// harness does for every request and response) costs a couple of allocations rather than two
/// per field. Bytes of removed entries stay in the buffer until the map is cleared.
#[derive(Clone, Default)]
pub struct HeaderMap {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    key: Range<usize>,
    value: Range<usize>,
}

/// `key` as the map stores keys: lower-cased, as lossy text if it is not UTF-8. Borrowed when
/// it already is, as every key a filter asks for is, so that a lookup allocates nothing.
fn stored_form(key: &[u8]) -> Cow<'_, [u8]> {
    if is_stored_form(key) {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(
            String::from_utf8_lossy(key)
                .to_ascii_lowercase()
                .into_bytes(),
        )
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = ONES * 0x80;

/// Each byte of `word` lower-cased, for bytes below 0x80: adding `0x80 - c` to such a byte sets
/// its high bit exactly when the byte is at least `c`, and no sum carries into the next byte.
fn lower8(word: u64) -> u64 {
    let at_least_a = word + ONES * u64::from(0x80 - b'A');
    let above_z = word + ONES * u64::from(0x80 - b'Z' - 1);
    let upper = at_least_a & !above_z & HIGH_BITS;
    word | (upper >> 2)
}

/// Whether `key` is stored as it is: ASCII without capitals. Eight bytes at a time, because it
/// runs for every key stored and looked up, a dozen or more per request: a byte at a time it was
/// the host's costliest step per request in the lifecycle bench.
fn is_stored_form(key: &[u8]) -> bool {
    let stored = |word: u64| word & HIGH_BITS == 0 && lower8(word) == word;
    match key.last_chunk::<8>() {
        None => key.iter().all(|&b| b.is_ascii() && !b.is_ascii_uppercase()),
        Some(&last) => {
            let mut chunks = key.chunks_exact(8);
            chunks.all(|c| stored(u64::from_le_bytes(c.try_into().expect("eight bytes"))))
                && stored(u64::from_le_bytes(last))
        }
    }
}

impl HeaderMap {
    pub fn new() -> Self {
        HeaderMap::default()
    }

    /// Build from pairs, lower-casing keys and moving pseudo-headers first, as a codec would.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Self {
        HeaderMap::new().refilled(pairs)
    }

    /// [`HeaderMap::from_pairs`] in this map's buffers: a map reused for the next request
    /// allocates nothing.
    pub(crate) fn refilled<K: AsRef<[u8]>, V: AsRef<[u8]>>(mut self, pairs: &[(K, V)]) -> Self {
        self.clear();
        let size: usize = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum();
        // Room for what a test's builder or the filter adds (a dozen headers), so that adding
        // does not move the map: growing it cost more than the rest of building it.
        self.bytes.reserve(size + 512);
        self.entries.reserve(pairs.len() + 16);
        for (k, v) in pairs {
            self.add(k.as_ref(), v.as_ref());
        }
        self
    }

    fn key(&self, e: &Entry) -> &[u8] {
        &self.bytes[e.key.clone()]
    }

    fn value(&self, e: &Entry) -> &[u8] {
        &self.bytes[e.value.clone()]
    }

    fn store(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    /// Store `key` lower-cased (as lossy text if it is not UTF-8, so that keys read as `&str`).
    fn store_key(&mut self, key: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        if is_stored_form(key) {
            // Nearly every name (HTTP/2 and HTTP/3 require lower case).
            self.bytes.extend_from_slice(key);
        } else if key.is_ascii() {
            self.bytes.extend_from_slice(key);
            self.bytes[start..].make_ascii_lowercase();
        } else {
            let text = String::from_utf8_lossy(key).to_ascii_lowercase();
            self.bytes.extend_from_slice(text.as_bytes());
        }
        start..self.bytes.len()
    }

    /// Where the entries for `key` (in its stored form) are: lengths are compared first, so
    /// most entries are passed over without reading their bytes.
    fn positions<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
        self.entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.key.len() == key.len() && self.key(e) == key)
            .map(|(i, _)| i)
    }

    /// Number of entries (what Envoy passes as `num_headers`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of key and value lengths, Envoy's `byteSize()`.
    pub fn byte_size(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.key.len() + e.value.len())
            .sum()
    }

    /// The first value for `key` (any case).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        let key = stored_form(key.as_ref());
        let first = self.positions(&key).next()?;
        Some(self.value(&self.entries[first]))
    }

    /// The first value for `key`, as text (lossy).
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value for `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&[u8]> {
        let key = stored_form(key.as_bytes());
        self.positions(&key)
            .map(|i| self.value(&self.entries[i]))
            .collect()
    }

    /// Append an entry; a pseudo-header goes after the last pseudo-header.
    pub fn add(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let entry = Entry {
            key: self.store_key(key.as_ref()),
            value: self.store(value.as_ref()),
        };
        if self.key(&entry).starts_with(b":") {
            let at = self
                .entries
                .iter()
                .take_while(|e| self.key(e).starts_with(b":"))
                .count();
            self.entries.insert(at, entry);
        } else {
            self.entries.push(entry);
        }
    }

    /// Set `key` to `value` where its first entry stands, dropping any others; add it if it
    /// is absent.
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = stored_form(key.as_ref());
        let (first, repeated) = {
            let mut found = self.positions(&key);
            (found.next(), found.next().is_some())
        };
        match first {
            None => self.add(&key, value),
            Some(first) => {
                self.entries[first].value = self.store(value.as_ref());
                if repeated {
                    self.remove_where(&key, |i| i != first);
                }
            }
        }
    }

    /// Remove every entry for `key`, then add one (Envoy 1.40's `setCopy`, which the probe saw
    /// move a replaced header to the end).
    pub fn replace(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.remove(key.as_ref());
        self.add(key, value);
    }

    /// Remove every entry for `key`.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        let key = stored_form(key.as_ref());
        if self.positions(&key).next().is_some() {
            self.remove_where(&key, |_| true);
        }
    }

    /// Remove the entries for `key` (stored form) whose index `doomed` accepts.
    fn remove_where(&mut self, key: &[u8], doomed: impl Fn(usize) -> bool) {
        let bytes = &self.bytes;
        let mut at = 0;
        self.entries.retain(|e| {
            at += 1;
            !(doomed(at - 1) && &bytes[e.key.clone()] == key)
        });
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|e| {
            // Keys are stored as text (see `store_key`).
            let key = std::str::from_utf8(self.key(e)).unwrap_or_default();
            (key, self.value(e))
        })
    }

    /// The entries as text pairs (values lossy).
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    /// The entries, keys as text and values as bytes.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_vec()))
            .collect()
    }

    /// Serialize as the ABI's header map.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.serialize_into(&mut out);
        out
    }

    /// Serialize as the ABI's header map, appending to `out`.
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        let pairs = self.entries.iter().map(|e| (self.key(e), self.value(e)));
        crate::pairs::serialize_iter(pairs, out);
    }
}

impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for HeaderMap {}

impl fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_vec()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lower_cased_and_pseudo_headers_stay_first() {
        let mut m = HeaderMap::from_pairs(&[("X-A", "1"), (":path", "/")]);
        m.add(":Method", "GET");
        assert_eq!(
            m.to_vec(),
            vec![
                (":path".into(), "/".into()),
                (":method".into(), "GET".into()),
                ("x-a".into(), "1".into())
            ]
        );
        assert_eq!(m.get("x-A"), Some(&b"1"[..]));
    }

    #[test]
    fn keys_are_looked_up_as_stored() {
        let all: Vec<u8> = (0..=0xff).collect();
        for len in 0..40 {
            for start in 0..all.len() - len {
                let key = &all[start..start + len];
                let plain = key.iter().all(|&b| b.is_ascii() && !b.is_ascii_uppercase());
                assert_eq!(is_stored_form(key), plain, "{key:?}");
            }
        }
    }

    #[test]
    fn replace_drops_every_duplicate_and_appends() {
        let mut m = HeaderMap::from_pairs(&[("a", "1"), ("b", "2"), ("a", "3")]);
        m.replace("A", "9");
        assert_eq!(
            m.to_vec(),
            vec![("b".into(), "2".into()), ("a".into(), "9".into())]
        );
        m.remove("a");
        assert_eq!(m.get("a"), None);
        assert_eq!(m.byte_size(), 2);
    }
}
