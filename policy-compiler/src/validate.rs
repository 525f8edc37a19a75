//! Stage 3, validate: resolve names to indices and check values, ranges and references. The result
//! holds everything `plan` needs, already in the plan's types; any error here stops compilation.

use std::collections::BTreeSet;

use serin_policy::{
    Action, Arm, ArmId, Cidr, DEFAULT_ROUTING_HEADER, Fallback, HashSpec, KeySource, Lane, Matcher,
    Override, OverrideToken, Reduce, Rule, SERIN_SCALE, Shadow, Split, Test, is_header_value,
    murmur3_x86_32,
};

use crate::ast::*;
use crate::ctx::Ctx;
use crate::diag::{Diagnostic, did_you_mean};
use crate::rollout;
use serin_policy::fleet::Query;

// Re-exported: `validate::{fmt_bp, percent_bp, quoted}` are this crate's public API, and lint
// reads them from here.
pub use crate::ctx::{fmt_bp, percent_bp, quoted};

/// Unleash's variant seed (client specification, `normalizedValue` for variants).
pub const UNLEASH_VARIANT_SEED: u32 = 86_028_157;
/// The sticky cookie a random fallback uses when the policy names none.
pub const DEFAULT_STICKY_COOKIE: &str = "serin-id";
/// How long the sticky cookie lives when the policy does not say.
pub const DEFAULT_STICKY_MAX_AGE: u64 = 30 * 86_400;
/// The header the filter sets on requests to mirror, when `[shadow]` names none.
pub const DEFAULT_SHADOW_HEADER: &str = "x-serin-shadow";

/// A validated policy: names resolved, values converted to the plan's units.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub routing_header: String,
    pub arms: Vec<Arm>,
    pub stable: ArmId,
    /// Split names, parallel to `splits`; `default` is `[split]`.
    pub split_names: Vec<String>,
    pub splits: Vec<Split>,
    pub rules: Vec<Rule>,
    pub default: Action,
    pub override_: Option<Override>,
    pub shadow: Option<Shadow>,
    pub rollout: rollout::Rollout,
    pub fleet: Option<serin_policy::fleet::Fleet>,
}

