//! JSON text read by hand, byte by byte: into a [`Json`] tree (a plan, a fleet answer), or along
//! one path of a document without building it (a response body's outcome, [`find`]).
//!
//! Why by hand rather than serde_json: the body's outcome is read on every response of a
//! measuring plan, and serde's visitor over serde_json's deserializer spent about 1.5 k
//! instructions natively on TF Serving's `{"predictions": [0.02], "model_version": "stable"}`,
//! a third of the engine's whole request; this reads it for a fraction. And with the log line's
//! writer (`guard::report`), it takes serde and serde_json out of `filter.wasm` (docs/perf-log.md,
//! "JSON without serde in the module").
//!
//! The grammar is RFC 8259's, as strict as serde_json's: no trailing commas, no leading zeros,
//! no bytes after the value, control characters refused in strings, nesting bounded (so a deep
//! document is an error, not a stack overflow). Errors say what serde_json said, with the same
//! line and column, since operators and tests know those words.

use std::borrow::Cow;
use std::fmt;

use super::{Json, Number};
use crate::rollout::PathStep;

/// serde_json's nesting limit: the 128th open array or object is refused.
const MAX_DEPTH: u32 = 127;

/// Why a text is not JSON, and where: `expected value at line 1 column 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    what: &'static str,
    line: usize,
    column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.what, self.line, self.column
        )
    }
}

impl std::error::Error for ParseError {}

/// Inside the parser an error is a unit, so that every `Result` the hot path passes around stays
/// as small as its value; what and where are kept in the parser until the caller asks.
struct Stop;

type Result<T> = std::result::Result<T, Stop>;

/// A scalar found at the end of a path: a number keeps its text as the body wrote it (ASCII;
/// its value is [`number_value`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf<'a> {
    Text(Cow<'a, str>),
    Number(&'a [u8]),
    Bool(bool),
}

/// Powers of ten an `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The value of a JSON number's text, correctly rounded (`None` only for text that is not a
/// number). A short decimal without exponent, what model servers write, is read in one pass
/// (Clinger's fast path: at most 15 significant digits and at most 22 places, so both the
/// digits and the power of ten are exact in an `f64` and one division rounds correctly);
/// anything else goes to `core`'s parser, about twice the cost (docs/perf-log.md).
pub fn number_value(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mut mantissa, mut significant, mut places, mut fraction) = (0u64, 0u32, 0usize, false);
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                significant += u32::from(mantissa != 0);
                places += usize::from(fraction);
                if significant > 15 {
                    return slow_number_value(text);
                }
            }
            b'.' if !fraction => fraction = true,
            _ => return slow_number_value(text),
        }
    }
    let Some(&power) = EXACT_POWERS_OF_TEN.get(places) else {
        return slow_number_value(text);
    };
    if digits.is_empty() || digits.last() == Some(&b'.') {
        return slow_number_value(text);
    }
    let value = mantissa as f64 / power;
    Some(if negative { -value } else { value })
}

