//! JSON documents read by hand: a small tree ([`Json`]) and the helpers that read typed values
//! out of it, naming the path of whatever they refuse (`data.result[0].value`).
//!
//! Why by hand: serde's `Deserialize` derives, monomorphised over `serde_json`'s deserializer,
//! are the largest part of `filter.wasm` (docs/perf-log.md, "filter.wasm: reading JSON by
//! hand"). One visitor that builds this tree, over the parser that the body outcome reader
//! (`outcome::json_path`) links anyway, and plain functions over the tree cost a fraction of
//! that. The fleet answer's reader is [`crate::fleet::parse`].
//!
//! What the helpers refuse is said in serde's words (`invalid type: string "1", expected a
//! string`, `missing field `result``), after the path when there is one.

use std::fmt::{self, Display, Write as _};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

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
    /// Parse a whole document (serde_json's parser: nesting is bounded, trailing bytes refused).
    pub fn parse(bytes: &[u8]) -> Result<Json, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The root of the document, for reading.
    pub fn root(&self) -> Node<'_> {
        Node {
            json: self,
            step: Step::Root,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Json, D::Error> {
        de.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
        // serde_json parses only finite numbers, which `from_f64` always accepts.
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            fields.push((key, map.next_value()?));
        }
        Ok(Json::Object(fields))
    }
}

/// Why a document was refused: the path of the offending value (empty at the root) and what is
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

    /// An error about this value: `at `path`: what`, or `what` at the root.
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

    pub fn str(&self) -> Result<&'a str> {
        match self.json {
            Json::String(s) => Ok(s),
            _ => Err(self.invalid_type("a string")),
        }
    }

    pub fn string(&self) -> Result<String> {
        self.str().map(str::to_owned)
    }

    /// Any number, as serde reads an `f64`.
    pub fn f64(&self) -> Result<f64> {
        match self.json {
            Json::Number(n) => n.as_f64().ok_or_else(|| self.invalid_type("f64")),
            _ => Err(self.invalid_type("f64")),
        }
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

    /// An object.
    pub fn object(&self) -> Result<Object<'_>> {
        match self.json {
            Json::Object(fields) => Ok(Object { node: self, fields }),
            _ => Err(self.invalid_type("an object")),
        }
    }
}

/// An object's fields, read by name.
#[derive(Clone, Copy)]
pub struct Object<'a> {
    node: &'a Node<'a>,
    fields: &'a [(String, Json)],
}

impl<'a> Object<'a> {
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

#[cfg(test)]
mod tests;