pub fn validate(policy: &Policy) -> Result<Checked, Vec<Diagnostic>> {
    let mut cx = Ctx {
        policy,
        errors: Vec::new(),
        stable: 0,
    };

    // Arms.
    if policy.arms.is_empty() {
        cx.err(
            Diagnostic::error(
                "no-arms",
                "the policy declares no arms",
                policy.arms_span.clone(),
            )
            .with_label("empty")
            .with_help("declare at least `[arms.stable]` and `[arms.canary]`"),
        );
    }
    if policy.arms.len() > usize::from(ArmId::MAX) {
        cx.err(Diagnostic::error(
            "too-many-arms",
            format!(
                "the policy declares {} arms; at most {} are supported",
                policy.arms.len(),
                ArmId::MAX
            ),
            policy.arms_span.clone(),
        ));
    }
    let mut arms = Vec::new();
    for a in &policy.arms {
        let value = a.value.clone().unwrap_or_else(|| a.name.clone());
        if !is_header_value(&value.v) || value.v.is_empty() {
            cx.err(
                Diagnostic::error(
                    "arm-value",
                    format!(
                        "arm `{}` has a value that cannot be sent in a header",
                        a.name.v
                    ),
                    value.span.clone(),
                )
                .with_label("not a header value")
                .with_help("use visible ASCII characters only"),
            );
        }
        arms.push(Arm {
            name: a.name.v.clone(),
            value: value.v,
        });
    }
    check_unique(
        &mut cx,
        policy.arms.iter().flat_map(|a| &a.value).collect(),
        "arm value",
        "two arms with one routing value cannot be told apart by the proxy",
    );

    let routing_header = match &policy.routing_header {
        Some(h) => {
            cx.header_name(h, "routing header");
            h.v.clone()
        }
        None => DEFAULT_ROUTING_HEADER.to_owned(),
    };

    cx.stable = match &policy.stable {
        Some(s) => cx.resolve_arm(s, "`policy.stable`").unwrap_or(0),
        None => match cx.arm_id("stable") {
            Some(id) => id,
            None => {
                if !policy.arms.is_empty() {
                    cx.err(
                        Diagnostic::error(
                            "no-stable",
                            "no arm is named `stable` and `policy.stable` is not set",
                            policy.arms_span.clone(),
                        )
                        .with_label("which of these is the stable arm?")
                        .with_help("name an arm `stable`, or set `stable = \"ARM\"` in `[policy]`"),
                    );
                }
                0
            }
        },
    };

    // Splits: `[split]` first, then `[splits.*]` in order.
    let mut split_defs: Vec<&SplitDef> = Vec::new();
    if let Some(s) = &policy.split {
        split_defs.push(s);
    }
    for s in &policy.splits {
        if s.name.v == "default" && policy.split.is_some() {
            cx.err(
                Diagnostic::error(
                    "duplicate-split",
                    "`[splits.default]` clashes with `[split]`",
                    s.name.span.clone(),
                )
                .with_label("second default split")
                .with_help("`[split]` is the split named `default`; rename this one"),
            );
        }
        split_defs.push(s);
    }
    let split_names: Vec<String> = split_defs.iter().map(|s| s.name.v.clone()).collect();
    let splits: Vec<Split> = split_defs.iter().map(|s| split(&mut cx, s)).collect();

    // Rules.
    let mut rules = Vec::new();
    for r in &policy.rules {
        let action = match &r.then.v {
            RuleAction::Arm(a) => {
                let id = cx.resolve_arm(
                    &S::new(a.clone(), r.then.span.clone()),
                    &format!("rule `{}`", r.name.v),
                );
                Action::Pin {
                    arm: id.unwrap_or(0),
                }
            }
            RuleAction::Split(s) => match split_names.iter().position(|n| n == s) {
                Some(i) => Action::Split { split: i as u16 },
                None => {
                    let mut d = Diagnostic::error(
                        "unknown-split",
                        format!(
                            "rule `{}` applies split `{s}`, which is not declared",
                            r.name.v
                        ),
                        r.then.span.clone(),
                    )
                    .with_label("no such split");
                    d = match did_you_mean(s, split_names.iter().map(String::as_str)) {
                        Some(m) => d.with_help(format!("did you mean `{m}`?")),
                        None => d.with_help("declare it as `[splits.NAME]`, or use `split = \"default\"` for `[split]`"),
                    };
                    cx.err(d);
                    Action::Split { split: 0 }
                }
            },
        };
        let all = r.when.iter().filter_map(|c| matcher(&mut cx, c)).collect();
        rules.push(Rule {
            name: r.name.v.clone(),
            all,
            action,
        });
    }
    if policy.rules.len() > usize::from(u16::MAX) {
        cx.err(Diagnostic::error(
            "too-many-rules",
            format!(
                "the policy has {} rules; at most {} are supported",
                policy.rules.len(),
                u16::MAX
            ),
            policy.rules[0].span.clone(),
        ));
    }
    check_unique(
        &mut cx,
        policy.rules.iter().map(|r| &r.name).collect(),
        "rule name",
        "traces and metrics name rules; give each its own name",
    );

    let default = if policy.split.is_some() {
        Action::Split { split: 0 }
    } else {
        Action::Pin { arm: cx.stable }
    };

    let override_ = policy.override_.as_ref().map(|o| override_(&mut cx, o));
    let shadow = policy.shadow.as_ref().map(|s| shadow(&mut cx, s));
    let rollout = rollout::validate(&mut cx, &split_names, &splits);
    let fleet = policy.fleet.as_ref().and_then(|f| fleet(&mut cx, f));

    if cx.errors.is_empty() {
        Ok(Checked {
            name: policy.name.v.clone(),
            routing_header,
            arms,
            stable: cx.stable,
            split_names,
            splits,
            rules,
            default,
            override_,
            shadow,
            rollout,
            fleet,
        })
    } else {
        Err(cx.errors)
    }
}

fn check_unique(cx: &mut Ctx<'_>, items: Vec<&S<String>>, what: &str, help: &str) {
    for (i, a) in items.iter().enumerate() {
        if let Some(first) = items[..i].iter().find(|b| b.v == a.v) {
            cx.err(
                Diagnostic::error(
                    "duplicate",
                    format!("{what} `{}` is used twice", a.v),
                    a.span.clone(),
                )
                .with_label("second use")
                .with_related(first.span.clone(), "first use")
                .with_help(help.to_owned()),
            );
        }
    }
}

