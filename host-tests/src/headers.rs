//! A header map with Envoy's semantics: keys are lower-cased on every operation, pseudo-headers
//! (`:path`, ...) stay in front of the others, `replace` removes every entry for the key and
//! appends one, `get` sees the first entry.

use std::borrow::Cow;
use std::fmt;

/// An ordered multimap of HTTP fields, as Envoy keeps them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, Vec<u8>)>,
}

/// `key` as the map stores it: lower-cased, and as lossy text when it is not UTF-8 so that
/// keys read as `&str`. Borrowed when it is already so, as nearly every name a filter asks for
/// is, so that looking a header up does not allocate.
fn lower(key: &[u8]) -> Cow<'_, str> {
    let key = String::from_utf8_lossy(key);
    if key.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(key.to_ascii_lowercase())
    } else {
        key
    }
}

impl HeaderMap {
    pub fn new() -> Self {
        HeaderMap::default()
    }

    /// Build from pairs, lower-casing keys and moving pseudo-headers first, as a codec would.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Self {
        let mut map = HeaderMap {
            entries: Vec::with_capacity(pairs.len()),
        };
        for (k, v) in pairs {
            map.add(k, v);
        }
        map
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
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The first value for `key` (any case).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        let key = lower(key.as_ref());
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value for `key`, as text (lossy).
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value for `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&[u8]> {
        let key = lower(key.as_bytes());
        self.entries
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Append an entry; a pseudo-header goes after the last pseudo-header.
    pub fn add(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = lower(key.as_ref()).into_owned();
        let value = value.as_ref().to_vec();
        if key.starts_with(':') {
            let at = self
                .entries
                .iter()
                .take_while(|(k, _)| k.starts_with(':'))
                .count();
            self.entries.insert(at, (key, value));
        } else {
            self.entries.push((key, value));
        }
    }

    /// Set `key` to `value` where its first entry stands, dropping any others; add it if it
    /// is absent.
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = lower(key.as_ref());
        let Some(first) = self.entries.iter().position(|(k, _)| *k == key) else {
            self.add(key.as_bytes(), value);
            return;
        };
        self.entries[first].1 = value.as_ref().to_vec();
        let mut at = 0;
        self.entries.retain(|(k, _)| {
            at += 1;
            at - 1 <= first || *k != key
        });
    }

    /// Remove every entry for `key`, then add one (Envoy 1.40's `setCopy`, which the probe saw
    /// move a replaced header to the end).
    pub fn replace(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.remove(key.as_ref());
        self.add(key, value);
    }

    /// Remove every entry for `key`.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        let key = lower(key.as_ref());
        self.entries.retain(|(k, _)| *k != key);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The entries as text pairs (values lossy).
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    /// The entries, keys as text and values as bytes.
    pub fn entries(&self) -> &[(String, Vec<u8>)] {
        &self.entries
    }

    /// Serialize as the ABI's header map.
    pub fn serialize(&self) -> Vec<u8> {
        crate::pairs::serialize(&self.entries)
    }

    /// Serialize as the ABI's header map, appending to `out`.
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        crate::pairs::serialize_into(&self.entries, out);
    }
}

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
    fn keys_of_any_bytes_are_stored_lower_cased_and_found() {
        let all: Vec<u8> = (0..=0xff).collect();
        for len in 0..40 {
            for start in 0..all.len() - len {
                let key = &all[start..start + len];
                let m = HeaderMap::from_pairs(&[(key, "v")]);
                let stored = String::from_utf8_lossy(key).to_ascii_lowercase();
                assert_eq!(m.iter().next().map(|(k, _)| k), Some(&*stored), "{key:?}");
                assert_eq!(m.get(key), Some(&b"v"[..]), "{key:?}");
            }
        }
    }

    #[test]
    fn set_keeps_the_first_place_and_drops_the_others() {
        let mut m = HeaderMap::from_pairs(&[("a", "1"), ("b", "2"), ("A", "3"), ("c", "4")]);
        m.set("a", "9");
        assert_eq!(
            m.to_vec(),
            vec![
                ("a".into(), "9".into()),
                ("b".into(), "2".into()),
                ("c".into(), "4".into())
            ]
        );
        m.set("d", "5");
        assert_eq!(m.get_all("d"), vec![&b"5"[..]]);
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
