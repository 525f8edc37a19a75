//! The view of a request that [`crate::Plan::decide`] reads. Implementations must not allocate
//! per lookup; [`HeaderList`] is the one the filter, the CLI and the tests share.

use std::net::IpAddr;
use std::ops::ControlFlow;

use crate::router::bytes;

/// What the engine may read from a request. Header names are asked for in lower case.
pub trait Request {
    /// Every header in the order received, pseudo-headers (`:path`, `:method`) included.
    /// [`crate::Router`] reads a request in one pass over these.
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])>;
    /// The source address of the downstream connection, if known.
    fn source_ip(&self) -> Option<IpAddr>;

    /// The first value of a header. Repeated headers: the first one counts. An implementation
    /// that overrides this (to look up faster) must agree with [`Request::headers`].
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|&(k, _)| k == name).map(|(_, v)| v)
    }

    fn cookie(&self, name: &str) -> Option<&[u8]> {
        cookie_value(self.header("cookie")?, name)
    }
    fn query(&self, name: &str) -> Option<&[u8]> {
        query_value(split_query(self.header(":path")?).1?, name)
    }
    /// The path without its query string.
    fn path(&self) -> &[u8] {
        split_query(self.header(":path").unwrap_or(b"")).0
    }
    fn method(&self) -> &[u8] {
        self.header(":method").unwrap_or(b"")
    }
}

/// A request as Envoy hands its headers over: lower-case names (Envoy normalises them),
/// pseudo-headers (`:path`, `:method`) included.
#[derive(Debug, Clone, Copy)]
pub struct HeaderList<'a, K, V> {
    pub headers: &'a [(K, V)],
    pub source_ip: Option<IpAddr>,
}

