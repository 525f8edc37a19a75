use super::*;
use crate::Book;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn answer(series: &str) -> Vec<u8> {
    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{series}]}}}}"#)
        .into_bytes()
}

fn sample(labels: &str, value: &str) -> String {
    format!(r#"{{"metric":{{{labels}}},"value":[1765000000.5,"{value}"]}}"#)
}

/// Two arms, no rules, this file's digest.
fn bare_plan() -> Plan {
    Plan::from_json(serde_json::json!({
        "format": crate::PLAN_FORMAT, "policy": "p", "digest": DIGEST, "routing_header": "x-arm",
        "arms": [{"name": "stable", "value": "s"}, {"name": "canary", "value": "c"}],
        "stable": 0, "default": {"pin": {"arm": 0}},
    }).to_string().as_bytes())
    .unwrap()
}

#[test]
fn a_prometheus_vector_becomes_the_fleet_totals() {
    let body = answer(&[
        sample(r#""__name__":"serin_responses_total","arm":"canary","class":"5xx","digest":"0123456789abcdef""#, "12"),
        sample(r#""__name__":"serin_responses_total","arm":"canary","class":"2xx""#, "988"),
        sample(r#""__name__":"serin_resets_total","arm":"stable""#, "3"),
        sample(r#""__name__":"serin_outcomes_positive_total","arm":"canary","outcome":"flagged","segment_value":"65+""#, "7"),
        sample(r#""serin_fleet":"rolled_back""#, "1"),
        sample(r#""serin_fleet":"weight_bp""#, "2500"),
    ]
    .join(","));
    let s = parse(&body, DIGEST).unwrap();
    assert_eq!(s.arms["canary"].responses, [988.0, 0.0, 12.0, 0.0]);
    assert_eq!(s.arms["stable"].resets, 3.0);
    let flagged = &s.arms["canary"].outcomes[0];
    assert_eq!(
        (flagged.outcome.as_str(), flagged.segment_value.as_str()),
        ("flagged", "65+")
    );
    assert_eq!((flagged.total, flagged.positive), (0.0, 7.0));
    // What a proxy keeps of an answer between two answers (in its book) reads back as it was.
    let book = Book {
        asked_ms: 5_000,
        answered_ms: 5_020,
        joined: true,
        seen: Some(s.clone()),
        refused: 3,
    };
    assert_eq!(Book::from_bytes(&book.to_bytes()), Some(book));
    assert!(s.rolled_back);
    assert_eq!(s.weight, Some(2500));
    // No live proxy and no rollback remembered: nothing for either.
    let empty = parse(&answer(""), DIGEST).unwrap();
    assert!(!empty.rolled_back && empty.weight.is_none() && empty.arms.is_empty());
}

/// The recorded form's answer (the recording rules' names, with the digest label) reads as the
/// raw form's: the same totals from the same counts.
#[test]
fn a_recorded_answer_reads_as_the_raw_one() {
    let raw = answer(&[
        sample(r#""__name__":"serin_responses_total","arm":"canary","class":"5xx""#, "12"),
        sample(r#""__name__":"serin_resets_total","arm":"stable""#, "3"),
        sample(r#""__name__":"serin_outcomes_total","arm":"canary","outcome":"flagged","segment_value":"65+""#, "70"),
        sample(r#""serin_fleet":"rolled_back""#, "0"),
        sample(r#""serin_fleet":"weight_bp""#, "500"),
    ]
    .join(","));
    let recorded = answer(&[
        sample(r#""__name__":"serin:responses:sum","arm":"canary","class":"5xx","digest":"0123456789abcdef""#, "12"),
        sample(r#""__name__":"serin:resets:sum","arm":"stable","digest":"0123456789abcdef""#, "3"),
        sample(r#""__name__":"serin:outcomes:sum","arm":"canary","outcome":"flagged","segment":"age_band","segment_value":"65+","digest":"0123456789abcdef""#, "70"),
        sample(r#""serin_fleet":"rolled_back""#, "0"),
        sample(r#""serin_fleet":"weight_bp""#, "500"),
    ]
    .join(","));
    assert_eq!(
        parse(&recorded, DIGEST).unwrap(),
        parse(&raw, DIGEST).unwrap()
    );
    // Another version's recorded sums are refused, as its raw series are.
    let other = answer(&sample(
        r#""__name__":"serin:responses:sum","arm":"canary","class":"5xx","digest":"ffffffffffffffff""#,
        "1",
    ));
    assert!(matches!(parse(&other, DIGEST), Err(Refused::Malformed(_))));
}

#[test]
fn the_recorded_query_reads_what_the_recording_rules_write() {
    let plan = bare_plan();
    let fleet = Fleet {
        query: Query::Recorded,
        ..Fleet::new("prometheus", "prometheus:9090")
    };
    let q = query(&plan, &fleet);
    let rules = recording_rules();
    for (record, _) in &rules {
        assert!(q.contains(record.as_str()), "{record} is not read by {q}");
    }
    assert_eq!(recorded_name(RESPONSES.name), "serin:responses:sum");
    assert_eq!(
        recorded_name(CANARY_WEIGHT.name),
        "serin:canary_weight_bp:max"
    );
    assert!(q.contains(r#"digest="0123456789abcdef""#));
    // The raw form reads no recorded name.
    let raw = query(&plan, &Fleet::new("prometheus", "prometheus:9090"));
    assert!(!raw.contains("serin:"), "{raw}");
}

#[test]
fn bad_answers_are_refused_whole() {
    let refused = |body: &[u8]| parse(body, DIGEST).unwrap_err();
    assert!(matches!(
        refused(b"<html>502 Bad Gateway</html>"),
        Refused::Malformed(_)
    ));
    assert!(matches!(refused(b""), Refused::Malformed(_)));
    assert!(matches!(
        refused(br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#),
        Refused::Error(e) if e.contains("parse error")
    ));
    assert!(matches!(
        refused(br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#),
        Refused::Malformed(_)
    ));
    for v in ["NaN", "-1", "+Inf", "twelve"] {
        let body = answer(&sample(
            r#""__name__":"serin_resets_total","arm":"canary""#,
            v,
        ));
        assert!(matches!(refused(&body), Refused::Malformed(_)), "{v}");
    }
    let other = answer(&sample(
        r#""__name__":"serin_resets_total","digest":"ffffffffffffffff""#,
        "1",
    ));
    assert!(matches!(refused(&other), Refused::Malformed(e) if e.contains("ffffffffffffffff")));
    let huge = vec![b' '; MAX_ANSWER_BYTES + 1];
    assert_eq!(refused(&huge), Refused::TooLarge(MAX_ANSWER_BYTES + 1));
}

#[test]
fn the_query_names_the_digest_and_the_memory_and_is_url_encoded() {
    let plan = bare_plan();
    let fleet = Fleet::new("prometheus", "prometheus:9090");
    let q = query(&plan, &fleet);
    assert!(q.contains(r#"digest="0123456789abcdef""#), "{q}");
    assert!(q.contains("[86400s]"), "{q}");
    let c = call(&plan, &fleet);
    assert!(
        c.path
            .starts_with("/api/v1/query?query=sum%20by%20%28__name__"),
        "{}",
        c.path
    );
    assert!(!c.path[c.path.find('=').unwrap() + 1..].contains(['"', ' ', '{', '|']));
}

fn set(t: &mut ArmTotals, value: &str, total: f64, positive: f64) {
    let o = t.outcome_mut("flagged".into(), value.into());
    (o.total, o.positive) = (total, positive);
}

#[test]
fn counts_between_two_answers_and_a_restart_skips_one_interval() {
    let plan = Plan::from_json(serde_json::json!({
        "format": crate::PLAN_FORMAT, "policy": "p", "digest": DIGEST, "routing_header": "x-arm",
        "arms": [{"name": "stable", "value": "s"}, {"name": "canary", "value": "c"}],
        "stable": 0, "default": {"pin": {"arm": 0}},
        "segments": [{"name": "age_band", "header": "x-age", "values": ["18-64", "65+"]}],
        "outcomes": [{"name": "flagged", "source": {"from": "header", "name": "x-flag"},
                      "positive": {"op": "equals", "any_of": ["1"]}}],
    }).to_string().as_bytes())
    .unwrap();
    let layout = Layout {
        cells: vec![
            Cell::Outcome {
                outcome: 0,
                segment: Some((0, 1)),
            },
            Cell::Outcome {
                outcome: 0,
                segment: None,
            },
        ],
        unplaced: Vec::new(),
    };
    let mut before = ArmTotals {
        responses: [100.0, 0.0, 2.0, 0.0],
        ..ArmTotals::default()
    };
    set(&mut before, "65+", 20.0, 2.0);
    set(&mut before, "18-64", 80.0, 4.0);
    let mut after = before.clone();
    after.responses = [190.0, 1.0, 9.0, 0.0];
    after.resets = 1.0;
    set(&mut after, "65+", 40.0, 8.0);
    set(&mut after, "18-64", 160.0, 9.0);
    let c = between(&plan, &layout, &before, &after).unwrap();
    assert_eq!(c.responses, [90, 1, 7, 0]);
    assert_eq!((c.completed(), c.errors()), (99, 8));
    assert_eq!(
        c.outcomes[0],
        Outcomes {
            total: 20,
            positive: 6
        }
    );
    assert_eq!(
        c.outcomes[1],
        Outcomes {
            total: 100,
            positive: 11
        }
    );
    // A proxy restarted: a total fell, so this interval says nothing.
    let mut restarted = after.clone();
    restarted.responses[0] = 50.0;
    assert_eq!(between(&plan, &layout, &after, &restarted), None);
}

#[test]
fn an_answer_of_the_wrong_shape_is_refused_and_one_with_more_fields_is_read() {
    let refused = |body: &str| match parse(body.as_bytes(), DIGEST) {
        Err(Refused::Malformed(e)) => e,
        other => panic!("{body}: {other:?}"),
    };
    let series = |labels: &str, value: &str| {
        answer(&format!(r#"{{"metric":{{{labels}}},"value":{value}}}"#))
    };
    let body = |b: Vec<u8>| String::from_utf8(b).unwrap();
    assert_eq!(
        refused(&body(series(r#""arm":7"#, r#"[1, "2"]"#))),
        "at `data.result[0].metric.arm`: invalid type: integer `7`, expected a string"
    );
    assert_eq!(
        refused(&body(series(r#""arm":"a""#, r#"[1, "2", 3]"#))),
        "at `data.result[0].value`: invalid length 3, expected an array of 2"
    );
    assert_eq!(
        refused(&body(series(r#""arm":"a""#, r#"[1, 2]"#))),
        "at `data.result[0].value[1]`: invalid type: integer `2`, expected a string"
    );
    assert_eq!(
        refused(r#"{"status":"success","data":{"resultType":"vector"}}"#),
        "at `data`: missing field `result`"
    );
    assert_eq!(refused(r#"{"status":"success","data":null}"#), "no data");
    assert_eq!(refused(r#"{"status":"success"}"#), "no data");
    assert_eq!(
        refused(r#"["success"]"#),
        "invalid type: an array, expected an object"
    );
    assert_eq!(
        refused(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#),
        "a matrix"
    );
    // Prometheus may add fields (warnings, infos, stats); they are not ours to refuse.
    let more = format!(
        r#"{{"status":"success","warnings":["w"],"data":{{"resultType":"vector","stats":{{}},"result":[{}]}}}}"#,
        r#"{"metric":{"__name__":"serin_resets_total","arm":"canary"},"value":[1.5,"4"],"extra":1}"#
    );
    let s = parse(more.as_bytes(), DIGEST).unwrap();
    assert_eq!(s.arms["canary"].resets, 4.0);
    // An error without its message names the status.
    assert_eq!(
        parse(br#"{"status":"error"}"#, DIGEST),
        Err(Refused::Error("error".into()))
    );
}

#[test]
fn a_book_reads_back_and_anything_else_reads_as_none() {
    let mut snap = Snapshot {
        rolled_back: false,
        weight: Some(2_500),
        ..Snapshot::default()
    };
    snap.add("serin_resets_total", |_| "canary".into(), 2.0);
    snap.add(
        "serin_outcomes_total",
        |k| {
            if k == "arm" {
                "stable".into()
            } else {
                "x".into()
            }
        },
        0.5,
    );
    snap.add(
        "serin_distribution_total",
        |k| match k {
            "arm" => "canary".into(),
            "guard" => "score-drift".into(),
            _ => "le_0.2".into(),
        },
        7.0,
    );
    assert_eq!(snap.arms["canary"].buckets.len(), 1);
    let book = Book {
        asked_ms: u64::MAX,
        answered_ms: 1,
        joined: true,
        seen: Some(snap),
        refused: 0,
    };
    let bytes = book.to_bytes();
    assert_eq!(Book::from_bytes(&bytes), Some(book.clone()));
    assert_eq!(
        Book::from_bytes(&Book::default().to_bytes()),
        Some(Book::default())
    );
    // Truncated anywhere, or with a byte more: refused.
    for n in 0..bytes.len() {
        assert_eq!(Book::from_bytes(&bytes[..n]), None, "{n} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Book::from_bytes(&longer), None);
    // Another version, a bool that is not 0 or 1, a count far past the end, a name that is not
    // UTF-8, and the JSON book of the release before: refused.
    let mut other = bytes.clone();
    other[4] = 2;
    assert_eq!(Book::from_bytes(&other), None);
    let mut not_bool = bytes.clone();
    not_bool[22] = 2; // `joined`, after the magic, the version and two u64
    assert_eq!(Book::from_bytes(&not_bool), None);
    let at_arms = 4 + 2 + 8 + 8 + 1 + 8 + 1 + 1 + 1 + 4;
    let mut huge = bytes.clone();
    huge[at_arms..at_arms + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Book::from_bytes(&huge), None);
    let mut not_utf8 = bytes.clone();
    not_utf8[at_arms + 4 + 4] = 0xff; // the first arm name's first byte
    assert_eq!(Book::from_bytes(&not_utf8), None);
    let json = br#"{"asked_ms":5,"answered_ms":0,"joined":true,"seen":null,"refused":0}"#;
    assert_eq!(Book::from_bytes(json), None);
}

proptest::proptest! {
    /// Garbled shared data never panics the reader.
    #[test]
    fn any_bytes_read_as_a_book_or_none(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), keep in 0usize..200) {
        let _ = Book::from_bytes(&bytes);
        let mut good = Book { seen: Some(Snapshot::default()), ..Book::default() }.to_bytes();
        good.extend_from_slice(&bytes);
        good.truncate(keep.max(6));
        let _ = Book::from_bytes(&good);
    }
}
