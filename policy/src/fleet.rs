//! Fleet mode: every proxy judges the canary on the whole fleet's evidence, read from Prometheus
//! (or anything that answers its HTTP API), with no controller of its own.
//!
//! Each proxy exports its own counts ([`crate::catalogue`]); Prometheus scrapes and sums them.
//! Once per `interval` one worker per proxy asks for the fleet's totals for this policy's digest
//! ([`query`]), and the answer ([`parse`]) feeds a second copy of the guards' tests with the
//! fleet's counts since the previous answer. What it decides is shared by every proxy:
//!
//! - **Rollback is a latch.** The answer says whether any proxy reported a rollback of this
//!   digest within `memory_seconds` (a range read, so it survives every proxy restarting at once
//!   as long as Prometheus keeps the samples, and ignores the 5-minute staleness of instant
//!   reads); a proxy that sees it rolls back too.
//! - **The ramp advances on fleet evidence only**, and a proxy that sees a live proxy at a later
//!   step moves to it: the proxies agree on the step within one query interval plus one scrape.
//! - **A proxy that starts is joining**: it routes everything to stable until its first answer,
//!   then adopts the fleet's step (or its rollback).
//!
//! The proxy's own guards stay on as the fast first line: they roll back (or hold) on local
//! evidence as before, but no longer advance the ramp.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalogue::{
    CANARY_WEIGHT, CLASSES, DISTRIBUTION, OTHER_SEGMENT_VALUE, OUTCOMES, OUTCOMES_POSITIVE,
    POLICY_STATE, RESETS, RESPONSES, bucket_labels, guard_label,
};
use crate::guard::{Cell, Counters, Layout, Outcomes};
use crate::json::{self, Json, Node};
use crate::plan::Plan;
use crate::rollout::GuardMetric;

/// The `[fleet]` section of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fleet {
    /// The proxy's cluster that reaches Prometheus's HTTP API.
    pub cluster: String,
    /// The `:authority` of the query (Prometheus's host, or a tenant's gateway).
    pub authority: String,
    /// The instant-query path, `/api/v1/query` for Prometheus.
    pub path: String,
    /// How often each proxy asks.
    pub interval_ms: u32,
    /// How long an answer may take.
    pub timeout_ms: u32,
    /// How far back a rollback reported by any proxy is remembered.
    pub memory_seconds: u32,
    /// Which series the query reads. Absent from a plan means [`Query::Raw`], so plans
    /// without the option keep their bytes and their digest.
    #[serde(default, skip_serializing_if = "Query::is_raw")]
    pub query: Query,
}

/// What the fleet query reads: every proxy's own series, summed at each query ([`Query::Raw`],
/// nothing to set up), or the sums that the recording rules of [`recording_rules`] keep per
/// policy version ([`Query::Recorded`]: a few series per query, for fleets of thousands of
/// proxies, at the cost of one rule evaluation interval more before evidence arrives).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    #[default]
    Raw,
    Recorded,
}

impl Query {
    fn is_raw(&self) -> bool {
        *self == Query::Raw
    }
}

impl Fleet {
    /// A fleet section with the documented defaults: the instant-query path, a 5 s interval, a
    /// 2 s timeout, a day's memory.
    pub fn new(cluster: &str, authority: &str) -> Fleet {
        Fleet {
            cluster: cluster.to_owned(),
            authority: authority.to_owned(),
            path: "/api/v1/query".to_owned(),
            interval_ms: 5_000,
            timeout_ms: 2_000,
            memory_seconds: 86_400,
            query: Query::Raw,
        }
    }
}

/// Answers above this size are refused unread: a fleet answer is a few dozen series.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What a backend got back for the fleet query, as [`crate::Engine::fleet_answer`] takes it:
/// the body of a 200 of at most [`MAX_ANSWER_BYTES`] (`size` bytes; the backend reads `body` only
/// within that bound), or why not. `status` is `None` when no response came (a timeout, a reset,
/// a failed call); `why_none` then says what the proxy reported.
pub fn reply<'b>(
    status: Option<&[u8]>,
    size: usize,
    body: &'b [u8],
    why_none: &str,
) -> Result<&'b [u8], String> {
    match status {
        Some(b"200") if size <= MAX_ANSWER_BYTES => Ok(body),
        Some(b"200") => Err(format!("an answer of {size} bytes")),
        Some(s) => Err(format!("status {}", String::from_utf8_lossy(s))),
        None => Err(format!("no answer ({why_none})")),
    }
}

