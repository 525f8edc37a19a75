//! One field of a JSON document, found without building the document: the parser descends
//! only along the path, and checks and skips everything else (`json::find`).
//!
//! Parsing the body into a tree allocated a node for every value of every response and then
//! kept one; on the request path of a proxy that is most of an outcome's cost. The answer is
//! what tree navigation (`get(key)`, `get(index)`) gives: the last of repeated keys, nothing
//! for a step of the wrong kind, and nothing at all for a body that is not JSON.

pub use crate::json::Leaf;
use crate::rollout::PathStep;

/// The scalar at `path` in `body`: `None` when the body is not JSON, the path leads nowhere,
/// or it ends at null, an array or an object. A number is its text as the body wrote it.
pub fn read<'a>(body: &'a [u8], path: &[PathStep]) -> Option<Leaf<'a>> {
    crate::json::find(body, path).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// What the outcome read before: the whole body as serde_json's `Value`, then navigated.
    /// A number is compared by its value, since `Value` keeps no text.
    fn by_value(body: &[u8], path: &[PathStep]) -> Option<Leaf<'static>> {
        let root: Value = serde_json::from_slice(body).ok()?;
        let field = path.iter().try_fold(&root, |v, step| match step {
            PathStep::Key(k) => v.get(k.as_str()),
            PathStep::Index(i) => v.get(*i as usize),
        })?;
        match field {
            Value::String(s) => Some(Leaf::Text(s.clone().into())),
            Value::Number(n) => Some(Leaf::Number(n.to_string().leak().as_bytes())),
            Value::Bool(b) => Some(Leaf::Bool(*b)),
            _ => None,
        }
    }

    /// A leaf with its number as a value, to compare with [`by_value`]'s: to 14 digits, the
    /// last bits that serde_json's float parser (not correctly rounded by default) and `core`'s
    /// (correctly rounded) may differ by left out.
    fn valued(leaf: Option<Leaf<'_>>) -> Option<(Option<String>, Option<String>, Option<bool>)> {
        Some(match leaf? {
            Leaf::Text(s) => (Some(s.into_owned()), None, None),
            Leaf::Number(n) => {
                let value = crate::json::number_value(n).unwrap();
                (None, Some(format!("{value:.13e}")), None)
            }
            Leaf::Bool(b) => (None, None, Some(b)),
        })
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
            r#"{"predictions": [0.93], "model_version": "stable"}"#,
            "{\n \"a\" : [ 1 , {\"b\" : \"\\ud83d\\ude00\"} ] \n}",
            r#"{"predictions": [01]}"#,
            r#"{"predictions": [1.]}"#,
            r#"{"predictions": [0.9,]}"#,
            r#"{"predictions": [-]}"#,
            r#"{"predictions": "\x"}"#,
            r#"{"predictions": "\ud800"}"#,
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
            vec![key("a"), PathStep::Index(1), key("b")],
            vec![key("missing")],
        ];
        for body in bodies {
            for path in &paths {
                assert_eq!(
                    valued(read(body.as_bytes(), path)),
                    valued(by_value(body.as_bytes(), path)),
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
            prop_assert_eq!(
                valued(read(body.as_bytes(), &path)),
                valued(by_value(body.as_bytes(), &path))
            );
        }
    }
}
