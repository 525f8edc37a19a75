//! The compiled plan: the versioned JSON contract between `serin compile` and the filter.
//!
//! Everything the request path needs is precomputed here: hash seeds, bucket lanes, sorted
//! lists. The filter only hashes and compares. Arms and splits are referred to by index.
//!
//! The JSON is what serde's `Serialize` derives below write; [`Plan::from_json`] reads it by hand
//! (`plan/read.rs`), not through `Deserialize` derives, which cost `filter.wasm` most of its size
//! (see [`crate::json`]).

mod read;

use serde::Serialize;

use crate::cidr::Cidr;
use crate::json::{self, Json};
use crate::rollout::{Distributed, GuardMetric};

// Re-exported: they are part of the plan, and the crate root exports the plan's names.
pub use crate::lane::{ArmId, Lane};

/// The plan format this build reads and writes. A filter refuses any other value.
///
/// 2: distribution guards (`GuardMetric::Distribution`) and outcomes without a `positive`
/// (numeric outcomes); a format-1 plan would still parse, but its guards would be compiled by
/// rules this build no longer promises, so it is refused with a pointer to `serin compile`.
pub const PLAN_FORMAT: u32 = 2;

/// The routing header the filter sets when a policy does not name one.
pub const DEFAULT_ROUTING_HEADER: &str = "x-serin-arm";

/// Buckets per split in Serin's own bucketing: a resolution of 1/10,000.
pub const SERIN_SCALE: u32 = 10_000;

/// Upper bound on a serialized plan the filter accepts, so that a plugin config cannot make
/// it allocate without bound.
pub const MAX_PLAN_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Always [`PLAN_FORMAT`] for plans this build wrote.
    pub format: u32,
    /// The policy's name, for logs and metrics.
    pub policy: String,
    /// `sha256:<hex>` of the canonical plan with this field empty. Identifies a policy across reloads.
    pub digest: String,
    /// The request header the filter sets to the chosen arm's `value` (lower case).
    pub routing_header: String,
    pub arms: Vec<Arm>,
    /// The arm that takes every request nothing else claims, and all traffic after a rollback.
    pub stable: ArmId,
    /// Evaluated in order; the first rule whose matchers all hold decides.
    pub rules: Vec<Rule>,
    /// What happens when no rule matches.
    pub default: Action,
    pub splits: Vec<Split>,
    #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_: Option<Override>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
    /// Request attributes that metrics and guards break down by.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<crate::rollout::Segment>,
    /// Model decisions read from responses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<crate::rollout::Outcome>,
    /// Health conditions that roll back or hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<crate::rollout::Guard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<crate::rollout::Ramp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<crate::rollout::Metrics>,
    /// Fleet mode: judge on every proxy's evidence through Prometheus ([`crate::fleet`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::Fleet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arm {
    pub name: String,
    /// The routing header's value for this arm; Envoy or Istio routes on it.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub name: String,
    /// All must hold. An empty list matches every request.
    pub all: Vec<Matcher>,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send to this arm.
    Pin { arm: ArmId },
    /// Bucket by [`Plan::splits`]`[split]`.
    Split { split: u16 },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Matcher {
    Header {
        name: String,
        test: Test,
    },
    Cookie {
        name: String,
        test: Test,
    },
    Query {
        name: String,
        test: Test,
    },
    /// The request path (without the query) starts with one of these.
    PathPrefix {
        any_of: Vec<String>,
    },
    /// The method is one of these (upper case).
    Method {
        any_of: Vec<String>,
    },
    /// The downstream source address lies in one of these networks.
    SourceIp {
        any_of: Vec<Cidr>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    Present,
    Absent,
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Sorted and deduplicated by the compiler, so the filter can binary-search it.
    AnyOf(Vec<String>),
    /// Holds when the value is absent or not in the (sorted) list.
    NoneOf(Vec<String>),
}

/// A weighted, sticky split of the requests that reach it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    /// Where the bucketing key comes from; the first source present and non-empty wins.
    pub key: Vec<KeySource>,
    pub hash: HashSpec,
    /// Bucket ranges per arm, disjoint. A bucket outside every lane goes to `rest`.
    pub lanes: Vec<Lane>,
    pub rest: ArmId,
    pub fallback: Fallback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Header(String),
    Cookie(String),
    Query(String),
}

/// How a key becomes a bucket: `h = murmur3_x86_32(prefix ++ key, seed)`, then `reduce`.
/// Serin's own bucketing and the compatibility modes all compile to this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HashSpec {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    pub seed: u32,
    pub reduce: Reduce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    /// `bucket = (h * scale) >> 32`: Serin's default and flagd's `fractional`.
    MulShift { scale: u32 },
    /// `bucket = h % modulus`: Unleash's normalisation (minus its `+ 1`).
    Modulo { modulus: u32 },
}

/// What a split does with a request that carries no key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    Arm {
        arm: ArmId,
    },
    /// Mint a random key, bucket it, and keep it in this cookie so the client stays put.
    /// The compiler also lists the cookie in the split's key chain.
    RandomSticky {
        cookie: String,
        max_age_seconds: u32,
    },
}

