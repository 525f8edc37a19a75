//! A fleet in virtual time (`serin simulate --proxies N`): N proxies, each with its own engine,
//! shared data and exported counters, sharing the traffic at random, and a Prometheus that
//! scrapes them every `scrape_ms` and answers each proxy's fleet query from its last scrape.
//! Proxies can restart (their engine, shared data and counters start afresh, as in a new pod)
//! and Prometheus can be unreachable for a while.
//!
//! What it reports is what fleet mode is for: the time from the start to the first proxy's
//! rollback and to the last one's, and the canary requests served after the first rollback.

use serde::{Deserialize, Serialize};

use super::{Requests, Scenario, ScoreAt, SplitMix64, Summary, respond};
use crate::catalogue::CANARY_WEIGHT;
use crate::engine::{Engine, InMemory, Update};
use crate::fleet::{Refused, Snapshot};
use crate::guard::{Params, Phase, Role};
use crate::plan::{ArmId, Plan};
use crate::request::HeaderList;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetScenario {
    pub proxies: u32,
    /// How often Prometheus scrapes every proxy.
    pub scrape_ms: u32,
    /// Proxies that restart, and when.
    pub restarts: Vec<Restart>,
    /// Prometheus cannot be reached from `[start, end)` seconds.
    pub outage: Option<(f64, f64)>,
}

