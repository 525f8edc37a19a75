//! JSON documents read by hand: a small tree ([`Json`]) and the helpers that read typed values
//! out of it, naming the path of whatever they refuse (`splits[0].lanes[1].end`); the text
//! itself is read by [`parse`], which also finds one field of a document without a tree.
//!
//! Why by hand: serde's `Deserialize` derives, monomorphised over `serde_json`'s deserializer,
//! were the largest part of `filter.wasm`: about 120 KB of the 474 KB module went to them, to
//! serde_json's deserializer copied once per type they visit, and to serde's impls behind them
//! (docs/perf-log.md, "filter.wasm: reading JSON by hand"). One parser that builds this tree,
//! shared with the body outcome reader (`outcome::json_path`), and plain functions over the
//! tree cost a fraction of that. The readers built on it: the plan's
//! (`plan::read`, behind [`crate::Plan::from_json`]) and the fleet answer's
//! ([`crate::fleet::parse`]).
//!
//! What the helpers refuse is said in serde's words, which the derives used before and which
//! tests and operators know (`invalid type: string "1", expected u32`, `invalid value: integer
//! `-5`, expected u32`, `missing field `format``, `unknown field `surprise`, expected one of
//! ...`, `unknown variant`, `duplicate field`), after the path when there is one.

mod parse;
pub mod write;

use std::fmt::{self, Display, Write as _};

pub use parse::{Leaf, ParseError, find, number_value};

/// A JSON value. Objects keep their fields in document order, repeated keys included, so that
/// a reader can refuse a repeated field rather than keep one of them silently.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parse a whole document (nesting is bounded, trailing bytes refused).
    pub fn parse(bytes: &[u8]) -> Result<Json, ParseError> {
        parse::tree(bytes)
    }

    /// The root of the document, for reading.
    pub fn root(&self) -> Node<'_> {
        Node {
            json: self,
            step: Step::Root,
        }
    }
}

/// A JSON number as the document wrote it, read as an integer or an `f64` on demand: the
/// text is what an error shows (`floating point `1.5``) without formatting a float, which
/// would link `core`'s float printing into `filter.wasm` for error messages alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Number(Box<str>);

impl Number {
    /// `text` must be a JSON number (the parser's).
    fn from_text(text: &str) -> Number {
        Number(text.into())
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// Whether serde_json would read it as a float: a fraction, an exponent, or an integer
    /// past `u64` and `i64`.
    pub fn is_f64(&self) -> bool {
        self.as_u64().is_none() && self.as_i64().is_none()
    }

    /// Always `Some`: the parser refuses numbers out of an `f64`'s range. Read as a body's
    /// number is ([`number_value`]), so a plan's threshold and a response's value agree.
    pub fn as_f64(&self) -> Option<f64> {
        number_value(self.0.as_bytes())
    }
}

impl From<u64> for Number {
    fn from(n: u64) -> Number {
        Number(n.to_string().into())
    }
}

impl From<i64> for Number {
    fn from(n: i64) -> Number {
        Number(n.to_string().into())
    }
}

impl Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a document was refused: the path of the offending value (none at the root) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a node was reached from its parent.
#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a Node<'a>, &'a str),
    Index(&'a Node<'a>, usize),
}

/// A value in a document and the path to it, for error messages. The path is a chain of
/// borrowed parents, written out only when something is refused.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub json: &'a Json,
    step: Step<'a>,
}

impl<'a> Node<'a> {
    /// The path from the root: `splits[0].lanes[1].end`; empty at the root.
    pub fn path(&self) -> String {
        let mut out = String::new();
        self.write_path(&mut out);
        out
    }

