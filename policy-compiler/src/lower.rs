//! Stage 2, lower: the syntax tree to the typed [`Policy`] model. Checks shapes and types only:
//! unknown keys (with "did you mean"), missing required keys, wrong value types. References and
//! ranges are `validate`'s job.

use crate::ast::*;
use crate::diag::{Diagnostic, Span, did_you_mean};
use crate::syntax::{Entry, Node, Value};

/// Keys of each table, for unknown-key checks, suggestions and the schema.
pub mod keys {
    pub const TOP: &[&str] = &[
        "policy",
        "arms",
        "split",
        "splits",
        "rules",
        "segments",
        "outcomes",
        "guard_defaults",
        "guards",
        "ramp",
        "override",
        "shadow",
        "metrics",
        "fleet",
    ];
    pub const POLICY: &[&str] = &["name", "description", "routing_header", "stable"];
    pub const ARM: &[&str] = &["value", "description"];
    pub const SPLIT: &[&str] = &["key", "salt", "weights", "fallback", "bucketing"];
    pub const FALLBACK: &[&str] = &["random", "cookie", "max_age"];
    pub const BUCKETING: &[&str] = &["unleash", "flagd"];
    pub const UNLEASH: &[&str] = &["group_id", "total_weight"];
    pub const FLAGD: &[&str] = &["flag_key"];
    pub const RULE: &[&str] = &["name", "when", "arm", "split"];
    pub const WHEN: &[&str] = &[
        "header",
        "cookie",
        "query",
        "path_prefix",
        "method",
        "source_cidr",
        "users",
    ];
    pub const TEST: &[&str] = &[
        "exact", "prefix", "suffix", "present", "absent", "one_of", "none_of",
    ];
    pub const USERS: &[&str] = &["key", "allow", "deny"];
    pub const SEGMENT: &[&str] = &["header", "values"];
    pub const OUTCOME: &[&str] = &["header", "json", "equals", "above"];
    pub const GUARD_DEFAULTS: &[&str] = &["window", "min_samples", "on_breach"];
    pub const GUARD: &[&str] = &[
        "name",
        "metric",
        "arms",
        "max",
        "min",
        "max_ratio",
        "min_ratio",
        "quantile",
        "outcome",
        "segment",
        "segment_values",
        "buckets",
        "window",
        "min_samples",
        "on_breach",
    ];
    pub const RAMP: &[&str] = &["split", "arm", "expected_rps", "steps"];
    pub const STEP: &[&str] = &["weight", "min_duration", "gates", "min_samples"];
    pub const OVERRIDE: &[&str] = &["header", "token", "trusted_sources"];
    pub const TOKEN: &[&str] = &["header", "value"];
    pub const SHADOW: &[&str] = &["share", "header", "salt"];
    pub const METRICS: &[&str] = &["labels", "latency_buckets_ms"];
    pub const FLEET: &[&str] = &[
        "cluster",
        "authority",
        "path",
        "interval",
        "timeout",
        "memory",
        "query",
    ];
}

const TOP_LEVEL: &str = "the policy file";

/// A table whose keys were checked against the allowed set.
struct Obj<'a> {
    entries: &'a [Entry],
    span: Span,
    what: String,
}

impl<'a> Obj<'a> {
    fn get(&self, key: &str) -> Option<&'a Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    fn node(&self, key: &str) -> Option<&'a Node> {
        self.get(key).map(|e| &e.node)
    }
}

struct Lower {
    errors: Vec<Diagnostic>,
}

/// Lower a parsed policy. Returns every shape error found, not just the first.
pub fn lower(root: &Node) -> Result<Policy, Vec<Diagnostic>> {
    let mut l = Lower { errors: Vec::new() };
    let policy = l.policy(root);
    match policy {
        Some(p) if l.errors.is_empty() => Ok(p),
        _ => Err(l.errors),
    }
}

