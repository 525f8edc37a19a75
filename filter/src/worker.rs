//! One Envoy worker's view of the policy: the plan, the routing currently in force, the counts
//! since the last tick, and the rollout loop that merges counts across workers and moves the
//! rollout on.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serin_policy::guard::{Params, Phase, Role, Rollout, Window};
use serin_policy::{ArmId, Lane, Plan, Reduce, Router};

use crate::metrics::Metrics;
use crate::shared;

pub struct Worker {
    pub plan: Rc<Plan>,
    /// The plan as routing applies it now (the ramp step's lanes swapped in), prepared for the
    /// request path.
    routing: RefCell<Rc<Router>>,
    pub rollout: Rollout,
    /// This worker's counts since its last tick.
    pub window: RefCell<Window>,
    pub phase: Cell<Phase>,
    pub metrics: Metrics,
    /// Whether routing reads the downstream address (a host call), decided once per plan.
    pub needs_source_ip: bool,
    /// Whether an outcome is read from response bodies, so that bodies must be copied at all.
    pub reads_bodies: bool,
    /// The request headers a request's decision (and its outcome labels) can read, fetched one
    /// by one; `None` when there are so many that fetching the whole map costs less.
    pub headers_read: Option<Vec<String>>,
    /// Whether the routing and shadow headers a client sent must go before the decision reads
    /// the request, rather than be replaced after it.
    pub strips_before_deciding: bool,
    window_key: String,
    state_key: String,
}

impl Worker {
    pub fn new(plan: Plan) -> Worker {
        // A sub-window is judged only once every worker has had a tick after it ended and so
        // has published its counts for it: workers (and Envoy's main thread) tick at their own
        // phase, and judging earlier would silently drop the late workers' share.
        let params = Params {
            settle_ms: (crate::TICK_MS * 3 / 2) as u32,
            ..Params::default()
        };
        let rollout = Rollout::from_plan(&plan, params);
        let metrics = Metrics::define(&plan);
        // Keyed by digest: counts of one policy never mix with another's, and a reload of the
        // same policy finds its rollout where it was.
        let window_key = format!("serin/{}/window", plan.digest);
        let state_key = format!("serin/{}/state", plan.digest);
        let needs_source_ip = plan.needs_source_ip();
        let reads_bodies = plan.outcomes.iter().any(|o| o.reads_body());
        let headers_read = headers_read(&plan);
        let strips_before_deciding = headers_read.as_ref().is_none_or(|names| {
            let shadow = plan.shadow.as_ref().map(|s| s.header.as_str());
            names
                .iter()
                .any(|n| *n == plan.routing_header || Some(n.as_str()) == shadow)
        });
        let routing = Router::new(plan.clone());
        let plan = Rc::new(plan);
        Worker {
            routing: RefCell::new(Rc::new(routing)),
            window: RefCell::new(rollout.window()),
            phase: Cell::new(Phase::Ramping { step: 0 }),
            plan,
            rollout,
            metrics,
            needs_source_ip,
            reads_bodies,
            headers_read,
            strips_before_deciding,
            window_key,
            state_key,
        }
    }

    pub fn routing(&self) -> Rc<Router> {
        Rc::clone(&self.routing.borrow())
    }

    pub fn rolled_back(&self) -> bool {
        matches!(self.phase.get(), Phase::RolledBack { .. })
    }

    /// Which side of the rollout's comparison a request to `arm` counts on; `None` when nothing
    /// reads the counts (no guards, no ramp), so the request path does no window work for nothing.
    pub fn role_of(&self, arm: ArmId) -> Option<Role> {
        if self.rollout.checks.is_empty() && self.plan.ramp.is_none() {
            return None;
        }
        self.rollout.role_of(arm)
    }

