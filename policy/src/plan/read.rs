//! The plan read by hand from its JSON ([`Plan::from_json`]): one function per plan type, over
//! the [`Json`](crate::json::Json) tree, reading exactly what serde's `Serialize` derives write
//! (the compiler's output; the plan's format is theirs) and refusing what the `Deserialize`
//! derives refused before: an unknown or repeated field, a missing one, a value of the wrong
//! type or out of range, an unknown variant. Why by hand: [`crate::json`] (filter.wasm's size).
//!
//! A field that serde skips when it is empty or `None` (`skip_serializing_if`) is optional
//! here: absent reads as empty or `None`, and so does null for an `Option`.

use crate::cidr::Cidr;
use crate::fleet::{Fleet, Query};
use crate::json::{self, Node, Object, Result, i64, str, string, strings, u8, u16, u32};
use crate::lane::Lane;
use crate::plan::{
    Action, Arm, Fallback, HashSpec, KeySource, Matcher, Override, OverrideToken, Plan, Reduce,
    Rule, Shadow, Split, Test,
};
use crate::rollout::{
    Breach, Distributed, Gate, Guard, GuardMetric, Metrics, Outcome, OutcomeSource, PathStep,
    Positive, Ramp, RampStep, Segment,
};

/// The plan's fields, in the order serde writes them.
const PLAN_FIELDS: &[&str] = &[
    "format",
    "policy",
    "digest",
    "routing_header",
    "arms",
    "stable",
    "rules",
    "default",
    "splits",
    "override",
    "shadow",
    "segments",
    "outcomes",
    "guards",
    "ramp",
    "metrics",
    "fleet",
];

/// A plan from its root object (whose `format` [`Plan::from_json`] has checked).
pub(super) fn plan(o: &Object<'_>) -> Result<Plan> {
    o.only(PLAN_FIELDS)?;
    Ok(Plan {
        format: o.field("format", u32)?,
        policy: o.field("policy", string)?,
        digest: o.field("digest", string)?,
        routing_header: o.field("routing_header", string)?,
        arms: o.field("arms", |n| n.array(arm))?,
        stable: o.field("stable", u8)?,
        rules: o.field_or_default("rules", |n| n.array(rule))?,
        default: o.field("default", action)?,
        splits: o.field_or_default("splits", |n| n.array(split))?,
        override_: o.opt_field("override", override_)?,
        shadow: o.opt_field("shadow", shadow)?,
        segments: o.field_or_default("segments", |n| n.array(segment))?,
        outcomes: o.field_or_default("outcomes", |n| n.array(outcome))?,
        guards: o.field_or_default("guards", |n| n.array(guard))?,
        ramp: o.opt_field("ramp", ramp)?,
        metrics: o.opt_field("metrics", metrics)?,
        fleet: o.opt_field("fleet", fleet)?,
    })
}

fn arm(n: Node<'_>) -> Result<Arm> {
    let o = n.record(&["name", "value"])?;
    Ok(Arm {
        name: o.field("name", string)?,
        value: o.field("value", string)?,
    })
}

fn rule(n: Node<'_>) -> Result<Rule> {
    let o = n.record(&["name", "all", "action"])?;
    Ok(Rule {
        name: o.field("name", string)?,
        all: o.field_or_default("all", |n| n.array(matcher))?,
        action: o.field("action", action)?,
    })
}

fn action(n: Node<'_>) -> Result<Action> {
    let v = n.variant()?;
    Ok(match v.name {
        "pin" => Action::Pin {
            arm: v.value()?.record(&["arm"])?.field("arm", u8)?,
        },
        "split" => Action::Split {
            split: v.value()?.record(&["split"])?.field("split", u16)?,
        },
        _ => return Err(v.unknown(&["pin", "split"])),
    })
}