fn percent_error(cx: &mut Ctx<'_>, n: &S<Number>, msg: String) {
    cx.err(
        Diagnostic::error("weight", msg, n.span.clone())
            .with_label("invalid percentage")
            .with_help("weights are percentages from 0 to 100 with at most two decimals (a resolution of 1/10,000)"),
    );
}

fn key_source(cx: &mut Ctx<'_>, k: &S<KeyRef>) -> KeySource {
    match &k.v {
        KeyRef::Header(n) => {
            cx.header_name(&S::new(n.clone(), k.span.clone()), "key header");
            KeySource::Header(n.clone())
        }
        KeyRef::Cookie(n) => KeySource::Cookie(n.clone()),
        KeyRef::Query(n) => KeySource::Query(n.clone()),
    }
}

fn split(cx: &mut Ctx<'_>, s: &SplitDef) -> Split {
    let stable = cx.stable;
    let mut key: Vec<KeySource> = s.key.v.iter().map(|k| key_source(cx, k)).collect();
    if s.key.v.is_empty() {
        cx.err(
            Diagnostic::error(
                "empty-key",
                format!("split `{}` has an empty key chain", s.name.v),
                s.key.span.clone(),
            )
            .with_label("no key sources")
            .with_help(
                "list where the bucketing key comes from, e.g. `key = [\"header:x-user-id\"]`",
            ),
        );
    }
    if s.key.v.len() > usize::from(u8::MAX) {
        cx.err(Diagnostic::error(
            "long-key",
            "a key chain may list at most 255 sources",
            s.key.span.clone(),
        ));
    }

    // Weights: resolve arms, keep the order written.
    let mut weights: Vec<(ArmId, &Weight)> = Vec::new();
    for w in &s.weights.v {
        if let Some(id) = cx.resolve_arm(&w.arm, &format!("split `{}`", s.name.v)) {
            weights.push((id, w));
        }
    }

    let (hash, lanes) = match &s.bucketing.v {
        Bucketing::Serin => serin_lanes(cx, s, &weights),
        Bucketing::Unleash {
            group_id,
            total_weight,
        } => unleash_lanes(cx, s, &weights, group_id, total_weight.as_ref()),
        Bucketing::Flagd { flag_key } => flagd_lanes(cx, s, &weights, flag_key),
    };

    let fallback = match &s.fallback {
        None => Fallback::Arm { arm: stable },
        Some(f) => match &f.v {
            FallbackDef::Arm(a) => Fallback::Arm {
                arm: cx
                    .resolve_arm(a, &format!("the fallback of split `{}`", s.name.v))
                    .unwrap_or(stable),
            },
            FallbackDef::Random {
                cookie,
                max_age_seconds,
            } => {
                let cookie = cookie
                    .as_ref()
                    .map_or(DEFAULT_STICKY_COOKIE.to_owned(), |c| c.v.clone());
                if !cookie
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    || cookie.is_empty()
                {
                    cx.err(
                        Diagnostic::error(
                            "cookie-name",
                            format!("`{cookie}` is not a cookie name"),
                            f.span.clone(),
                        )
                        .with_label("invalid cookie name")
                        .with_help("use letters, digits, `-`, `_` and `.`"),
                    );
                }
                let max_age = max_age_seconds
                    .as_ref()
                    .map_or(DEFAULT_STICKY_MAX_AGE, |m| m.v);
                if max_age > u64::from(u32::MAX) {
                    cx.err(
                        Diagnostic::error("range", "`max_age` is too long", f.span.clone())
                            .with_label("over 136 years"),
                    );
                }
                // The minted key must be read back on the next request.
                if !key.contains(&KeySource::Cookie(cookie.clone())) {
                    key.push(KeySource::Cookie(cookie.clone()));
                }
                Fallback::RandomSticky {
                    cookie,
                    max_age_seconds: max_age.min(u64::from(u32::MAX)) as u32,
                }
            }
        },
    };

    Split {
        key,
        hash,
        lanes,
        rest: stable,
        fallback,
    }
}

/// The salt's seed: Serin's bucketing hashes the key with seed `murmur3(salt)`.
pub fn salt_seed(salt: &str) -> u32 {
    murmur3_x86_32(b"", salt.as_bytes(), 0)
}

pub fn default_salt(policy: &str, split: &str) -> String {
    if split == "default" {
        policy.to_owned()
    } else {
        format!("{policy}:{split}")
    }
}