    fn write_path(&self, out: &mut String) {
        match self.step {
            Step::Root => {}
            Step::Key(parent, key) => {
                parent.write_path(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(parent, i) => {
                parent.write_path(out);
                let _ = write!(out, "[{i}]");
            }
        }
    }

    /// An error about this value: ``at `path`: what``, or `what` at the root.
    pub fn error(&self, what: impl Display) -> Error {
        let path = self.path();
        Error(if path.is_empty() {
            what.to_string()
        } else {
            format!("at `{path}`: {what}")
        })
    }

    fn invalid_type(&self, expected: &str) -> Error {
        self.error(format_args!(
            "invalid type: {}, expected {expected}",
            Unexpected(self.json)
        ))
    }

    /// The refusal of variant `name`, which is none of `known`.
    pub fn unknown_variant(&self, name: &str, known: &[&str]) -> Error {
        self.error(format_args!(
            "unknown variant `{name}`, expected {}",
            OneOf(known)
        ))
    }

    /// An array, each item read by `item`.
    pub fn array<T>(&self, item: impl Fn(Node<'_>) -> Result<T>) -> Result<Vec<T>> {
        let Json::Array(items) = self.json else {
            return Err(self.invalid_type("an array"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, json) in items.iter().enumerate() {
            out.push(item(Node {
                json,
                step: Step::Index(self, i),
            })?);
        }
        Ok(out)
    }

    /// An array of exactly `N` items (a tuple).
    pub fn tuple<const N: usize>(&self) -> Result<[Node<'_>; N]> {
        let Json::Array(items) = self.json else {
            return Err(self.invalid_type("an array"));
        };
        if items.len() != N {
            return Err(self.error(format_args!(
                "invalid length {}, expected an array of {N}",
                items.len()
            )));
        }
        Ok(std::array::from_fn(|i| Node {
            json: &items[i],
            step: Step::Index(self, i),
        }))
    }

    /// An object of any fields: a map, or a struct that [`Object::only`] checks.
    pub fn object(&self) -> Result<Object<'_>> {
        match self.json {
            Json::Object(fields) => Ok(Object { node: self, fields }),
            _ => Err(self.invalid_type("an object")),
        }
    }

    /// An object of the fields `known` only, each at most once: a struct with
    /// `deny_unknown_fields`.
    pub fn record(&self, known: &[&str]) -> Result<Object<'_>> {
        let object = self.object()?;
        object.only(known)?;
        Ok(object)
    }

    /// An enum as serde writes it by default: a unit variant as its name (`"present"`), any
    /// other as an object of one field named after the variant (`{"exact": "x"}`).
    pub fn variant(&self) -> Result<Variant<'_>> {
        match self.json {
            Json::String(name) => Ok(Variant {
                node: self,
                name,
                value: None,
            }),
            Json::Object(fields) if fields.len() == 1 => Ok(Variant {
                node: self,
                name: &fields[0].0,
                value: Some(&fields[0].1),
            }),
            _ => Err(self.invalid_type("a variant name or an object of one field")),
        }
    }
}

/// A string.
pub fn str(node: Node<'_>) -> Result<&str> {
    match node.json {
        Json::String(s) => Ok(s),
        _ => Err(node.invalid_type("a string")),
    }
}

pub fn string(node: Node<'_>) -> Result<String> {
    str(node).map(str::to_owned)
}

/// An array of strings.
pub fn strings(node: Node<'_>) -> Result<Vec<String>> {
    node.array(string)
}

/// Any number, as serde reads an `f64`.
pub fn f64(node: Node<'_>) -> Result<f64> {
    match node.json {
        Json::Number(n) => n.as_f64().ok_or_else(|| node.invalid_type("f64")),
        _ => Err(node.invalid_type("f64")),
    }
}

/// An integer that fits `T` (`expected` names `T` in the refusal).
fn integer<T: TryFrom<u64> + TryFrom<i64>>(node: Node<'_>, expected: &str) -> Result<T> {
    let fits = match node.json {
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => T::try_from(u).ok(),
            (None, Some(i)) => T::try_from(i).ok(),
            (None, None) => return Err(node.invalid_type(expected)),
        },
        _ => return Err(node.invalid_type(expected)),
    };
    fits.ok_or_else(|| {
        node.error(format_args!(
            "invalid value: {}, expected {expected}",
            Unexpected(node.json)
        ))
    })
}

pub fn u8(node: Node<'_>) -> Result<u8> {
    integer(node, "u8")
}

pub fn u16(node: Node<'_>) -> Result<u16> {
    integer(node, "u16")
}

pub fn u32(node: Node<'_>) -> Result<u32> {
    integer(node, "u32")
}

pub fn u64(node: Node<'_>) -> Result<u64> {
    integer(node, "u64")
}

pub fn i64(node: Node<'_>) -> Result<i64> {
    integer(node, "i64")
}

/// An object's fields, read by name.
#[derive(Clone, Copy)]
pub struct Object<'a> {
    node: &'a Node<'a>,
    fields: &'a [(String, Json)],
}

