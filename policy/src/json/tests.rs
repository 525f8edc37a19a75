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
            Json::Number(Number::from_f64(2.5).unwrap()),
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
