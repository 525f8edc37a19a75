//! `Plan::from_json`, the plan's reader written by hand (`policy/src/plan/read.rs`): it reads
//! every variant as serde's `Serialize` derives write it, and refuses what the `Deserialize`
//! derives it replaced refused, with the value's path in the message.

use serde_json::{Value, json};
use serin_policy::{PLAN_FORMAT, Plan};

/// A plan with every variant of every enum, every optional field set somewhere and left out
/// somewhere else, written as `Plan::to_json` writes it.
fn every_variant() -> Value {
    json!({
        "format": PLAN_FORMAT, "policy": "every-variant",
        "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000002",
        "routing_header": "x-serin-arm",
        "arms": [{ "name": "stable", "value": "v1" }, { "name": "canary", "value": "v2" },
                 { "name": "experiment", "value": "v3" }],
        "stable": 0,
        "rules": [
            { "name": "testers", "all": [
                { "header": { "name": "x-team", "test": "present" } },
                { "header": { "name": "x-robot", "test": "absent" } },
                { "cookie": { "name": "plan", "test": { "exact": "gold" } } },
                { "query": { "name": "v", "test": { "prefix": "2" } } },
                { "header": { "name": "x-mail", "test": { "suffix": "@example.com" } } },
                { "header": { "name": "x-region", "test": { "any_of": ["eu", "us"] } } },
                { "header": { "name": "x-tier", "test": { "none_of": ["free"] } } },
                { "path_prefix": { "any_of": ["/v2/"] } },
                { "method": { "any_of": ["GET", "POST"] } },
                { "source_ip": { "any_of": ["10.0.0.0/8", "2001:db8::/32"] } }
              ], "action": { "pin": { "arm": 1 } } },
            { "name": "everyone else", "all": [], "action": { "split": { "split": 1 } } }
        ],
        "default": { "split": { "split": 0 } },
        "splits": [
            { "key": [{ "header": "x-user-id" }, { "cookie": "uid" }, { "query": "u" }],
              "hash": { "seed": 7, "reduce": { "mul_shift": { "scale": 10000 } } },
              "lanes": [{ "arm": 1, "start": 0, "end": 500 }], "rest": 0,
              "fallback": { "random_sticky": { "cookie": "serin-id", "max_age_seconds": 3600 } } },
            { "key": [{ "header": "x-user-id" }],
              "hash": { "prefix": "exp:", "seed": 0, "reduce": { "modulo": { "modulus": 100 } } },
              "lanes": [{ "arm": 2, "start": 0, "end": 10 }], "rest": 0,
              "fallback": { "arm": { "arm": 0 } } }
        ],
        "override": { "header": "x-serin-force",
                      "token": { "header": "x-serin-token", "value": "t0p" },
                      "trusted_sources": ["192.0.2.0/24"] },
        "shadow": { "header": "x-serin-shadow", "share": 200, "seed": 3 },
        "segments": [{ "name": "age", "header": "x-age-band", "values": ["18-64", "65+"] },
                     { "name": "region", "header": "x-region" }],
        "outcomes": [
            { "name": "flagged", "source": { "from": "header", "name": "x-model-decision" },
              "positive": { "op": "equals", "any_of": ["flagged"] } },
            { "name": "risky",
              "source": { "from": "json", "path": [{ "key": "outputs" }, { "index": 0 }, { "key": "data" }] },
              "positive": { "op": "above", "value": 0.75 } },
            { "name": "score", "source": { "from": "json", "path": [{ "key": "predictions" }, { "index": 0 }] } }
        ],
        "guards": [
            { "name": "errors", "arms": [1],
              "metric": { "kind": "error_rate", "max_ppm": 20000, "max_ratio_ppm": 1500000 },
              "window_seconds": 60, "min_samples": 100, "on_breach": "rollback" },
            { "name": "latency", "arms": [1, 2],
              "metric": { "kind": "latency", "quantile_ppm": 990000, "max_ms": 250 },
              "window_seconds": 60, "min_samples": 100, "on_breach": "hold" },
            { "name": "elderly", "arms": [1],
              "metric": { "kind": "outcome_rate", "outcome": 0, "segment": 0, "segment_values": ["65+"],
                          "max_ppm": 100000, "min_ppm": 1000, "max_ratio_ppm": 1200000,
                          "min_ratio_ppm": 800000 },
              "window_seconds": 60, "min_samples": 200, "on_breach": "rollback" },
            { "name": "score drift", "arms": [1],
              "metric": { "kind": "distribution", "over": { "from": "outcome", "outcome": 2,
                          "upper_bounds_millionths": [-500000, 0, 250000] } },
              "window_seconds": 60, "min_samples": 100, "on_breach": "rollback" },
            { "name": "age mix", "arms": [1],
              "metric": { "kind": "distribution", "over": { "from": "segment", "segment": 0 } },
              "window_seconds": 60, "min_samples": 100, "on_breach": "rollback" }
        ],
        "ramp": { "split": 0, "arm": 1, "steps": [
            { "weight": 500, "min_duration_seconds": 60, "gates": ["healthy"],
              "lanes": [{ "arm": 1, "start": 0, "end": 500 }] },
            { "weight": 5000, "min_duration_seconds": 120, "min_samples": 1000,
              "gates": ["healthy", "manual"], "lanes": [{ "arm": 1, "start": 0, "end": 5000 }] }
        ] },
        "metrics": { "labels": ["arm", "rule", "segment", "class", "outcome"],
                     "latency_buckets_us": [1000, 5000, 25000] },
        "fleet": { "cluster": "prometheus", "authority": "prometheus:9090", "path": "/api/v1/query",
                   "interval_ms": 5000, "timeout_ms": 2000, "memory_seconds": 86400,
                   "query": "recorded" }
    })
}

