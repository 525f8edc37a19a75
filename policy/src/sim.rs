//! The rollout engine in virtual time: synthetic traffic through the real bucketing, window,
//! sequential tests and state machine, for `serin simulate` and for the detection-quality
//! evidence in BENCHMARKS.md.
//!
//! A [`Scenario`] describes the traffic (arrival rate, per-arm error rates, lognormal
//! latencies, outcome rates per segment value and the segment mix, a model score's
//! distribution per arm); [`run`] plays it `runs`
//! times with seeds `seed, seed + 1, …` against a plan's guards and ramp, and returns a
//! [`Report`] that serializes to JSON and prints as a table ([`Report::table`]).
//!
//! Randomness comes from SplitMix64 (Steele, Lea and Flood, 2014) rather than a crate: this
//! module lives in the engine crate, which keeps no runtime dependencies beyond serde, and a
//! simulation only needs a fast, seedable, reproducible stream, not cryptographic quality.

pub mod fleet;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, InMemory, ramp_at};
use crate::guard::power::{Baseline, CheckPower, TABLE_MULTIPLES};
use crate::guard::{Params, Phase, Role, Rollout};
use crate::plan::{Action, ArmId, KeySource, Plan, Reduce};
use crate::request::HeaderList;
use crate::rollout::{Distributed, GuardMetric, OutcomeSource, PathStep};

/// One arm's behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArmModel {
    /// Share of requests that fail with a 503.
    pub error_rate: f64,
    /// Median latency (ms) of a lognormal distribution.
    pub latency_median_ms: f64,
    /// σ of the latency's logarithm.
    pub latency_sigma: f64,
    /// Positive-outcome rate per segment value (same order as [`Scenario::segment_mix`]); a
    /// missing entry uses `positive_rate`.
    pub positive_by_segment: Vec<f64>,
    /// Positive-outcome rate where no per-segment rate is given.
    pub positive_rate: f64,
    /// The model's score on this arm, which the simulator writes into each successful
    /// response where the plan's distribution guard reads it (the JSON body field or the
    /// header of its outcome), so that the engine reads it the way it reads a proxy's.
    /// `None`: responses carry no score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
}

/// A score's distribution: a normal, clipped to `[0, 1]` as a probability-like model score
/// is. One simple family, drawn with the module's own generator: what a drift guard needs is
/// two histograms that differ by a known amount, not a faithful model of any one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Score {
    pub mean: f64,
    pub sd: f64,
}

impl Score {
    pub fn draw(&self, rng: &mut SplitMix64) -> f64 {
        (self.mean + self.sd.max(0.0) * rng.normal()).clamp(0.0, 1.0)
    }
}

impl Default for ArmModel {
    fn default() -> Self {
        ArmModel {
            error_rate: 0.01,
            latency_median_ms: 50.0,
            latency_sigma: 0.5,
            positive_by_segment: Vec::new(),
            positive_rate: 0.05,
            score: None,
        }
    }
}

/// A segment value and its share of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentShare {
    pub value: String,
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The first seed; run `i` uses `seed + i`.
    pub seed: u64,
    pub runs: u32,
    /// Poisson arrival rate.
    pub requests_per_second: f64,
    /// A run that has neither promoted nor rolled back by then counts as undecided.
    pub max_seconds: u32,
    /// How often the engine ticks.
    pub tick_ms: u32,
    /// Workers, each with its own window merged into the shared one on every tick.
    pub workers: u32,
    pub stable: ArmModel,
    pub canary: ArmModel,
    /// Index into the plan's segments that `segment_mix` gives values of.
    pub segment: u8,
    pub segment_mix: Vec<SegmentShare>,
    /// Index into the plan's outcomes that the arms' positive rates are for.
    pub outcome: u8,
    /// Several proxies sharing the traffic, a Prometheus scraping them, restarts and outages
    /// (`serin simulate --proxies N`; see [`fleet`]).
    pub fleet: Option<fleet::FleetScenario>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed: 1,
            runs: 100,
            requests_per_second: 200.0,
            max_seconds: 1800,
            tick_ms: 1000,
            workers: 1,
            stable: ArmModel::default(),
            canary: ArmModel::default(),
            segment: 0,
            segment_mix: Vec::new(),
            outcome: 0,
            fleet: None,
        }
    }
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum RunEnd {
    Promoted,
    RolledBack { guard: String },
    Held { guard: String },
    Undecided,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub seed: u64,
    pub end: RunEnd,
    /// When it ended (or the horizon), in seconds of virtual time.
    pub seconds: f64,
    /// Canary requests sent until then.
    pub canary_requests: u64,
    pub requests: u64,
    /// Canary requests sent at a weight, against what that weight promised.
    pub expected_canary: f64,
}

