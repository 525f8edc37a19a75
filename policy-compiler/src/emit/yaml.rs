//! Building YAML documents in the order a reader expects (`name` before `typed_config`,
//! `apiVersion` and `kind` first), which a `serde_json::Value` would sort away.

pub use serde_norway::Value;
use serde_norway::{Mapping, Number};

/// A mapping with its keys in the given order.
pub fn map<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String(k.to_owned()), v);
    }
    Value::Mapping(m)
}

/// A mapping from owned keys.
pub fn map_owned(pairs: impl IntoIterator<Item = (String, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String(k), v);
    }
    Value::Mapping(m)
}

pub fn s(x: impl Into<String>) -> Value {
    Value::String(x.into())
}

pub fn n(x: u64) -> Value {
    Value::Number(Number::from(x))
}

pub fn i(x: i64) -> Value {
    Value::Number(Number::from(x))
}

pub fn f(x: f64) -> Value {
    Value::Number(Number::from(x))
}

pub fn b(x: bool) -> Value {
    Value::Bool(x)
}

pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Sequence(items.into_iter().collect())
}

/// Any serializable value (a plan) as plain YAML data, keeping its field order.
///
/// Through JSON text, because serializing straight to YAML writes an enum variant as a YAML
/// tag (`!split {split: 0}`), which Kubernetes and the filter's JSON reader both refuse.
/// JSON is YAML, so parsing it back keeps every key in order and every value's type.
pub fn from<T: serde::Serialize>(value: &T) -> Value {
    let json = serde_json::to_string(value).expect("plain data serializes");
    serde_norway::from_str(&json).expect("JSON is YAML")
}

/// One document, without the leading `---`.
pub fn to_string(value: &Value) -> String {
    serde_norway::to_string(value).expect("a YAML value always serializes")
}

/// Several documents, separated by `---`.
pub fn documents(docs: &[Value]) -> String {
    docs.iter().map(to_string).collect::<Vec<_>>().join("---\n")
}