fn matcher(n: Node<'_>) -> Result<Matcher> {
    let named = |value: Node<'_>| -> Result<(String, Test)> {
        let o = value.record(&["name", "test"])?;
        Ok((o.field("name", string)?, o.field("test", test)?))
    };
    let any_of = |value: Node<'_>| value.record(&["any_of"])?.field("any_of", strings);
    let v = n.variant()?;
    Ok(match v.name {
        "header" => {
            let (name, test) = named(v.value()?)?;
            Matcher::Header { name, test }
        }
        "cookie" => {
            let (name, test) = named(v.value()?)?;
            Matcher::Cookie { name, test }
        }
        "query" => {
            let (name, test) = named(v.value()?)?;
            Matcher::Query { name, test }
        }
        "path_prefix" => Matcher::PathPrefix {
            any_of: any_of(v.value()?)?,
        },
        "method" => Matcher::Method {
            any_of: any_of(v.value()?)?,
        },
        "source_ip" => Matcher::SourceIp {
            any_of: v
                .value()?
                .record(&["any_of"])?
                .field("any_of", |n| n.array(cidr))?,
        },
        _ => {
            return Err(v.unknown(&[
                "header",
                "cookie",
                "query",
                "path_prefix",
                "method",
                "source_ip",
            ]));
        }
    })
}

fn test(n: Node<'_>) -> Result<Test> {
    let v = n.variant()?;
    Ok(match v.name {
        "present" => v.unit().map(|()| Test::Present)?,
        "absent" => v.unit().map(|()| Test::Absent)?,
        "exact" => Test::Exact(string(v.value()?)?),
        "prefix" => Test::Prefix(string(v.value()?)?),
        "suffix" => Test::Suffix(string(v.value()?)?),
        "any_of" => Test::AnyOf(strings(v.value()?)?),
        "none_of" => Test::NoneOf(strings(v.value()?)?),
        _ => {
            return Err(v.unknown(&[
                "present", "absent", "exact", "prefix", "suffix", "any_of", "none_of",
            ]));
        }
    })
}

fn cidr(n: Node<'_>) -> Result<Cidr> {
    str(n)?
        .parse()
        .map_err(|e: String| n.error(format_args!("invalid value: {e}")))
}

fn split(n: Node<'_>) -> Result<Split> {
    let o = n.record(&["key", "hash", "lanes", "rest", "fallback"])?;
    Ok(Split {
        key: o.field("key", |n| n.array(key_source))?,
        hash: o.field("hash", hash)?,
        lanes: o.field("lanes", lanes)?,
        rest: o.field("rest", u8)?,
        fallback: o.field("fallback", fallback)?,
    })
}

fn key_source(n: Node<'_>) -> Result<KeySource> {
    let v = n.variant()?;
    Ok(match v.name {
        "header" => KeySource::Header(string(v.value()?)?),
        "cookie" => KeySource::Cookie(string(v.value()?)?),
        "query" => KeySource::Query(string(v.value()?)?),
        _ => return Err(v.unknown(&["header", "cookie", "query"])),
    })
}

fn hash(n: Node<'_>) -> Result<HashSpec> {
    let o = n.record(&["prefix", "seed", "reduce"])?;
    Ok(HashSpec {
        prefix: o.field_or_default("prefix", string)?,
        seed: o.field("seed", u32)?,
        reduce: o.field("reduce", reduce)?,
    })
}

fn reduce(n: Node<'_>) -> Result<Reduce> {
    let v = n.variant()?;
    Ok(match v.name {
        "mul_shift" => Reduce::MulShift {
            scale: v.value()?.record(&["scale"])?.field("scale", u32)?,
        },
        "modulo" => Reduce::Modulo {
            modulus: v.value()?.record(&["modulus"])?.field("modulus", u32)?,
        },
        _ => return Err(v.unknown(&["mul_shift", "modulo"])),
    })
}

fn fallback(n: Node<'_>) -> Result<Fallback> {
    let v = n.variant()?;
    Ok(match v.name {
        "arm" => Fallback::Arm {
            arm: v.value()?.record(&["arm"])?.field("arm", u8)?,
        },
        "random_sticky" => {
            let value = v.value()?;
            let o = value.record(&["cookie", "max_age_seconds"])?;
            Fallback::RandomSticky {
                cookie: o.field("cookie", string)?,
                max_age_seconds: o.field("max_age_seconds", u32)?,
            }
        }
        _ => return Err(v.unknown(&["arm", "random_sticky"])),
    })
}

fn override_(n: Node<'_>) -> Result<Override> {
    let o = n.record(&["header", "token", "trusted_sources"])?;
    Ok(Override {
        header: o.field("header", string)?,
        token: o.opt_field("token", |n| {
            let o = n.record(&["header", "value"])?;
            Ok(OverrideToken {
                header: o.field("header", string)?,
                value: o.field("value", string)?,
            })
        })?,
        trusted_sources: o.field_or_default("trusted_sources", |n| n.array(cidr))?,
    })
}