/// Median, 90th percentile and mean of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p90: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of(mut xs: Vec<f64>) -> Option<Summary> {
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| {
            let pos = q * (xs.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64)
        };
        Some(Summary {
            n: xs.len(),
            median: at(0.5),
            p90: at(0.9),
            mean: xs.iter().sum::<f64>() / xs.len() as f64,
        })
    }
}

/// The outcome of [`run`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub policy: String,
    pub runs: u32,
    pub promoted: u32,
    pub rolled_back: u32,
    pub held: u32,
    pub undecided: u32,
    pub rollback_rate: f64,
    /// The rollback rate when both arms behave identically (an A/A scenario): every rollback
    /// is a false one.
    pub false_rollback_rate: Option<f64>,
    pub canary_requests_to_rollback: Option<Summary>,
    pub seconds_to_rollback: Option<Summary>,
    pub canary_requests_to_promotion: Option<Summary>,
    pub seconds_to_promotion: Option<Summary>,
    pub rollbacks_by_guard: BTreeMap<String, u32>,
    /// Canary requests sent, over all runs, against what the weights in force promised.
    pub split_expected_canary: f64,
    pub split_actual_canary: u64,
    /// `(actual - expected) / expected`.
    pub split_relative_error: f64,
    pub results: Vec<RunResult>,
}

/// SplitMix64: see the module docs for why not a crate.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `(0, 1)`.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Play `scenario` against the plan's guards and ramp.
pub fn run(plan: &Plan, params: &Params, scenario: &Scenario) -> Report {
    let results: Vec<RunResult> = (0..scenario.runs)
        .map(|i| {
            let seed = scenario.seed.wrapping_add(u64::from(i));
            run_once(plan, params, scenario, seed)
        })
        .collect();
    summarize(plan, scenario, results)
}