impl<'a> Object<'a> {
    /// Refuse a field not in `known`, and a field given twice.
    pub fn only(&self, known: &[&str]) -> Result<()> {
        for (i, (key, _)) in self.fields.iter().enumerate() {
            if !known.contains(&key.as_str()) {
                return Err(self.node.error(format_args!(
                    "unknown field `{key}`, expected {}",
                    OneOf(known)
                )));
            }
            // Only known keys get here, so this looks at most `known.len()` fields back.
            if self.fields[..i].iter().any(|(k, _)| k == key) {
                return Err(self.node.error(format_args!("duplicate field `{key}`")));
            }
        }
        Ok(())
    }

    /// The field `key`, if present (null included).
    pub fn get(&self, key: &'a str) -> Option<Node<'a>> {
        let (_, json) = self.fields.iter().find(|(k, _)| k == key)?;
        Some(Node {
            json,
            step: Step::Key(self.node, key),
        })
    }

    /// The fields in document order, for a map.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, Node<'a>)> + '_ {
        self.fields.iter().map(|(key, json)| {
            let node = Node {
                json,
                step: Step::Key(self.node, key),
            };
            (key.as_str(), node)
        })
    }

    /// A required field, read by `read`.
    pub fn field<T>(&self, key: &'a str, read: impl FnOnce(Node<'a>) -> Result<T>) -> Result<T> {
        match self.get(key) {
            Some(node) => read(node),
            None => Err(self.node.error(format_args!("missing field `{key}`"))),
        }
    }

    /// An optional field (`Option<T>`): absent or null is `None`.
    pub fn opt_field<T>(
        &self,
        key: &'a str,
        read: impl FnOnce(Node<'a>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            Some(node) if !matches!(node.json, Json::Null) => read(node).map(Some),
            _ => Ok(None),
        }
    }

    /// A field with a default (`#[serde(default)]`): absent is `T::default()`; null is read,
    /// and refused by any reader but an `Option`'s, as serde does.
    pub fn field_or_default<T: Default>(
        &self,
        key: &'a str,
        read: impl FnOnce(Node<'a>) -> Result<T>,
    ) -> Result<T> {
        match self.get(key) {
            Some(node) => read(node),
            None => Ok(T::default()),
        }
    }

    /// The refusal of the variant named in field `tag` (an internally tagged enum's).
    pub fn unknown_tag(&self, tag: &'a str, name: &str, known: &[&str]) -> Error {
        let at = self.get(tag).unwrap_or(*self.node);
        at.unknown_variant(name, known)
    }
}

/// An enum's variant (see [`Node::variant`]).
pub struct Variant<'a> {
    node: &'a Node<'a>,
    pub name: &'a str,
    value: Option<&'a Json>,
}

impl<'a> Variant<'a> {
    /// The variant's value (`"x"` of `{"exact": "x"}`); a bare name has none.
    pub fn value(&self) -> Result<Node<'a>> {
        match self.value {
            Some(json) => Ok(Node {
                json,
                step: Step::Key(self.node, self.name),
            }),
            None => Err(self
                .node
                .error(format_args!("variant `{}` needs a value", self.name))),
        }
    }

    /// Refuse a value: a unit variant is its bare name.
    pub fn unit(&self) -> Result<()> {
        match self.value {
            None => Ok(()),
            Some(_) => Err(self
                .node
                .error(format_args!("variant `{}` takes no value", self.name))),
        }
    }

    /// The refusal of this variant, which is none of `known`.
    pub fn unknown(&self, known: &[&str]) -> Error {
        self.node.unknown_variant(self.name, known)
    }
}

/// A value as serde's `Unexpected` shows it.
struct Unexpected<'a>(&'a Json);

impl Display for Unexpected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "boolean `{b}`"),
            Json::Number(n) if n.is_f64() => write!(f, "floating point `{n}`"),
            Json::Number(n) => write!(f, "integer `{n}`"),
            Json::String(s) => write!(f, "string {s:?}"),
            Json::Array(_) => f.write_str("an array"),
            Json::Object(_) => f.write_str("an object"),
        }
    }
}

/// ``one of `a`, `b` ``, as serde lists the fields or variants it expected.
struct OneOf<'a>(&'a [&'a str]);

impl Display for OneOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of ")?;
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
