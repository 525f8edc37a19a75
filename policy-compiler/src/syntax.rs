//! Stage 1, parse: TOML text to a tree of values that all carry their source span.
//!
//! The tree keeps the order of keys as written (arms and weights are ordered) and is independent
//! of the TOML library, so later stages never see it.

// A diagnostic is built once per failed run; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, Span};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    /// The float as written (underscores removed), so decimals can be read exactly.
    Float(String),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub node: Node,
}

impl Value {
    /// How the value's type is named in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date-time",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// Parse the policy source. A syntax error stops here: nothing after it can be trusted.
pub fn parse(source: &str) -> Result<Node, Diagnostic> {
    match DeTable::parse(source) {
        Ok(table) => {
            let span = 0..source.len();
            convert_table(table.into_inner(), span)
        }
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().trim_end_matches('.').to_owned();
            let message = lowercase_first(&message);
            Err(
                Diagnostic::error("syntax", format!("invalid TOML: {message}"), span)
                    .with_label("here")
                    .with_help("the policy must be valid TOML (https://toml.io)"),
            )
        }
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn convert_table(table: DeTable<'_>, span: Span) -> Result<Node, Diagnostic> {
    let mut entries = Vec::with_capacity(table.len());
    for (key, value) in table {
        let key_span = key.span();
        let node = convert(value.get_ref(), value.span())?;
        entries.push(Entry {
            key: key.into_inner().into_owned(),
            key_span,
            node,
        });
    }
    Ok(Node {
        span,
        value: Value::Table(entries),
    })
}

fn convert(value: &DeValue<'_>, span: Span) -> Result<Node, Diagnostic> {
    let value = match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(i) => Value::Integer(i),
            Err(_) => {
                return Err(Diagnostic::error(
                    "syntax",
                    format!("integer `{i}` is out of range"),
                    span,
                )
                .with_label("too large"));
            }
        },
        DeValue::Float(f) => Value::Float(f.as_str().to_owned()),
        DeValue::Boolean(b) => Value::Boolean(*b),
        DeValue::Datetime(d) => Value::Datetime(d.to_string()),
        DeValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                out.push(convert(item.get_ref(), item.span())?);
            }
            Value::Array(out)
        }
        DeValue::Table(t) => return convert_table(t.clone(), span),
    };
    Ok(Node { span, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_spans() {
        let src = "[arms.b]\nvalue = \"x\"\n[arms.a]\n";
        let root = parse(src).unwrap();
        let Value::Table(top) = &root.value else {
            panic!()
        };
        let Value::Table(arms) = &top[0].node.value else {
            panic!()
        };
        let names: Vec<_> = arms.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let Value::Table(b) = &arms[0].node.value else {
            panic!()
        };
        assert_eq!(&src[b[0].node.span.clone()], "\"x\"");
        assert_eq!(&src[b[0].key_span.clone()], "value");
    }

    #[test]
    fn syntax_errors_have_spans() {
        let e = parse("a = \n").unwrap_err();
        assert!(e.message.starts_with("invalid TOML"), "{}", e.message);
        assert!(e.span.is_some());
    }
}