/// One run with one seed: every worker is an [`Engine`], as in a proxy, and every request is
/// routed by the plan's own rules and lanes.
pub fn run_once(plan: &Plan, params: &Params, scenario: &Scenario, seed: u64) -> RunResult {
    let mut rng = SplitMix64(seed);
    let workers = scenario.workers.clamp(1, 64) as usize;
    let mut engines: Vec<Engine> = (0..workers)
        .map(|_| Engine::new(plan.clone(), params.clone()))
        .collect();
    let mut shared = InMemory::default();
    let requests = Requests::new(plan, scenario);
    let canary = (0..plan.arms.len() as ArmId)
        .find(|&a| engines[0].rollout().role_of(a) == Some(Role::Canary));
    let tick_ms = f64::from(scenario.tick_ms.max(1));
    let horizon = f64::from(scenario.max_seconds) * 1000.0;
    let rate_per_ms = scenario.requests_per_second.max(1e-9) / 1000.0;
    let total_share: f64 = scenario.segment_mix.iter().map(|s| s.share.max(0.0)).sum();
    let scores = ScoreAt::of(plan);

    let mut result = RunResult {
        seed,
        end: RunEnd::Undecided,
        seconds: 0.0,
        canary_requests: 0,
        requests: 0,
        expected_canary: 0.0,
    };
    let mut t = 0.0f64;
    let mut next_tick = 0.0f64;
    let mut share = 0.0;
    loop {
        t += -rng.unit().ln() / rate_per_ms;
        while next_tick <= t.min(horizon) {
            let now = next_tick as u64;
            // Every worker publishes before any judges, as a settled sub-window in a proxy.
            let mut window = None;
            for engine in engines.iter_mut() {
                window = Some(engine.publish(&mut shared));
            }
            let window = window.unwrap_or_else(|| engines[0].rollout().window());
            for engine in engines.iter_mut() {
                engine.advance(now, &window, &mut shared);
            }
            let phase = engines[0].phase();
            share = canary.map_or(0.0, |arm| canary_share(plan, phase, arm));
            let end = match phase {
                Phase::Promoted => Some(RunEnd::Promoted),
                Phase::RolledBack { guard } => Some(RunEnd::RolledBack {
                    guard: guard_name(engines[0].rollout(), guard),
                }),
                _ => None,
            };
            if let Some(end) = end {
                result.end = end;
                result.seconds = next_tick / 1000.0;
                return result;
            }
            next_tick += tick_ms;
        }
        if t >= horizon {
            if let Phase::Held { guard, .. } = engines[0].phase() {
                result.end = RunEnd::Held {
                    guard: guard_name(engines[0].rollout(), guard),
                };
            }
            result.seconds = horizon / 1000.0;
            return result;
        }
        let mut pick = rng.unit() * total_share;
        let segment = scenario.segment_mix.iter().position(|s| {
            pick -= s.share.max(0.0);
            pick < 0.0
        });
        let headers = requests.build(rng.next_u64(), segment);
        let engine = &mut engines[(rng.next_u64() % workers as u64) as usize];
        let now = t as u64;
        let route = engine.route(&HeaderList::new(&headers), now, || {
            rng.next_u64().to_le_bytes().to_vec()
        });
        let exchange = route.exchange;
        result.requests += 1;
        result.expected_canary += share;
        let model = if Some(exchange.arm()) == canary {
            result.canary_requests += 1;
            &scenario.canary
        } else {
            &scenario.stable
        };
        respond(
            engine,
            exchange,
            model,
            segment,
            scenario.outcome,
            scores.as_ref(),
            &mut rng,
            t,
        );
    }
}

/// The scenario's answer to a routed request sent at `t` (ms): latency, status, score and
/// outcome drawn from the arm's model, and recorded as a proxy records them, when the response
/// ends.
#[allow(clippy::too_many_arguments)]
pub(crate) fn respond(
    engine: &mut Engine,
    mut exchange: crate::Exchange,
    model: &ArmModel,
    segment: Option<usize>,
    outcome: u8,
    scores: Option<&ScoreAt>,
    rng: &mut SplitMix64,
    t: f64,
) {
    let latency_ms = model.latency_median_ms.max(0.0) * (model.latency_sigma * rng.normal()).exp();
    let done = (t + latency_ms) as u64;
    let status = if rng.chance(model.error_rate) {
        503
    } else {
        200
    };
    let score = model
        .score
        .filter(|_| status == 200)
        .zip(scores)
        .map(|(s, at)| (at, s.draw(rng)));
    match score {
        Some((ScoreAt::Header { name, .. }, x)) => {
            let text = x.to_string().into_bytes();
            let header = |h: &str| (h == name).then(|| text.clone());
            engine.response_headers(&mut exchange, done, status, true, || false, header);
        }
        Some((ScoreAt::Body { prefix, suffix, .. }, x)) => {
            let body = format!("{prefix}{x}{suffix}").into_bytes();
            engine.response_headers(&mut exchange, done, status, false, || false, |_| None);
            engine.response_body(&mut exchange, || done, body.len(), true, || Some(body));
        }
        None => {
            engine.response_headers(&mut exchange, done, status, true, || false, |_| None);
        }
    }
    // A score outcome that also has a positive test was counted from the score.
    let scored = score.is_some_and(|(at, _)| at.outcome() == usize::from(outcome));
    if status == 200 && !scored {
        let p = segment
            .and_then(|i| model.positive_by_segment.get(i))
            .copied()
            .unwrap_or(model.positive_rate);
        let positive = rng.chance(p);
        engine.record_outcome(&exchange, usize::from(outcome), positive, done);
    }
    engine.stream_done(exchange, || done);
}