/// Serin's monotone lanes: non-stable arm k of n owns `[k*L, k*L + w)` with `L = 10000 / n`.
fn serin_lanes(
    cx: &mut Ctx<'_>,
    s: &SplitDef,
    weights: &[(ArmId, &Weight)],
) -> (HashSpec, Vec<Lane>) {
    let salt = s.salt.as_ref().map_or_else(
        || default_salt(&cx.policy.name.v, &s.name.v),
        |x| x.v.clone(),
    );
    let hash = HashSpec {
        prefix: String::new(),
        seed: salt_seed(&salt),
        reduce: Reduce::MulShift { scale: SERIN_SCALE },
    };
    let mut others: Vec<(ArmId, &Weight, u32)> = Vec::new();
    let mut total: u32 = 0;
    for &(arm, w) in weights {
        let bp = match percent_bp(&w.value.v) {
            Ok(bp) => bp,
            Err(m) => {
                percent_error(cx, &w.value, m);
                continue;
            }
        };
        if arm != cx.stable {
            others.push((arm, w, bp));
            total += bp;
        }
    }
    others.sort_by_key(|(arm, _, _)| *arm);
    if total > SERIN_SCALE {
        cx.err(
            Diagnostic::error(
                "weights-over",
                format!(
                    "the weights of split `{}` add up to more than 100 percent",
                    s.name.v
                ),
                s.weights.span.clone(),
            )
            .with_label(format!(
                "{} percent to arms other than the stable arm",
                fmt_bp(total)
            ))
            .with_help("the stable arm takes what the others leave; lower the other weights"),
        );
        return (hash, Vec::new());
    }
    let n = others.len() as u32;
    let mut lanes = Vec::new();
    if let Some(width) = SERIN_SCALE.checked_div(n) {
        for (k, (arm, w, bp)) in others.iter().enumerate() {
            if *bp > width {
                cx.err(
                    Diagnostic::error(
                        "lane-width",
                        format!("arm `{}` weighs {} percent but its lane holds at most {} percent", w.arm.v, fmt_bp(*bp), fmt_bp(width)),
                        w.value.span.clone(),
                    )
                    .with_label("over the lane width")
                    .with_help(format!(
                        "with {n} arms besides the stable one, each owns a fixed lane of 100/{n} percent, so raising a weight never moves a user out of an arm; lower this weight or split the rollout into fewer arms"
                    )),
                );
                continue;
            }
            let start = k as u32 * width;
            lanes.push(Lane {
                arm: *arm,
                start,
                end: start + bp,
            });
        }
    }
    (hash, lanes)
}

/// Integer weights in the order written, with their total.
fn integer_weights(
    cx: &mut Ctx<'_>,
    s: &SplitDef,
    weights: &[(ArmId, &Weight)],
    mode: &str,
) -> Vec<(ArmId, u32)> {
    let mut out = Vec::new();
    for &(arm, w) in weights {
        let n = &w.value.v;
        match n.text.parse::<u32>() {
            Ok(v) if n.is_integer => out.push((arm, v)),
            _ => cx.err(
                Diagnostic::error(
                    "weight",
                    format!(
                        "`{}` bucketing needs whole-number weights, found `{}`",
                        mode, n.text
                    ),
                    w.value.span.clone(),
                )
                .with_label("not a whole number")
                .with_help(format!(
                    "`{mode}` weights are integers, as in its own configuration (split `{}`)",
                    s.name.v
                )),
            ),
        }
    }
    out
}

fn cumulative(weights: &[(ArmId, u32)]) -> Vec<Lane> {
    let mut start = 0u32;
    weights
        .iter()
        .map(|&(arm, w)| {
            let lane = Lane {
                arm,
                start,
                end: start.saturating_add(w),
            };
            start = lane.end;
            lane
        })
        .collect()
}