#[cold]
fn slow_number_value(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A whole document as a tree.
pub fn tree(bytes: &[u8]) -> std::result::Result<Json, ParseError> {
    let mut p = Parser::new(bytes);
    let json = p.value().and_then(|json| p.end().map(|()| json));
    json.map_err(|Stop| p.failure())
}

/// The scalar at `path` in a whole, valid document: `Ok(None)` when the path leads nowhere or
/// ends at null, an array or an object. Of a repeated key the last counts, as in a tree.
pub fn find<'a>(
    bytes: &'a [u8],
    path: &[PathStep],
) -> std::result::Result<Option<Leaf<'a>>, ParseError> {
    let mut p = Parser::new(bytes);
    let found = p.find(path).and_then(|found| p.end().map(|()| found));
    found.map_err(|Stop| p.failure())
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: u32,
    /// What stopped the parser, and after how many bytes.
    failed: (&'static str, usize),
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8]) -> Parser<'a> {
        Parser {
            bytes,
            at: 0,
            depth: 0,
            failed: ("", 0),
        }
    }

    /// The error that stopped the parser, with its line and column.
    fn failure(&self) -> ParseError {
        let (what, at) = self.failed;
        let seen = &self.bytes[..at.min(self.bytes.len())];
        let line_start = seen.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        ParseError {
            what,
            line: 1 + seen.iter().filter(|&&b| b == b'\n').count(),
            column: seen.len() - line_start,
        }
    }

    /// Stop at the byte just read (or the end of the text).
    #[cold]
    #[inline(never)]
    fn error(&mut self, what: &'static str) -> Stop {
        self.failed = (what, self.at);
        Stop
    }

    /// Stop at the next byte, which is read first (as serde_json reports it).
    #[cold]
    #[inline(never)]
    fn error_at_next(&mut self, what: &'static str) -> Stop {
        self.at += 1;
        self.error(what)
    }

    /// The next byte after whitespace, not consumed.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let blank = |b: &u8| matches!(b, b' ' | b'\n' | b'\t' | b'\r');
        let skipped = rest.iter().position(|b| !blank(b)).unwrap_or(rest.len());
        self.at += skipped;
        rest.get(skipped).copied()
    }

    fn end(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error_at_next("trailing characters")),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at_next("recursion limit exceeded"));
        }
        self.at += 1;
        Ok(())
    }

    fn value(&mut self) -> Result<Json> {
        Ok(match self.scalar_or_open()? {
            Open::Scalar(Scalar::Null) => Json::Null,
            Open::Scalar(Scalar::Bool(b)) => Json::Bool(b),
            Open::Scalar(Scalar::Number(text)) => {
                let text = self.in_range(text)?;
                // Only ASCII digits, signs, `.` and `e` were read.
                Json::Number(Number::from_text(
                    std::str::from_utf8(text).unwrap_or_default(),
                ))
            }
            Open::Scalar(Scalar::String(s)) => Json::String(s.into_owned()),
            Open::Array => {
                let (mut items, mut first) = (Vec::new(), true);
                while self.next_item(&mut first, b']')? {
                    items.push(self.value()?);
                }
                Json::Array(items)
            }
            Open::Object => {
                let (mut fields, mut first) = (Vec::new(), true);
                while self.next_item(&mut first, b'}')? {
                    let key = self.key()?;
                    fields.push((key.into_owned(), self.value()?));
                }
                Json::Object(fields)
            }
        })
    }

    fn find(&mut self, path: &[PathStep]) -> Result<Option<Leaf<'a>>> {
        let (here, rest) = match path.split_first() {
            Some((here, rest)) => (Some(here), rest),
            None => (None, path),
        };
        let mut found = None;
        match self.scalar_or_open()? {
            Open::Scalar(scalar) if here.is_none() => {
                return Ok(match scalar {
                    Scalar::Null => None,
                    Scalar::Bool(b) => Some(Leaf::Bool(b)),
                    Scalar::Number(text) => Some(Leaf::Number(self.in_range(text)?)),
                    Scalar::String(s) => Some(Leaf::Text(s)),
                });
            }
            Open::Scalar(_) => {}
            Open::Array => {
                let wanted = match here {
                    Some(PathStep::Index(i)) => Some(u64::from(*i)),
                    _ => None,
                };
                let (mut index, mut first) = (0u64, true);
                while self.next_item(&mut first, b']')? {
                    if Some(index) == wanted {
                        found = self.find(rest)?;
                    } else {
                        self.skip()?;
                    }
                    index += 1;
                }
            }
            Open::Object => {
                let wanted = match here {
                    Some(PathStep::Key(k)) => Some(k.as_str()),
                    _ => None,
                };
                let mut first = true;
                while self.next_item(&mut first, b'}')? {
                    if self.key_is(wanted)? {
                        found = self.find(rest)?;
                    } else {
                        self.skip()?;
                    }
                }
            }
        }
        Ok(found)
    }

    /// A value read and dropped: its scalars are checked, not kept.
    fn skip(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'"') => {
                self.at += 1;
                self.skip_string()
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b'[' | b'{') => match self.scalar_or_open()? {
                Open::Array => {
                    let mut first = true;
                    while self.next_item(&mut first, b']')? {
                        self.skip()?;
                    }
                    Ok(())
                }
                _ => {
                    let mut first = true;
                    while self.next_item(&mut first, b'}')? {
                        self.skip_key()?;
                        self.skip()?;
                    }
                    Ok(())
                }
            },
            _ => self.scalar_or_open().map(drop),
        }
    }

    /// A scalar read whole, or an array or object opened.
    #[inline(always)]
    fn scalar_or_open(&mut self) -> Result<Open<'a>> {
        let Some(b) = self.peek() else {
            return Err(self.error("EOF while parsing a value"));
        };
        Ok(match b {
            b'n' => self.literal(b"null", Scalar::Null)?,
            b't' => self.literal(b"true", Scalar::Bool(true))?,
            b'f' => self.literal(b"false", Scalar::Bool(false))?,
            b'"' => {
                self.at += 1;
                Open::Scalar(Scalar::String(self.string()?))
            }
            b'-' | b'0'..=b'9' => Open::Scalar(Scalar::Number(self.number()?)),
            b'[' => {
                self.enter()?;
                Open::Array
            }
            b'{' => {
                self.enter()?;
                Open::Object
            }
            _ => return Err(self.error_at_next("expected value")),
        })
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8], scalar: Scalar<'a>) -> Result<Open<'a>> {
        for &want in word {
            match self.bytes.get(self.at) {
                Some(&b) if b == want => self.at += 1,
                Some(_) => return Err(self.error_at_next("expected ident")),
                None => return Err(self.error("EOF while parsing a value")),
            }
        }
        Ok(Open::Scalar(scalar))
    }

    /// After `[` or `{` (`first`) or an item: whether another item follows (consuming the `,`
    /// before it), or the container closes with `close`.
    #[inline(always)]
    fn next_item(&mut self, first: &mut bool, close: u8) -> Result<bool> {
        let eof = match close {
            b']' => "EOF while parsing a list",
            _ => "EOF while parsing an object",
        };
        let b = self.peek().ok_or_else(|| self.error(eof))?;
        if b == close {
            self.at += 1;
            self.depth -= 1;
            return Ok(false);
        }
        if std::mem::take(first) {
            return Ok(true);
        }
        if b != b',' {
            let what = match close {
                b']' => "expected `,` or `]`",
                _ => "expected `,` or `}`",
            };
            return Err(self.error_at_next(what));
        }
        self.at += 1;
        match self.peek() {
            Some(c) if c == close => Err(self.error_at_next("trailing comma")),
            Some(_) => Ok(true),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    /// An object's key and the `:` after it.
    fn key(&mut self) -> Result<Cow<'a, str>> {
        self.open_key()?;
        let key = self.string()?;
        self.colon()?;
        Ok(key)
    }

    /// An object's key and the `:` after it: whether it is `wanted`. A key without escapes
    /// (nearly all) is compared where it lies, neither copied nor checked as UTF-8 (bytes equal
    /// to a `str` are UTF-8).
    #[inline(always)]
    fn key_is(&mut self, wanted: Option<&str>) -> Result<bool> {
        self.open_key()?;
        let start = self.at;
        let end = self.plain_run();
        let is = if self.bytes.get(end) == Some(&b'"') {
            self.at += 1;
            wanted.is_some_and(|k| k.as_bytes() == &self.bytes[start..end])
        } else {
            self.at = start;
            let key = self.string()?;
            wanted.is_some_and(|k| k == key)
        };
        self.colon()?;
        Ok(is)
    }

    fn skip_key(&mut self) -> Result<()> {
        self.open_key()?;
        self.skip_string()?;
        self.colon()
    }

    #[inline(always)]
    fn open_key(&mut self) -> Result<()> {
        self.in_object(b'"', "key must be a string")
    }

    #[inline(always)]
    fn colon(&mut self) -> Result<()> {
        self.in_object(b':', "expected `:`")
    }

    /// The byte `want` inside an object, past whitespace: else `wrong`, or the end of the text.
    #[inline(always)]
    fn in_object(&mut self, want: u8, wrong: &'static str) -> Result<()> {
        match self.peek() {
            Some(b) if b == want => {
                self.at += 1;
                Ok(())
            }
            Some(_) => Err(self.error_at_next(wrong)),
            None => Err(self.error("EOF while parsing an object")),
        }
    }

    /// A number's text, checked against the grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)?
    /// ([eE] [+-]? [0-9]+)?`.
    #[inline(always)]
    fn number(&mut self) -> Result<&'a [u8]> {
        let start = self.at;
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at) {
            Some(b'0') => {
                self.at += 1;
                if self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
                    return Err(self.error_at_next("invalid number"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            Some(_) => return Err(self.error_at_next("invalid number")),
            None => return Err(self.error("EOF while parsing a value")),
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Ok(&self.bytes[start..self.at])
    }

    #[inline(always)]
    fn digits(&mut self) {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        self.at += rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
    }

    fn some_digits(&mut self) -> Result<()> {
        match self.bytes.get(self.at) {
            Some(b) if b.is_ascii_digit() => {
                self.digits();
                Ok(())
            }
            Some(_) => Err(self.error_at_next("invalid number")),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    /// A number's text, refused when out of an `f64`'s range (as serde_json refuses `1e400`):
    /// only an exponent or over 300 digits can be.
    fn in_range<'t>(&mut self, text: &'t [u8]) -> Result<&'t [u8]> {
        let long = text.len() > 300 || text.iter().any(|b| b | 0x20 == b'e');
        if long && !number_value(text).is_some_and(f64::is_finite) {
            return Err(self.error("number out of range"));
        }
        Ok(text)
    }

    /// A string's contents after its opening quote, through the closing one: borrowed from the
    /// text when it has no escape.
    fn string(&mut self) -> Result<Cow<'a, str>> {
        let start = self.at;
        let plain = self.plain_run();
        if self.bytes.get(self.at) == Some(&b'"') {
            self.at += 1;
            return self.utf8(start, plain).map(Cow::Borrowed);
        }
        let mut out = self.utf8(start, plain)?.to_owned();
        loop {
            match self.bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.at += 1;
                    out.push(self.escape()?);
                }
                _ => {
                    let run = self.at;
                    let end = self.plain_run();
                    if end == run {
                        return Err(self.string_error());
                    }
                    out.push_str(self.utf8(run, end)?);
                }
            }
        }
    }

    #[inline(always)]
    fn skip_string(&mut self) -> Result<()> {
        loop {
            self.plain_run();
            match self.bytes.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.at += 1;
                    self.escape()?;
                }
                _ => return Err(self.string_error()),
            }
        }
    }

    /// Past bytes that are neither `"`, `\` nor control characters; where the run ends.
    #[inline(always)]
    fn plain_run(&mut self) -> usize {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let run = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        self.at += run.unwrap_or(rest.len());
        self.at
    }

    /// Why a string stopped at a byte that is not `"` nor `\`.
    fn string_error(&mut self) -> Stop {
        if self.at >= self.bytes.len() {
            self.error("EOF while parsing a string")
        } else {
            self.error_at_next("control character (\\u0000-\\u001F) found while parsing a string")
        }
    }

    fn utf8(&mut self, start: usize, end: usize) -> Result<&'a str> {
        let bytes = self.bytes;
        std::str::from_utf8(&bytes[start..end]).map_err(|e| {
            self.at = (start + e.valid_up_to() + 1).min(bytes.len());
            self.error("invalid unicode code point")
        })
    }

    /// The character of an escape, after its `\`.
    fn escape(&mut self) -> Result<char> {
        let Some(&b) = self.bytes.get(self.at) else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.at += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => return Err(self.error("invalid escape")),
        })
    }

    /// `\uXXXX`, a surrogate pair as two of them.
    fn unicode_escape(&mut self) -> Result<char> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                // Byte by byte, so that an error points where serde_json's does.
                for want in [b'\\', b'u'] {
                    let found = self.bytes.get(self.at).copied();
                    self.at = (self.at + 1).min(self.bytes.len());
                    if found != Some(want) {
                        return Err(self.error("unexpected end of hex escape"));
                    }
                }
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("lone leading surrogate in hex escape")),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))
    }

    /// Four hex digits, read whole before they are checked (so an error points past them, as
    /// serde_json's does).
    fn hex4(&mut self) -> Result<u32> {
        let Some(digits) = self.bytes.get(self.at..self.at + 4) else {
            self.at = self.bytes.len();
            return Err(self.error("EOF while parsing a string"));
        };
        self.at += 4;
        let mut code = 0;
        for &b in digits {
            let digit = (b as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid escape"))?;
            code = code * 16 + digit;
        }
        Ok(code)
    }
}

enum Open<'a> {
    Scalar(Scalar<'a>),
    Array,
    Object,
}

enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(&'a [u8]),
    String(Cow<'a, str>),
}