/// Where a response carries the score that the plan's first outcome distribution reads.
#[derive(Debug, Clone)]
pub(crate) enum ScoreAt {
    Header {
        outcome: usize,
        name: String,
    },
    /// A JSON body with the score between `prefix` and `suffix`.
    Body {
        outcome: usize,
        prefix: String,
        suffix: String,
    },
}

impl ScoreAt {
    pub(crate) fn of(plan: &Plan) -> Option<ScoreAt> {
        let outcome = plan.guards.iter().find_map(|g| match &g.metric {
            GuardMetric::Distribution {
                over: Distributed::Outcome { outcome, .. },
            } => Some(usize::from(*outcome)),
            _ => None,
        })?;
        Some(match &plan.outcomes.get(outcome)?.source {
            OutcomeSource::Header { name } => ScoreAt::Header {
                outcome,
                name: name.clone(),
            },
            OutcomeSource::Json { path } => {
                const MARK: &str = "\u{1}score";
                let leaf = serde_json::Value::String(MARK.into());
                let doc = path.iter().rev().fold(leaf, |inner, step| match step {
                    PathStep::Key(k) => serde_json::json!({ k.as_str(): inner }),
                    PathStep::Index(i) => {
                        let mut items = vec![serde_json::Value::Null; *i as usize];
                        items.push(inner);
                        serde_json::Value::Array(items)
                    }
                });
                let text = doc.to_string();
                let mark = serde_json::Value::String(MARK.into()).to_string();
                let (prefix, suffix) = text.split_once(&mark)?;
                ScoreAt::Body {
                    outcome,
                    prefix: prefix.to_owned(),
                    suffix: suffix.to_owned(),
                }
            }
        })
    }

    fn outcome(&self) -> usize {
        match self {
            ScoreAt::Header { outcome, .. } | ScoreAt::Body { outcome, .. } => *outcome,
        }
    }
}

/// Builds a scenario's requests: a fresh user key where the plan's split reads it, and the
/// scenario's segment value in its header.
pub(crate) struct Requests {
    key: Option<KeySource>,
    segment: Option<(String, Vec<String>)>,
}

impl Requests {
    pub(crate) fn new(plan: &Plan, scenario: &Scenario) -> Requests {
        let key = routing_split(plan)
            .and_then(|s| plan.splits.get(usize::from(s)))
            .and_then(|s| s.key.first().cloned());
        let segment = plan.segments.get(usize::from(scenario.segment)).map(|s| {
            let values = scenario.segment_mix.iter().map(|m| m.value.clone());
            (s.header.clone(), values.collect())
        });
        Requests { key, segment }
    }

    pub(crate) fn build(&self, key: u64, segment: Option<usize>) -> Vec<(String, Vec<u8>)> {
        let key = format!("{key:016x}");
        let mut headers = Vec::with_capacity(2);
        headers.extend(self.key.as_ref().map(|source| match source {
            KeySource::Header(name) => (name.clone(), key.into_bytes()),
            KeySource::Cookie(name) => ("cookie".into(), format!("{name}={key}").into_bytes()),
            KeySource::Query(name) => (":path".into(), format!("/?{name}={key}").into_bytes()),
        }));
        if let (Some((header, values)), Some(i)) = (&self.segment, segment) {
            headers.push((header.clone(), values[i].clone().into_bytes()));
        }
        headers
    }
}

/// The split a scenario's requests go through: the ramped one, else the default action's.
/// Every guard check's power at the scenario's traffic, with the canary at the ramp's first
/// step (or the split's weight), over `runs` seeds and up to a day each: what `serin simulate`
/// prints beside its runs.
pub fn power_table(
    plan: &Plan,
    params: &Params,
    scenario: &Scenario,
    runs: u32,
) -> Vec<CheckPower> {
    let rollout = Rollout::from_plan(plan, params.clone());
    let share = starting_share(plan, &rollout);
    let slots_per_day = rollout.slots_per_day();
    rollout.power_table(
        &baseline(plan, scenario, share),
        &TABLE_MULTIPLES,
        runs,
        slots_per_day,
    )
}

