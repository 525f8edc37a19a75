use super::*;

fn parse(text: &str) -> Json {
    Json::parse(text.as_bytes()).unwrap()
}

#[test]
fn the_tree_keeps_every_field_in_order_and_every_number_as_written() {
    let json = parse(r#"{"b": [1, -2, 2.5, true, null], "a": "x", "b": {}}"#);
    let Json::Object(fields) = &json else {
        panic!("{json:?}")
    };
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["b", "a", "b"]);
    assert_eq!(
        fields[0].1,
        Json::Array(vec![
            Json::Number(1u64.into()),
            Json::Number((-2i64).into()),
            Json::Number(Number::from_text("2.5")),
            Json::Bool(true),
            Json::Null,
        ])
    );
    for bad in ["", "{", "[1,]", "{} {}", "nul"] {
        assert!(Json::parse(bad.as_bytes()).is_err(), "{bad}");
    }
    // serde_json's nesting limit holds: deep documents are refused, not a stack overflow.
    let deep = "[".repeat(100_000);
    assert!(Json::parse(deep.as_bytes()).is_err());
}

#[test]
fn refusals_name_the_path_and_what_was_found() {
    let json = parse(r#"{"a": {"b": [{"c": 1.5}, {"c": "x", "d": [1, 2, 3]}]}}"#);
    let root = json.root();
    let b = |read: &dyn Fn(Node<'_>) -> Result<()>| {
        root.object()?.field("a", |a| {
            a.object()?.field("b", |b| b.array(read).map(|_| ()))
        })
    };
    let err = |r: Result<()>| r.unwrap_err().0;
    assert_eq!(
        err(b(&|item| item.object()?.field("c", |c| str(c).map(|_| ())))),
        "at `a.b[0].c`: invalid type: floating point `1.5`, expected a string"
    );
    assert_eq!(
        err(b(&|item| item.object()?.field("d", |d| str(d).map(|_| ())))),
        "at `a.b[0]`: missing field `d`"
    );
    assert_eq!(
        err(b(&|item| {
            item.object()?
                .opt_field("d", |d| d.tuple::<2>().map(|_| ()))
                .map(|_| ())
        })),
        "at `a.b[1].d`: invalid length 3, expected an array of 2"
    );
    assert_eq!(
        err(b(&|item| item.object()?.field("c", |c| f64(c).map(|_| ())))),
        "at `a.b[1].c`: invalid type: string \"x\", expected f64"
    );
    assert_eq!(
        err(str(root).map(|_| ())),
        "invalid type: an object, expected a string"
    );
    for (text, found) in [
        ("null", "null"),
        ("true", "boolean `true`"),
        ("-3", "integer `-3`"),
        ("[]", "an array"),
        (r#""a\"b""#, r#"string "a\"b""#),
    ] {
        assert_eq!(
            err(parse(text).root().object().map(|_| ())),
            format!("invalid type: {found}, expected an object")
        );
    }
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    let json = parse(r#"{"a": null, "b": "x"}"#);
    let root = json.root();
    let o = root.object().unwrap();
    assert_eq!(o.opt_field("a", string).unwrap(), None);
    assert_eq!(o.opt_field("z", string).unwrap(), None);
    assert_eq!(o.opt_field("b", string).unwrap().as_deref(), Some("x"));
    let entries: Vec<&str> = o.entries().map(|(k, _)| k).collect();
    assert_eq!(entries, ["a", "b"]);
}

mod against_serde_json {
    use super::super::{Json, Number};
    use proptest::prelude::*;
    use serde_json::Value;

    /// serde_json's tree in ours, numbers by their value (serde_json keeps no text).
    fn ours(v: &Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(Number::from_text(&n.to_string())),
            Value::String(s) => Json::String(s.clone()),
            Value::Array(items) => Json::Array(items.iter().map(ours).collect()),
            Value::Object(fields) => {
                Json::Object(fields.iter().map(|(k, v)| (k.clone(), ours(v))).collect())
            }
        }
    }

    /// Equal trees, numbers by their value to within the last bits that serde_json's float
    /// parser (not correctly rounded by default) and `core`'s (correctly rounded) may differ
    /// by; so `12.50` and `12.5` are the same number.
    fn same(a: &Json, b: &Json) -> bool {
        match (a, b) {
            (Json::Number(a), Json::Number(b)) => {
                let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                (a - b).abs() <= 1e-14 * a.abs().max(b.abs())
            }
            (Json::Array(a), Json::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
            }
            // serde_json's map keeps the last of a repeated key, in key order.
            (Json::Object(a), Json::Object(b)) => {
                let map = |fields: &'_ [(String, Json)]| -> Vec<(String, Json)> {
                    let last: std::collections::BTreeMap<_, _> = fields.iter().cloned().collect();
                    last.into_iter().collect()
                };
                let (a, b) = (map(a), map(b));
                a.len() == b.len()
                    && a.iter()
                        .zip(&b)
                        .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
            }
            (a, b) => a == b,
        }
    }

    fn document() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            "[a-c\\\\\"é\u{1F600}\n\t\u{1}]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[a-c]{0,2}", inner), 0..4)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// What an edit of one character rarely makes: escapes, surrogates, depth, bytes that are
    /// not UTF-8, numbers at their limits.
    #[test]
    fn agrees_on_the_corners() {
        let deep = "[".repeat(200);
        let texts: Vec<&[u8]> = vec![
            br#""\ud83d\ude00 \u00e9 \/ \b\f\n\r\t""#,
            br#""\ud83d""#,
            br#""\ud83d\u0041""#,
            br#""\ude00""#,
            br#""\ud83d\""#,
            br#""\u12""#,
            br#""\u12g4""#,
            br#""\q""#,
            b"\"\xff\"",
            b"\"\xc3\"",
            b"[\"a\", \"\xe9t\xe9\"]",
            br#"[1e308, 1e309, -1e309, 1.7976931348623157e308, 5e-324, 1e-400, -0, 0.0e0]"#,
            br#"[18446744073709551615, 18446744073709551616, -9223372036854775808, -9223372036854775809]"#,
            br#"{"a" 1}"#,
            br#"{1: 2}"#,
            br#"{"a": 1,}"#,
            br#"[1 2]"#,
            b"\t\r\n [ ] \n",
            b"tru",
            b"falsy",
            b"",
            b"   ",
            deep.as_bytes(),
        ];
        let mut wrong = Vec::new();
        for text in texts {
            let mine = Json::parse(text).map_err(|e| e.to_string());
            let theirs = serde_json::from_slice::<Value>(text).map_err(|e| e.to_string());
            match (mine, theirs) {
                (Ok(mine), Ok(theirs)) => assert!(same(&mine, &ours(&theirs)), "{mine:?}"),
                (mine, theirs) if mine.as_ref().err() == theirs.as_ref().err() => {}
                (mine, theirs) => wrong.push(format!(
                    "{}: ours {mine:?}, serde_json's {theirs:?}",
                    String::from_utf8_lossy(text)
                )),
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    proptest! {
        /// Any text, valid or one edit away from valid, is accepted exactly when serde_json
        /// accepts it, with the same tree, or refused with serde_json's words and position
        /// (operators and tests know them).
        #[test]
        fn reads_what_serde_json_reads_and_refuses_what_it_refuses(
            doc in document(),
            pretty in any::<bool>(),
            edit in proptest::option::of((any::<prop::sample::Index>(), prop::sample::select(
                vec!["", " ", ",", "]", "}", "[", "{", ":", "\"", "\\", "0", "-", ".", "e", "n", "\u{7f}", "\n"]
            ))),
        ) {
            let mut text = if pretty {
                serde_json::to_string_pretty(&doc).unwrap()
            } else {
                doc.to_string()
            };
            if let Some((at, insert)) = edit {
                let mut at = at.index(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                // Replace the character at `at` (if any) by `insert`.
                let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
                text.replace_range(at..end, insert);
            }
            let theirs = serde_json::from_str::<Value>(&text);
            match (Json::parse(text.as_bytes()), theirs) {
                (Ok(mine), Ok(theirs)) => prop_assert!(same(&mine, &ours(&theirs)), "{text:?}: {mine:?}"),
                (Err(mine), Err(theirs)) => {
                    let (mine, theirs) = (mine.to_string(), theirs.to_string());
                    // serde_json reports a number out of range where it noticed, inside it.
                    let what = |e: &str| e.split(" at line").next().unwrap().to_owned();
                    if what(&mine) == "number out of range" {
                        prop_assert_eq!(what(&mine), what(&theirs), "{}", text);
                    } else {
                        prop_assert_eq!(mine, theirs, "{}", text);
                    }
                }
                (mine, theirs) => prop_assert!(false, "{text:?}: ours {mine:?}, serde_json's {theirs:?}"),
            }
        }
    }
}