/// The label that names a policy version on [`POLICY_STATE`], the series a proxy's others are
/// joined on (by `instance`) to count only the proxies that run this version ([`digest_label`]).
/// One label on one series, not on all: it keeps the other series' names as they were.
pub const DIGEST_LABEL: &str = "digest";

/// A digest as a label value: its first 16 hex digits (enough to tell versions apart, and short
/// enough for a stat name).
pub fn digest_label(digest: &str) -> String {
    let hex = digest.rsplit(':').next().unwrap_or(digest);
    hex.chars().take(16).collect()
}

/// The label that marks the answer's two computed series: the fleet's rollback memory and the
/// largest canary weight a live proxy routes by. (A label, not a name: PromQL's `or` matches
/// elements by their labels without the name, so two nameless results would hide each other.)
const COMPUTED: &str = "serin_fleet";
const ROLLED_BACK: &str = "rolled_back";
const WEIGHT: &str = "weight_bp";

/// The one PromQL expression a proxy sends each interval: the fleet's cumulative counts per
/// arm, class, outcome and segment value, whether any proxy rolled back within the memory, and
/// the largest weight a live proxy routes by. [`Query::Raw`] computes them from every proxy's
/// series; [`Query::Recorded`] reads what [`recording_rules`] computed, with the same labels,
/// so [`parse`] reads both answers alike.
pub fn query(plan: &Plan, fleet: &Fleet) -> String {
    let d = digest_label(&plan.digest);
    let m = fleet.memory_seconds.max(1);
    match fleet.query {
        Query::Raw => {
            let counted = COUNTED.map(|f| f.name).join("|");
            let version = format!("{}{{{DIGEST_LABEL}=\"{d}\"}}", POLICY_STATE.name);
            format!(
                "sum by (__name__, arm, class, outcome, segment_value, guard, bucket) \
                 ({{__name__=~\"{counted}\"}} and on (instance) {version}) \
                 or label_replace(max(max_over_time({version}[{m}s]) == bool 4), \
                 \"{COMPUTED}\", \"{ROLLED_BACK}\", \"\", \"\") \
                 or label_replace(max({weight} and on (instance) {version}), \
                 \"{COMPUTED}\", \"{WEIGHT}\", \"\", \"\")",
                weight = CANARY_WEIGHT.name,
            )
        }
        Query::Recorded => {
            let counted = COUNTED.map(|f| recorded_name(f.name)).join("|");
            let of = |name: &str| format!("{name}{{{DIGEST_LABEL}=\"{d}\"}}");
            format!(
                "{{__name__=~\"{counted}\", {DIGEST_LABEL}=\"{d}\"}} \
                 or label_replace(max(max_over_time({rolled_back}[{m}s])), \
                 \"{COMPUTED}\", \"{ROLLED_BACK}\", \"\", \"\") \
                 or label_replace(max({weight}), \"{COMPUTED}\", \"{WEIGHT}\", \"\", \"\")",
                rolled_back = of(&recorded_name(ROLLED_BACK_SERIES)),
                weight = of(&recorded_name(CANARY_WEIGHT.name)),
            )
        }
    }
}

/// The families the fleet counts, summed over proxies.
const COUNTED: [&crate::catalogue::Family; 5] = [
    &RESPONSES,
    &RESETS,
    &OUTCOMES,
    &OUTCOMES_POSITIVE,
    &DISTRIBUTION,
];

/// The stem of the recorded series of whether a proxy rolled back (a comparison of
/// [`POLICY_STATE`], not a family of its own).
const ROLLED_BACK_SERIES: &str = "serin_rolled_back";

/// The name a recording rule gives the fleet's sum of a family (Prometheus's `level:metric:operations`
/// convention): `serin_responses_total` → `serin:responses:sum`, and the maximum of a gauge
/// `serin:canary_weight:max`.
pub fn recorded_name(family: &str) -> String {
    let stem = family.strip_prefix("serin_").unwrap_or(family);
    match stem.strip_suffix("_total") {
        Some(counter) => format!("serin:{counter}:sum"),
        None => format!("serin:{stem}:max"),
    }
}

