//! `serin fmt`: canonical layout that keeps every comment.
//!
//! One space around `=`, no indentation, one blank line before each table header, at most one
//! blank line anywhere, single-line arrays and inline tables spaced as `["a", "b"]` and
//! `{ a = 1 }`, no trailing whitespace, one final newline. Comments stay where they were. The
//! result is checked to mean exactly what the input meant.

// A diagnostic is built once per failed run; boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use toml_edit::{Array, Decor, DocumentMut, InlineTable, Item, RawString, Table, Value};

use crate::diag::Diagnostic;

/// Format a policy. A syntax error comes back as the parse stage's diagnostic.
pub fn format(source: &str) -> Result<String, Diagnostic> {
    let mut doc: DocumentMut = match source.parse() {
        Ok(d) => d,
        Err(_) => {
            return Err(crate::syntax::parse(source).err().unwrap_or_else(|| {
                Diagnostic::error("syntax", "invalid TOML", 0..0).with_label("here")
            }));
        }
    };
    let mut first = true;
    format_table(doc.as_table_mut(), &mut first, false);
    let trailing = clean_block(doc.trailing().as_str().unwrap_or(""));
    doc.set_trailing(trailing);
    let mut out: String = doc
        .to_string()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    let out = format!("{}\n", out.trim_matches('\n'));
    // Never change meaning: compare the parsed values.
    let before: Result<toml::Table, _> = toml::from_str(source);
    let after: Result<toml::Table, _> = toml::from_str(&out);
    match (before, after) {
        (Ok(a), Ok(b)) if a == b => Ok(out),
        _ => Ok(source.to_owned()),
    }
}

/// Comment lines and at most one blank line between them; no indentation.
fn clean_block(raw: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    let lines: Vec<&str> = raw.split('\n').collect();
    // The last piece has no newline after it: it is the indentation of what follows.
    let complete = &lines[..lines.len().saturating_sub(1)];
    for line in complete {
        let t = line.trim();
        if t.is_empty() {
            blank = true;
            continue;
        }
        if blank {
            out.push('\n');
        }
        blank = false;
        out.push_str(t);
        out.push('\n');
    }
    if blank {
        out.push('\n');
    }
    out
}

fn raw(d: &Decor, prefix: bool) -> String {
    let r = if prefix { d.prefix() } else { d.suffix() };
    r.and_then(RawString::as_str).unwrap_or("").to_owned()
}

fn format_table(table: &mut Table, first: &mut bool, dotted: bool) {
    if !table.is_implicit() && !dotted && table.position().is_some() {
        let d = table.decor_mut();
        let comments = clean_block(&raw(d, true))
            .trim_start_matches('\n')
            .to_owned();
        let suffix = raw(d, false).trim_end().to_owned();
        let prefix = if *first {
            comments
        } else {
            format!("\n{comments}")
        };
        d.set_prefix(prefix);
        d.set_suffix(suffix);
        *first = false;
    }
    let mut i = 0;
    for (mut key, item) in table.iter_mut() {
        match item {
            Item::Value(v) => {
                let kd = key.leaf_decor_mut();
                let mut p = clean_block(&raw(kd, true));
                if *first && i == 0 {
                    p = p.trim_start_matches('\n').to_owned();
                }
                kd.set_prefix(if dotted { String::new() } else { p });
                kd.set_suffix(" ");
                key.dotted_decor_mut().clear();
                format_value(v);
                let suffix = raw(v.decor(), false).trim_end().to_owned();
                v.decor_mut().set_prefix(" ");
                v.decor_mut().set_suffix(suffix);
                i += 1;
            }
            Item::Table(t) => {
                if t.is_dotted() {
                    let kd = key.leaf_decor_mut();
                    let p = clean_block(&raw(kd, true));
                    kd.set_prefix(if dotted { String::new() } else { p });
                    kd.set_suffix("");
                    key.dotted_decor_mut().clear();
                    format_table(t, first, true);
                } else {
                    format_table(t, first, false);
                }
            }
            Item::ArrayOfTables(a) => {
                for t in a.iter_mut() {
                    format_table(t, first, false);
                }
            }
            Item::None => {}
        }
    }
    if !table.is_implicit() && !dotted {
        *first = false;
    }
}

fn format_value(v: &mut Value) {
    match v {
        Value::Array(a) if !a.to_string().contains('\n') => format_array(a),
        Value::Array(a) => {
            for item in a.iter_mut() {
                if let Value::InlineTable(t) = item {
                    format_inline(t);
                }
            }
        }
        Value::InlineTable(t) if !t.to_string().contains('\n') => format_inline(t),
        _ => {}
    }
}

fn format_array(a: &mut Array) {
    for item in a.iter_mut() {
        format_value(item);
    }
    a.fmt();
}

fn format_inline(t: &mut InlineTable) {
    for (_, v) in t.iter_mut() {
        format_value(v);
    }
    let text = t.to_string();
    if text.contains('\n') || text.contains('#') {
        return;
    }
    t.fmt();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_keeps_comments() {
        let src = "# head\n\n\n[policy]\nname=\"x\"   # the name\n  description = \"d\"\n[arms.stable]\n\n\n# canary below\n[arms.canary]\nvalue = \"c\"\n[split]\nkey = [ \"header:a\",\"cookie:b\" ]\nweights = {canary=5}\n";
        let out = format(src).unwrap();
        assert_eq!(
            out,
            "# head\n\n[policy]\nname = \"x\"   # the name\ndescription = \"d\"\n\n[arms.stable]\n\n# canary below\n[arms.canary]\nvalue = \"c\"\n\n[split]\nkey = [\"header:a\", \"cookie:b\"]\nweights = { canary = 5 }\n"
        );
        assert_eq!(format(&out).unwrap(), out);
    }
}
