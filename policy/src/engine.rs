//! [`Engine`]: one proxy worker's whole view of a policy, and the one object every backend, the
//! simulator and the fuzzers drive.
//!
//! A backend (the proxy-wasm filter, a native module) is glue around it: it reads from the proxy
//! what the engine asks for and writes back what the engine returns. Everything in between is
//! here, with no proxy type in its interface:
//!
//! - **what to read** of a request: [`Engine::headers_to_read`], [`Engine::reads_source_ip`],
//!   [`Engine::headers_to_strip_first`];
//! - **route** ([`Engine::route`]): the decision, the override, stable after a rollback, a
//!   minted sticky key and its cookie, the shadow mark, the header edits; it returns an
//!   [`Exchange`] that the stream keeps;
//! - **respond** ([`Engine::response_headers`], [`Engine::response_body`],
//!   [`Engine::response_trailers`], [`Engine::stream_done`]): status class, latency, local
//!   replies and resets, model outcomes, counted in this worker's [`Window`] and metric tallies;
//! - **the rollout** ([`Engine::tick`]): this worker's window merged into the shared one, the
//!   shared [`RolloutState`](crate::guard::RolloutState) advanced, the ramp step's lanes swapped
//!   in; backends share state through [`SharedData`], which they implement over whatever the
//!   proxy offers (proxy-wasm shared data, atomics, a map in the simulator);
//! - **metrics** ([`Engine::flush`]): the tallies and gauges of the plan's [`Catalogue`].

mod exchange;
mod fleet;
mod shared;

use std::sync::Arc;

pub use exchange::{Exchange, Sample};
pub use fleet::{Book, FLEET_GUARD, FleetAnswer};
pub use shared::{InMemory, Rewrite, SharedData};

use crate::catalogue::Catalogue;
use crate::decide::Decision;
use crate::guard::drift::Source;
use crate::guard::segment_value_index;
use crate::guard::{Params, Phase, Rollout, Transition, Window};
use crate::murmur3_x86_32;
use crate::plan::{Fallback, Lane, Plan, Reduce};
use crate::request::Request;
use crate::router::Router;

/// Past this many names a request is read as the whole map. In Envoy what a read costs is the
/// value's trip into the VM (Envoy calls the module's allocator, about 10 k instructions), which
/// a present header and the whole map pay once each and an absent header not at all; so names
/// are never dearer than the map there. Only a plan naming many headers, most of them present,
/// is better off with the map (docs/perf-log.md).
const MAX_HEADERS_BY_NAME: usize = 8;

pub struct Engine {
    /// The plan as written (step 0's lanes).
    plan: Plan,
    /// The plan as routing applies it now (the phase's lanes swapped in), prepared.
    router: Router,
    rollout: Rollout,
    /// This worker's counts since its last publish.
    window: Window,
    phase: Phase,
    catalogue: Catalogue,
    /// Per catalogue series: counts since the last flush (counters only).
    tallies: Vec<u64>,
    /// Shared so that a backend can hold the names while it routes.
    headers_read: Option<Arc<[String]>>,
    strip_first: Vec<String>,
    source_ip: bool,
    reads_bodies: bool,
    /// Per outcome: whether a distribution guard reads its value as a number.
    numeric_outcomes: Vec<bool>,
    /// Whether a request's segment values are read (they label outcomes, and distribution
    /// guards may bucket them).
    reads_segments: bool,
    /// Whether anything reads the counts (guards or a ramp); without, requests skip the window.
    measures: bool,
    window_key: String,
    state_key: String,
    /// Fleet mode's part, when the plan has `[fleet]`.
    fleet: Option<fleet::FleetCx>,
    /// Fleet mode: no fleet answer yet since the proxy started, so everything goes to stable.
    joining: bool,
}

/// The header edits of a routed request, in order: set (`Some`) or remove (`None`).
pub struct Route<'e> {
    pub exchange: Exchange,
    pub edits: Edits<'e>,
}

pub struct Edits<'e> {
    routing: (&'e str, &'e str),
    shadow: Option<(&'e str, Option<&'static str>)>,
    token: Option<&'e str>,
}

impl<'e> Edits<'e> {
    pub fn iter(&self) -> impl Iterator<Item = (&'e str, Option<&'e str>)> {
        let routing = Some((self.routing.0, Some(self.routing.1)));
        let token = self.token.map(|h| (h, None));
        routing.into_iter().chain(self.shadow).chain(token)
    }
}

/// A metric change [`Engine::flush`] asks the backend to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Add to a counter.
    Add(u64),
    /// Set a gauge, or record a value in a histogram.
    Record(u64),
}