/// The recording rules that [`Query::Recorded`] reads, as (record, expr): per policy version
/// (the `digest` label, joined from [`POLICY_STATE`] by `instance`), the sum of each counted
/// family over every proxy, whether any proxy is rolled back, and the largest canary weight.
/// Evaluated once per interval by Prometheus, they carry the fan-in over the fleet once instead
/// of once per proxy's query. They hold for every policy: one copy per Prometheus.
pub fn recording_rules() -> Vec<(String, String)> {
    let version = |of: &str| {
        format!(
            "{of} * on (instance) group_left ({DIGEST_LABEL}) ({} * 0 + 1)",
            POLICY_STATE.name
        )
    };
    let mut rules: Vec<(String, String)> = COUNTED
        .iter()
        .map(|f| {
            let by = std::iter::once(DIGEST_LABEL)
                .chain(f.labels.iter().copied())
                .collect::<Vec<_>>()
                .join(", ");
            (
                recorded_name(f.name),
                format!("sum by ({by}) ({})", version(f.name)),
            )
        })
        .collect();
    rules.push((
        recorded_name(ROLLED_BACK_SERIES),
        format!("max by ({DIGEST_LABEL}) ({} == bool 4)", POLICY_STATE.name),
    ));
    rules.push((
        recorded_name(CANARY_WEIGHT.name),
        format!("max by ({DIGEST_LABEL}) ({})", version(CANARY_WEIGHT.name)),
    ));
    rules
}

/// The HTTP request a backend dispatches for [`query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub cluster: String,
    pub authority: String,
    /// The path with the URL-encoded query.
    pub path: String,
    pub timeout_ms: u32,
}

pub fn call(plan: &Plan, fleet: &Fleet) -> Call {
    Call {
        cluster: fleet.cluster.clone(),
        authority: fleet.authority.clone(),
        path: format!("{}?query={}", fleet.path, url_encode(&query(plan, fleet))),
        timeout_ms: fleet.timeout_ms,
    }
}

/// Percent-encoding of everything but unreserved characters (RFC 3986), for a query value.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The fleet's cumulative counts for one arm, as Prometheus summed them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmTotals {
    /// Indexed by [`crate::guard::Class`].
    pub responses: [f64; 4],
    pub resets: f64,
    pub outcomes: Vec<OutcomeTotals>,
    /// The distribution guards' buckets.
    pub buckets: Vec<BucketTotals>,
}

/// The fleet's observations in one bucket of one distribution guard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketTotals {
    /// The guard as its `guard` label writes it ([`guard_label`]).
    pub guard: String,
    /// The bucket's label ([`bucket_labels`]).
    pub bucket: String,
    pub count: f64,
}

/// The fleet's counts of one outcome in one value of the plan's first segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutcomeTotals {
    pub outcome: String,
    pub segment_value: String,
    pub total: f64,
    pub positive: f64,
}

impl ArmTotals {
    /// The counts of `outcome` in `segment_value`, added if new.
    pub fn outcome_mut(&mut self, outcome: String, segment_value: String) -> &mut OutcomeTotals {
        let at = self
            .outcomes
            .iter()
            .position(|o| o.outcome == outcome && o.segment_value == segment_value);
        let new = || OutcomeTotals {
            outcome,
            segment_value,
            ..OutcomeTotals::default()
        };
        found_or_pushed(&mut self.outcomes, at, new)
    }

    /// The count of `guard`'s bucket `bucket`, added if new.
    pub fn bucket_mut(&mut self, guard: String, bucket: String) -> &mut f64 {
        let at = self
            .buckets
            .iter()
            .position(|b| b.guard == guard && b.bucket == bucket);
        let new = || BucketTotals {
            guard,
            bucket,
            count: 0.0,
        };
        &mut found_or_pushed(&mut self.buckets, at, new).count
    }

    /// Every bucket of `guard`, in `labels`' order (0 for a bucket no proxy reported).
    fn buckets_of(&self, guard: &str, labels: &[String]) -> Vec<f64> {
        labels
            .iter()
            .map(|l| {
                self.buckets
                    .iter()
                    .filter(|b| b.guard == guard && b.bucket == *l)
                    .map(|b| b.count)
                    .sum()
            })
            .collect()
    }
}

/// `items[at]`, or a new item pushed when `at` is `None`.
fn found_or_pushed<T>(items: &mut Vec<T>, at: Option<usize>, new: impl FnOnce() -> T) -> &mut T {
    let at = at.unwrap_or_else(|| {
        items.push(new());
        items.len() - 1
    });
    &mut items[at]
}