    /// Publish this worker's counts, advance the shared rollout state, apply it here.
    pub fn tick(&self, now_ms: u64) {
        let local = std::mem::replace(&mut *self.window.borrow_mut(), self.rollout.window());
        let merged = shared::update(&self.window_key, |current| {
            let mut merged = current
                .and_then(Window::from_bytes)
                .unwrap_or_else(|| self.rollout.window());
            merged.merge(&local);
            Some((merged.to_bytes(), merged))
        });
        let window = merged.unwrap_or(local);

        let mut transition = None;
        let state = shared::update(&self.state_key, |current| {
            let mut state = self.rollout.restore(current.unwrap_or_default());
            let before = state.to_bytes();
            transition = self.rollout.tick(&mut state, now_ms, &window);
            let after = state.to_bytes();
            // Nothing changed: no write, so workers do not contend for nothing.
            (after != before || current.is_none()).then_some((after, state))
        });
        if let Some(t) = transition.filter(|_| state.is_some()) {
            // One line per transition, from the worker whose write made it.
            log::warn!("serin: rollout transition {}", t.log_line());
        }
        let state =
            state.or_else(|| shared::read(&self.state_key).map(|b| self.rollout.restore(&b)));
        if let Some(state) = state {
            self.apply(state.phase());
        }
        self.metrics.flush(self.phase.get(), self.canary_weight());
    }

    fn canary_weight(&self) -> Option<u32> {
        let ramp = self.plan.ramp.as_ref()?;
        let step = match self.phase.get() {
            Phase::Ramping { step } | Phase::Held { step, .. } => step,
            Phase::Promoted => return Some(serin_policy::guard::FULL_WEIGHT),
            Phase::RolledBack { .. } => return Some(0),
        };
        ramp.steps.get(usize::from(step)).map(|s| s.weight)
    }

    /// Swap in the lanes of the current ramp step (or the whole range once promoted).
    fn apply(&self, phase: Phase) {
        if phase == self.phase.get() {
            return;
        }
        self.phase.set(phase);
        let Some(ramp) = &self.plan.ramp else { return };
        let Some(split) = self.plan.splits.get(usize::from(ramp.split)) else {
            return;
        };
        let lanes: Option<Vec<Lane>> = match phase {
            Phase::Ramping { step } | Phase::Held { step, .. } => {
                ramp.steps.get(usize::from(step)).map(|s| s.lanes.clone())
            }
            Phase::Promoted => {
                let end = match split.hash.reduce {
                    Reduce::MulShift { scale } => scale,
                    Reduce::Modulo { modulus } => modulus,
                };
                Some(vec![Lane {
                    arm: ramp.arm,
                    start: 0,
                    end,
                }])
            }
            // Routing short-circuits to stable; the lanes no longer matter.
            Phase::RolledBack { .. } => None,
        };
        if let Some(lanes) = lanes {
            let mut plan = (*self.plan).clone();
            plan.splits[usize::from(ramp.split)].lanes = lanes;
            *self.routing.borrow_mut() = Rc::new(Router::new(plan));
        }
    }
}

/// Past this many names a request is read as the whole map. In Envoy what a read costs is the
/// value's trip into the VM (Envoy calls the module's allocator, about 10 k instructions), which
/// a present header and the whole map pay once each and an absent header not at all; so names
/// are never dearer than the map there, and cheaper in the wasmtime host. Only a plan naming
/// many headers, most of them present, is better off with the map (docs/perf-log.md, "where
/// Serin's cost goes in Envoy, second round").
const MAX_HEADERS_BY_NAME: usize = 8;

/// What [`Worker::headers_read`] holds for `plan`: the headers routing reads, and the segments'
/// headers when outcomes are labelled by them.
fn headers_read(plan: &Plan) -> Option<Vec<String>> {
    let mut names: Vec<&str> = plan.headers_read();
    if !plan.outcomes.is_empty() {
        for segment in &plan.segments {
            if !names.contains(&segment.header.as_str()) {
                names.push(&segment.header);
            }
        }
    }
    (names.len() <= MAX_HEADERS_BY_NAME).then(|| names.into_iter().map(String::from).collect())
}
