//! A path prefix, compared a word at a time.

use super::bytes;

/// A prefix with its first eight bytes kept as an integer, so that a path that does not start
/// with it (nearly every path, for nearly every prefix) is told apart by one load and a compare.
/// `starts_with` calls `memcmp`, a library call that on the request path cost as much as a
/// whole rule; here it runs only for prefixes longer than eight bytes whose first eight match.
#[derive(Debug, Clone)]
pub(super) struct Prefix {
    bytes: Box<[u8]>,
    /// The first (up to) eight bytes, little-endian, and the mask that selects them.
    head: u64,
    mask: u64,
}

impl Prefix {
    pub(super) fn new(prefix: &[u8]) -> Prefix {
        let (head, mask) = bytes::head(prefix);
        Prefix {
            bytes: prefix.into(),
            head,
            mask,
        }
    }

    /// Whether `s` starts with this prefix.
    #[inline]
    pub(super) fn starts(&self, s: &[u8]) -> bool {
        match bytes::first_word(s) {
            Some(first) => {
                (first ^ self.head) & self.mask == 0
                    && (self.bytes.len() <= 8 || s.starts_with(&self.bytes))
            }
            None => s.starts_with(&self.bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_starts_with() {
        let strings = [
            "",
            "/",
            "/a",
            "/admin",
            "/admin3",
            "/admin3/x",
            "/admin30",
            "/admin3/",
            "/v1/models",
            "/v1/models/fraud:predict",
            "/v1/models/fraud",
            "/v1/models/frauc",
            "/v1/model",
            "\u{ff}\u{0}",
            "/admin3\u{0}",
        ];
        for prefix in strings {
            let compiled = Prefix::new(prefix.as_bytes());
            for s in strings {
                assert_eq!(
                    compiled.starts(s.as_bytes()),
                    s.starts_with(prefix),
                    "{s:?} starts with {prefix:?}"
                );
            }
        }
    }
}
