//! The view of a request that [`crate::Plan::decide`] reads. Implementations must not allocate
//! per lookup; [`HeaderList`] is the one the filter, the CLI and the tests share.

use std::net::IpAddr;

/// What the engine may read from a request. Header names are asked for in lower case.
pub trait Request {
    /// The first value of a header. Repeated headers: the first one counts.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The source address of the downstream connection, if known.
    fn source_ip(&self) -> Option<IpAddr>;

    fn cookie(&self, name: &str) -> Option<&[u8]> {
        cookie_value(self.header("cookie")?, name)
    }
    fn query(&self, name: &str) -> Option<&[u8]> {
        let path = self.header(":path")?;
        let at = path.iter().position(|&b| b == b'?')?;
        query_value(&path[at + 1..], name)
    }
    /// The path without its query string.
    fn path(&self) -> &[u8] {
        let path = self.header(":path").unwrap_or(b"");
        path.split(|&b| b == b'?').next().unwrap_or(path)
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
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
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
    fn first_repeated_header_wins() {
        let h = [("x-user-id", "a"), ("x-user-id", "b")];
        assert_eq!(HeaderList::new(&h).header("x-user-id"), Some(&b"a"[..]));
    }
}
