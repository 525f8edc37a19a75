//! Serin's proxy-wasm filter: glue only. The root context loads the plan once per worker in
//! `on_configure`; each HTTP context borrows it, asks [`Plan::decide`] for an arm and sets the
//! routing header. All routing logic lives in `serin-policy`.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serin_policy::{Decision, HeaderList, Plan};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plan: None }) });
}}

struct Root {
    plan: Option<Rc<Plan>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        match Plan::from_json(&config) {
            Ok(plan) => {
                log::info!(
                    "serin: loaded policy `{}` ({}), {} arms, {} rules",
                    plan.policy,
                    plan.digest,
                    plan.arms.len(),
                    plan.rules.len()
                );
                self.plan = Some(Rc::new(plan));
                true
            }
            Err(e) => {
                // Refusing the config keeps Envoy from serving with a half-understood policy.
                log::error!("serin: refusing plugin configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plan = self.plan.clone()?;
        Some(Box::new(Route { plan }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Route {
    plan: Rc<Plan>,
}

impl Context for Route {}

impl HttpContext for Route {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let plan = &*self.plan;
        // A client never picks its arm: drop whatever routing header it sent before deciding.
        self.set_http_request_header(&plan.routing_header, None);
        let headers = self.get_http_request_headers_bytes();
        let mut request = HeaderList::new(&headers);
        if plan.needs_source_ip() {
            request.source_ip = self.source_ip();
        }
        let decision: Decision = plan.decide(&request);
        self.set_http_request_header(&plan.routing_header, Some(&plan.arm(decision.arm).value));
        // Envoy clears the route cache when a filter changes a header today; asking explicitly
        // keeps routing on the new header correct if that default ever changes.
        let _ = proxy_wasm::hostcalls::call_foreign_function("clear_route_cache", None);
        Action::Continue
    }
}

impl Route {
    fn source_ip(&self) -> Option<std::net::IpAddr> {
        let raw = self.get_property(vec!["source", "address"])?;
        let text = std::str::from_utf8(&raw).ok()?;
        // Envoy gives `ip:port`, with IPv6 in brackets.
        let addr = text.parse::<std::net::SocketAddr>().map(|s| s.ip());
        addr.or_else(|_| text.parse()).ok()
    }
}