impl Engine {
    /// `params`: tuning the plan does not carry; a backend sets `settle_ms` from its tick so
    /// that a sub-window is judged only after every worker published it.
    // What runs once per configuration or once a second (this, `summary`, `tick`, the fleet's
    // call and answer, `Plan::from_json`) is never inlined: the filter's callbacks are built at
    // opt-level 2 for the request path (Cargo.toml's `wasm` profile), and LTO would inline these
    // into them and build them at 2 too, about 17 K more in filter.wasm for no gain.
    #[inline(never)]
    pub fn new(plan: Plan, params: Params) -> Engine {
        let mut rollout = Rollout::from_plan(&plan, params);
        let fleet = fleet::fleet_cx(&plan, &rollout);
        // In fleet mode the proxy's own guards roll back or hold; only fleet evidence ramps.
        rollout.ramps = fleet.is_none();
        let catalogue = Catalogue::of(&plan);
        let numeric_outcomes = (0..plan.outcomes.len())
            .map(|o| {
                rollout.distributions.iter().any(|d| {
                    matches!(d.source, Source::Outcome { outcome, .. } if usize::from(outcome) == o)
                })
            })
            .collect();
        let reads_segments = !plan.outcomes.is_empty()
            || rollout
                .distributions
                .iter()
                .any(|d| matches!(d.source, Source::Segment { .. }));
        let headers_read = headers_read(&plan, reads_segments);
        // A decision that could read what the client sent as the routing or shadow header (the
        // whole map, or a plan naming them) must not see it: those go before deciding.
        let mut strip_first = Vec::new();
        let named = |h: &str| {
            headers_read
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| n == h))
        };
        let shadow = plan.shadow.as_ref().map(|s| s.header.as_str());
        if named(&plan.routing_header) || shadow.is_some_and(named) {
            strip_first.push(plan.routing_header.clone());
            strip_first.extend(shadow.map(String::from));
        }
        Engine {
            router: Router::new(plan.clone()),
            window: rollout.window(),
            phase: Phase::Ramping { step: 0 },
            tallies: vec![0; catalogue.series.len()],
            catalogue,
            headers_read,
            strip_first,
            source_ip: plan.needs_source_ip(),
            reads_bodies: plan.outcomes.iter().any(|o| o.reads_body()),
            numeric_outcomes,
            reads_segments,
            measures: !rollout.checks.is_empty() || plan.ramp.is_some(),
            // Keyed by digest: counts of one policy never mix with another's, and a reload of
            // the same policy finds its rollout where it was.
            window_key: format!("serin/{}/window", plan.digest),
            state_key: format!("serin/{}/state", plan.digest),
            joining: fleet.is_some(),
            fleet,
            rollout,
            plan,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Fleet mode: the proxy has not heard from the fleet yet, so it routes everything to
    /// stable.
    pub fn joining(&self) -> bool {
        self.joining
    }

    pub fn rollout(&self) -> &Rollout {
        &self.rollout
    }

    /// One line for the log when a backend loads the plan.
    #[inline(never)]
    pub fn summary(&self) -> String {
        let p = &self.plan;
        format!(
            "loaded policy `{}` ({}), {} arms, {} rules, {} guards",
            p.policy,
            p.digest,
            p.arms.len(),
            p.rules.len(),
            p.guards.len()
        )
    }

    /// The request headers a decision (and its outcome labels) can read, to fetch one by one;
    /// `None` when there are so many that the whole map costs less. A repeated header gives its
    /// first value, as in the whole map.
    pub fn headers_to_read(&self) -> Option<Arc<[String]>> {
        self.headers_read.clone()
    }

    /// Headers to remove from the request before reading it (see [`Engine::route`]'s edits for
    /// the rest): a client never picks its arm, nor its mirroring.
    pub fn headers_to_strip_first(&self) -> &[String] {
        &self.strip_first
    }

    /// Whether routing reads the downstream address (a host call in most proxies).
    pub fn reads_source_ip(&self) -> bool {
        self.source_ip
    }

    /// Decide a request's arm and record it. `entropy` is called only for a client without a
    /// key whose split mints one: bytes that differ between requests (a clock, a stream id).
    pub fn route(
        &mut self,
        request: &impl Request,
        now_ms: u64,
        entropy: impl FnOnce() -> Vec<u8>,
    ) -> Route<'_> {
        let plan = self.router.plan();
        let mut decision: Decision = self.router.decide(request);
        let set_cookie = if decision.mint_key {
            mint_sticky_key(plan, &mut decision, &entropy())
        } else {
            None
        };
        if self.joining || matches!(self.phase, Phase::RolledBack { .. }) {
            // After a rollback no new request reaches another arm than stable, nor before a
            // joining proxy has heard from the fleet.
            decision.arm = plan.stable;
            decision.shadow = false;
        }
        let arm = decision.arm;
        let role = self.measures.then(|| self.rollout.role_of(arm)).flatten();
        if let Some(role) = role {
            self.window.record_request(now_ms, role);
        }
        bump(&mut self.tallies, self.catalogue.requests(arm));
        // Segment values label model outcomes and feed segment distributions: read them only
        // when the plan has either.
        let segment_values: Vec<u16> = if self.reads_segments {
            let segments = &plan.segments;
            segments
                .iter()
                .map(|s| segment_value_index(s, request.header(&s.header)))
                .collect()
        } else {
            Vec::new()
        };
        for d in &self.rollout.distributions {
            let Source::Segment { segment } = d.source else {
                continue;
            };
            let index = segment_values.get(usize::from(segment)).copied();
            let bucket = d.bucket_of_index(index.unwrap_or(u16::MAX));
            bump(
                &mut self.tallies,
                self.catalogue.distribution(arm, d.guard, bucket),
            );
            if let (Some(role), Some(first)) = (role, d.first_cell) {
                self.window
                    .record_bucket(now_ms, role, first, d.buckets, bucket);
            }
        }
        // Mark a request to mirror; otherwise drop a client's mark, unless it went already.
        let stripped = !self.strip_first.is_empty();
        let shadow = plan.shadow.as_ref().and_then(|s| {
            let mark = decision.shadow.then_some("1");
            (decision.shadow || !stripped).then_some((s.header.as_str(), mark))
        });
        // The override token is a secret between testers and the proxy: upstreams never see it.
        let token = plan.override_.as_ref().and_then(|o| o.token.as_ref());
        Route {
            exchange: Exchange::new(arm, role, now_ms, segment_values, set_cookie),
            edits: Edits {
                routing: (&plan.routing_header, &plan.arm(arm).value),
                shadow,
                token: token.map(|t| t.header.as_str()),
            },
        }
    }

    /// Publish this worker's counts, advance the shared rollout, apply it here. A backend calls
    /// this about once a second on every worker; returns the transition this call made, to log
    /// once ([`Transition::log_line`]).
    ///
    /// `shared` is a trait object rather than generic here and in the fleet's functions: a
    /// generic function is compiled in the crate that instantiates it, so in the filter at its
    /// opt-level 2 (see [`Engine::new`]); once a second, the indirect calls cost nothing.
    #[inline(never)]
    pub fn tick(&mut self, now_ms: u64, shared: &mut dyn SharedData) -> Option<Transition> {
        let window = self.publish(shared);
        self.advance(now_ms, &window, shared)
    }

    /// Merge this worker's counts into the shared window and clear them; returns the merged
    /// window (this worker's alone when the shared one cannot be written).
    pub fn publish(&mut self, shared: &mut dyn SharedData) -> Window {
        let local = std::mem::replace(&mut self.window, self.rollout.window());
        // A plan that measures nothing never records, so every worker's window and the shared
        // one stay empty: nothing to read or write. A tick runs on every worker (and, in Envoy,
        // on the main thread) each second, and a window is some 24 KB to copy and encode.
        if !self.measures {
            return local;
        }
        // Nothing recorded since the last publish: merging would leave the shared window as it
        // is, so read it rather than write it back (no encoding, no compare-and-swap).
        if local.is_empty() {
            let current = shared.read(&self.window_key);
            return current
                .and_then(|b| Window::from_bytes(&b))
                .unwrap_or(local);
        }
        let mut merged = None;
        let written = shared.update(&self.window_key, &mut |current| {
            let mut window = current
                .and_then(Window::from_bytes)
                .unwrap_or_else(|| self.rollout.window());
            window.merge(&local);
            let bytes = window.to_bytes();
            merged = Some(window);
            Some(bytes)
        });
        merged.filter(|_| written).unwrap_or(local)
    }

    /// Advance the shared rollout state to `now_ms` over `window`, and apply its phase here.
    pub fn advance(
        &mut self,
        now_ms: u64,
        window: &Window,
        shared: &mut dyn SharedData,
    ) -> Option<Transition> {
        let rollout = &self.rollout;
        let (mut state, mut transition) = (None, None);
        let written = shared.update(&self.state_key, &mut |current| {
            let mut s = rollout.restore(current.unwrap_or_default());
            let before = s.to_bytes();
            transition = rollout.tick(&mut s, now_ms, window);
            let after = s.to_bytes();
            let changed = after != before || current.is_none();
            state = Some(s);
            // Nothing changed: no write, so workers do not contend for nothing.
            changed.then_some(after)
        });
        let transition = transition.filter(|_| written);
        if !written {
            state = shared.read(&self.state_key).map(|b| rollout.restore(&b));
        }
        if let Some(state) = state {
            let phase = self.effective(state.phase(), shared);
            self.apply(phase);
        }
        transition
    }

    /// Hand the counts since the last flush and the rollout gauges to the backend, by
    /// catalogue index.
    pub fn flush(&mut self, mut update: impl FnMut(usize, Update)) {
        for (series, tally) in self.tallies.iter_mut().enumerate() {
            if *tally > 0 {
                update(series, Update::Add(std::mem::take(tally)));
            }
        }
        let state = self.catalogue.rollout_state();
        let code = if self.joining { 0 } else { self.phase.code() };
        update(state, Update::Record(u64::from(code)));
        update(
            self.catalogue.policy_state(),
            Update::Record(u64::from(code)),
        );
        let ramp = self.plan.ramp.as_ref();
        let weight = ramp.and_then(|r| self.phase.weight(&r.steps));
        if let Some(weight) = weight.map(|w| if self.joining { 0 } else { w }) {
            update(
                self.catalogue.canary_weight(),
                Update::Record(u64::from(weight)),
            );
        }
    }

    /// Route by `phase` from now on: the ramp step's lanes, or the whole range once promoted.
    fn apply(&mut self, phase: Phase) {
        if phase == self.phase {
            return;
        }
        self.phase = phase;
        let Some(RampAt {
            lanes: Some(lanes), ..
        }) = ramp_at(&self.plan, phase)
        else {
            // Rolled back: routing short-circuits to stable, the lanes no longer matter.
            return;
        };
        let mut plan = self.plan.clone();
        if let Some(ramp) = &plan.ramp {
            let split = usize::from(ramp.split);
            plan.splits[split].lanes = lanes;
        }
        self.router = Router::new(plan);
    }
}