/// The scenario's stable arm as a power table's baseline.
fn baseline(plan: &Plan, scenario: &Scenario, canary_share: f64) -> Baseline {
    let stable = scenario.stable.clone();
    let mix = scenario.segment_mix.clone();
    let total: f64 = mix.iter().map(|s| s.share.max(0.0)).sum();
    let rate_of = move |i: usize| {
        stable
            .positive_by_segment
            .get(i)
            .copied()
            .unwrap_or(stable.positive_rate)
    };
    let (segment, outcome) = (scenario.segment, scenario.outcome);
    let values: Vec<Vec<String>> = plan.segments.iter().map(|s| s.values.clone()).collect();
    let overall = if total > 0.0 {
        mix.iter()
            .enumerate()
            .map(|(i, s)| rate_of(i) * s.share.max(0.0) / total)
            .sum()
    } else {
        rate_of(0)
    };
    Baseline {
        rps: scenario.requests_per_second,
        canary_share,
        error_rate: scenario.stable.error_rate,
        cell: Box::new(move |(o, seg)| match seg {
            None => (
                if o == outcome {
                    overall
                } else {
                    rate_of(usize::MAX)
                },
                1.0,
            ),
            Some((s, v)) => {
                let name = values
                    .get(usize::from(s))
                    .and_then(|vals| vals.get(usize::from(v)))
                    .map_or("other", String::as_str);
                let at = (s == segment && o == outcome && total > 0.0)
                    .then(|| mix.iter().position(|m| m.value == name))
                    .flatten();
                match at {
                    Some(i) => (rate_of(i), mix[i].share.max(0.0) / total),
                    // A segment the scenario does not describe: values in equal shares.
                    None => (
                        rate_of(usize::MAX),
                        1.0 / (values.get(usize::from(s)).map_or(0, Vec::len) + 1) as f64,
                    ),
                }
            }
        }),
    }
}

fn routing_split(plan: &Plan) -> Option<u16> {
    match (&plan.ramp, plan.default) {
        (Some(ramp), _) => Some(ramp.split),
        (None, Action::Split { split }) => Some(split),
        (None, Action::Pin { .. }) => None,
    }
}

/// The canary's share of requests when the rollout starts: the ramp's first step, or the
/// split's weight.
pub fn starting_share(plan: &Plan, rollout: &Rollout) -> f64 {
    rollout.canary.map_or(0.0, |arm| {
        canary_share(plan, Phase::Ramping { step: 0 }, arm)
    })
}

/// The share of requests `arm`'s lanes promise at `phase`.
pub fn canary_share(plan: &Plan, phase: Phase, arm: ArmId) -> f64 {
    let Some(split) = routing_split(plan) else {
        let pinned = matches!(plan.default, Action::Pin { arm: a } if a == arm);
        return if pinned { 1.0 } else { 0.0 };
    };
    let Some(split) = plan.splits.get(usize::from(split)) else {
        return 0.0;
    };
    let lanes = match ramp_at(plan, phase) {
        Some(at) => at.lanes.unwrap_or_default(),
        None => split.lanes.clone(),
    };
    let bound = match split.hash.reduce {
        Reduce::MulShift { scale } => scale,
        Reduce::Modulo { modulus } => modulus,
    };
    let owned: u64 = lanes
        .iter()
        .filter(|l| l.arm == arm)
        .map(|l| u64::from(l.end.saturating_sub(l.start)))
        .sum();
    owned as f64 / f64::from(bound.max(1))
}

fn guard_name(rollout: &Rollout, guard: u16) -> String {
    rollout
        .guard_names
        .get(usize::from(guard))
        .cloned()
        .unwrap_or_default()
}

