//! `serin schema`: a JSON Schema of the policy file, for editors (taplo, Even Better TOML).
//! Built by hand from the same key lists that `lower` checks, so the two cannot drift apart
//! (a test compares them).

use serde_json::{Value, json};

fn obj(description: &str, props: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "description": description,
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn strings(description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" } }],
    })
}

fn duration(description: &str) -> Value {
    json!({
        "description": format!("{description} A duration such as `90s`, `15m`, `2h`, `7d`, or a number of seconds."),
        "anyOf": [{ "type": "string", "pattern": "^([0-9]+[smhdw])+$" }, { "type": "integer", "minimum": 0 }],
    })
}

fn percent(description: &str) -> Value {
    json!({ "type": "number", "minimum": 0, "maximum": 100, "multipleOf": 0.01, "description": description })
}

fn number(description: &str) -> Value {
    json!({ "type": "number", "description": description })
}

fn split() -> Value {
    let key_source = json!({ "type": "string", "pattern": "^(header|cookie|query):.+$" });
    obj(
        "A weighted, sticky split.",
        json!({
            "key": {
                "description": "Where the bucketing key comes from: `header:NAME`, `cookie:NAME` or `query:NAME`; the first present wins.",
                "anyOf": [key_source.clone(), { "type": "array", "items": key_source, "minItems": 1 }],
            },
            "salt": string("Salt of the hash. Default: the policy name (`NAME:SPLIT` for named splits)."),
            "weights": {
                "type": "object",
                "description": "Arm name to weight. Serin bucketing: percent with at most two decimals; the stable arm takes the rest. unleash and flagd: integers as in those systems.",
                "additionalProperties": { "type": "number", "minimum": 0 },
            },
            "fallback": {
                "description": "What requests without a key get: an arm name, or a random arm kept in a sticky cookie.",
                "anyOf": [
                    { "type": "string" },
                    obj("Random arm, sticky by cookie.", json!({
                        "random": { "const": true },
                        "cookie": string("The sticky cookie. Default `serin-id`."),
                        "max_age": duration("How long the cookie lives. Default 30d."),
                    }), &["random"]),
                ],
            },
            "bucketing": {
                "description": "`serin` (default), or a compatibility mode that matches a feature-flag system's assignment.",
                "anyOf": [
                    { "const": "serin" },
                    obj("Unleash's gradual rollout (one arm) or variants (several).", json!({
                        "unleash": obj("Unleash parameters.", json!({
                            "group_id": string("Unleash groupId (usually the feature name)."),
                            "total_weight": { "type": "integer", "minimum": 1, "description": "Variant total weight. Default: the sum of the weights." },
                        }), &["group_id"]),
                    }), &["unleash"]),
                    obj("flagd's `fractional`.", json!({
                        "flagd": obj("flagd parameters.", json!({ "flag_key": string("The flag key (hashed as a prefix of the key).") }), &["flag_key"]),
                    }), &["flagd"]),
                ],
            },
        }),
        &["key", "weights"],
    )
}

fn test() -> Value {
    json!({
        "description": "A value (exact match) or one test.",
        "anyOf": [
            { "type": "string" },
            {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": false,
                "properties": {
                    "exact": { "type": "string" },
                    "prefix": { "type": "string" },
                    "suffix": { "type": "string" },
                    "present": { "const": true },
                    "absent": { "const": true },
                    "one_of": { "type": "array", "items": { "type": "string" } },
                    "none_of": { "type": "array", "items": { "type": "string" } },
                },
            },
        ],
    })
}