fn unleash_lanes(
    cx: &mut Ctx<'_>,
    s: &SplitDef,
    weights: &[(ArmId, &Weight)],
    group_id: &S<String>,
    total_weight: Option<&S<i64>>,
) -> (HashSpec, Vec<Lane>) {
    let ws = integer_weights(cx, s, weights, "unleash");
    let prefix = format!("{}:", group_id.v);
    let rollout = ws.len() == 1 && ws[0].0 != cx.stable;
    if rollout {
        // Gradual rollout: enabled when `hash % 100 + 1 <= pct`, i.e. bucket < pct.
        let pct = ws[0].1;
        if pct > 100 {
            cx.err(
                Diagnostic::error(
                    "weight",
                    format!("an unleash rollout of `{pct}` percent is over 100"),
                    weights[0].1.value.span.clone(),
                )
                .with_label("over 100"),
            );
        }
        if let Some(t) = total_weight.filter(|t| t.v != 100) {
            cx.err(
                Diagnostic::error("total-weight", "an unleash rollout (one arm besides the stable one) always uses a total of 100", t.span.clone())
                    .with_label("must be 100 or absent")
                    .with_help("`total_weight` applies to unleash variants, that is, two or more weighted arms"),
            );
        }
        let hash = HashSpec {
            prefix,
            seed: 0,
            reduce: Reduce::Modulo { modulus: 100 },
        };
        return (
            hash,
            vec![Lane {
                arm: ws[0].0,
                start: 0,
                end: pct.min(100),
            }],
        );
    }
    let sum: u64 = ws.iter().map(|w| u64::from(w.1)).sum();
    let total = match total_weight {
        Some(t) => {
            if t.v <= 0 || t.v > i64::from(u32::MAX) || (t.v as u64) < sum {
                cx.err(
                    Diagnostic::error(
                        "total-weight",
                        format!("`total_weight` is {} but the weights add up to {sum}", t.v),
                        t.span.clone(),
                    )
                    .with_label("too small")
                    .with_help("set it to the sum of the variant weights, or leave it out"),
                );
                return (
                    HashSpec {
                        prefix,
                        seed: UNLEASH_VARIANT_SEED,
                        reduce: Reduce::Modulo { modulus: 1 },
                    },
                    Vec::new(),
                );
            }
            t.v as u32
        }
        None => sum.clamp(1, u64::from(u32::MAX)) as u32,
    };
    let hash = HashSpec {
        prefix,
        seed: UNLEASH_VARIANT_SEED,
        reduce: Reduce::Modulo { modulus: total },
    };
    (hash, cumulative(&ws))
}

fn flagd_lanes(
    cx: &mut Ctx<'_>,
    s: &SplitDef,
    weights: &[(ArmId, &Weight)],
    flag_key: &S<String>,
) -> (HashSpec, Vec<Lane>) {
    let ws = integer_weights(cx, s, weights, "flagd");
    let sum: u64 = ws.iter().map(|w| u64::from(w.1)).sum();
    if sum == 0 || sum > i32::MAX as u64 {
        cx.err(
            Diagnostic::error(
                "weights-total",
                format!("flagd weights must add up to between 1 and {}", i32::MAX),
                s.weights.span.clone(),
            )
            .with_label(format!("they add up to {sum}")),
        );
    }
    let hash = HashSpec {
        prefix: flag_key.v.clone(),
        seed: 0,
        reduce: Reduce::MulShift {
            scale: sum.clamp(1, i32::MAX as u64) as u32,
        },
    };
    (hash, cumulative(&ws))
}

fn sorted(list: &[S<String>]) -> Vec<String> {
    let set: BTreeSet<&str> = list.iter().map(|s| s.v.as_str()).collect();
    set.into_iter().map(str::to_owned).collect()
}

fn test(cx: &mut Ctx<'_>, t: &S<TestDef>) -> Test {
    let nonempty = |cx: &mut Ctx<'_>, list: &[S<String>], op: &str| {
        if list.is_empty() {
            cx.err(
                Diagnostic::error(
                    "empty-list",
                    format!("`{op}` needs at least one value"),
                    t.span.clone(),
                )
                .with_label("empty list"),
            );
        }
    };
    match &t.v {
        TestDef::Exact(s) => Test::Exact(s.clone()),
        TestDef::Prefix(s) => Test::Prefix(s.clone()),
        TestDef::Suffix(s) => Test::Suffix(s.clone()),
        TestDef::Present => Test::Present,
        TestDef::Absent => Test::Absent,
        TestDef::OneOf(l) => {
            nonempty(cx, l, "one_of");
            Test::AnyOf(sorted(l))
        }
        TestDef::NoneOf(l) => {
            nonempty(cx, l, "none_of");
            Test::NoneOf(sorted(l))
        }
    }
}