impl Default for FleetScenario {
    fn default() -> Self {
        FleetScenario {
            proxies: 1,
            scrape_ms: 5_000,
            restarts: Vec::new(),
            outage: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    pub proxy: u32,
    pub at_seconds: f64,
}

/// One fleet run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetRun {
    pub seed: u64,
    /// Seconds from the start to the first proxy's rollback.
    pub first_rollback: Option<f64>,
    /// Seconds to the last proxy's, when every proxy rolled back.
    pub last_rollback: Option<f64>,
    /// Canary requests routed, by any proxy, after the first rollback.
    pub canary_after_first: u64,
    /// Canary requests routed by proxies that had restarted, after the first rollback.
    pub canary_after_first_by_restarted: u64,
    pub canary_requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    pub proxies: u32,
    pub fleet_mode: bool,
    pub runs: u32,
    /// Runs in which every proxy rolled back.
    pub all_rolled_back: u32,
    pub seconds_to_first_rollback: Option<Summary>,
    pub seconds_to_last_rollback: Option<Summary>,
    /// Last minus first, over the runs where every proxy rolled back.
    pub spread_seconds: Option<Summary>,
    pub canary_after_first_rollback: Option<Summary>,
    pub results: Vec<FleetRun>,
}

/// One proxy: its engine, its shared data, and the counters it has exported.
struct Proxy {
    engine: Engine,
    shared: InMemory,
    /// Per catalogue series: the cumulative value (a counter) or the last set (a gauge).
    exported: Vec<f64>,
    rolled_back_at: Option<f64>,
    restarted: bool,
    /// When it may first ask the fleet: its phase within the query interval, as real proxies
    /// that did not start together.
    phase_ms: f64,
}

impl Proxy {
    fn new(plan: &Plan, params: &Params) -> Proxy {
        let engine = Engine::new(plan.clone(), params.clone());
        let series = engine.catalogue().series.len();
        Proxy {
            engine,
            shared: InMemory::default(),
            exported: vec![0.0; series],
            rolled_back_at: None,
            restarted: false,
            phase_ms: 0.0,
        }
    }
}

/// Play `scenario` over a fleet, `scenario.runs` times. A plan with `[fleet]` runs in fleet
/// mode; without, each proxy judges alone.
pub fn run(
    plan: &Plan,
    params: &Params,
    scenario: &Scenario,
    fleet: &FleetScenario,
) -> FleetReport {
    let results: Vec<FleetRun> = (0..u64::from(scenario.runs))
        .map(|i| run_once(plan, params, scenario, fleet, scenario.seed + i))
        .collect();
    let first: Vec<f64> = results.iter().filter_map(|r| r.first_rollback).collect();
    let last: Vec<f64> = results.iter().filter_map(|r| r.last_rollback).collect();
    let spread: Vec<f64> = results
        .iter()
        .filter_map(|r| Some(r.last_rollback? - r.first_rollback?))
        .collect();
    let after: Vec<f64> = results
        .iter()
        .filter(|r| r.first_rollback.is_some())
        .map(|r| r.canary_after_first as f64)
        .collect();
    FleetReport {
        proxies: fleet.proxies.max(1),
        fleet_mode: plan.fleet.is_some(),
        runs: scenario.runs,
        all_rolled_back: last.len() as u32,
        seconds_to_first_rollback: Summary::of(first),
        seconds_to_last_rollback: Summary::of(last),
        spread_seconds: Summary::of(spread),
        canary_after_first_rollback: Summary::of(after),
        results,
    }
}

pub fn run_once(
    plan: &Plan,
    params: &Params,
    scenario: &Scenario,
    fleet: &FleetScenario,
    seed: u64,
) -> FleetRun {
    let mut rng = SplitMix64(seed);
    let n = fleet.proxies.clamp(1, 1000) as usize;
    let mut proxies: Vec<Proxy> = (0..n).map(|_| Proxy::new(plan, params)).collect();
    // Each proxy's phase within the query interval, in whole ticks, from its own stream so that
    // the traffic's stays the same.
    let interval_ticks = plan
        .fleet
        .as_ref()
        .map_or(1, |f| (f.interval_ms / 1000).max(1));
    let mut phases = SplitMix64(seed ^ 0xF1EE_7000);
    for p in proxies.iter_mut() {
        p.phase_ms = (phases.next_u64() % u64::from(interval_ticks)) as f64 * 1000.0;
    }
    let catalogue = proxies[0].engine.catalogue().clone();
    let canary: Option<ArmId> = (0..plan.arms.len() as ArmId)
        .find(|&a| proxies[0].engine.rollout().role_of(a) == Some(Role::Canary));
    let requests = Requests::new(plan, scenario);
    let scores = ScoreAt::of(plan);
    let total_share: f64 = scenario.segment_mix.iter().map(|s| s.share.max(0.0)).sum();
    let rate_per_ms = scenario.requests_per_second.max(1e-9) / 1000.0;
    let horizon = f64::from(scenario.max_seconds) * 1000.0;
    let (tick_ms, scrape_ms) = (1000.0, f64::from(fleet.scrape_ms.max(1)));
    let memory_ms = plan
        .fleet
        .as_ref()
        .map_or(0.0, |f| f64::from(f.memory_seconds) * 1000.0);
    let mut restarts = fleet.restarts.clone();
    restarts.sort_by(|a, b| a.at_seconds.total_cmp(&b.at_seconds));
    let mut restarts = restarts.into_iter().peekable();

    // Prometheus: each proxy's last scraped values, and when a scrape last saw a rollback.
    let mut scraped: Vec<Vec<f64>> = vec![vec![0.0; catalogue.series.len()]; n];
    let mut rollback_seen_at: Option<f64> = None;

    let mut run = FleetRun {
        seed,
        first_rollback: None,
        last_rollback: None,
        canary_after_first: 0,
        canary_after_first_by_restarted: 0,
        canary_requests: 0,
    };
    let (mut t, mut next_tick, mut next_scrape) = (0.0f64, 0.0f64, scrape_ms);
    loop {
        t += -rng.unit().ln() / rate_per_ms;
        while next_tick <= t.min(horizon) {
            let now = next_tick;
            while restarts
                .peek()
                .is_some_and(|r| r.at_seconds * 1000.0 <= now)
            {
                if let Some(r) = restarts.next()
                    && let Some(p) = proxies.get_mut(r.proxy as usize)
                {
                    *p = Proxy::new(plan, params);
                    p.restarted = true;
                }
            }
            while next_scrape <= now {
                for (p, last) in proxies.iter().zip(scraped.iter_mut()) {
                    last.clone_from(&p.exported);
                    if p.exported[catalogue.rollout_state()] == 4.0 {
                        rollback_seen_at = Some(next_scrape);
                    }
                }
                next_scrape += scrape_ms;
            }
            let unreachable = fleet
                .outage
                .is_some_and(|(a, b)| now >= a * 1000.0 && now < b * 1000.0);
            for p in proxies.iter_mut() {
                p.engine.tick(now as u64, &mut p.shared);
                // Proxies started at different moments ask at their own phase of the interval.
                let asks =
                    now >= p.phase_ms && p.engine.fleet_call(now as u64, &mut p.shared).is_some();
                if asks {
                    let answer = if unreachable {
                        Err(Refused::Status("unreachable".into()))
                    } else {
                        let remembered = rollback_seen_at.is_some_and(|at| now - at <= memory_ms);
                        Ok(snapshot(&catalogue, &scraped, remembered))
                    };
                    p.engine.fleet_snapshot(now as u64, answer, &mut p.shared);
                }
                let exported = &mut p.exported;
                p.engine.flush(|i, u| match u {
                    Update::Add(x) => exported[i] += x as f64,
                    Update::Record(x) => exported[i] = x as f64,
                });
                if p.rolled_back_at.is_none()
                    && matches!(p.engine.phase(), Phase::RolledBack { .. })
                {
                    p.rolled_back_at = Some(now / 1000.0);
                    run.first_rollback.get_or_insert(now / 1000.0);
                }
            }
            if proxies.iter().all(|p| p.rolled_back_at.is_some()) {
                run.last_rollback = proxies
                    .iter()
                    .filter_map(|p| p.rolled_back_at)
                    .reduce(f64::max);
                return run;
            }
            next_tick += tick_ms;
        }
        if t >= horizon {
            return run;
        }
        let mut pick = rng.unit() * total_share;
        let segment = scenario.segment_mix.iter().position(|s| {
            pick -= s.share.max(0.0);
            pick < 0.0
        });
        let headers = requests.build(rng.next_u64(), segment);
        let p = &mut proxies[(rng.next_u64() % n as u64) as usize];
        let route = p.engine.route(&HeaderList::new(&headers), t as u64, || {
            rng.next_u64().to_le_bytes().to_vec()
        });
        let exchange = route.exchange;
        let model = if Some(exchange.arm()) == canary {
            run.canary_requests += 1;
            if run.first_rollback.is_some() {
                run.canary_after_first += 1;
                run.canary_after_first_by_restarted += u64::from(p.restarted);
            }
            &scenario.canary
        } else {
            &scenario.stable
        };
        respond(
            &mut p.engine,
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

/// What Prometheus answers the fleet query with, from its last scrape of every proxy.
fn snapshot(
    catalogue: &crate::catalogue::Catalogue,
    scraped: &[Vec<f64>],
    rolled_back: bool,
) -> Snapshot {
    let mut snap = Snapshot {
        rolled_back,
        ..Snapshot::default()
    };
    for (i, series) in catalogue.series.iter().enumerate() {
        let label = |k: &str| {
            series
                .labels
                .iter()
                .find(|(l, _)| *l == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let sum: f64 = scraped.iter().map(|s| s[i]).sum();
        let name = series.family.name;
        if name == CANARY_WEIGHT.name {
            let live = scraped.iter().map(|s| s[i] as u32).max();
            snap.weight = live.filter(|_| !scraped.is_empty());
            continue;
        }
        snap.add(name, label, sum);
    }
    snap
}
