//! Serin's proxy-wasm filter: glue only, like the SDK's example filters. The root context loads
//! the plan into a per-worker [`serin_policy::Engine`] in `on_configure` and ticks it every
//! second; each HTTP context reads from Envoy what the engine asks for and writes back what it
//! returns. All routing, measuring and rollout logic lives in `serin-policy`.

mod host;
mod stream;

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use serin_policy::fleet::{self, MAX_ANSWER_BYTES};
use serin_policy::guard::Params;
use serin_policy::{Engine, Plan};

use crate::host::{Metrics, SharedData};
use crate::stream::Stream;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { worker: None }) });
}}

/// How often each worker publishes its counts and advances the rollout.
const TICK_MS: u64 = 1000;

/// What a worker's root context and its streams share.
pub struct Worker {
    pub engine: RefCell<Engine>,
    pub metrics: Metrics,
}

struct Root {
    worker: Option<Rc<Worker>>,
}

impl Context for Root {
    /// Fleet mode: Prometheus's answer (or its absence: a timeout or a reset has no status).
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _: usize) {
        let Some(worker) = &self.worker else { return };
        let status = self.get_http_call_response_header(":status");
        // Read no more than the engine would accept: a huge answer never enters the VM.
        let body = (body_size <= MAX_ANSWER_BYTES)
            .then(|| self.get_http_call_response_body(0, body_size))
            .flatten()
            .unwrap_or_default();
        let answer = fleet::reply(
            status.as_deref().map(str::as_bytes),
            body_size,
            &body,
            "a timeout or a reset",
        );
        let now = host::now_ms(self);
        let mut engine = worker.engine.borrow_mut();
        let outcome = engine.fleet_answer(now, answer, &mut SharedData);
        if let Some(refused) = outcome.refused {
            log::warn!("serin: {refused}; keeping the local rollout");
        }
        if let Some(t) = outcome.transition {
            log::warn!("serin: rollout transition {}", t.log_line());
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let plan = match Plan::from_json(&config) {
            Ok(plan) => plan,
            Err(e) => {
                // Refusing the config keeps Envoy from serving with a half-understood policy.
                log::error!("serin: refusing plugin configuration: {e}");
                return false;
            }
        };
        // A sub-window is judged only once every worker has had a tick after it ended and so
        // has published its counts for it: workers tick at their own phase, and judging earlier
        // would silently drop the late workers' share.
        let params = Params {
            settle_ms: (TICK_MS * 3 / 2) as u32,
            ..Params::default()
        };
        let engine = Engine::new(plan, params);
        log::info!("serin: {}", engine.summary());
        let worker = Rc::new(Worker {
            metrics: Metrics::define(engine.catalogue()),
            engine: RefCell::new(engine),
        });
        // Pick up a rollout already under way (a reload of the same policy).
        tick(&worker, host::now_ms(self));
        self.worker = Some(worker);
        self.set_tick_period(std::time::Duration::from_millis(TICK_MS));
        true
    }

    fn on_tick(&mut self) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        let now = host::now_ms(self);
        tick(&worker, now);
        // Fleet mode: one worker per proxy asks Prometheus each interval.
        let call = worker.engine.borrow_mut().fleet_call(now, &mut SharedData);
        if let Some(call) = call {
            let headers = vec![
                (":method", "GET"),
                (":path", call.path.as_str()),
                (":authority", call.authority.as_str()),
            ];
            let timeout = std::time::Duration::from_millis(u64::from(call.timeout_ms));
            if let Err(status) =
                self.dispatch_http_call(&call.cluster, headers, None, vec![], timeout)
            {
                let failed = Err(format!(
                    "cannot call cluster `{}`: {status:?}",
                    call.cluster
                ));
                let outcome = worker
                    .engine
                    .borrow_mut()
                    .fleet_answer(now, failed, &mut SharedData);
                if let Some(refused) = outcome.refused {
                    log::warn!("serin: {refused}; keeping the local rollout");
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without a plan (Envoy does not create streams then) pass requests through untouched
        // rather than trap.
        Some(Box::new(Stream::new(self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn tick(worker: &Worker, now_ms: u64) {
    let mut engine = worker.engine.borrow_mut();
    if let Some(t) = engine.tick(now_ms, &mut SharedData) {
        // One line per transition, from the worker whose write made it.
        log::warn!("serin: rollout transition {}", t.log_line());
    }
    engine.flush(|series, update| worker.metrics.update(series, update));
}