fn matcher(cx: &mut Ctx<'_>, c: &S<Cond>) -> Option<Matcher> {
    Some(match &c.v {
        Cond::Header { name, test: t } => {
            cx.header_name(name, "header");
            Matcher::Header {
                name: name.v.clone(),
                test: test(cx, t),
            }
        }
        Cond::Cookie { name, test: t } => Matcher::Cookie {
            name: name.v.clone(),
            test: test(cx, t),
        },
        Cond::Query { name, test: t } => Matcher::Query {
            name: name.v.clone(),
            test: test(cx, t),
        },
        Cond::PathPrefix(list) => {
            if list.is_empty() {
                cx.err(
                    Diagnostic::error(
                        "empty-list",
                        "`path_prefix` needs at least one path",
                        c.span.clone(),
                    )
                    .with_label("empty list"),
                );
            }
            for p in list {
                if !p.v.starts_with('/') {
                    cx.err(
                        Diagnostic::error(
                            "path",
                            format!("path prefix `{}` does not start with `/`", p.v),
                            p.span.clone(),
                        )
                        .with_label("not a path")
                        .with_help(format!("request paths start with `/`: write `/{}`", p.v)),
                    );
                }
            }
            Matcher::PathPrefix {
                any_of: list.iter().map(|s| s.v.clone()).collect(),
            }
        }
        Cond::Method(list) => {
            if list.is_empty() {
                cx.err(
                    Diagnostic::error(
                        "empty-list",
                        "`method` needs at least one method",
                        c.span.clone(),
                    )
                    .with_label("empty list"),
                );
            }
            for m in list {
                if m.v.is_empty() || !m.v.bytes().all(|b| b.is_ascii_uppercase()) {
                    cx.err(
                        Diagnostic::error(
                            "method",
                            format!("`{}` is not an upper-case HTTP method", m.v),
                            m.span.clone(),
                        )
                        .with_label("not a method")
                        .with_help(format!(
                            "methods are compared exactly: write `{}`",
                            m.v.to_ascii_uppercase()
                        )),
                    );
                }
            }
            Matcher::Method {
                any_of: sorted(list),
            }
        }
        Cond::SourceCidr(list) => {
            if list.is_empty() {
                cx.err(
                    Diagnostic::error(
                        "empty-list",
                        "`source_cidr` needs at least one network",
                        c.span.clone(),
                    )
                    .with_label("empty list"),
                );
            }
            Matcher::SourceIp {
                any_of: cidrs(cx, list),
            }
        }
        Cond::Users { key, list } => {
            type MakeTest = fn(Vec<String>) -> Test;
            let (ids, test_of): (&Vec<S<String>>, MakeTest) = match list {
                UserList::Allow(l) => (l, Test::AnyOf),
                UserList::Deny(l) => (l, Test::NoneOf),
            };
            if ids.is_empty() {
                cx.err(
                    Diagnostic::error(
                        "empty-list",
                        "a user list needs at least one id",
                        c.span.clone(),
                    )
                    .with_label("empty list"),
                );
            }
            let t = test_of(sorted(ids));
            match key_source(cx, key) {
                KeySource::Header(name) => Matcher::Header { name, test: t },
                KeySource::Cookie(name) => Matcher::Cookie { name, test: t },
                KeySource::Query(name) => Matcher::Query { name, test: t },
            }
        }
    })
}

pub(crate) fn cidrs(cx: &mut Ctx<'_>, list: &[S<String>]) -> Vec<Cidr> {
    list.iter()
        .filter_map(|s| match s.v.parse::<Cidr>() {
            Ok(c) => Some(c),
            Err(m) => {
                cx.err(
                    Diagnostic::error("cidr", format!("`{}` is not a network: {m}", s.v), s.span.clone())
                        .with_label("invalid network")
                        .with_help("write an address and a prefix length, e.g. `10.0.0.0/8` or `2001:db8::/32`"),
                );
                None
            }
        })
        .collect()
}

fn override_(cx: &mut Ctx<'_>, o: &OverrideDef) -> Override {
    cx.header_name(&o.header, "override header");
    let token = o.token.as_ref().map(|t| {
        let (h, v) = &t.v;
        cx.header_name(h, "token header");
        if v.v.is_empty() || !is_header_value(&v.v) {
            cx.err(
                Diagnostic::error(
                    "token",
                    "the override token must be a non-empty header value",
                    v.span.clone(),
                )
                .with_label("invalid token"),
            );
        }
        OverrideToken {
            header: h.v.clone(),
            value: v.v.clone(),
        }
    });
    Override {
        header: o.header.v.clone(),
        token,
        trusted_sources: cidrs(cx, &o.trusted_sources),
    }
}