impl<'a, K: AsRef<str>, V: AsRef<[u8]>> HeaderList<'a, K, V> {
    pub fn new(headers: &'a [(K, V)]) -> Self {
        HeaderList {
            headers,
            source_ip: None,
        }
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> Request for HeaderList<'_, K, V> {
    fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    fn source_ip(&self) -> Option<IpAddr> {
        self.source_ip
    }
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`).
pub fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let name = name.as_bytes();
    // Compare each pair's start with `name=` instead of splitting it: the value is never scanned.
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii_start();
        let value = pair.strip_prefix(name)?.strip_prefix(b"=")?;
        Some(value.trim_ascii_end())
    })
}

/// Visit every `name=value` pair of a `Cookie` header, read as [`cookie_value`] reads them: a
/// pair without `=` has no value, a name ends at the first `=`. For names without `=` (cookie
/// names are tokens), `cookie_value(h, n)` is the value of the first pair named `n`. `visit`
/// stops the walk by returning [`ControlFlow::Break`] (the router, once it has found every
/// cookie it reads).
///
/// A loop, not a chain of iterator adapters, so that it and `visit` inline into the router's
/// pass (the adapters' closures did not, and cost a call per pair). Each pair is searched once,
/// for its end and its first `=` together.
#[inline]
pub(crate) fn for_each_cookie<'a>(
    header: &'a [u8],
    mut visit: impl FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
) {
    let mut rest = header;
    loop {
        let (end, eq) = find_pair(rest, b';');
        let pair = rest.get(..end.unwrap_or(rest.len())).unwrap_or(rest);
        // Spaces before the name are no `=`: the pair's first `=` is its trimmed name's.
        if let Some(eq) = eq
            && let (Some(name), Some(value)) = (pair.get(..eq), pair.get(eq + 1..))
            && visit(name.trim_ascii_start(), trim_end(value)).is_break()
        {
            return;
        }
        match end.and_then(|at| rest.get(at + 1..)) {
            Some(next) => rest = next,
            None => return,
        }
    }
}

/// The last bytes of the cookie names a router looks for, with which it skips the pairs of a
/// cookie header that cannot be one of them, without walking them.
///
/// A pair's name ends right before its first `=`: a pair whose first `=` follows none of these
/// bytes has none of the names. Most requests carry none of the cookies a plan reads (a beta
/// tester's, or a sticky key set after a site's own cookies), and finding the `=`s, eight bytes
/// at a time, and looking at the byte before each, costs a fraction of walking the pairs.
#[derive(Debug, Clone)]
pub(crate) struct NameEnds {
    /// One bit per byte value.
    ends: [u64; 4],
}

impl NameEnds {
    /// None when a name is empty: a pair `=v` has that name, with no byte before its `=`.
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Option<NameEnds> {
        let mut ends = [0; 4];
        for name in names {
            let last = *name.last()?;
            ends[usize::from(last / 64)] |= 1 << (last % 64);
        }
        Some(NameEnds { ends })
    }

    #[inline(always)]
    fn ends(&self, byte: u8) -> bool {
        self.ends[usize::from(byte / 64)] & 1 << (byte % 64) != 0
    }

    /// Where a walk over `header` needs to start: at the pair of the first `=` that follows
    /// one of the bytes; `None` when no `=` does.
    #[inline]
    pub(crate) fn skip(&self, header: &[u8]) -> Option<usize> {
        let eq = self.first_eq(header)?;
        let name = header.get(..eq).unwrap_or_default();
        Some(name.iter().rposition(|&b| b == b';').map_or(0, |at| at + 1))
    }

    // A loop, not `find`: callgrind counted 3 fewer instructions per decision.
    #[allow(clippy::manual_find)]
    #[inline(always)]
    fn first_eq(&self, header: &[u8]) -> Option<usize> {
        // An `=` given again (where words overlap) is tested again, and fails again. One at 0
        // follows nothing (its name is empty): the byte before it is past the end.
        bytes::scan(header, |word| {
            for eq in word.all(b'=') {
                if header
                    .get(eq.wrapping_sub(1))
                    .is_some_and(|&b| self.ends(b))
                {
                    return Some(eq);
                }
            }
            None
        })
    }
}

/// `value.trim_ascii_end()`, at the cost of one test for a value with no trailing space (nearly
/// every one).
#[inline(always)]
fn trim_end(value: &[u8]) -> &[u8] {
    match value.last() {
        Some(last) if last.is_ascii_whitespace() => value.trim_ascii_end(),
        _ => value,
    }
}

/// Visit every parameter of a query string, read as [`query_value`] reads them: a parameter
/// without `=` has the empty value. For names without `=`, `query_value(q, n)` is the value of
/// the first parameter named `n`. A loop, searched once per pair, and stopped, as
/// [`for_each_cookie`] is.
#[inline]
pub(crate) fn for_each_param<'a>(
    query: &'a [u8],
    mut visit: impl FnMut(&'a [u8], &'a [u8]) -> ControlFlow<()>,
) {
    let mut rest = query;
    loop {
        let (end, eq) = find_pair(rest, b'&');
        let pair = rest.get(..end.unwrap_or(rest.len())).unwrap_or(rest);
        // One call of `visit`, so that it inlines.
        let (name, value) = eq
            .and_then(|eq| Some((pair.get(..eq)?, pair.get(eq + 1..)?)))
            .unwrap_or((pair, b""));
        let visited = visit(name, value);
        match end.and_then(|at| rest.get(at + 1..)) {
            Some(next) if visited.is_continue() => rest = next,
            _ => return,
        }
    }
}

/// The first `end` byte of `bytes`, and its first `=` if that comes before: where the pair at
/// the start of `bytes` ends and where its name does, in one pass over the pair.
#[inline(always)]
fn find_pair(bytes: &[u8], end: u8) -> (Option<usize>, Option<usize>) {
    // The first `=` is kept from the word it is in; the words are searched until one holds
    // the end. The last word overlaps the one before, which held no end, and no `=` unless one
    // was found already.
    let mut eq = None;
    let ended = bytes::scan(bytes, |word| {
        if eq.is_none() {
            eq = word.first(b'=');
        }
        let end = word.first(end)?;
        Some((Some(end), eq.filter(|&eq| eq < end)))
    });
    ended.unwrap_or((None, eq))
}

/// A `:path` value as the path and the query string: before and after the first `?`.
#[inline]
pub(crate) fn split_query(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    match bytes::scan(target, |word| word.first(b'?')) {
        Some(at) => (&target[..at], Some(&target[at + 1..])),
        None => (target, None),
    }
}

/// The raw (not percent-decoded) value of parameter `name` in a query string.
pub fn query_value<'a>(query: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let name = name.as_bytes();
    query
        .split(|&b| b == b'&')
        .find_map(|pair| match pair.strip_prefix(name)? {
            [] => Some(&b""[..]),
            [b'=', value @ ..] => Some(value),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_queries() {
        let h = [
            (":path", "/predict?model=v2&user=42&flag"),
            ("cookie", "a=1; serin-id=xyz;b="),
        ];
        let r = HeaderList::new(&h);
        assert_eq!(r.cookie("serin-id"), Some(&b"xyz"[..]));
        assert_eq!(r.cookie("b"), Some(&b""[..]));
        assert_eq!(r.cookie("c"), None);
        assert_eq!(r.query("user"), Some(&b"42"[..]));
        assert_eq!(r.query("flag"), Some(&b""[..]));
        assert_eq!(r.query("nope"), None);
        assert_eq!(r.path(), b"/predict");
        // A name that is a prefix of another is not that other; spaces around pairs do not count.
        assert_eq!(
            cookie_value(b"serin-id2=x; serin-id = y;serin-id=z ", "serin-id"),
            Some(&b"z"[..])
        );
        assert_eq!(cookie_value(b"a=1 ; b=2", "a"), Some(&b"1"[..]));
        assert_eq!(query_value(b"user2=5&user=6", "user"), Some(&b"6"[..]));
        assert_eq!(query_value(b"user2=5", "user"), None);
    }

    #[test]
    fn find_pair_finds_the_end_and_the_first_eq_before_it() {
        // Every length up to 40, with the end and an `=` at every position (or none), more of
        // both after them, and bytes next to them one below and one above.
        for len in 0..40 {
            for end in 0..=len {
                for eq in 0..=len {
                    let mut bytes = vec![b'a'; len];
                    for (at, byte) in [(eq, b'='), (end, b';')] {
                        if at < len {
                            bytes.iter_mut().skip(at).step_by(5).for_each(|b| *b = byte);
                            if at > 0 && bytes[at - 1] == b'a' {
                                bytes[at - 1] = byte - 1;
                            }
                            if at + 1 < len && bytes[at + 1] == b'a' {
                                bytes[at + 1] = byte + 1;
                            }
                        }
                    }
                    let end = bytes.iter().position(|&b| b == b';');
                    let eq = bytes[..end.unwrap_or(len)].iter().position(|&b| b == b'=');
                    assert_eq!(find_pair(&bytes, b';'), (end, eq), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn pairs_are_read_as_cookie_value_and_query_value_read_them() {
        let headers = [
            "a=1; b=2",
            " a = 1 ;;b=;c",
            "\t a=1\t;  b=2 \r\n; c",
            "no-eq; a=b=c; long-name-of-a-cookie=and-a-longer-value-than-eight ;x=",
            "noeq;noeq2;z=1",
            "a;b",
            "x=y=z; =v;a=1 ",
            "",
            ";",
            "a",
            "a=",
            "=",
            "k=v;",
        ];
        for header in headers {
            let mut seen: Vec<(&[u8], &[u8])> = Vec::new();
            for_each_cookie(header.as_bytes(), |n, v| {
                seen.push((n, v));
                ControlFlow::Continue(())
            });
            for (name, _) in &seen {
                let name = std::str::from_utf8(name).unwrap();
                let first = seen.iter().find(|(n, _)| *n == name.as_bytes()).unwrap().1;
                assert_eq!(
                    cookie_value(header.as_bytes(), name),
                    Some(first),
                    "{header:?} {name:?}"
                );
            }
            let mut params: Vec<(&[u8], &[u8])> = Vec::new();
            for_each_param(header.as_bytes(), |n, v| {
                params.push((n, v));
                ControlFlow::Continue(())
            });
            let split: Vec<&[u8]> = header.as_bytes().split(|&b| b == b'&').collect();
            assert_eq!(
                params.len(),
                split.len(),
                "one parameter per `&`-separated part of {header:?}"
            );
            for (name, _) in &params {
                let name = std::str::from_utf8(name).unwrap();
                let first = params
                    .iter()
                    .find(|(n, _)| *n == name.as_bytes())
                    .unwrap()
                    .1;
                assert_eq!(
                    query_value(header.as_bytes(), name),
                    Some(first),
                    "{header:?} {name:?}"
                );
            }
        }
    }

    #[test]
    fn skipping_to_the_first_pair_that_can_hold_a_name_skips_none_of_them() {
        let names: &[&[&str]] = &[
            &["a"],
            &["b1"],
            &["a", "b1"],
            &["a ", "x"],
            &[" a"],
            &["=", ";"],
            &["long-name-of-a-cookie"],
        ];
        let tokens = [
            "a",
            "b1",
            "=",
            ";",
            " ",
            "c=d",
            "a=",
            "=1",
            "b1=x",
            "a =",
            "; ",
            "\t",
            "long-name-of-a-cookie=",
        ];
        let walk = |header: &[u8], names: &[&str]| {
            let mut seen = Vec::new();
            for_each_cookie(header, |n, v| {
                if names.iter().any(|name| name.as_bytes() == n) {
                    seen.push((n.to_vec(), v.to_vec()));
                }
                ControlFlow::Continue(())
            });
            seen
        };
        let mut header = String::new();
        for a in 0..tokens.len() {
            for b in 0..tokens.len() {
                for c in 0..tokens.len() {
                    for d in [0, 3, 4, 8] {
                        header.clear();
                        for i in [a, b, c, d, a, b] {
                            header.push_str(tokens[i]);
                        }
                        for names in names {
                            let ends = NameEnds::new(names.iter().map(|n| n.as_bytes())).unwrap();
                            let bytes = header.as_bytes();
                            let skipped = ends
                                .skip(bytes)
                                .map_or(Vec::new(), |from| walk(&bytes[from..], names));
                            assert_eq!(skipped, walk(bytes, names), "{header:?} {names:?}");
                        }
                    }
                }
            }
        }
        assert!(
            NameEnds::new([&b"a"[..], b""]).is_none(),
            "an empty name is not told"
        );
    }

    #[test]
    fn a_walk_stops_where_visit_breaks() {
        let mut seen = Vec::new();
        for_each_cookie(b"a=1; b=2;c=3", |n, v| {
            seen.push((n, v));
            if n == b"b" {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(seen, [(&b"a"[..], &b"1"[..]), (b"b", b"2")]);
        seen.clear();
        for_each_param(b"a&b=2&c", |n, v| {
            seen.push((n, v));
            ControlFlow::Break(())
        });
        assert_eq!(seen, [(&b"a"[..], &b""[..])]);
    }

    #[test]
    fn first_repeated_header_wins() {
        let h = [("x-user-id", "a"), ("x-user-id", "b")];
        assert_eq!(HeaderList::new(&h).header("x-user-id"), Some(&b"a"[..]));
    }
}