fn shadow(n: Node<'_>) -> Result<Shadow> {
    let o = n.record(&["header", "share", "seed"])?;
    Ok(Shadow {
        header: o.field("header", string)?,
        share: o.field("share", u32)?,
        seed: o.field("seed", u32)?,
    })
}

fn lanes(n: Node<'_>) -> Result<Vec<Lane>> {
    n.array(|n| {
        let o = n.record(&["arm", "start", "end"])?;
        Ok(Lane {
            arm: o.field("arm", u8)?,
            start: o.field("start", u32)?,
            end: o.field("end", u32)?,
        })
    })
}

fn segment(n: Node<'_>) -> Result<Segment> {
    let o = n.record(&["name", "header", "values"])?;
    Ok(Segment {
        name: o.field("name", string)?,
        header: o.field("header", string)?,
        values: o.field_or_default("values", strings)?,
    })
}

fn outcome(n: Node<'_>) -> Result<Outcome> {
    let o = n.record(&["name", "source", "positive"])?;
    Ok(Outcome {
        name: o.field("name", string)?,
        source: o.field("source", outcome_source)?,
        positive: o.opt_field("positive", positive)?,
    })
}

fn outcome_source(n: Node<'_>) -> Result<OutcomeSource> {
    let o = n.object()?;
    let from = o.field("from", str)?;
    Ok(match from {
        "header" => {
            o.only(&["from", "name"])?;
            OutcomeSource::Header {
                name: o.field("name", string)?,
            }
        }
        "json" => {
            o.only(&["from", "path"])?;
            OutcomeSource::Json {
                path: o.field("path", |n| n.array(path_step))?,
            }
        }
        _ => return Err(o.unknown_tag("from", from, &["header", "json"])),
    })
}

fn path_step(n: Node<'_>) -> Result<PathStep> {
    let v = n.variant()?;
    Ok(match v.name {
        "key" => PathStep::Key(string(v.value()?)?),
        "index" => PathStep::Index(u32(v.value()?)?),
        _ => return Err(v.unknown(&["key", "index"])),
    })
}

fn positive(n: Node<'_>) -> Result<Positive> {
    let o = n.object()?;
    let op = o.field("op", str)?;
    Ok(match op {
        "equals" => {
            o.only(&["op", "any_of"])?;
            Positive::Equals {
                any_of: o.field("any_of", strings)?,
            }
        }
        "above" => {
            o.only(&["op", "value"])?;
            Positive::Above {
                value: o.field("value", json::f64)?,
            }
        }
        _ => return Err(o.unknown_tag("op", op, &["equals", "above"])),
    })
}

fn guard(n: Node<'_>) -> Result<Guard> {
    let o = n.record(&[
        "name",
        "arms",
        "metric",
        "window_seconds",
        "min_samples",
        "on_breach",
    ])?;
    Ok(Guard {
        name: o.field("name", string)?,
        arms: o.field("arms", |n| n.array(u8))?,
        metric: o.field("metric", guard_metric)?,
        window_seconds: o.field("window_seconds", u32)?,
        min_samples: o.field("min_samples", u32)?,
        on_breach: o.field("on_breach", |n| {
            let name = str(n)?;
            match name {
                "rollback" => Ok(Breach::Rollback),
                "hold" => Ok(Breach::Hold),
                _ => Err(n.unknown_variant(name, &["rollback", "hold"])),
            }
        })?,
    })
}

