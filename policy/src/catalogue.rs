//! The metrics Serin exports, in one place: their names, kinds, labels and help, and the series a
//! plan defines. Every backend defines exactly [`Catalogue::of`]'s series, and every emitter
//! (alert rules, dashboards, Argo and Flagger analysis, the docs) builds its queries from
//! [`FAMILIES`], so a name cannot drift between what a proxy exports and what is queried.
//!
//! Envoy has no label API for module metrics: a series' labels are embedded in its name in
//! Istio's convention (`serin_requests_total_arm=.=canary;.;`, [`Series::tagged_name`]), and the
//! bootstrap's `stats_config.stats_tags` (one per entry of [`LABELS`]) cut them out again, so
//! `/stats/prometheus` shows `serin_requests_total{arm="canary"}`.
//!
//! Label values:
//! - `arm`: the arm's *name* in the policy (`stable`, `canary`), not its routing-header value.
//! - `class`: `2xx`, `4xx`, `5xx` or `other` (1xx, 3xx), [`CLASSES`].
//! - `outcome`: the outcome's name.
//! - `segment`, `segment_value`: the plan's first segment and the request's value of it
//!   (`age_band`, `65+`; a value outside the segment's list is `other`). Absent when the plan
//!   has no segment. Each response is counted once, so an overall rate sums over the values.
//! - `guard`: a distribution guard's name as [`guard_label`] writes it (lower-case letters,
//!   digits and dashes: a stat name cannot carry every character a name may have).
//! - `bucket`: a distribution's bucket, [`bucket_labels`]: `le_0.3` for the values at most 0.3,
//!   `le_inf` for the open last one; for a segment, its value or `other`.

