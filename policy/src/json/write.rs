//! JSON written by hand, for the transition log line: an object's fields one call each.
//!
//! Why by hand: serde_json's serializer and its float writer were, with the line's derives, the
//! last of serde in `filter.wasm`, for one line a rollout writes a few times in its life
//! (docs/perf-log.md, "JSON without serde in the module").

use crate::decimal;

/// An object being written to `out`: `{` on creation, `}` on [`ObjectWriter::finish`].
pub struct ObjectWriter<'o> {
    out: &'o mut String,
    empty: bool,
}

impl<'o> ObjectWriter<'o> {
    pub fn new(out: &'o mut String) -> ObjectWriter<'o> {
        out.push('{');
        ObjectWriter { out, empty: true }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !std::mem::take(&mut self.empty) {
            self.out.push(',');
        }
        string(self.out, key);
        self.out.push(':');
        self.out
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        string(self.key(key), value);
        self
    }

    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        let text = value.to_string();
        self.key(key).push_str(&text);
        self
    }

    pub fn opt_u64(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        match value {
            Some(v) => self.u64(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A float to six significant digits ([`decimal::approximate`]).
    pub fn f64(&mut self, key: &str, value: f64) -> &mut Self {
        let text = decimal::approximate(value);
        self.raw(key, &text)
    }

    pub fn opt_f64(&mut self, key: &str, value: Option<f64>) -> &mut Self {
        match value {
            Some(v) => self.f64(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A value already written as JSON.
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key).push_str(json);
        self
    }

    pub fn finish(self) {
        self.out.push('}');
    }
}

/// `s` as a JSON string, escaped as serde_json escapes it.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "",
            "plain",
            "quote \" and \\",
            "\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}",
            "é😀",
        ] {
            let mut out = String::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn an_object_is_its_fields_in_order() {
        let mut out = String::new();
        let mut o = ObjectWriter::new(&mut out);
        o.u64("n", 7)
            .opt_u64("none", None)
            .str("s", "a\"b")
            .f64("x", 0.25)
            .opt_f64("y", Some(f64::NAN))
            .raw("z", "[]");
        o.finish();
        assert_eq!(
            out,
            r#"{"n":7,"none":null,"s":"a\"b","x":0.25,"y":null,"z":[]}"#
        );
        let mut empty = String::new();
        ObjectWriter::new(&mut empty).finish();
        assert_eq!(empty, "{}");
    }
}
