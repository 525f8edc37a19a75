//! One field of a JSON document, found without building the document: serde visits the
//! document once, descends only along the path, and skips everything else.
//!
//! Parsing the body into a `serde_json::Value` allocated a node for every value of every
//! response and then kept one; on the request path of a proxy that is most of an outcome's cost.
//! The answer is what `Value` navigation (`get(key)`, `get(index)`) gives: the last of repeated
//! keys, nothing for a step of the wrong kind, and nothing at all for a body that is not JSON.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use crate::rollout::PathStep;

/// A scalar at the end of the path.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    Text(String),
    Number(Number),
    Bool(bool),
}

/// The scalar at `path` in `body`: `None` when the body is not JSON, the path leads nowhere,
/// or it ends at null, an array or an object.
pub fn read(body: &[u8], path: &[PathStep]) -> Option<Leaf> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = Path(path).deserialize(&mut de).ok()?;
    de.end().ok()?;
    found
}

/// The rest of the path, from the value about to be read.
#[derive(Clone, Copy)]
struct Path<'p>(&'p [PathStep]);

impl<'de> DeserializeSeed<'de> for Path<'_> {
    type Value = Option<Leaf>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Path<'_> {
    type Value = Option<Leaf>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then_some(Leaf::Bool(b)))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| Leaf::Number(n.into())))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| Leaf::Number(n.into())))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // serde_json parses only finite numbers, which `from_f64` always accepts.
        Ok(self
            .0
            .is_empty()
            .then(|| Number::from_f64(n))
            .flatten()
            .map(Leaf::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| Leaf::Text(s.to_owned())))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut at = 0u64;
        let wanted = match self.0.first() {
            Some(PathStep::Index(i)) => Some(u64::from(*i)),
            _ => None,
        };
        loop {
            let more = if Some(at) == wanted {
                seq.next_element_seed(Path(&self.0[1..]))?
                    .map(|leaf| found = leaf)
            } else {
                seq.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if more.is_none() {
                return Ok(found);
            }
            at += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let wanted = match self.0.first() {
            Some(PathStep::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        while let Some(matches) = map.next_key_seed(KeyIs(wanted))? {
            if matches {
                // A repeated key: the last one counts, as in a `Value` object.
                found = map.next_value_seed(Path(&self.0[1..]))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Whether an object's key is the one wanted, compared where it lies in the body when it has
/// no escapes.
struct KeyIs<'k>(Option<&'k str>);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(self.0 == Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// What the outcome read before: the whole body as a `Value`, then navigated.
    fn by_value(body: &[u8], path: &[PathStep]) -> Option<Leaf> {
        let root: Value = serde_json::from_slice(body).ok()?;
        let field = path.iter().try_fold(&root, |v, step| match step {
            PathStep::Key(k) => v.get(k.as_str()),
            PathStep::Index(i) => v.get(*i as usize),
        })?;
        match field {
            Value::String(s) => Some(Leaf::Text(s.clone())),
            Value::Number(n) => Some(Leaf::Number(n.clone())),
            Value::Bool(b) => Some(Leaf::Bool(*b)),
            _ => None,
        }
    }

    fn key(k: &str) -> PathStep {
        PathStep::Key(k.into())
    }

    #[test]
    fn finds_what_value_navigation_finds() {
        let bodies: &[&str] = &[
            r#"{"predictions": [0.93, 0.1]}"#,
            r#"{"predictions": []}"#,
            r#"{"predictions": [[1, 2], 3]}"#,
            r#"{"predictions": {"0": 1}}"#,
            r#"{"outputs":[{"name":"y","data":[1]}]}"#,
            r#"{"outputs":[{"data":["fraud"]}], "outputs": [{"data": [true]}]}"#,
            r#"{"outputs":[{"data":[null]}]}"#,
            r#"{"outputs":[{"data":[-7]}]}"#,
            r#"{"outputs":[{"data":[1e400]}]}"#,
            r#"{"outputs":[{"data":[18446744073709551615]}]}"#,
            r#"{"pred\u0069ctions": ["esc\"aped"]}"#,
            r#"{"predictions": [0.9]} trailing"#,
            r#"{"predictions": [0.9], "bad": }"#,
            r#"[0.5]"#,
            r#""text""#,
            r#"true"#,
            r#"12.50"#,
            "",
            "not json",
        ];
        let paths: Vec<Vec<PathStep>> = vec![
            vec![],
            vec![key("predictions"), PathStep::Index(0)],
            vec![key("predictions"), PathStep::Index(1)],
            vec![key("predictions"), PathStep::Index(0), PathStep::Index(1)],
            vec![key("predictions"), key("0")],
            vec![
                key("outputs"),
                PathStep::Index(0),
                key("data"),
                PathStep::Index(0),
            ],
            vec![PathStep::Index(0)],
            vec![key("missing")],
        ];
        for body in bodies {
            for path in &paths {
                assert_eq!(
                    read(body.as_bytes(), path),
                    by_value(body.as_bytes(), path),
                    "{body} at {path:?}"
                );
            }
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-c\\\\\"é]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[a-c]{0,2}", inner), 0..4)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn path() -> impl Strategy<Value = Vec<PathStep>> {
        let step = prop_oneof![
            "[a-c]{0,2}".prop_map(PathStep::Key),
            (0u32..4).prop_map(PathStep::Index),
        ];
        proptest::collection::vec(step, 0..4)
    }

    proptest! {
        #[test]
        fn agrees_with_value_navigation_on_any_document(doc in json(), path in path(), repeat in any::<bool>()) {
            let mut body = doc.to_string();
            // A key the document may repeat, which a `Value` object resolves to the last one.
            if repeat && body.starts_with('{') && body.len() > 2 {
                body = format!("{{\"a\":1,{}", &body[1..]);
            }
            prop_assert_eq!(read(body.as_bytes(), &path), by_value(body.as_bytes(), &path));
        }
    }
}