/// What one answer says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// By arm name.
    pub arms: BTreeMap<String, ArmTotals>,
    /// Whether any proxy reported a rollback of this digest within the memory.
    pub rolled_back: bool,
    /// The largest canary weight (basis points) a live proxy routes by, if any proxy is live.
    pub weight: Option<u32>,
}

/// Why an answer was refused. The backend logs it and counts it; the proxy keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The call failed (no cluster, a reset, a timeout) or Prometheus answered another status.
    Status(String),
    TooLarge(usize),
    Malformed(String),
    /// The query ran but Prometheus reports an error.
    Error(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Status(s) => write!(f, "fleet query failed: {s}"),
            Refused::TooLarge(n) => write!(
                f,
                "fleet answer of {n} bytes refused (limit {MAX_ANSWER_BYTES})"
            ),
            Refused::Malformed(e) => write!(f, "fleet answer is not a Prometheus vector: {e}"),
            Refused::Error(e) => write!(f, "Prometheus answered an error: {e}"),
        }
    }
}

/// Read an instant-query answer to [`query`]. Anything but a vector of finite, non-negative
/// values, or a series about another digest, is refused whole: the proxy then keeps what it had.
pub fn parse(body: &[u8], digest: &str) -> Result<Snapshot, Refused> {
    if body.len() > MAX_ANSWER_BYTES {
        return Err(Refused::TooLarge(body.len()));
    }
    let json = Json::parse(body).map_err(|e| Refused::Malformed(e.to_string()))?;
    let ours = digest_label(digest);
    let mut snap = Snapshot::default();
    for (labels, value) in vector(json.root())? {
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| Refused::Malformed(format!("value `{value}`")))?;
        let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if let Some(d) = get(DIGEST_LABEL)
            && d != ours
        {
            return Err(Refused::Malformed(format!("a series of digest {d}")));
        }
        match get(COMPUTED) {
            Some(ROLLED_BACK) => {
                snap.rolled_back = value >= 1.0;
                continue;
            }
            Some(WEIGHT) => {
                snap.weight = Some(value.min(f64::from(u32::MAX)) as u32);
                continue;
            }
            _ => {}
        }
        let label = |k: &str| get(k).unwrap_or_default().to_owned();
        snap.add(&label("__name__"), label, value);
    }
    Ok(snap)
}

/// A series of an answer: its labels and its value as Prometheus writes it (a string).
type Series = (Vec<(String, String)>, String);

/// The series of an answer `{"status": "success", "data": {"resultType": "vector", "result":
/// [{"metric": {labels}, "value": [unix seconds, "value"]}, ...]}}`, read by hand over [`Json`]
/// (see [`crate::json`] for why). Other fields (`warnings`, ...) are ignored: Prometheus may add
/// some.
fn vector(root: Node<'_>) -> Result<Vec<Series>, Refused> {
    let answer = root.object()?;
    let status = answer.field("status", json::str)?;
    if status != "success" {
        let error = answer.opt_field("error", json::str)?;
        return Err(Refused::Error(error.unwrap_or(status).to_owned()));
    }
    let Some(data) = answer.opt_field("data", Ok)? else {
        return Err(Refused::Malformed("no data".into()));
    };
    let data = data.object()?;
    let result_type = data.field("resultType", json::str)?;
    if result_type != "vector" {
        return Err(Refused::Malformed(format!("a {result_type}")));
    }
    Ok(data.field("result", |result| result.array(series))?)
}

fn series(node: Node<'_>) -> json::Result<Series> {
    let series = node.object()?;
    let labels = series.field("metric", |metric| {
        let metric = metric.object()?;
        metric
            .entries()
            .map(|(name, value)| Ok((name.to_owned(), json::string(value)?)))
            .collect()
    })?;
    let value = series.field("value", |pair| {
        let [time, value] = pair.tuple()?;
        json::f64(time)?;
        json::string(value)
    })?;
    Ok((labels, value))
}

impl From<json::Error> for Refused {
    fn from(e: json::Error) -> Refused {
        Refused::Malformed(e.0)
    }
}