/// Testers may force an arm, if they prove who they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Override {
    /// The request header naming the arm to force (by arm name).
    pub header: String,
    /// The header carrying the token, and the token itself, compared in constant time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<OverrideToken>,
    /// Requests from these networks may override without a token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_sources: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideToken {
    pub header: String,
    pub value: String,
}

/// Mirror a share of the stable arm's traffic to the canary (the route config does the copying).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shadow {
    /// The header the filter sets to `"1"` on requests to mirror.
    pub header: String,
    /// Share of stable requests to mirror, in buckets of [`SERIN_SCALE`].
    pub share: u32,
    pub seed: u32,
}

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// Read a plan from plugin configuration bytes, checking its format and every index in it,
    /// so that [`Plan::decide`] can never index out of bounds.
    ///
    /// Never inlined: the filter calls it from a callback built at opt-level 2 (see
    /// [`Engine::new`](crate::Engine::new)), where the whole reader would be built at 2 too.
    #[inline(never)]
    pub fn from_json(bytes: &[u8]) -> Result<Plan, PlanError> {
        if bytes.is_empty() {
            return Err(PlanError(
                "plugin configuration is empty: expected a Serin plan (JSON)".into(),
            ));
        }
        if bytes.len() > MAX_PLAN_BYTES {
            return Err(PlanError(format!(
                "plugin configuration is {} bytes, over the {MAX_PLAN_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let not_an_object = |e: &dyn std::fmt::Display| {
            PlanError(format!(
                "plugin configuration is not a JSON object (a Serin plan): {e}"
            ))
        };
        let json = Json::parse(bytes).map_err(|e| {
            if bytes.trim_ascii_start().first() == Some(&b'{') {
                PlanError(format!("invalid plan: {e}"))
            } else {
                not_an_object(&e)
            }
        })?;
        let root = json.root();
        let object = root.object().map_err(|e| not_an_object(&e))?;
        // Say "wrong version" rather than a confusing field error when that is the cause.
        if let Some(found) = object.get("format").and_then(|f| json::u64(f).ok())
            && found != u64::from(PLAN_FORMAT)
        {
            return Err(unsupported(found));
        }
        let plan = read::plan(&object).map_err(|e| PlanError(format!("invalid plan: {e}")))?;
        plan.check()?;
        plan.check_rollout()?;
        Ok(plan)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan always serializes")
    }

    pub fn arm(&self, id: ArmId) -> &Arm {
        &self.arms[usize::from(id)]
    }

    pub fn arm_id(&self, name: &str) -> Option<ArmId> {
        self.arms
            .iter()
            .position(|a| a.name == name)
            .map(|i| i as ArmId)
    }

    /// Whether any part of the plan looks at the downstream address (fetching it costs a host call).
    pub fn needs_source_ip(&self) -> bool {
        self.rules
            .iter()
            .flat_map(|r| &r.all)
            .any(|m| matches!(m, Matcher::SourceIp { .. }))
            || self
                .override_
                .as_ref()
                .is_some_and(|o| !o.trusted_sources.is_empty())
    }

    /// Every request header that deciding can read, each once, in a fixed order: the headers the
    /// rules, the key chains and the override name, `cookie` when a cookie is read, `:path`
    /// when the path or a query parameter is, `:method` when the method is. A host that can
    /// fetch headers by name (a proxy-wasm filter) fetches these instead of the whole map.
    pub fn headers_read(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for matcher in self.rules.iter().flat_map(|r| &r.all) {
            names.push(match matcher {
                Matcher::Header { name, .. } => name,
                Matcher::Cookie { .. } => "cookie",
                Matcher::Query { .. } | Matcher::PathPrefix { .. } => ":path",
                Matcher::Method { .. } => ":method",
                Matcher::SourceIp { .. } => continue,
            });
        }
        for key in self.splits.iter().flat_map(|s| &s.key) {
            names.push(match key {
                KeySource::Header(name) => name,
                KeySource::Cookie(_) => "cookie",
                KeySource::Query(_) => ":path",
            });
        }
        if let Some(o) = &self.override_ {
            names.push(&o.header);
            names.extend(o.token.as_ref().map(|t| t.header.as_str()));
        }
        // A handful of names: a linear search is all deduplication needs.
        let mut distinct: Vec<&str> = Vec::with_capacity(names.len());
        for name in names {
            if !distinct.contains(&name) {
                distinct.push(name);
            }
        }
        distinct
    }

    /// Structural checks that keep the request path free of panics.
    pub fn check(&self) -> Result<(), PlanError> {
        let err = |m: String| Err(PlanError(m));
        if self.arms.is_empty() || self.arms.len() > usize::from(ArmId::MAX) {
            return err(format!(
                "plan has {} arms; expected 1 to {}",
                self.arms.len(),
                ArmId::MAX
            ));
        }
        if !is_header_name(&self.routing_header) {
            return err(format!(
                "routing header `{}` is not a lower-case header name",
                self.routing_header
            ));
        }
        for arm in &self.arms {
            if !is_header_value(&arm.value) {
                return err(format!(
                    "arm `{}` has a value that cannot be a header value",
                    arm.name
                ));
            }
        }
        let arm_ok = |a: ArmId| usize::from(a) < self.arms.len();
        let action_ok = |a: &Action| match *a {
            Action::Pin { arm } => arm_ok(arm),
            Action::Split { split } => usize::from(split) < self.splits.len(),
        };
        if !arm_ok(self.stable) {
            return err(format!("stable arm index {} is out of range", self.stable));
        }
        if !action_ok(&self.default) {
            return err("the default action refers to a missing arm or split".into());
        }
        for rule in &self.rules {
            if !action_ok(&rule.action) {
                return err(format!(
                    "rule `{}` refers to a missing arm or split",
                    rule.name
                ));
            }
        }
        for (i, split) in self.splits.iter().enumerate() {
            let bound = match split.hash.reduce {
                Reduce::MulShift { scale } => scale,
                Reduce::Modulo { modulus } => modulus,
            };
            if bound == 0 {
                return err(format!("split {i} has a zero bucket range"));
            }
            if !arm_ok(split.rest) || split.lanes.iter().any(|l| !arm_ok(l.arm)) {
                return err(format!("split {i} refers to a missing arm"));
            }
            if split.lanes.iter().any(|l| l.start > l.end || l.end > bound) {
                return err(format!(
                    "split {i} has a lane outside its bucket range 0..{bound}"
                ));
            }
            match &split.fallback {
                Fallback::Arm { arm } if !arm_ok(*arm) => {
                    return err(format!("split {i} falls back to a missing arm"));
                }
                Fallback::RandomSticky { cookie, .. } if !is_token(cookie) => {
                    return err(format!(
                        "split {i} has a sticky cookie name that is not a token"
                    ));
                }
                _ => {}
            }
        }
        if let Some(shadow) = &self.shadow
            && (shadow.share > SERIN_SCALE || !is_header_name(&shadow.header))
        {
            return err("shadow share or header is invalid".into());
        }
        if let Some(o) = &self.override_
            && !is_header_name(&o.header)
        {
            return err("override header is not a lower-case header name".into());
        }
        Ok(())
    }

    /// Index checks for the rollout fields, so that the engine can index without panicking.
    pub fn check_rollout(&self) -> Result<(), PlanError> {
        let err = |m: String| Err(PlanError(m));
        let arm_ok = |a: ArmId| usize::from(a) < self.arms.len();
        for s in &self.segments {
            if !is_header_name(&s.header) {
                return err(format!(
                    "segment `{}` reads a header that is not a lower-case header name",
                    s.name
                ));
            }
        }
        for g in &self.guards {
            if g.arms.iter().any(|a| !arm_ok(*a)) {
                return err(format!("guard `{}` watches a missing arm", g.name));
            }
            let (outcome, segment) = match &g.metric {
                GuardMetric::OutcomeRate {
                    outcome, segment, ..
                } => (Some(*outcome), *segment),
                GuardMetric::Distribution {
                    over: Distributed::Outcome { outcome, .. },
                } => (Some(*outcome), None),
                GuardMetric::Distribution {
                    over: Distributed::Segment { segment },
                } => (None, Some(*segment)),
                _ => (None, None),
            };
            if outcome.is_some_and(|o| usize::from(o) >= self.outcomes.len())
                || segment.is_some_and(|s| usize::from(s) >= self.segments.len())
            {
                return err(format!(
                    "guard `{}` refers to a missing outcome or segment",
                    g.name
                ));
            }
        }
        if let Some(r) = &self.ramp {
            let Some(split) = self.splits.get(usize::from(r.split)) else {
                return err("the ramp refers to a missing split".into());
            };
            let bound = match split.hash.reduce {
                Reduce::MulShift { scale } => scale,
                Reduce::Modulo { modulus } => modulus,
            };
            if !arm_ok(r.arm)
                || r.steps
                    .iter()
                    .flat_map(|s| &s.lanes)
                    .any(|l| !arm_ok(l.arm) || l.start > l.end || l.end > bound)
            {
                return err("the ramp refers to a missing arm or has a lane out of range".into());
            }
        }
        Ok(())
    }
}

/// Why a plan of format `found` is refused: an older plan needs the policy recompiled by this
/// release's `serin compile`; a newer one needs a filter from the `serin` that wrote it.
fn unsupported(found: u64) -> PlanError {
    let why = if found < u64::from(PLAN_FORMAT) {
        "the plan is older than this filter: recompile the policy with this release's \
         `serin compile` and deploy the new plan"
    } else {
        "the plan is newer than this filter: deploy the filter from the same release as the \
         `serin` that compiled it, or compile the policy with this release's `serin compile`"
    };
    PlanError(format!(
        "plan format {found} is not supported: this filter reads format {PLAN_FORMAT}; {why}"
    ))
}

/// A lower-case HTTP header name (an RFC 9110 token), as Envoy stores them.
pub fn is_header_name(s: &str) -> bool {
    is_token(s) && !s.bytes().any(|b| b.is_ascii_uppercase())
}

/// An RFC 9110 token: what header and cookie names are made of.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value the filter may write: visible ASCII and spaces, no CR, LF or NUL.
pub fn is_header_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b))
}