fn read(v: &Value) -> Result<Plan, String> {
    Plan::from_json(v.to_string().as_bytes()).map_err(|e| e.0)
}

#[test]
fn every_variant_reads_back_as_it_was_written() {
    let written = every_variant();
    let plan = read(&written).unwrap();
    // Nothing the reader read was lost or changed: written again, it is the same document.
    let again: Value = serde_json::from_str(&plan.to_json()).unwrap();
    assert_eq!(again, written);
    assert_eq!(read(&again).unwrap(), plan);
    // Null is `None` for an optional field, as serde read it.
    let mut with_nulls = written.clone();
    with_nulls["shadow"] = Value::Null;
    with_nulls["outcomes"][0]["positive"] = Value::Null;
    let plan = read(&with_nulls).unwrap();
    assert_eq!(plan.shadow, None);
    assert_eq!(plan.outcomes[0].positive, None);
    // What serde skips when empty may be left out; `rules` and `splits` may be too.
    let minimal = json!({
        "format": PLAN_FORMAT, "policy": "p", "digest": "", "routing_header": "x-arm",
        "arms": [{ "name": "stable", "value": "s" }], "stable": 0, "default": { "pin": { "arm": 0 } }
    });
    let plan = read(&minimal).unwrap();
    assert!(plan.rules.is_empty() && plan.splits.is_empty() && plan.fleet.is_none());
    // The fleet's raw query is the default, and left out when written.
    let mut raw = written.clone();
    raw["fleet"].as_object_mut().unwrap().remove("query");
    let plan = read(&raw).unwrap();
    assert_eq!(
        plan.fleet.as_ref().map(|f| f.query),
        Some(serin_policy::fleet::Query::Raw)
    );
    assert_eq!(serde_json::from_str::<Value>(&plan.to_json()).unwrap(), raw);
}

/// The refusal of `written` after `edit`.
fn refusal(edit: impl FnOnce(&mut Value)) -> String {
    let mut v = every_variant();
    edit(&mut v);
    read(&v).unwrap_err()
}

#[test]
fn unknown_and_repeated_fields_are_refused_by_name_and_path() {
    assert_eq!(
        refusal(|v| v["surprise"] = true.into()),
        "invalid plan: unknown field `surprise`, expected one of `format`, `policy`, `digest`, \
         `routing_header`, `arms`, `stable`, `rules`, `default`, `splits`, `override`, `shadow`, \
         `segments`, `outcomes`, `guards`, `ramp`, `metrics`, `fleet`"
    );
    assert_eq!(
        refusal(|v| v["splits"][1]["hash"]["salt"] = "s".into()),
        "invalid plan: at `splits[1].hash`: unknown field `salt`, expected one of `prefix`, \
         `seed`, `reduce`"
    );
    // An internally tagged enum's fields are its variant's and the tag.
    assert_eq!(
        refusal(|v| v["guards"][1]["metric"]["min_ppm"] = 5.into()),
        "invalid plan: at `guards[1].metric`: unknown field `min_ppm`, expected one of `kind`, \
         `quantile_ppm`, `max_ms`, `max_ratio_ppm`"
    );
    let text = every_variant().to_string();
    let twice = text.replacen("\"stable\":0", "\"stable\":0,\"stable\":1", 1);
    assert_ne!(twice, text);
    assert_eq!(
        Plan::from_json(twice.as_bytes()).unwrap_err().0,
        "invalid plan: duplicate field `stable`"
    );
}

#[test]
fn missing_fields_are_refused_by_name_and_path() {
    let removed = |path: &str, field: &str| {
        refusal(|v| {
            let object = v.pointer_mut(path).unwrap().as_object_mut().unwrap();
            object.remove(field).unwrap();
        })
    };
    assert_eq!(
        removed("", "format"),
        "invalid plan: missing field `format`"
    );
    assert_eq!(
        removed("/arms/1", "value"),
        "invalid plan: at `arms[1]`: missing field `value`"
    );
    assert_eq!(
        removed("/guards/0/metric", "kind"),
        "invalid plan: at `guards[0].metric`: missing field `kind`"
    );
    assert_eq!(
        removed("/ramp/steps/1", "lanes"),
        "invalid plan: at `ramp.steps[1]`: missing field `lanes`"
    );
}