impl Snapshot {
    /// Add `value` of a counted series `name` whose labels `label` reads (absent: empty).
    /// Series the fleet does not count are ignored.
    /// A recorded sum ([`recorded_name`]) counts as its family.
    pub fn add(&mut self, name: &str, label: impl Fn(&str) -> String, value: f64) {
        let Some(family) = COUNTED
            .iter()
            .find(|f| f.name == name || recorded_name(f.name) == name)
        else {
            return;
        };
        let name = family.name;
        let arm = self.arms.entry(label("arm")).or_default();
        if name == RESPONSES.name {
            if let Some(i) = CLASSES.iter().position(|(_, c)| *c == label("class")) {
                arm.responses[i] += value;
            }
        } else if name == RESETS.name {
            arm.resets += value;
        } else if name == DISTRIBUTION.name {
            *arm.bucket_mut(label("guard"), label("bucket")) += value;
        } else {
            let cell = arm.outcome_mut(label("outcome"), label("segment_value"));
            if name == OUTCOMES.name {
                cell.total += value;
            } else {
                cell.positive += value;
            }
        }
    }
}

/// An arm's counts between two answers, in the window's form, for the guards' tests. `None`
/// when a total fell (a proxy restarted and its counters began again): that interval's
/// evidence is skipped rather than guessed.
pub fn between(
    plan: &Plan,
    layout: &Layout,
    before: &ArmTotals,
    after: &ArmTotals,
) -> Option<Counters> {
    let diff = |a: f64, b: f64| {
        let d = (b - a).round();
        (d >= 0.0).then(|| d.min(f64::from(u32::MAX)) as u32)
    };
    let mut c = Counters::default();
    for i in 0..4 {
        c.responses[i] = diff(before.responses[i], after.responses[i])?;
    }
    c.resets = diff(before.resets, after.resets)?;
    c.requests = c.responses.iter().sum::<u32>().saturating_add(c.resets);
    // The distribution guard whose buckets were last counted: (guard, before, after).
    let mut counted: Option<(u16, Vec<f64>, Vec<f64>)> = None;
    for (cell, kind) in c.outcomes.iter_mut().zip(&layout.cells) {
        if let Cell::Bucket { guard, bucket } = *kind {
            // A bucket's cell: its observations, out of all of its guard's. A guard's cells
            // are consecutive, so its buckets are counted once, at its first cell.
            if counted.as_ref().is_none_or(|(g, ..)| *g != guard) {
                let Some(g) = plan.guards.get(usize::from(guard)) else {
                    continue;
                };
                let GuardMetric::Distribution { over } = &g.metric else {
                    continue;
                };
                let (name, labels) = (guard_label(&g.name), bucket_labels(plan, over));
                counted = Some((
                    guard,
                    before.buckets_of(&name, &labels),
                    after.buckets_of(&name, &labels),
                ));
            }
            let Some((_, b, a)) = &counted else {
                continue;
            };
            let i = usize::from(bucket);
            *cell = Outcomes {
                total: diff(b.iter().sum(), a.iter().sum())?,
                positive: diff(*b.get(i)?, *a.get(i)?)?,
            };
            continue;
        }
        let Cell::Outcome {
            outcome,
            segment: key,
        } = *kind
        else {
            continue;
        };
        let Some(outcome) = plan.outcomes.get(usize::from(outcome)) else {
            continue;
        };
        // Only the plan's first segment is exported; a cell on another segment has no fleet
        // counts and stays empty (its local test still runs).
        let values: Option<Vec<String>> = match key {
            None => None,
            Some((0, v)) => Some(vec![
                plan.segments
                    .first()
                    .and_then(|s| s.values.get(usize::from(v)))
                    .cloned()
                    .unwrap_or_else(|| OTHER_SEGMENT_VALUE.to_owned()),
            ]),
            Some(_) => continue,
        };
        let sum = |t: &ArmTotals| {
            t.outcomes
                .iter()
                .filter(|o| {
                    o.outcome == outcome.name
                        && values
                            .as_ref()
                            .is_none_or(|vs| vs.contains(&o.segment_value))
                })
                .fold((0.0, 0.0), |acc, o| (acc.0 + o.total, acc.1 + o.positive))
        };
        let (b, a) = (sum(before), sum(after));
        *cell = Outcomes {
            total: diff(b.0, a.0)?,
            positive: diff(b.1, a.1)?,
        };
    }
    Some(c)
}

#[cfg(test)]
mod tests;
