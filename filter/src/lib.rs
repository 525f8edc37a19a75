//! Serin's proxy-wasm filter: glue only. The root context loads the plan once per worker in
//! `on_configure`; each HTTP context borrows it, asks [`Plan::decide`] for an arm and sets the
//! routing header. All routing logic lives in `serin-policy`.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serin_policy::{Decision, Fallback, HeaderList, Plan, murmur3_x86_32};

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

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plan = self.plan.clone()?;
        Some(Box::new(Route { plan, context_id, set_cookie: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Route {
    plan: Rc<Plan>,
    context_id: u32,
    /// A sticky-id cookie minted for a client that had no key, set on the response.
    set_cookie: Option<String>,
}

impl Context for Route {}

impl HttpContext for Route {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let plan = Rc::clone(&self.plan);
        // A client never picks its arm (nor its mirroring): drop what it sent before deciding.
        self.set_http_request_header(&plan.routing_header, None);
        if let Some(shadow) = &plan.shadow {
            self.set_http_request_header(&shadow.header, None);
        }
        let headers = self.get_http_request_headers_bytes();
        let mut request = HeaderList::new(&headers);
        if plan.needs_source_ip() {
            request.source_ip = self.source_ip();
        }
        let mut decision: Decision = plan.decide(&request);
        if decision.mint_key {
            self.mint_sticky_key(&plan, &mut decision);
        }
        self.set_http_request_header(&plan.routing_header, Some(&plan.arm(decision.arm).value));
        if let Some(shadow) = plan.shadow.as_ref().filter(|_| decision.shadow) {
            self.set_http_request_header(&shadow.header, Some("1"));
        }
        // The override token is a secret between testers and the proxy: upstreams never see it.
        if let Some(token) = plan.override_.as_ref().and_then(|o| o.token.as_ref()) {
            self.set_http_request_header(&token.header, None);
        }
        // Envoy clears the route cache when a filter changes a header today; asking explicitly
        // keeps routing on the new header correct if that default ever changes.
        let _ = proxy_wasm::hostcalls::call_foreign_function("clear_route_cache", None);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(cookie) = self.set_cookie.take() {
            self.add_http_response_header("set-cookie", &cookie);
        }
        Action::Continue
    }
}

impl Route {
    /// Give a keyless client a random key, bucket it, and keep it in the split's cookie.
    fn mint_sticky_key(&mut self, plan: &Plan, decision: &mut Decision) {
        let Some(index) = decision.split else { return };
        let Some(Fallback::RandomSticky { cookie, max_age_seconds }) =
            plan.splits.get(usize::from(index)).map(|s| &s.fallback)
        else {
            return;
        };
        // Not a secret, only a spread: nanoseconds and the stream id make keys distinct, and
        // murmur3 spreads them evenly over the buckets.
        let nanos = self
            .get_current_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos.to_le_bytes();
        let key = format!(
            "{:08x}{:08x}",
            murmur3_x86_32(&seed, &self.context_id.to_le_bytes(), 0x5e41),
            murmur3_x86_32(&seed, &[], self.context_id)
        );
        if let Some(b) = plan.assign(index, key.as_bytes()) {
            decision.arm = b.arm;
            decision.hash = Some(b.hash);
            decision.bucket = Some(b.bucket);
        }
        self.set_cookie = Some(format!("{cookie}={key}; Max-Age={max_age_seconds}; Path=/; HttpOnly; SameSite=Lax"));
    }

    fn source_ip(&self) -> Option<std::net::IpAddr> {
        let raw = self.get_property(vec!["source", "address"])?;
        let text = std::str::from_utf8(&raw).ok()?;
        // Envoy gives `ip:port`, with IPv6 in brackets.
        let addr = text.parse::<std::net::SocketAddr>().map(|s| s.ip());
        addr.or_else(|_| text.parse()).ok()
    }
}
