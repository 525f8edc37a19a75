//! The typed policy model that `lower` builds from the syntax tree. Every user-written value keeps
//! its span, so `validate` and `lint` can point at it. Names are not resolved yet: that is
//! `validate`'s job, and `plan` turns names into indices.

use serde::Serialize;

use crate::diag::Span;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct S<T> {
    pub v: T,
    #[serde(skip)]
    pub span: Span,
}

impl<T> S<T> {
    pub fn new(v: T, span: Span) -> Self {
        S { v, span }
    }
}

/// A number as written: TOML integer or float. Weights keep their text so decimals are exact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Number {
    pub text: String,
    pub is_integer: bool,
}

impl Number {
    pub fn as_f64(&self) -> f64 {
        self.text.parse().unwrap_or(f64::NAN)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub name: S<String>,
    pub description: Option<S<String>>,
    pub routing_header: Option<S<String>>,
    pub stable: Option<S<String>>,
    pub arms: Vec<ArmDef>,
    /// Span of the `[arms]` table (or of the whole file when it is missing).
    #[serde(skip)]
    pub arms_span: Span,
    /// `[split]`: what happens when no rule matches. Without it, the stable arm takes everything.
    pub split: Option<SplitDef>,
    /// `[splits.NAME]`: splits that rules apply by name.
    pub splits: Vec<SplitDef>,
    pub rules: Vec<RuleDef>,
    pub segments: Vec<SegmentDef>,
    pub outcomes: Vec<OutcomeDef>,
    pub guard_defaults: GuardDefaults,
    pub guards: Vec<GuardDef>,
    pub ramp: Option<RampDef>,
    pub override_: Option<OverrideDef>,
    pub shadow: Option<ShadowDef>,
    pub metrics: Option<MetricsDef>,
    pub fleet: Option<FleetDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmDef {
    pub name: S<String>,
    pub value: Option<S<String>>,
    pub description: Option<S<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitDef {
    /// `default` for `[split]`.
    pub name: S<String>,
    #[serde(skip)]
    pub span: Span,
    pub key: S<Vec<S<KeyRef>>>,
    pub salt: Option<S<String>>,
    /// In the order written.
    pub weights: S<Vec<Weight>>,
    pub fallback: Option<S<FallbackDef>>,
    pub bucketing: S<Bucketing>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Weight {
    pub arm: S<String>,
    pub value: S<Number>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "name", rename_all = "snake_case")]
pub enum KeyRef {
    Header(String),
    Cookie(String),
    Query(String),
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRef::Header(n) => write!(f, "header:{n}"),
            KeyRef::Cookie(n) => write!(f, "cookie:{n}"),
            KeyRef::Query(n) => write!(f, "query:{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackDef {
    Arm(S<String>),
    Random {
        cookie: Option<S<String>>,
        max_age_seconds: Option<S<u64>>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucketing {
    Serin,
    Unleash {
        group_id: S<String>,
        total_weight: Option<S<i64>>,
    },
    Flagd {
        flag_key: S<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleDef {
    pub name: S<String>,
    #[serde(skip)]
    pub span: Span,
    /// All must hold; empty matches every request.
    pub when: Vec<S<Cond>>,
    pub then: S<RuleAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Arm(String),
    Split(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cond {
    Header {
        name: S<String>,
        test: S<TestDef>,
    },
    Cookie {
        name: S<String>,
        test: S<TestDef>,
    },
    Query {
        name: S<String>,
        test: S<TestDef>,
    },
    PathPrefix(Vec<S<String>>),
    Method(Vec<S<String>>),
    SourceCidr(Vec<S<String>>),
    /// `users = { key = "header:x-user-id", allow = [...] }` or `deny = [...]`.
    Users {
        key: S<KeyRef>,
        list: UserList,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserList {
    Allow(Vec<S<String>>),
    Deny(Vec<S<String>>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestDef {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Present,
    Absent,
    OneOf(Vec<S<String>>),
    NoneOf(Vec<S<String>>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentDef {
    pub name: S<String>,
    pub header: S<String>,
    /// Known values; any other value counts as `other`. Empty: every value is its own segment.
    pub values: Vec<S<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeDef {
    pub name: S<String>,
    pub source: S<OutcomeSourceDef>,
    /// What counts as positive (for `outcome_rate` guards); `None`: a numeric outcome that
    /// only `distribution` guards read.
    pub positive: Option<S<PositiveDef>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeSourceDef {
    Header(String),
    /// A JSON body field path such as `predictions[0]` or `outputs[0].data[0]`.
    Json(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PositiveDef {
    Equals(Vec<S<String>>),
    Above(f64),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GuardDefaults {
    pub window_seconds: Option<S<u64>>,
    pub min_samples: Option<S<u64>>,
    pub on_breach: Option<S<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardDef {
    pub name: S<String>,
    #[serde(skip)]
    pub span: Span,
    pub metric: S<String>,
    /// Arms the guard watches; empty: every arm but the stable one.
    pub arms: Vec<S<String>>,
    pub max: Option<S<f64>>,
    pub min: Option<S<f64>>,
    pub max_ratio: Option<S<f64>>,
    pub min_ratio: Option<S<f64>>,
    pub quantile: Option<S<f64>>,
    pub outcome: Option<S<String>>,
    pub segment: Option<S<String>>,
    pub segment_values: Vec<S<String>>,
    /// A distribution guard's bucket upper bounds, as written (the list's span, each value's).
    pub buckets: Option<S<Vec<S<f64>>>>,
    pub window_seconds: Option<S<u64>>,
    pub min_samples: Option<S<u64>>,
    pub on_breach: Option<S<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RampDef {
    #[serde(skip)]
    pub span: Span,
    /// The split whose weight ramps; default: `[split]`.
    pub split: Option<S<String>>,
    /// The arm that ramps; default: the split's only non-stable arm.
    pub arm: Option<S<String>>,
    /// Requests per second the policy expects, to check that steps can reach their sample sizes.
    pub expected_rps: Option<S<f64>>,
    pub steps: Vec<StepDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDef {
    #[serde(skip)]
    pub span: Span,
    pub weight: S<Number>,
    pub min_duration_seconds: S<u64>,
    pub gates: Vec<S<String>>,
    pub min_samples: Option<S<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverrideDef {
    #[serde(skip)]
    pub span: Span,
    pub header: S<String>,
    pub token: Option<S<(S<String>, S<String>)>>,
    pub trusted_sources: Vec<S<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowDef {
    #[serde(skip)]
    pub span: Span,
    pub share: S<Number>,
    pub header: Option<S<String>>,
    pub salt: Option<S<String>>,
}

/// `[fleet]`: judge on every proxy's evidence through Prometheus's HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetDef {
    #[serde(skip)]
    pub span: Span,
    /// The proxy's cluster that reaches Prometheus.
    pub cluster: S<String>,
    pub authority: Option<S<String>>,
    pub path: Option<S<String>>,
    /// Seconds.
    pub interval: Option<S<u64>>,
    pub timeout: Option<S<u64>>,
    pub memory: Option<S<u64>>,
    /// `raw` or `recorded`.
    pub query: Option<S<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsDef {
    #[serde(skip)]
    pub span: Span,
    pub labels: Vec<S<String>>,
    pub latency_buckets_ms: Vec<S<f64>>,
}