use crate::decimal;
use crate::guard::Class;
use crate::plan::{ArmId, Plan};
use crate::rollout::{Distributed, GuardMetric};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Family {
    /// The name the native backend defines (under [`NATIVE_NAMESPACE`]).
    pub fn native_name(&self) -> &'static str {
        self.name.strip_prefix("serin_").unwrap_or(self.name)
    }

    /// How the family appears in the native backend's `/stats/prometheus`.
    pub fn native_exposed_name(&self) -> String {
        format!("envoy_{NATIVE_NAMESPACE}_{}", self.native_name())
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The native backend's `metrics_namespace`. Envoy 1.40 writes a dynamic module's metric
/// `NAME` in `/stats/prometheus` as `envoy_<namespace>_NAME`, with real labels; the native
/// backend defines each family under [`Family::native_name`] (its name without `serin_`), so
/// `serin_requests_total` is exposed as `envoy_serin_requests_total`, and one Prometheus
/// relabelling ([`NATIVE_RELABEL`]) gives both backends the same names.
pub const NATIVE_NAMESPACE: &str = "serin";

/// The scrape-time rename (a `metric_relabel_configs` entry's regex and replacement) that makes
/// the native backend's names the proxy-wasm filter's.
pub const NATIVE_RELABEL: (&str, &str) = ("envoy_serin_(.+)", "serin_$1");

/// One metric name and what its series carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

pub const REQUESTS: Family = Family {
    name: "serin_requests_total",
    kind: Kind::Counter,
    labels: &["arm"],
    help: "requests the filter routed",
};
pub const RESPONSES: Family = Family {
    name: "serin_responses_total",
    kind: Kind::Counter,
    labels: &["arm", "class"],
    help: "responses, by status class",
};
pub const RESETS: Family = Family {
    name: "serin_resets_total",
    kind: Kind::Counter,
    labels: &["arm"],
    help: "streams reset before their response completed, counted as errors",
};
pub const DURATION: Family = Family {
    name: "serin_request_duration_milliseconds",
    kind: Kind::Histogram,
    labels: &["arm"],
    help: "request headers to response headers; buckets from the plan's metrics.latency_buckets_us",
};
pub const OUTCOMES: Family = Family {
    name: "serin_outcomes_total",
    kind: Kind::Counter,
    labels: &["arm", "outcome", "segment", "segment_value"],
    help: "responses that carried the outcome",
};
pub const OUTCOMES_POSITIVE: Family = Family {
    name: "serin_outcomes_positive_total",
    kind: Kind::Counter,
    labels: &["arm", "outcome", "segment", "segment_value"],
    help: "those of them whose outcome was positive",
};
pub const DISTRIBUTION: Family = Family {
    name: "serin_distribution_total",
    kind: Kind::Counter,
    labels: &["arm", "guard", "bucket"],
    help: "observations a distribution guard bucketed: model scores or segment values",
};
pub const ROLLOUT_STATE: Family = Family {
    name: "serin_rollout_state",
    kind: Kind::Gauge,
    labels: &[],
    help: "the rollout's phase: 0 joining, 1 ramping, 2 held, 3 promoted, 4 rolled back",
};
pub const CANARY_WEIGHT: Family = Family {
    name: "serin_canary_weight_bp",
    kind: Kind::Gauge,
    labels: &[],
    help: "the ramped arm's weight in basis points (10000 = 100%)",
};

pub const POLICY_STATE: Family = Family {
    name: "serin_policy_state",
    kind: Kind::Gauge,
    labels: &["digest"],
    help: "the rollout's phase, as serin_rollout_state, labelled with the policy version (the plan digest's first 16 hex digits): what fleet mode reads",
};

pub const FLEET_REFUSED: Family = Family {
    name: "serin_fleet_refused_total",
    kind: Kind::Counter,
    labels: &[],
    help: "fleet mode: Prometheus answers refused (a failed call, an error, not a vector, another version, over 1 MiB); defined only for a plan with [fleet]",
};

pub const PANICS: Family = Family {
    name: "serin_panics_total",
    kind: Kind::Counter,
    labels: &[],
    help: "native backend: hooks that panicked and were caught (a request being routed went to the stable arm); the proxy-wasm filter cannot catch a panic (Envoy fails open instead)",
};

/// Every family, in the order the docs list them.
pub const FAMILIES: &[Family] = &[
    REQUESTS,
    RESPONSES,
    RESETS,
    DURATION,
    OUTCOMES,
    OUTCOMES_POSITIVE,
    DISTRIBUTION,
    ROLLOUT_STATE,
    CANARY_WEIGHT,
    POLICY_STATE,
    FLEET_REFUSED,
    PANICS,
];

/// Every label any family carries (one `stats_tags` entry each).
pub const LABELS: &[&str] = &[
    "arm",
    "class",
    "outcome",
    "segment",
    "segment_value",
    "guard",
    "bucket",
    "digest",
];

/// The values of `class`, in [`Class`] order.
pub const CLASSES: [(Class, &str); 4] = [
    (Class::Success, "2xx"),
    (Class::ClientError, "4xx"),
    (Class::ServerError, "5xx"),
    (Class::Other, "other"),
];

/// The values of [`ROLLOUT_STATE`] ([`crate::guard::Phase::code`]).
pub const STATES: &[(u8, &str)] = &[
    (0, "joining"),
    (1, "ramping"),
    (2, "held"),
    (3, "promoted"),
    (4, "rolled back"),
];

/// The segment value of a request outside the segment's list (or without it).
pub const OTHER_SEGMENT_VALUE: &str = "other";

/// A name as lower-case letters, digits and single dashes between them (empty when it has no
/// letter or digit): label values here, file and rule names in the emitters.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A guard name as a label value ([`slug`], or `guard` when nothing is left).
pub fn guard_label(name: &str) -> String {
    let out = slug(name);
    if out.is_empty() { "guard".into() } else { out }
}

/// The `bucket` label values of a distribution, in bucket order.
pub fn bucket_labels(plan: &Plan, over: &Distributed) -> Vec<String> {
    match over {
        Distributed::Outcome {
            upper_bounds_millionths,
            ..
        } => upper_bounds_millionths
            .iter()
            .map(|b| format!("le_{}", decimal::shortest(*b, 6)))
            .chain(["le_inf".to_owned()])
            .collect(),
        Distributed::Segment { segment } => plan
            .segments
            .get(usize::from(*segment))
            .map(|s| s.values.clone())
            .unwrap_or_default()
            .into_iter()
            .chain([OTHER_SEGMENT_VALUE.to_owned()])
            .collect(),
    }
}

/// One series: a family with its label values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub family: Family,
    pub labels: Vec<(&'static str, String)>,
}

impl Series {
    /// The name a backend defines in Envoy: the labels embedded in Istio's convention.
    pub fn tagged_name(&self) -> String {
        self.tagged(self.family.name)
    }

    /// The same under the native backend's namespace ([`Family::native_name`]): how it defines
    /// a series it records per request, without labels.
    pub fn native_tagged_name(&self) -> String {
        self.tagged(self.family.native_name())
    }

    fn tagged(&self, name: &str) -> String {
        let mut name = name.to_owned();
        for (k, v) in &self.labels {
            name.push_str(&tag(k, v));
        }
        name
    }
}

/// `_<label>=.=<value>;.;`, the form `stats_tags` cut out of a stat name.
pub fn tag(label: &str, value: &str) -> String {
    format!("_{label}=.={value};.;")
}

/// The series a plan's backends define, and where each measurement lands among them. Series
/// are numbered in one sequence: [`Catalogue::series`]`[i]` is what index `i` means everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    pub series: Vec<Series>,
    arms: usize,
    outcomes: usize,
    /// Columns per outcome: the first segment's values plus `other`, or one without a segment.
    segment_columns: usize,
    requests: usize,
    responses: usize,
    resets: usize,
    duration: usize,
    outcomes_total: usize,
    outcomes_positive: usize,
    /// Per distribution guard: its index, where its series start, and its buckets (series
    /// arm by arm, buckets within).
    distributions: Vec<(u16, usize, usize)>,
    state: usize,
    canary_weight: usize,
}