/// The ramped arm's routing at a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RampAt {
    /// Its weight in basis points: the step's while ramping or held, all once promoted, none
    /// once rolled back.
    pub weight: u32,
    /// The split's complete lanes; `None` once rolled back (everything goes to stable).
    pub lanes: Option<Vec<Lane>>,
}

/// Where a phase puts the ramped arm; `None` when the plan has no ramp (its split's own lanes
/// always apply) or the step is out of range. The one place that knows which lanes a phase
/// routes by; [`Phase::weight`] is the one that knows its weight.
pub fn ramp_at(plan: &Plan, phase: Phase) -> Option<RampAt> {
    let ramp = plan.ramp.as_ref()?;
    let split = plan.splits.get(usize::from(ramp.split))?;
    let weight = phase.weight(&ramp.steps)?;
    let lanes = match phase {
        Phase::Ramping { step } | Phase::Held { step, .. } => {
            Some(ramp.steps.get(usize::from(step))?.lanes.clone())
        }
        Phase::Promoted => {
            let end = match split.hash.reduce {
                Reduce::MulShift { scale } => scale,
                Reduce::Modulo { modulus } => modulus,
            };
            let arm = ramp.arm;
            Some(vec![Lane { arm, start: 0, end }])
        }
        // Routing short-circuits to stable; the lanes no longer matter.
        Phase::RolledBack { .. } => None,
    };
    Some(RampAt { weight, lanes })
}