fn guard_metric(n: Node<'_>) -> Result<GuardMetric> {
    let o = n.object()?;
    let kind = o.field("kind", str)?;
    Ok(match kind {
        "error_rate" => {
            o.only(&["kind", "max_ppm", "max_ratio_ppm"])?;
            GuardMetric::ErrorRate {
                max_ppm: o.opt_field("max_ppm", u32)?,
                max_ratio_ppm: o.opt_field("max_ratio_ppm", u32)?,
            }
        }
        "latency" => {
            o.only(&["kind", "quantile_ppm", "max_ms", "max_ratio_ppm"])?;
            GuardMetric::Latency {
                quantile_ppm: o.field("quantile_ppm", u32)?,
                max_ms: o.opt_field("max_ms", u32)?,
                max_ratio_ppm: o.opt_field("max_ratio_ppm", u32)?,
            }
        }
        "outcome_rate" => {
            o.only(&[
                "kind",
                "outcome",
                "segment",
                "segment_values",
                "max_ppm",
                "min_ppm",
                "max_ratio_ppm",
                "min_ratio_ppm",
            ])?;
            GuardMetric::OutcomeRate {
                outcome: o.field("outcome", u8)?,
                segment: o.opt_field("segment", u8)?,
                segment_values: o.field_or_default("segment_values", strings)?,
                max_ppm: o.opt_field("max_ppm", u32)?,
                min_ppm: o.opt_field("min_ppm", u32)?,
                max_ratio_ppm: o.opt_field("max_ratio_ppm", u32)?,
                min_ratio_ppm: o.opt_field("min_ratio_ppm", u32)?,
            }
        }
        "distribution" => {
            o.only(&["kind", "over"])?;
            GuardMetric::Distribution {
                over: o.field("over", distributed)?,
            }
        }
        _ => {
            return Err(o.unknown_tag(
                "kind",
                kind,
                &["error_rate", "latency", "outcome_rate", "distribution"],
            ));
        }
    })
}

fn distributed(n: Node<'_>) -> Result<Distributed> {
    let o = n.object()?;
    let from = o.field("from", str)?;
    Ok(match from {
        "outcome" => {
            o.only(&["from", "outcome", "upper_bounds_millionths"])?;
            Distributed::Outcome {
                outcome: o.field("outcome", u8)?,
                upper_bounds_millionths: o.field("upper_bounds_millionths", |n| n.array(i64))?,
            }
        }
        "segment" => {
            o.only(&["from", "segment"])?;
            Distributed::Segment {
                segment: o.field("segment", u8)?,
            }
        }
        _ => return Err(o.unknown_tag("from", from, &["outcome", "segment"])),
    })
}

fn ramp(n: Node<'_>) -> Result<Ramp> {
    let o = n.record(&["split", "arm", "steps"])?;
    Ok(Ramp {
        split: o.field("split", u16)?,
        arm: o.field("arm", u8)?,
        steps: o.field("steps", |n| n.array(ramp_step))?,
    })
}

fn ramp_step(n: Node<'_>) -> Result<RampStep> {
    let o = n.record(&[
        "weight",
        "min_duration_seconds",
        "min_samples",
        "gates",
        "lanes",
    ])?;
    Ok(RampStep {
        weight: o.field("weight", u32)?,
        min_duration_seconds: o.field("min_duration_seconds", u32)?,
        min_samples: o.field_or_default("min_samples", u32)?,
        gates: o.field("gates", |n| {
            n.array(|n| {
                let name = str(n)?;
                match name {
                    "healthy" => Ok(Gate::Healthy),
                    "manual" => Ok(Gate::Manual),
                    _ => Err(n.unknown_variant(name, &["healthy", "manual"])),
                }
            })
        })?,
        lanes: o.field("lanes", lanes)?,
    })
}

fn metrics(n: Node<'_>) -> Result<Metrics> {
    let o = n.record(&["labels", "latency_buckets_us"])?;
    Ok(Metrics {
        labels: o.field("labels", strings)?,
        latency_buckets_us: o.field("latency_buckets_us", |n| n.array(u32))?,
    })
}

fn fleet(n: Node<'_>) -> Result<Fleet> {
    let o = n.record(&[
        "cluster",
        "authority",
        "path",
        "interval_ms",
        "timeout_ms",
        "memory_seconds",
        "query",
    ])?;
    Ok(Fleet {
        cluster: o.field("cluster", string)?,
        authority: o.field("authority", string)?,
        path: o.field("path", string)?,
        interval_ms: o.field("interval_ms", u32)?,
        timeout_ms: o.field("timeout_ms", u32)?,
        memory_seconds: o.field("memory_seconds", u32)?,
        query: o.field_or_default("query", |n| {
            let name = str(n)?;
            match name {
                "raw" => Ok(Query::Raw),
                "recorded" => Ok(Query::Recorded),
                _ => Err(n.unknown_variant(name, &["raw", "recorded"])),
            }
        })?,
    })
}
