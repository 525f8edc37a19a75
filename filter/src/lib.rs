//! Serin's proxy-wasm filter: glue only. The root context loads the plan once per worker in
//! `on_configure` and runs the rollout loop on ticks; each HTTP context asks the plan's
//! [`serin_policy::Router`] for an arm, sets the routing header and measures the response. All
//! routing and rollback logic lives in `serin-policy`.

mod metrics;
mod shared;
mod stream;
mod worker;

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use serin_policy::Plan;

use crate::stream::Stream;
use crate::worker::Worker;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { worker: None }) });
}}

/// How often each worker publishes its counts and advances the rollout.
const TICK_MS: u64 = 1000;

struct Root {
    worker: Option<Rc<Worker>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match Plan::from_json(&config) {
            Ok(plan) => {
                log::info!(
                    "serin: loaded policy `{}` ({}), {} arms, {} rules, {} guards",
                    plan.policy,
                    plan.digest,
                    plan.arms.len(),
                    plan.rules.len(),
                    plan.guards.len()
                );
                let worker = Worker::new(plan);
                // Pick up a rollout already under way (a reload of the same policy).
                worker.tick(shared::now_ms(self));
                self.worker = Some(Rc::new(worker));
                self.set_tick_period(std::time::Duration::from_millis(TICK_MS));
                true
            }
            Err(e) => {
                // Refusing the config keeps Envoy from serving with a half-understood policy.
                log::error!("serin: refusing plugin configuration: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(worker) = &self.worker {
            worker.tick(shared::now_ms(self));
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