fn summarize(plan: &Plan, scenario: &Scenario, results: Vec<RunResult>) -> Report {
    let count = |f: fn(&RunEnd) -> bool| results.iter().filter(|r| f(&r.end)).count() as u32;
    let runs = results.len() as u32;
    let rolled_back = count(|e| matches!(e, RunEnd::RolledBack { .. }));
    let rollback_rate = if runs == 0 {
        0.0
    } else {
        f64::from(rolled_back) / f64::from(runs)
    };
    let pick = |f: fn(&RunEnd) -> bool, g: fn(&RunResult) -> f64| {
        Summary::of(results.iter().filter(|r| f(&r.end)).map(g).collect())
    };
    let is_rb: fn(&RunEnd) -> bool = |e| matches!(e, RunEnd::RolledBack { .. });
    let is_pr: fn(&RunEnd) -> bool = |e| matches!(e, RunEnd::Promoted);
    let mut rollbacks_by_guard = BTreeMap::new();
    for r in &results {
        if let RunEnd::RolledBack { guard } = &r.end {
            *rollbacks_by_guard.entry(guard.clone()).or_insert(0) += 1;
        }
    }
    let expected: f64 = results.iter().map(|r| r.expected_canary).sum();
    let actual: u64 = results.iter().map(|r| r.canary_requests).sum();
    Report {
        policy: plan.policy.clone(),
        runs,
        promoted: count(|e| matches!(e, RunEnd::Promoted)),
        rolled_back,
        held: count(|e| matches!(e, RunEnd::Held { .. })),
        undecided: count(|e| matches!(e, RunEnd::Undecided)),
        rollback_rate,
        false_rollback_rate: (scenario.stable == scenario.canary).then_some(rollback_rate),
        canary_requests_to_rollback: pick(is_rb, |r| r.canary_requests as f64),
        seconds_to_rollback: pick(is_rb, |r| r.seconds),
        canary_requests_to_promotion: pick(is_pr, |r| r.canary_requests as f64),
        seconds_to_promotion: pick(is_pr, |r| r.seconds),
        rollbacks_by_guard,
        split_expected_canary: expected,
        split_actual_canary: actual,
        split_relative_error: if expected > 0.0 {
            (actual as f64 - expected) / expected
        } else {
            0.0
        },
        results,
    }
}

impl Report {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{:.2}%", x * 100.0);
        let _ = writeln!(s, "policy {}: {} runs", self.policy, self.runs);
        let _ = writeln!(s, "  {:<32} {:>10}", "promoted", self.promoted);
        let _ = writeln!(s, "  {:<32} {:>10}", "rolled back", self.rolled_back);
        let _ = writeln!(s, "  {:<32} {:>10}", "held", self.held);
        let _ = writeln!(s, "  {:<32} {:>10}", "undecided", self.undecided);
        let _ = writeln!(
            s,
            "  {:<32} {:>10}",
            "rollback rate",
            pct(self.rollback_rate)
        );
        if let Some(f) = self.false_rollback_rate {
            let _ = writeln!(s, "  {:<32} {:>10}", "false-rollback rate (A/A)", pct(f));
        }
        let _ = writeln!(
            s,
            "  {:<32} {:>10} {:>10} {:>10}",
            "", "median", "p90", "mean"
        );
        for (name, sum) in [
            (
                "canary requests to rollback",
                self.canary_requests_to_rollback,
            ),
            ("seconds to rollback", self.seconds_to_rollback),
            (
                "canary requests to promotion",
                self.canary_requests_to_promotion,
            ),
            ("seconds to promotion", self.seconds_to_promotion),
        ] {
            match sum {
                Some(x) => {
                    let _ = writeln!(
                        s,
                        "  {name:<32} {:>10.0} {:>10.0} {:>10.0}",
                        x.median, x.p90, x.mean
                    );
                }
                None => {
                    let _ = writeln!(s, "  {name:<32} {:>10}", "-");
                }
            }
        }
        for (guard, n) in &self.rollbacks_by_guard {
            let _ = writeln!(s, "  {:<32} {:>10}", format!("rollbacks by `{guard}`"), n);
        }
        let _ = writeln!(
            s,
            "  {:<32} {:>10} (expected {:.0}, {:+.2}%)",
            "split: canary requests",
            self.split_actual_canary,
            self.split_expected_canary,
            self.split_relative_error * 100.0
        );
        s
    }
}