impl Catalogue {
    pub fn of(plan: &Plan) -> Catalogue {
        let arm_names: Vec<&str> = plan.arms.iter().map(|a| a.name.as_str()).collect();
        let mut series = Vec::new();
        // Appends one series per arm; returns where they start.
        let per_arm =
            |series: &mut Vec<Series>, family: Family, extra: &[(&'static str, String)]| {
                let start = series.len();
                for arm in &arm_names {
                    let mut labels = vec![("arm", (*arm).to_owned())];
                    labels.extend_from_slice(extra);
                    series.push(Series { family, labels });
                }
                start
            };
        let requests = per_arm(&mut series, REQUESTS, &[]);
        let responses = series.len();
        for (_, class) in CLASSES {
            per_arm(&mut series, RESPONSES, &[("class", class.to_owned())]);
        }
        let resets = per_arm(&mut series, RESETS, &[]);
        let duration = per_arm(&mut series, DURATION, &[]);
        let segment_labels: Vec<Vec<(&'static str, String)>> = match plan.segments.first() {
            Some(s) => s
                .values
                .iter()
                .map(String::as_str)
                .chain([OTHER_SEGMENT_VALUE])
                .map(|v| vec![("segment", s.name.clone()), ("segment_value", v.to_owned())])
                .collect(),
            None => vec![Vec::new()],
        };
        let by_outcome = |series: &mut Vec<Series>, family: Family| {
            let start = series.len();
            for arm in &arm_names {
                for outcome in &plan.outcomes {
                    for segment in &segment_labels {
                        let mut labels = vec![
                            ("arm", (*arm).to_owned()),
                            ("outcome", outcome.name.clone()),
                        ];
                        labels.extend_from_slice(segment);
                        series.push(Series { family, labels });
                    }
                }
            }
            start
        };
        let outcomes_total = by_outcome(&mut series, OUTCOMES);
        let outcomes_positive = by_outcome(&mut series, OUTCOMES_POSITIVE);
        let mut distributions = Vec::new();
        for (g, guard) in plan.guards.iter().enumerate() {
            let GuardMetric::Distribution { over } = &guard.metric else {
                continue;
            };
            let buckets = bucket_labels(plan, over);
            let name = guard_label(&guard.name);
            let start = series.len();
            for arm in &arm_names {
                for bucket in &buckets {
                    series.push(Series {
                        family: DISTRIBUTION,
                        labels: vec![
                            ("arm", (*arm).to_owned()),
                            ("guard", name.clone()),
                            ("bucket", bucket.clone()),
                        ],
                    });
                }
            }
            distributions.push((g.min(usize::from(u16::MAX)) as u16, start, buckets.len()));
        }
        let state = series.len();
        series.push(Series {
            family: ROLLOUT_STATE,
            labels: Vec::new(),
        });
        series.push(Series {
            family: CANARY_WEIGHT,
            labels: Vec::new(),
        });
        series.push(Series {
            family: POLICY_STATE,
            labels: vec![("digest", crate::fleet::digest_label(&plan.digest))],
        });
        if plan.fleet.is_some() {
            series.push(Series {
                family: FLEET_REFUSED,
                labels: Vec::new(),
            });
        }
        Catalogue {
            series,
            arms: arm_names.len(),
            outcomes: plan.outcomes.len(),
            segment_columns: segment_labels.len(),
            requests,
            responses,
            resets,
            duration,
            outcomes_total,
            outcomes_positive,
            distributions,
            state,
            canary_weight: state + 1,
        }
    }

    pub fn requests(&self, arm: ArmId) -> usize {
        self.requests + usize::from(arm)
    }

    pub fn responses(&self, arm: ArmId, class: Class) -> usize {
        self.responses + class as usize * self.arms + usize::from(arm)
    }

    pub fn resets(&self, arm: ArmId) -> usize {
        self.resets + usize::from(arm)
    }

    pub fn duration(&self, arm: ArmId) -> usize {
        self.duration + usize::from(arm)
    }

    /// `column`: the request's value index in the plan's first segment (0 without one).
    pub fn outcomes(&self, arm: ArmId, outcome: usize, column: u16, positive: bool) -> usize {
        let cell = (usize::from(arm) * self.outcomes + outcome) * self.segment_columns
            + usize::from(column).min(self.segment_columns - 1);
        cell + if positive {
            self.outcomes_positive
        } else {
            self.outcomes_total
        }
    }

    /// Bucket `bucket` of distribution guard `guard` on `arm`; past the end (so never counted)
    /// for a guard that is not a distribution.
    pub fn distribution(&self, arm: ArmId, guard: u16, bucket: u8) -> usize {
        self.distributions.iter().find(|d| d.0 == guard).map_or(
            usize::MAX,
            |&(_, start, buckets)| {
                start + usize::from(arm) * buckets + usize::from(bucket).min(buckets - 1)
            },
        )
    }

    pub fn rollout_state(&self) -> usize {
        self.state
    }

    pub fn canary_weight(&self) -> usize {
        self.canary_weight
    }

    pub fn policy_state(&self) -> usize {
        self.canary_weight + 1
    }

    /// Fleet mode's refused answers; `None` for a plan without `[fleet]`.
    pub fn fleet_refused(&self) -> Option<usize> {
        let i = self.policy_state() + 1;
        (self.series.get(i)?.family == FLEET_REFUSED).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_names_the_series_it_counts() {
        let plan = Plan::from_json(serde_json::json!({
            "format": crate::PLAN_FORMAT, "policy": "p", "digest": "", "routing_header": "x-arm",
            "arms": [{"name": "stable", "value": "s"}, {"name": "canary", "value": "c"}],
            "stable": 0, "default": {"pin": {"arm": 0}},
            "segments": [{"name": "age_band", "header": "x-age", "values": ["18-34", "35-64", "65+"]}],
            "outcomes": [{"name": "flagged", "source": {"from": "header", "name": "x-flag"},
                          "positive": {"op": "equals", "any_of": ["1"]}}],
            "guards": [{"name": "Score drift!", "arms": [1], "window_seconds": 60,
                        "min_samples": 100, "on_breach": "rollback",
                        "metric": {"kind": "distribution", "over": {"from": "outcome",
                                   "outcome": 0, "upper_bounds_millionths": [250000, 500000]}}}],
        }).to_string().as_bytes())
        .unwrap();
        let c = Catalogue::of(&plan);
        let name = |i: usize| c.series[i].tagged_name();
        assert_eq!(name(c.requests(1)), "serin_requests_total_arm=.=canary;.;");
        assert_eq!(
            name(c.responses(1, Class::ServerError)),
            "serin_responses_total_arm=.=canary;.;_class=.=5xx;.;"
        );
        assert_eq!(name(c.resets(0)), "serin_resets_total_arm=.=stable;.;");
        assert_eq!(
            name(c.duration(0)),
            "serin_request_duration_milliseconds_arm=.=stable;.;"
        );
        assert_eq!(
            name(c.outcomes(1, 0, 2, true)),
            "serin_outcomes_positive_total_arm=.=canary;.;_outcome=.=flagged;.;\
             _segment=.=age_band;.;_segment_value=.=65+;.;"
        );
        // A value index past the list is `other`.
        assert_eq!(
            name(c.outcomes(0, 0, 9, false)),
            "serin_outcomes_total_arm=.=stable;.;_outcome=.=flagged;.;\
             _segment=.=age_band;.;_segment_value=.=other;.;"
        );
        assert_eq!(
            name(c.distribution(1, 0, 1)),
            "serin_distribution_total_arm=.=canary;.;_guard=.=score-drift;.;_bucket=.=le_0.5;.;"
        );
        assert_eq!(
            name(c.distribution(0, 0, 2)),
            "serin_distribution_total_arm=.=stable;.;_guard=.=score-drift;.;_bucket=.=le_inf;.;"
        );
        assert_eq!(
            c.distribution(0, 7, 0),
            usize::MAX,
            "not a distribution guard"
        );
        assert_eq!(name(c.rollout_state()), "serin_rollout_state");
        assert_eq!(name(c.canary_weight()), "serin_canary_weight_bp");
        assert_eq!(name(c.policy_state()), "serin_policy_state_digest=.=;.;");
        // Each series once, and every index in range.
        let mut names: Vec<String> = c.series.iter().map(Series::tagged_name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), c.series.len());
    }

    #[test]
    fn families_list_each_label_they_use() {
        for f in FAMILIES {
            assert!(f.labels.iter().all(|l| LABELS.contains(l)), "{}", f.name);
        }
    }
}