impl Lower {
    fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    fn table<'a>(&mut self, node: &'a Node, what: &str, allowed: &[&str]) -> Option<Obj<'a>> {
        let Value::Table(entries) = &node.value else {
            self.err(
                Diagnostic::error(
                    "type",
                    format!("`{what}` must be a table, found {}", node.value.kind()),
                    node.span.clone(),
                )
                .with_label("expected a table"),
            );
            return None;
        };
        for e in entries {
            if !allowed.contains(&e.key.as_str()) {
                let mut d = Diagnostic::error(
                    "unknown-key",
                    if what == TOP_LEVEL {
                        format!("unknown top-level key `{}`", e.key)
                    } else {
                        format!("unknown key `{}` in `{what}`", e.key)
                    },
                    e.key_span.clone(),
                )
                .with_label("unknown key");
                d = match did_you_mean(&e.key, allowed.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("expected one of: {}", list(allowed))),
                };
                self.err(d);
            }
        }
        Some(Obj {
            entries,
            span: node.span.clone(),
            what: what.to_owned(),
        })
    }

    /// A key that must be there.
    fn required<'a>(&mut self, obj: &Obj<'a>, key: &str) -> Option<&'a Node> {
        let node = obj.node(key);
        if node.is_none() {
            self.err(
                Diagnostic::error(
                    "missing-key",
                    format!("`{}` is missing `{key}`", obj.what),
                    obj.span.clone(),
                )
                .with_label(format!("needs `{key}`")),
            );
        }
        node
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<S<String>> {
        match &node.value {
            Value::String(s) => Some(S::new(s.clone(), node.span.clone())),
            other => {
                self.type_error(node, what, "a string", other);
                None
            }
        }
    }

    fn opt_string(&mut self, obj: &Obj<'_>, key: &str) -> Option<S<String>> {
        let node = obj.node(key)?;
        self.string(node, &format!("{}.{key}", obj.what))
    }

    fn req_string(&mut self, obj: &Obj<'_>, key: &str) -> Option<S<String>> {
        let node = self.required(obj, key)?;
        self.string(node, &format!("{}.{key}", obj.what))
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            Value::Boolean(b) => Some(*b),
            other => {
                self.type_error(node, what, "a boolean", other);
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, what: &str) -> Option<S<i64>> {
        match &node.value {
            Value::Integer(i) => Some(S::new(*i, node.span.clone())),
            other => {
                self.type_error(node, what, "an integer", other);
                None
            }
        }
    }

    fn count(&mut self, node: &Node, what: &str) -> Option<S<u64>> {
        let i = self.integer(node, what)?;
        match u64::try_from(i.v) {
            Ok(v) => Some(S::new(v, i.span)),
            Err(_) => {
                self.err(
                    Diagnostic::error("range", format!("`{what}` must not be negative"), i.span)
                        .with_label("negative"),
                );
                None
            }
        }
    }

    fn number(&mut self, node: &Node, what: &str) -> Option<S<Number>> {
        match &node.value {
            Value::Integer(i) => Some(S::new(
                Number {
                    text: i.to_string(),
                    is_integer: true,
                },
                node.span.clone(),
            )),
            Value::Float(f) => Some(S::new(
                Number {
                    text: f.clone(),
                    is_integer: false,
                },
                node.span.clone(),
            )),
            other => {
                self.type_error(node, what, "a number", other);
                None
            }
        }
    }

    fn float(&mut self, node: &Node, what: &str) -> Option<S<f64>> {
        let n = self.number(node, what)?;
        let v = n.v.as_f64();
        if !v.is_finite() {
            self.err(
                Diagnostic::error("range", format!("`{what}` must be a finite number"), n.span)
                    .with_label("not finite"),
            );
            return None;
        }
        Some(S::new(v, n.span))
    }

    fn opt_float(&mut self, obj: &Obj<'_>, key: &str) -> Option<S<f64>> {
        let node = obj.node(key)?;
        self.float(node, &format!("{}.{key}", obj.what))
    }

    fn array<'a>(&mut self, node: &'a Node, what: &str) -> Option<&'a [Node]> {
        match &node.value {
            Value::Array(items) => Some(items),
            other => {
                self.type_error(node, what, "an array", other);
                None
            }
        }
    }

    fn strings(&mut self, node: &Node, what: &str) -> Vec<S<String>> {
        // A single string stands for a one-element list.
        if let Value::String(s) = &node.value {
            return vec![S::new(s.clone(), node.span.clone())];
        }
        let Some(items) = self.array(node, what) else {
            return Vec::new();
        };
        items.iter().filter_map(|n| self.string(n, what)).collect()
    }

    fn opt_strings(&mut self, obj: &Obj<'_>, key: &str) -> Vec<S<String>> {
        match obj.node(key) {
            Some(n) => self.strings(n, &format!("{}.{key}", obj.what)),
            None => Vec::new(),
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<S<u64>> {
        match &node.value {
            Value::Integer(i) if *i >= 0 => Some(S::new(*i as u64, node.span.clone())),
            Value::String(s) => {
                match parse_duration(s) {
                    Some(secs) => Some(S::new(secs, node.span.clone())),
                    None => {
                        self.err(
                        Diagnostic::error("duration", format!("`{s}` is not a duration"), node.span.clone())
                            .with_label("not a duration")
                            .with_help("write a number and a unit, e.g. `90s`, `15m`, `2h`, `7d` or `1h30m`"),
                    );
                        None
                    }
                }
            }
            other => {
                self.type_error(node, what, "a duration such as `15m`", other);
                None
            }
        }
    }

    fn type_error(&mut self, node: &Node, what: &str, expected: &str, found: &Value) {
        self.err(
            Diagnostic::error(
                "type",
                format!("`{what}` must be {expected}, found {}", found.kind()),
                node.span.clone(),
            )
            .with_label(format!("expected {expected}")),
        );
    }

    /// Entries of a table of named tables (`[arms.NAME]`), with their names.
    fn named<'a>(&mut self, node: &'a Node, what: &str) -> &'a [Entry] {
        match &node.value {
            Value::Table(entries) => entries,
            other => {
                self.type_error(node, what, "a table", other);
                &[]
            }
        }
    }

    fn policy(&mut self, root: &Node) -> Option<Policy> {
        let top = self.table(root, TOP_LEVEL, keys::TOP)?;
        let header = match top.node("policy") {
            Some(n) => self.table(n, "policy", keys::POLICY),
            None => {
                self.err(
                    Diagnostic::error("missing-key", "the policy has no `[policy]` table", 0..0)
                        .with_label("expected `[policy]`")
                        .with_help("start the file with `[policy]` and `name = \"...\"`"),
                );
                None
            }
        };
        let name = header.as_ref().and_then(|h| self.req_string(h, "name"));
        let description = header
            .as_ref()
            .and_then(|h| self.opt_string(h, "description"));
        let routing_header = header
            .as_ref()
            .and_then(|h| self.opt_string(h, "routing_header"));
        let stable = header.as_ref().and_then(|h| self.opt_string(h, "stable"));

        let mut arms = Vec::new();
        let arms_span = match top.get("arms") {
            Some(e) => {
                for arm in self.named(&e.node, "arms") {
                    let what = format!("arms.{}", arm.key);
                    let Some(t) = self.table(&arm.node, &what, keys::ARM) else {
                        continue;
                    };
                    arms.push(ArmDef {
                        name: S::new(arm.key.clone(), arm.key_span.clone()),
                        value: self.opt_string(&t, "value"),
                        description: self.opt_string(&t, "description"),
                    });
                }
                e.key_span.clone()
            }
            None => {
                self.err(
                    Diagnostic::error("missing-key", "the policy has no arms", 0..0)
                        .with_label("expected `[arms.NAME]` tables")
                        .with_help("declare at least `[arms.stable]` and `[arms.canary]`"),
                );
                0..0
            }
        };

        let split = top.get("split").and_then(|e| {
            self.split(
                &e.node,
                S::new("default".into(), e.key_span.clone()),
                "split",
            )
        });
        let mut splits = Vec::new();
        if let Some(e) = top.get("splits") {
            for s in self.named(&e.node, "splits") {
                let what = format!("splits.{}", s.key);
                if let Some(def) =
                    self.split(&s.node, S::new(s.key.clone(), s.key_span.clone()), &what)
                {
                    splits.push(def);
                }
            }
        }

        let mut rules = Vec::new();
        if let Some(n) = top.node("rules")
            && let Some(items) = self.array(n, "rules")
        {
            for (i, item) in items.iter().enumerate() {
                if let Some(r) = self.rule(item, i) {
                    rules.push(r);
                }
            }
        }

        let mut segments = Vec::new();
        if let Some(e) = top.get("segments") {
            for s in self.named(&e.node, "segments") {
                let what = format!("segments.{}", s.key);
                let Some(t) = self.table(&s.node, &what, keys::SEGMENT) else {
                    continue;
                };
                let Some(header) = self.req_string(&t, "header") else {
                    continue;
                };
                let values = self.opt_strings(&t, "values");
                segments.push(SegmentDef {
                    name: S::new(s.key.clone(), s.key_span.clone()),
                    header,
                    values,
                });
            }
        }

        let mut outcomes = Vec::new();
        if let Some(e) = top.get("outcomes") {
            for o in self.named(&e.node, "outcomes") {
                if let Some(def) = self.outcome(o) {
                    outcomes.push(def);
                }
            }
        }

        let guard_defaults = match top.node("guard_defaults") {
            Some(n) => match self.table(n, "guard_defaults", keys::GUARD_DEFAULTS) {
                Some(t) => GuardDefaults {
                    window_seconds: t
                        .node("window")
                        .and_then(|n| self.duration(n, "guard_defaults.window")),
                    min_samples: t
                        .node("min_samples")
                        .and_then(|n| self.count(n, "guard_defaults.min_samples")),
                    on_breach: self.opt_string(&t, "on_breach"),
                },
                None => GuardDefaults::default(),
            },
            None => GuardDefaults::default(),
        };

        let mut guards = Vec::new();
        if let Some(n) = top.node("guards")
            && let Some(items) = self.array(n, "guards")
        {
            for (i, item) in items.iter().enumerate() {
                if let Some(g) = self.guard(item, i) {
                    guards.push(g);
                }
            }
        }

        let ramp = top.node("ramp").and_then(|n| self.ramp(n));
        let override_ = top.node("override").and_then(|n| self.override_(n));
        let shadow = top.node("shadow").and_then(|n| {
            let t = self.table(n, "shadow", keys::SHADOW)?;
            let share = self
                .required(&t, "share")
                .and_then(|n| self.number(n, "shadow.share"))?;
            Some(ShadowDef {
                span: t.span.clone(),
                share,
                header: self.opt_string(&t, "header"),
                salt: self.opt_string(&t, "salt"),
            })
        });
        let metrics = top.node("metrics").and_then(|n| {
            let t = self.table(n, "metrics", keys::METRICS)?;
            let labels = self.opt_strings(&t, "labels");
            let mut buckets = Vec::new();
            if let Some(n) = t.node("latency_buckets_ms")
                && let Some(items) = self.array(n, "metrics.latency_buckets_ms")
            {
                buckets = items
                    .iter()
                    .filter_map(|n| self.float(n, "metrics.latency_buckets_ms"))
                    .collect();
            }
            Some(MetricsDef {
                span: t.span.clone(),
                labels,
                latency_buckets_ms: buckets,
            })
        });

        let fleet = top.node("fleet").and_then(|n| {
            let t = self.table(n, "fleet", keys::FLEET)?;
            let cluster = self.req_string(&t, "cluster")?;
            let mut duration = |key: &str| {
                t.node(key)
                    .and_then(|n| self.duration(n, &format!("fleet.{key}")))
            };
            let (interval, timeout, memory) = (
                duration("interval"),
                duration("timeout"),
                duration("memory"),
            );
            Some(FleetDef {
                span: t.span.clone(),
                cluster,
                authority: self.opt_string(&t, "authority"),
                path: self.opt_string(&t, "path"),
                interval,
                timeout,
                memory,
                query: self.opt_string(&t, "query"),
            })
        });

        Some(Policy {
            name: name?,
            description,
            routing_header,
            stable,
            arms,
            arms_span,
            split,
            splits,
            rules,
            segments,
            outcomes,
            guard_defaults,
            guards,
            ramp,
            override_,
            shadow,
            metrics,
            fleet,
        })
    }

    fn split(&mut self, node: &Node, name: S<String>, what: &str) -> Option<SplitDef> {
        let t = self.table(node, what, keys::SPLIT)?;
        let key_node = self.required(&t, "key");
        let key = key_node.map(|n| {
            let items = self.strings(n, &format!("{what}.key"));
            S::new(
                items.into_iter().filter_map(|s| self.key_ref(&s)).collect(),
                n.span.clone(),
            )
        });
        let weights_node = self.required(&t, "weights");
        let weights = weights_node.and_then(|n| {
            let Value::Table(entries) = &n.value else {
                self.type_error(
                    n,
                    &format!("{what}.weights"),
                    "a table of arm names to percentages",
                    &n.value,
                );
                return None;
            };
            let ws = entries
                .iter()
                .filter_map(|e| {
                    let value = self.number(&e.node, &format!("{what}.weights.{}", e.key))?;
                    Some(Weight {
                        arm: S::new(e.key.clone(), e.key_span.clone()),
                        value,
                    })
                })
                .collect();
            Some(S::new(ws, n.span.clone()))
        });
        let fallback = t.node("fallback").and_then(|n| self.fallback(n, what));
        let bucketing = match t.node("bucketing") {
            None => S::new(Bucketing::Serin, t.span.start..t.span.start),
            Some(n) => self.bucketing(n, what)?,
        };
        Some(SplitDef {
            name,
            span: t.span.clone(),
            key: key?,
            salt: self.opt_string(&t, "salt"),
            weights: weights?,
            fallback,
            bucketing,
        })
    }

    fn key_ref(&mut self, s: &S<String>) -> Option<S<KeyRef>> {
        let parsed = match s.v.split_once(':') {
            Some(("header", n)) if !n.is_empty() => Some(KeyRef::Header(n.to_owned())),
            Some(("cookie", n)) if !n.is_empty() => Some(KeyRef::Cookie(n.to_owned())),
            Some(("query", n)) if !n.is_empty() => Some(KeyRef::Query(n.to_owned())),
            _ => None,
        };
        if parsed.is_none() {
            let mut d = Diagnostic::error(
                "key-source",
                format!("`{}` is not a key source", s.v),
                s.span.clone(),
            )
            .with_label("expected `header:NAME`, `cookie:NAME` or `query:NAME`");
            if let Some((kind, _)) = s.v.split_once(':')
                && let Some(k) = did_you_mean(kind, ["header", "cookie", "query"])
            {
                d = d.with_help(format!("did you mean `{k}:`?"));
            }
            self.err(d);
        }
        parsed.map(|k| S::new(k, s.span.clone()))
    }

    fn fallback(&mut self, node: &Node, split: &str) -> Option<S<FallbackDef>> {
        let what = format!("{split}.fallback");
        match &node.value {
            Value::String(s) => Some(S::new(
                FallbackDef::Arm(S::new(s.clone(), node.span.clone())),
                node.span.clone(),
            )),
            Value::Table(_) => {
                let t = self.table(node, &what, keys::FALLBACK)?;
                let random = self
                    .required(&t, "random")
                    .and_then(|n| self.boolean(n, &format!("{what}.random")))?;
                if !random {
                    self.err(
                        Diagnostic::error(
                            "fallback",
                            "`random = false` is not a fallback",
                            t.node("random")?.span.clone(),
                        )
                        .with_label("must be `true`")
                        .with_help(
                            "to send keyless requests to one arm, write `fallback = \"ARM\"`",
                        ),
                    );
                    return None;
                }
                let cookie = self.opt_string(&t, "cookie");
                let max_age = t
                    .node("max_age")
                    .and_then(|n| self.duration(n, &format!("{what}.max_age")));
                Some(S::new(
                    FallbackDef::Random {
                        cookie,
                        max_age_seconds: max_age,
                    },
                    node.span.clone(),
                ))
            }
            other => {
                self.type_error(
                    node,
                    &what,
                    "an arm name or `{ random = true, cookie = \"...\" }`",
                    other,
                );
                None
            }
        }
    }

    fn bucketing(&mut self, node: &Node, split: &str) -> Option<S<Bucketing>> {
        let what = format!("{split}.bucketing");
        match &node.value {
            Value::String(s) if s == "serin" => Some(S::new(Bucketing::Serin, node.span.clone())),
            Value::String(s) => {
                let mut d = Diagnostic::error(
                    "bucketing",
                    format!("unknown bucketing `{s}`"),
                    node.span.clone(),
                )
                .with_label("expected `serin`, `{ unleash = ... }` or `{ flagd = ... }`");
                if s == "unleash" || s == "flagd" {
                    let example = if s == "unleash" {
                        "{ unleash = { group_id = \"...\" } }"
                    } else {
                        "{ flagd = { flag_key = \"...\" } }"
                    };
                    d = d.with_help(format!(
                        "`{s}` needs parameters: write `bucketing = {example}`"
                    ));
                }
                self.err(d);
                None
            }
            Value::Table(entries) => {
                let t = self.table(node, &what, keys::BUCKETING)?;
                if entries.len() != 1 {
                    self.err(
                        Diagnostic::error(
                            "bucketing",
                            "`bucketing` must name exactly one mode",
                            node.span.clone(),
                        )
                        .with_label("expected `unleash` or `flagd`"),
                    );
                    return None;
                }
                if let Some(n) = t.node("unleash") {
                    let u = self.table(n, &format!("{what}.unleash"), keys::UNLEASH)?;
                    let group_id = self.req_string(&u, "group_id")?;
                    let total_weight = u
                        .node("total_weight")
                        .and_then(|n| self.integer(n, &format!("{what}.unleash.total_weight")));
                    return Some(S::new(
                        Bucketing::Unleash {
                            group_id,
                            total_weight,
                        },
                        node.span.clone(),
                    ));
                }
                if let Some(n) = t.node("flagd") {
                    let f = self.table(n, &format!("{what}.flagd"), keys::FLAGD)?;
                    let flag_key = self.req_string(&f, "flag_key")?;
                    return Some(S::new(Bucketing::Flagd { flag_key }, node.span.clone()));
                }
                None
            }
            other => {
                self.type_error(node, &what, "`serin` or a table", other);
                None
            }
        }
    }

    fn rule(&mut self, node: &Node, index: usize) -> Option<RuleDef> {
        let what = format!("rules[{index}]");
        let t = self.table(node, &what, keys::RULE)?;
        let name = self
            .opt_string(&t, "name")
            .unwrap_or_else(|| S::new(format!("rule-{}", index + 1), t.span.clone()));
        let arm = t.get("arm");
        let split = t.get("split");
        let then = match (arm, split) {
            (Some(a), None) => {
                let s = self.string(&a.node, &format!("{what}.arm"))?;
                S::new(RuleAction::Arm(s.v), s.span)
            }
            (None, Some(sp)) => {
                let s = self.string(&sp.node, &format!("{what}.split"))?;
                S::new(RuleAction::Split(s.v), s.span)
            }
            (Some(_), Some(sp)) => {
                self.err(
                    Diagnostic::error(
                        "rule-action",
                        format!("rule `{}` sets both `arm` and `split`", name.v),
                        sp.key_span.clone(),
                    )
                    .with_label("second action")
                    .with_help("a rule either pins an arm or applies a split; remove one"),
                );
                return None;
            }
            (None, None) => {
                self.err(
                    Diagnostic::error(
                        "rule-action",
                        format!("rule `{}` has no action", name.v),
                        name.span.clone(),
                    )
                    .with_label("this rule does nothing")
                    .with_help(
                        "add `arm = \"ARM\"` to pin an arm or `split = \"NAME\"` to apply a split",
                    ),
                );
                return None;
            }
        };
        let mut when = Vec::new();
        if let Some(n) = t.node("when") {
            let w = self.table(n, &format!("{what}.when"), keys::WHEN)?;
            for e in w.entries {
                let path = format!("{what}.when.{}", e.key);
                let span = e.key_span.start..e.node.span.end;
                match e.key.as_str() {
                    "header" | "cookie" | "query" => {
                        for field in self.named(&e.node, &path) {
                            let Some(test_def) =
                                self.test(&field.node, &format!("{path}.{}", field.key))
                            else {
                                continue;
                            };
                            let name = S::new(field.key.clone(), field.key_span.clone());
                            let span = field.key_span.start..field.node.span.end;
                            let c = match e.key.as_str() {
                                "header" => Cond::Header {
                                    name,
                                    test: test_def,
                                },
                                "cookie" => Cond::Cookie {
                                    name,
                                    test: test_def,
                                },
                                _ => Cond::Query {
                                    name,
                                    test: test_def,
                                },
                            };
                            when.push(S::new(c, span));
                        }
                    }
                    "path_prefix" => {
                        when.push(S::new(Cond::PathPrefix(self.strings(&e.node, &path)), span))
                    }
                    "method" => when.push(S::new(Cond::Method(self.strings(&e.node, &path)), span)),
                    "source_cidr" => {
                        when.push(S::new(Cond::SourceCidr(self.strings(&e.node, &path)), span))
                    }
                    "users" => {
                        let Some(u) = self.table(&e.node, &path, keys::USERS) else {
                            continue;
                        };
                        let Some(key) = self.req_string(&u, "key").and_then(|k| self.key_ref(&k))
                        else {
                            continue;
                        };
                        let list = match (u.get("allow"), u.get("deny")) {
                            (Some(a), None) => {
                                UserList::Allow(self.strings(&a.node, &format!("{path}.allow")))
                            }
                            (None, Some(d)) => {
                                UserList::Deny(self.strings(&d.node, &format!("{path}.deny")))
                            }
                            _ => {
                                self.err(
                                    Diagnostic::error(
                                        "users",
                                        "`users` needs exactly one of `allow` or `deny`",
                                        e.node.span.clone(),
                                    )
                                    .with_label("one list per condition")
                                    .with_help("use two rules to allow some users and deny others"),
                                );
                                continue;
                            }
                        };
                        when.push(S::new(Cond::Users { key, list }, span));
                    }
                    _ => {}
                }
            }
        }
        Some(RuleDef {
            name,
            span: t.span.clone(),
            when,
            then,
        })
    }

    fn test(&mut self, node: &Node, what: &str) -> Option<S<TestDef>> {
        let span = node.span.clone();
        if let Value::String(s) = &node.value {
            return Some(S::new(TestDef::Exact(s.clone()), span));
        }
        let Value::Table(entries) = &node.value else {
            self.type_error(
                node,
                what,
                "a string or a test such as `{ prefix = \"...\" }`",
                &node.value,
            );
            return None;
        };
        let t = self.table(node, what, keys::TEST)?;
        if entries.len() != 1 {
            self.err(
                Diagnostic::error(
                    "test",
                    format!("`{what}` must have exactly one test"),
                    span.clone(),
                )
                .with_label(format!("found {}", entries.len()))
                .with_help(format!("use one of: {}", list(keys::TEST))),
            );
            return None;
        }
        let e = &t.entries[0];
        let sub = format!("{what}.{}", e.key);
        let test = match e.key.as_str() {
            "exact" => TestDef::Exact(self.string(&e.node, &sub)?.v),
            "prefix" => TestDef::Prefix(self.string(&e.node, &sub)?.v),
            "suffix" => TestDef::Suffix(self.string(&e.node, &sub)?.v),
            "present" | "absent" => {
                if !self.boolean(&e.node, &sub)? {
                    self.err(
                        Diagnostic::error(
                            "test",
                            format!("`{} = false` is not a test", e.key),
                            e.node.span.clone(),
                        )
                        .with_label("must be `true`")
                        .with_help(if e.key == "present" {
                            "write `absent = true` instead"
                        } else {
                            "write `present = true` instead"
                        }),
                    );
                    return None;
                }
                if e.key == "present" {
                    TestDef::Present
                } else {
                    TestDef::Absent
                }
            }
            "one_of" => TestDef::OneOf(self.strings(&e.node, &sub)),
            "none_of" => TestDef::NoneOf(self.strings(&e.node, &sub)),
            _ => return None,
        };
        Some(S::new(test, span))
    }

    fn outcome(&mut self, o: &Entry) -> Option<OutcomeDef> {
        let what = format!("outcomes.{}", o.key);
        let t = self.table(&o.node, &what, keys::OUTCOME)?;
        let source = match (t.get("header"), t.get("json")) {
            (Some(h), None) => {
                let s = self.string(&h.node, &format!("{what}.header"))?;
                S::new(OutcomeSourceDef::Header(s.v), s.span)
            }
            (None, Some(j)) => {
                let s = self.string(&j.node, &format!("{what}.json"))?;
                S::new(OutcomeSourceDef::Json(s.v), s.span)
            }
            _ => {
                self.err(
                    Diagnostic::error("outcome", format!("outcome `{}` needs exactly one of `header` or `json`", o.key), o.key_span.clone())
                        .with_label("where is the model's decision?")
                        .with_help("read it from a response header (`header = \"x-decision\"`) or a JSON body field (`json = \"predictions[0]\"`)"),
                );
                return None;
            }
        };
        // Neither: a numeric outcome, which only distribution guards read (an `outcome_rate`
        // guard on it is refused in validate, where the guard is known).
        let positive = match (t.get("equals"), t.get("above")) {
            (Some(e), None) => Some(S::new(
                PositiveDef::Equals(self.strings(&e.node, &format!("{what}.equals"))),
                e.node.span.clone(),
            )),
            (None, Some(a)) => {
                let f = self.float(&a.node, &format!("{what}.above"))?;
                Some(S::new(PositiveDef::Above(f.v), f.span))
            }
            (None, None) => None,
            (Some(_), Some(a)) => {
                self.err(
                    Diagnostic::error(
                        "outcome",
                        format!(
                            "outcome `{}` takes one of `equals` or `above`, not both",
                            o.key
                        ),
                        a.key_span.clone(),
                    )
                    .with_label("a second test")
                    .with_help("e.g. `equals = [\"fraud\"]` or `above = 0.5`"),
                );
                return None;
            }
        };
        Some(OutcomeDef {
            name: S::new(o.key.clone(), o.key_span.clone()),
            source,
            positive,
        })
    }

    fn guard(&mut self, node: &Node, index: usize) -> Option<GuardDef> {
        let what = format!("guards[{index}]");
        let t = self.table(node, &what, keys::GUARD)?;
        let name = self
            .opt_string(&t, "name")
            .unwrap_or_else(|| S::new(format!("guard-{}", index + 1), t.span.clone()));
        let metric = self.req_string(&t, "metric")?;
        Some(GuardDef {
            name,
            span: t.span.clone(),
            metric,
            arms: self.opt_strings(&t, "arms"),
            max: self.opt_float(&t, "max"),
            min: self.opt_float(&t, "min"),
            max_ratio: self.opt_float(&t, "max_ratio"),
            min_ratio: self.opt_float(&t, "min_ratio"),
            quantile: self.opt_float(&t, "quantile"),
            outcome: self.opt_string(&t, "outcome"),
            segment: self.opt_string(&t, "segment"),
            segment_values: self.opt_strings(&t, "segment_values"),
            buckets: t.node("buckets").and_then(|n| {
                let items = self.array(n, &format!("{what}.buckets"))?;
                let values = items
                    .iter()
                    .filter_map(|i| self.float(i, &format!("{what}.buckets")))
                    .collect();
                Some(S::new(values, n.span.clone()))
            }),
            window_seconds: t
                .node("window")
                .and_then(|n| self.duration(n, &format!("{what}.window"))),
            min_samples: t
                .node("min_samples")
                .and_then(|n| self.count(n, &format!("{what}.min_samples"))),
            on_breach: self.opt_string(&t, "on_breach"),
        })
    }

    fn ramp(&mut self, node: &Node) -> Option<RampDef> {
        let t = self.table(node, "ramp", keys::RAMP)?;
        let steps_node = self.required(&t, "steps")?;
        let items = self.array(steps_node, "ramp.steps")?;
        let mut steps = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let what = format!("ramp.steps[{i}]");
            let Some(s) = self.table(item, &what, keys::STEP) else {
                continue;
            };
            let weight = self
                .required(&s, "weight")
                .and_then(|n| self.number(n, &format!("{what}.weight")));
            let min_duration = self
                .required(&s, "min_duration")
                .and_then(|n| self.duration(n, &format!("{what}.min_duration")));
            let gates = self.opt_strings(&s, "gates");
            let min_samples = s
                .node("min_samples")
                .and_then(|n| self.count(n, &format!("{what}.min_samples")));
            if let (Some(weight), Some(min_duration)) = (weight, min_duration) {
                steps.push(StepDef {
                    span: s.span.clone(),
                    weight,
                    min_duration_seconds: min_duration,
                    gates,
                    min_samples,
                });
            }
        }
        Some(RampDef {
            span: t.span.clone(),
            split: self.opt_string(&t, "split"),
            arm: self.opt_string(&t, "arm"),
            expected_rps: self.opt_float(&t, "expected_rps"),
            steps,
        })
    }

    fn override_(&mut self, node: &Node) -> Option<OverrideDef> {
        let t = self.table(node, "override", keys::OVERRIDE)?;
        let header = self.req_string(&t, "header")?;
        let token = match t.node("token") {
            Some(n) => {
                let tok = self.table(n, "override.token", keys::TOKEN)?;
                let h = self.req_string(&tok, "header")?;
                let v = self.req_string(&tok, "value")?;
                Some(S::new((h, v), n.span.clone()))
            }
            None => None,
        };
        Some(OverrideDef {
            span: t.span.clone(),
            header,
            token,
            trusted_sources: self.opt_strings(&t, "trusted_sources"),
        })
    }
}

/// `30s`, `15m`, `2h`, `7d`, `1h30m`: seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    digits.is_empty().then_some(total)
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("30d"), Some(2_592_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }
}