fn bump(tallies: &mut [u64], series: usize) {
    if let Some(t) = tallies.get_mut(series) {
        *t += 1;
    }
}

/// Give a keyless client a random key, bucket it, and return the cookie that keeps it.
fn mint_sticky_key(plan: &Plan, decision: &mut Decision, entropy: &[u8]) -> Option<String> {
    let index = decision.split?;
    let Fallback::RandomSticky {
        cookie,
        max_age_seconds,
    } = &plan.splits.get(usize::from(index))?.fallback
    else {
        return None;
    };
    // Not a secret, only a spread: murmur3 spreads distinct entropy evenly over the buckets.
    let key = format!(
        "{:08x}{:08x}",
        murmur3_x86_32(&[], entropy, 0x5e41),
        murmur3_x86_32(&[], entropy, 0x1d)
    );
    let b = plan.assign(index, key.as_bytes())?;
    decision.arm = b.arm;
    decision.hash = Some(b.hash);
    decision.bucket = Some(b.bucket);
    // The minted key is the client's key from now on: mirror by it as a sent key would be.
    if let Some(shadow) = &plan.shadow {
        decision.shadow = b.arm == plan.stable && shadow.mirrors(key.as_bytes());
    }
    Some(format!(
        "{cookie}={key}; Max-Age={max_age_seconds}; Path=/; HttpOnly; SameSite=Lax"
    ))
}

/// What [`Engine::headers_to_read`] holds for `plan`: the headers routing reads, and the
/// segments' headers when their values are read (`reads_segments`).
fn headers_read(plan: &Plan, reads_segments: bool) -> Option<Arc<[String]>> {
    let mut names: Vec<&str> = plan.headers_read();
    if reads_segments {
        for segment in &plan.segments {
            if !names.contains(&segment.header.as_str()) {
                names.push(&segment.header);
            }
        }
    }
    (names.len() <= MAX_HEADERS_BY_NAME).then(|| names.into_iter().map(String::from).collect())
}

#[cfg(test)]
mod tests;