pub fn schema() -> Value {
    let tests = json!({ "type": "object", "additionalProperties": test() });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Serin policy",
        "description": "A canary deployment policy, compiled by `serin compile` to a plan for the Serin proxy filter.",
        "type": "object",
        "additionalProperties": false,
        "required": ["policy", "arms"],
        "properties": {
            "policy": obj("The policy's identity.", json!({
                "name": string("The policy's name, in logs and metrics."),
                "description": string("Free text."),
                "routing_header": string("The request header the filter sets to the chosen arm's value. Default `x-serin-arm`."),
                "stable": string("The stable arm. Default: the arm named `stable`."),
            }), &["name"]),
            "arms": {
                "type": "object",
                "description": "The arms, by name, in order.",
                "minProperties": 1,
                "additionalProperties": obj("An arm.", json!({
                    "value": string("The routing header's value for this arm. Default: the arm's name."),
                    "description": string("Free text."),
                }), &[]),
            },
            "split": split(),
            "splits": { "type": "object", "description": "Named splits that rules apply.", "additionalProperties": split() },
            "rules": {
                "type": "array",
                "description": "Tried in order; the first whose conditions all hold decides.",
                "items": obj("A rule.", json!({
                    "name": string("Shown by `serin explain` and in metrics. Default `rule-N`."),
                    "arm": string("Pin this arm."),
                    "split": string("Apply this split (`default` is `[split]`)."),
                    "when": obj("Conditions; all must hold. None: every request.", json!({
                        "header": tests.clone(),
                        "cookie": tests.clone(),
                        "query": tests,
                        "path_prefix": strings("The path starts with one of these."),
                        "method": strings("The method is one of these (upper case)."),
                        "source_cidr": strings("The client address is in one of these networks."),
                        "users": obj("Allow or deny list of user ids.", json!({
                            "key": string("Where the user id is: `header:NAME`, `cookie:NAME` or `query:NAME`."),
                            "allow": strings("Only these ids match."),
                            "deny": strings("Every id but these matches (and requests without one)."),
                        }), &["key"]),
                    }), &[]),
                }), &[]),
            },
            "segments": {
                "type": "object",
                "description": "Named request attributes for per-segment metrics and guards.",
                "additionalProperties": obj("A segment.", json!({
                    "header": string("The request header carrying the attribute."),
                    "values": strings("Known values; others count as `other`."),
                }), &["header"]),
            },
            "outcomes": {
                "type": "object",
                "description": "The model's decision, read from each response.",
                "additionalProperties": obj("An outcome.", json!({
                    "header": string("A response header."),
                    "json": string("A JSON body field path, e.g. `predictions[0]` or `outputs[0].data[0]`."),
                    "equals": strings("Positive when the value is one of these."),
                    "above": number("Positive when the value is a number above this. Without `equals` or `above`, a numeric outcome for distribution guards."),
                }), &[]),
            },
            "guard_defaults": obj("Defaults for every guard.", json!({
                "window": duration("Evaluation window. Default 5m."),
                "min_samples": { "type": "integer", "minimum": 0, "description": "Samples needed before a verdict. Default 100." },
                "on_breach": { "enum": ["rollback", "hold"], "description": "Default `rollback`." },
            }), &[]),
            "guards": {
                "type": "array",
                "description": "Health conditions; a breach rolls back or holds.",
                "items": obj("A guard.", json!({
                    "name": string("Shown in logs. Default `guard-N`."),
                    "metric": { "enum": ["error_rate", "latency", "outcome_rate", "distribution"] },
                    "arms": strings("Arms watched. Default: every arm but the stable one."),
                    "max": number("Upper bound: a rate (0 to 1), or milliseconds for latency."),
                    "min": number("Lower bound on an outcome rate (0 to 1)."),
                    "max_ratio": number("Upper bound relative to the stable arm (1.2 = 20% above)."),
                    "min_ratio": number("Lower bound relative to the stable arm (outcome rate)."),
                    "quantile": number("Latency quantile, e.g. 0.99."),
                    "outcome": string("The outcome (outcome_rate; distribution: a numeric outcome, with `buckets`)."),
                    "segment": string("Evaluate per value of this segment (outcome_rate); bucket by its values (distribution)."),
                    "buckets": {
                        "type": "array",
                        "items": { "type": "number" },
                        "minItems": 1,
                        "maxItems": serin_policy::guard::CELLS - 1,
                        "description": "Strictly increasing upper bounds of a distribution's buckets over a numeric outcome; the last bucket, above every bound, is open.",
                    },
                    "segment_values": strings("Only these values of the segment."),
                    "window": duration("Evaluation window."),
                    "min_samples": { "type": "integer", "minimum": 0 },
                    "on_breach": { "enum": ["rollback", "hold"] },
                }), &["metric"]),
            },
            "ramp": obj("Raise one arm's weight in steps.", json!({
                "split": string("The split that ramps. Default `[split]`."),
                "arm": string("The arm that ramps. Default: the split's only non-stable arm."),
                "expected_rps": number("Requests per second the policy expects, to check sample sizes."),
                "steps": {
                    "type": "array",
                    "minItems": 1,
                    "items": obj("A step.", json!({
                        "weight": percent("The arm's weight at this step, in percent."),
                        "min_duration": duration("Time at this step before the next."),
                        "gates": { "type": "array", "items": { "enum": ["healthy", "manual"] }, "description": "Default `[\"healthy\"]`." },
                        "min_samples": { "type": "integer", "minimum": 0 },
                    }), &["weight", "min_duration"]),
                },
            }), &["steps"]),
            "override": obj("Let testers force an arm.", json!({
                "header": string("The request header naming the arm."),
                "token": obj("A shared token the request must carry.", json!({
                    "header": string("The header carrying the token."),
                    "value": string("The token."),
                }), &["header", "value"]),
                "trusted_sources": strings("Networks allowed to override without a token."),
            }), &["header"]),
            "shadow": obj("Mirror a share of stable traffic to the canary.", json!({
                "share": percent("Share of stable requests to mirror, in percent."),
                "header": string("The header the filter sets on requests to mirror. Default `x-serin-shadow`."),
                "salt": string("Salt of the mirroring hash."),
            }), &["share"]),
            "fleet": obj("Judge on every proxy's evidence through Prometheus's HTTP API.", json!({
                "cluster": string("The proxy's cluster that reaches Prometheus (in Istio, `outbound|9090||prometheus.istio-system.svc.cluster.local`)."),
                "authority": string("The `:authority` of the query. Default: the cluster name."),
                "path": string("The instant-query path. Default `/api/v1/query`."),
                "interval": duration("How often each proxy asks. Default 5s."),
                "timeout": duration("How long an answer may take, shorter than the interval. Default 2s."),
                "memory": duration("How long a rollback any proxy reported is remembered. Default 24h."),
                "query": { "enum": ["raw", "recorded"], "description": "What the query reads: every proxy's series (`raw`, the default) or the sums of the recording rules `serin emit prometheus` writes (`recorded`, for large fleets)." },
            }), &["cluster"]),
            "metrics": obj("What the filter exports.", json!({
                "labels": { "type": "array", "items": { "enum": ["arm", "rule", "segment", "class", "outcome"] } },
                "latency_buckets_ms": { "type": "array", "items": { "type": "number", "exclusiveMinimum": 0 } },
            }), &[]),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::keys;

    fn props<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a str> {
        let mut v = v;
        for p in path {
            v = &v[*p];
        }
        let mut k: Vec<&str> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        k.sort();
        k
    }

    fn sorted(k: &[&'static str]) -> Vec<&'static str> {
        let mut k = k.to_vec();
        k.sort();
        k
    }

    #[test]
    fn schema_matches_the_keys_lower_accepts() {
        let s = schema();
        assert_eq!(props(&s, &[]), sorted(keys::TOP));
        assert_eq!(props(&s, &["properties", "policy"]), sorted(keys::POLICY));
        assert_eq!(props(&s, &["properties", "split"]), sorted(keys::SPLIT));
        assert_eq!(
            props(&s, &["properties", "rules", "items"]),
            sorted(keys::RULE)
        );
        assert_eq!(
            props(&s, &["properties", "rules", "items", "properties", "when"]),
            sorted(keys::WHEN)
        );
        assert_eq!(
            props(&s, &["properties", "guards", "items"]),
            sorted(keys::GUARD)
        );
        assert_eq!(
            props(&s, &["properties", "guard_defaults"]),
            sorted(keys::GUARD_DEFAULTS)
        );
        assert_eq!(props(&s, &["properties", "ramp"]), sorted(keys::RAMP));
        assert_eq!(
            props(&s, &["properties", "ramp", "properties", "steps", "items"]),
            sorted(keys::STEP)
        );
        assert_eq!(
            props(&s, &["properties", "override"]),
            sorted(keys::OVERRIDE)
        );
        assert_eq!(props(&s, &["properties", "shadow"]), sorted(keys::SHADOW));
        assert_eq!(props(&s, &["properties", "metrics"]), sorted(keys::METRICS));
        assert_eq!(props(&s, &["properties", "fleet"]), sorted(keys::FLEET));
        assert_eq!(
            props(&s, &["properties", "segments", "additionalProperties"]),
            sorted(keys::SEGMENT)
        );
        assert_eq!(
            props(&s, &["properties", "outcomes", "additionalProperties"]),
            sorted(keys::OUTCOME)
        );
        assert_eq!(
            props(&s, &["properties", "arms", "additionalProperties"]),
            sorted(keys::ARM)
        );
    }
}