#[test]
fn values_of_the_wrong_type_or_out_of_range_are_refused_with_what_was_found() {
    assert_eq!(
        refusal(|v| v["arms"] = "stable".into()),
        "invalid plan: at `arms`: invalid type: string \"stable\", expected an array"
    );
    assert_eq!(
        refusal(|v| v["format"] = "2".into()),
        "invalid plan: at `format`: invalid type: string \"2\", expected u32"
    );
    assert_eq!(
        refusal(|v| v["guards"][2]["window_seconds"] = 1.5.into()),
        "invalid plan: at `guards[2].window_seconds`: invalid type: floating point `1.5`, \
         expected u32"
    );
    assert_eq!(
        refusal(|v| v["splits"][0]["lanes"][0]["end"] = (-5).into()),
        "invalid plan: at `splits[0].lanes[0].end`: invalid value: integer `-5`, expected u32"
    );
    assert_eq!(
        refusal(|v| v["stable"] = 256.into()),
        "invalid plan: at `stable`: invalid value: integer `256`, expected u8"
    );
    assert_eq!(
        refusal(|v| v["rules"] = Value::Null),
        "invalid plan: at `rules`: invalid type: null, expected an array"
    );
    assert_eq!(
        refusal(|v| v["outcomes"][1]["positive"]["value"] = "high".into()),
        "invalid plan: at `outcomes[1].positive.value`: invalid type: string \"high\", expected f64"
    );
    assert_eq!(
        refusal(|v| v["override"]["trusted_sources"][0] = "192.0.2.0/33".into()),
        "invalid plan: at `override.trusted_sources[0]`: invalid value: `/33` is not a prefix \
         length from 0 to 32"
    );
}

#[test]
fn unknown_variants_and_variants_of_the_wrong_shape_are_refused() {
    assert_eq!(
        refusal(|v| v["default"] = json!({ "spill": { "split": 0 } })),
        "invalid plan: at `default`: unknown variant `spill`, expected one of `pin`, `split`"
    );
    assert_eq!(
        refusal(|v| v["guards"][0]["metric"]["kind"] = "p99".into()),
        "invalid plan: at `guards[0].metric.kind`: unknown variant `p99`, expected one of \
         `error_rate`, `latency`, `outcome_rate`, `distribution`"
    );
    assert_eq!(
        refusal(|v| v["fleet"]["query"] = "cached".into()),
        "invalid plan: at `fleet.query`: unknown variant `cached`, expected one of `raw`, \
         `recorded`"
    );
    assert_eq!(
        refusal(|v| v["guards"][0]["on_breach"] = "panic".into()),
        "invalid plan: at `guards[0].on_breach`: unknown variant `panic`, expected one of \
         `rollback`, `hold`"
    );
    assert_eq!(
        refusal(|v| v["rules"][0]["all"][2]["cookie"]["test"] = "exact".into()),
        "invalid plan: at `rules[0].all[2].cookie.test`: variant `exact` needs a value"
    );
    assert_eq!(
        refusal(|v| v["rules"][0]["all"][0]["header"]["test"] = json!({ "present": true })),
        "invalid plan: at `rules[0].all[0].header.test`: variant `present` takes no value"
    );
    assert_eq!(
        refusal(|v| v["splits"][0]["key"][0] = json!({ "header": "a", "cookie": "b" })),
        "invalid plan: at `splits[0].key[0]`: invalid type: an object, expected a variant name \
         or an object of one field"
    );
}

#[test]
fn another_format_is_refused_before_any_field_is_read() {
    // An older plan may not read as this format at all: the format is what it is told.
    let older = PLAN_FORMAT - 1;
    let mut v = json!({ "format": older, "policy": "p", "a_field_of_the_old_format": [] });
    assert_eq!(
        read(&v).unwrap_err(),
        format!(
            "plan format {older} is not supported: this filter reads format {PLAN_FORMAT}; the \
             plan is older than this filter: recompile the policy with this release's `serin \
             compile` and deploy the new plan"
        )
    );
    v["format"] = (PLAN_FORMAT + 1).into();
    assert!(
        read(&v)
            .unwrap_err()
            .starts_with(&format!("plan format {} is not supported", PLAN_FORMAT + 1))
    );
}

#[test]
fn what_is_not_a_json_object_is_refused_as_such() {
    let refused = |bytes: &[u8]| Plan::from_json(bytes).unwrap_err().0;
    assert_eq!(
        refused(b"[1, 2, 3]"),
        "plugin configuration is not a JSON object (a Serin plan): invalid type: an array, \
         expected an object"
    );
    assert_eq!(
        refused(b"not json"),
        "plugin configuration is not a JSON object (a Serin plan): expected ident at line 1 \
         column 2"
    );
    assert_eq!(
        refused(br#"{"format": "#),
        "invalid plan: EOF while parsing a value at line 1 column 11"
    );
    assert_eq!(
        refused(b""),
        "plugin configuration is empty: expected a Serin plan (JSON)"
    );
}