fn shadow(cx: &mut Ctx<'_>, s: &ShadowDef) -> Shadow {
    let share = match percent_bp(&s.share.v) {
        Ok(bp) => bp,
        Err(m) => {
            percent_error(cx, &s.share, m);
            0
        }
    };
    let header = match &s.header {
        Some(h) => {
            cx.header_name(h, "shadow header");
            h.v.clone()
        }
        None => DEFAULT_SHADOW_HEADER.to_owned(),
    };
    let salt = s
        .salt
        .as_ref()
        .map_or_else(|| format!("{}:shadow", cx.policy.name.v), |x| x.v.clone());
    Shadow {
        header,
        share,
        seed: salt_seed(&salt),
    }
}

/// `[fleet]`: an interval of at least a second, a timeout that ends before the next query, a
/// memory that outlasts an interval, and a cluster name Envoy accepts.
fn fleet(cx: &mut Ctx<'_>, f: &FleetDef) -> Option<serin_policy::fleet::Fleet> {
    let errors = cx.errors.len();
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:|".contains(&b))
    };
    if !valid_name(&f.cluster.v) {
        cx.err(
            Diagnostic::error("fleet", format!("`{}` is not a cluster name", f.cluster.v), f.cluster.span.clone())
                .with_label("not a cluster name")
                .with_help("name the proxy's cluster that reaches Prometheus: letters, digits and `-_.:|` (Istio's are like `outbound|9090||prometheus.istio-system.svc.cluster.local`)"),
        );
    }
    let seconds = |d: &Option<S<u64>>, default: u64| d.as_ref().map_or(default, |d| d.v);
    let authority = f.authority.as_ref().map_or(&f.cluster.v, |a| &a.v);
    let defaults = serin_policy::fleet::Fleet::new(&f.cluster.v, authority);
    let interval = seconds(&f.interval, u64::from(defaults.interval_ms / 1000));
    let timeout = seconds(&f.timeout, u64::from(defaults.timeout_ms / 1000));
    let memory = seconds(&f.memory, u64::from(defaults.memory_seconds));
    if let Some(i) = f.interval.as_ref().filter(|i| i.v == 0 || i.v > 3_600) {
        cx.err(
            Diagnostic::error("range", "`fleet.interval` must be between 1s and 1h", i.span.clone())
                .with_label("out of range")
                .with_help("5s to 15s suits a 1s to 5s scrape: the proxies agree within one interval plus one scrape"),
        );
    }
    if let Some(t) = f.timeout.as_ref().filter(|t| t.v == 0 || t.v >= interval) {
        cx.err(
            Diagnostic::error(
                "range",
                "`fleet.timeout` must be at least 1s and shorter than `fleet.interval`",
                t.span.clone(),
            )
            .with_label(format!("the interval is {interval}s"))
            .with_help("an answer that comes after the next query was sent is of no use"),
        );
    }
    if let Some(m) = f.memory.as_ref().filter(|m| m.v < interval.max(300)) {
        cx.err(
            Diagnostic::error("range", "`fleet.memory` must be at least 5m and an interval", m.span.clone())
                .with_label("too short to outlast a restart")
                .with_help("how long a rollback is remembered when every proxy restarts; Prometheus must keep its samples as long (its retention)"),
        );
    }
    let query = match f.query.as_ref() {
        None => Query::Raw,
        Some(q) if q.v == "raw" => Query::Raw,
        Some(q) if q.v == "recorded" => Query::Recorded,
        Some(q) => {
            let mut d = Diagnostic::error(
                "fleet",
                format!("`{}` is not a fleet query", q.v),
                q.span.clone(),
            )
            .with_label("expected `raw` or `recorded`");
            d = match did_you_mean(&q.v, ["raw", "recorded"]) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help("`raw` sums every proxy's series at each query; `recorded` reads the sums of the recording rules `serin emit prometheus` writes"),
            };
            cx.err(d);
            Query::Raw
        }
    };
    if cx.errors.len() > errors {
        return None;
    }
    Some(serin_policy::fleet::Fleet {
        query,
        path: f
            .path
            .as_ref()
            .map_or(defaults.path.clone(), |p| p.v.clone()),
        interval_ms: (interval * 1000) as u32,
        timeout_ms: (timeout * 1000) as u32,
        memory_seconds: memory.min(u64::from(u32::MAX)) as u32,
        ..defaults
    })
}
