//! A header map with Envoy's semantics: keys are lower-cased on every operation, pseudo-headers
//! (`:path`, ...) stay in front of the others, `replace` removes every entry for the key and
//! appends one, `get` sees the first entry.

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

/// A test for stored (lower-case) keys equal to `key` in any case, made once per lookup so
/// that comparing an entry allocates nothing.
fn key_matcher(key: &[u8]) -> impl Fn(&[u8]) -> bool {
    // A key that is not ASCII is stored as lossy text; compare it the same way.
    let lowered = (!key.is_ascii()).then(|| String::from_utf8_lossy(key).to_ascii_lowercase());
    move |stored: &[u8]| match &lowered {
        None => stored.eq_ignore_ascii_case(key),
        Some(lowered) => stored == lowered.as_bytes(),
    }
}

impl HeaderMap {
    pub fn new() -> Self {
        HeaderMap::default()
    }

    /// Build from pairs, lower-casing keys and moving pseudo-headers first, as a codec would.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Self {
        let mut map = HeaderMap::new();
        let size: usize = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum();
        // Room for what a test's builder or the filter adds (a dozen headers), so that adding
        // does not move the map: growing it cost more than the rest of building it.
        map.bytes.reserve(size + 512);
        map.entries.reserve(pairs.len() + 16);
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
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
        // ASCII (every real header name) is UTF-8 and cheaper to check for.
        let range = if key.is_ascii() || std::str::from_utf8(key).is_ok() {
            self.store(key)
        } else {
            self.store(String::from_utf8_lossy(key).as_bytes())
        };
        self.bytes[range.clone()].make_ascii_lowercase();
        range
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
        let matches = key_matcher(key.as_ref());
        self.entries
            .iter()
            .find(|e| matches(self.key(e)))
            .map(|e| self.value(e))
    }

    /// The first value for `key`, as text (lossy).
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value for `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&[u8]> {
        let matches = key_matcher(key.as_bytes());
        self.entries
            .iter()
            .filter(|e| matches(self.key(e)))
            .map(|e| self.value(e))
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
        let key = key.as_ref();
        let matches = key_matcher(key);
        match self.entries.iter().position(|e| matches(self.key(e))) {
            None => self.add(key, value),
            Some(first) => {
                self.entries[first].value = self.store(value.as_ref());
                let bytes = &self.bytes;
                let mut at = 0;
                self.entries.retain(|e| {
                    at += 1;
                    at - 1 == first || !matches(&bytes[e.key.clone()])
                });
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
        let matches = key_matcher(key.as_ref());
        let bytes = &self.bytes;
        self.entries.retain(|e| !matches(&bytes[e.key.clone()]));
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
