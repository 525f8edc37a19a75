//! One HTTP stream: route the request, then measure its response for the rollout.

use std::borrow::Cow;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use serin_policy::guard::{Role, segment_value_index};
use serin_policy::{
    ArmId, Decision, Fallback, HeaderList, MAX_OUTCOME_BODY, OutcomeSource, Plan, Request,
    murmur3_x86_32,
};

use crate::shared::now_ms;
use crate::worker::Worker;

pub struct Stream {
    worker: Option<Rc<Worker>>,
    routed: Option<Routed>,
    /// A sticky-id cookie minted for a client that had no key, set on the response.
    set_cookie: Option<String>,
    /// The response body so far, kept (up to a bound) only when an outcome is read from it.
    body: Vec<u8>,
    body_too_long: bool,
    /// When the response headers came, once they have.
    responded_ms: Option<u64>,
    /// A response whose headers arrived but whose end has not: it enters the rollout window only
    /// once it completes, so that an upstream reset mid-body counts as a reset, not as the status
    /// it began with.
    unfinished: Option<Unfinished>,
}

/// What the rollout window records of a response once it completes.
struct Unfinished {
    role: Role,
    at_ms: u64,
    status: u16,
    latency_us: u64,
    local: bool,
}

/// What the request side leaves for the response side.
struct Routed {
    arm: ArmId,
    role: Option<Role>,
    started_ms: u64,
    /// The request's value index in each of the plan's segments.
    segment_values: Vec<u16>,
}

impl Stream {
    pub fn new(worker: Option<Rc<Worker>>) -> Stream {
        Stream {
            worker,
            routed: None,
            set_cookie: None,
            body: Vec::new(),
            body_too_long: false,
            responded_ms: None,
            unfinished: None,
        }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            return Action::Continue;
        };
        let router = worker.routing();
        let plan = router.plan();
        // A client never picks its arm (nor its mirroring). Setting the routing header below
        // replaces whatever it sent; a decision that could read what it sent (the whole header
        // map, or a hand-written plan naming these headers) must not see it at all.
        if worker.strips_before_deciding {
            self.set_http_request_header(&plan.routing_header, None);
            if let Some(shadow) = &plan.shadow {
                self.set_http_request_header(&shadow.header, None);
            }
        }
        let headers = self.request_headers(&worker);
        let mut request = HeaderList::new(&headers);
        if worker.needs_source_ip {
            request.source_ip = self.source_ip();
        }
        let mut decision: Decision = router.decide(&request);
        if decision.mint_key {
            self.mint_sticky_key(plan, &mut decision);
        }
        if worker.rolled_back() {
            // After a rollback no new request reaches another arm than stable.
            decision.arm = plan.stable;
            decision.shadow = false;
        }
        self.set_http_request_header(&plan.routing_header, Some(&plan.arm(decision.arm).value));
        // Mark a request to mirror; otherwise drop a client's mark, unless it went already.
        if let Some(shadow) = plan.shadow.as_ref() {
            if decision.shadow || !worker.strips_before_deciding {
                let mirror = decision.shadow.then_some("1");
                self.set_http_request_header(&shadow.header, mirror);
            }
        }
        // The override token is a secret between testers and the proxy: upstreams never see it.
        if let Some(token) = plan.override_.as_ref().and_then(|o| o.token.as_ref()) {
            self.set_http_request_header(&token.header, None);
        }
        // Envoy clears the route cache when a filter changes a header today; asking explicitly
        // keeps routing on the new header correct if that default ever changes.
        let _ = proxy_wasm::hostcalls::call_foreign_function("clear_route_cache", None);

        let started_ms = now_ms(self);
        let role = worker.role_of(decision.arm);
        if let Some(role) = role {
            worker.window.borrow_mut().record_request(started_ms, role);
        }
        worker.metrics.request(decision.arm);
        // Segment values only label model outcomes: read them only when the plan has some.
        let segment_values = if plan.outcomes.is_empty() {
            Vec::new()
        } else {
            plan.segments
                .iter()
                .map(|s| segment_value_index(s, request.header(&s.header)))
                .collect()
        };
        self.routed = Some(Routed {
            arm: decision.arm,
            role,
            started_ms,
            segment_values,
        });
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if let Some(cookie) = self.set_cookie.take() {
            self.add_http_response_header("set-cookie", &cookie);
        }
        let (Some(worker), Some(routed)) = (self.worker.clone(), self.routed.as_ref()) else {
            return Action::Continue;
        };
        let now = now_ms(self);
        self.responded_ms = Some(now);
        let status = self
            .get_http_response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0u16);
        let latency_ms = now.saturating_sub(routed.started_ms);
        worker.metrics.response(routed.arm, status, latency_ms);
        if let Some(role) = routed.role {
            // Whether Envoy made a 5xx itself (no upstream answered) tells an arm that is down
            // from one that answers errors; a property read costs a host call, so only a 5xx
            // pays it.
            let local = status >= 500
                && self
                    .get_property(vec!["response", "code_details"])
                    .is_some_and(|d| d != b"via_upstream");
            self.unfinished = Some(Unfinished {
                role,
                at_ms: now,
                status,
                latency_us: latency_ms * 1000,
                local,
            });
            if end_of_stream {
                self.finish_response(&worker);
            }
        }
        for (i, outcome) in worker.plan.outcomes.iter().enumerate() {
            if let OutcomeSource::Header { name } = &outcome.source {
                let value = self.get_http_response_header_bytes(name);
                if let Some(positive) = outcome.from_header(value.as_deref()) {
                    self.record_outcome(&worker, i, positive);
                }
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            return Action::Continue;
        };
        if end_of_stream {
            self.finish_response(&worker);
        }
        if !worker.reads_bodies || self.routed.is_none() {
            return Action::Continue;
        }
        // Copy the chunk without holding the response back: the client is not delayed, and a
        // body over the bound is simply not parsed.
        if self.body.len() + body_size > MAX_OUTCOME_BODY {
            self.body_too_long = true;
            self.body = Vec::new();
        } else if !self.body_too_long {
            if let Some(chunk) = self.get_http_response_body(0, body_size) {
                self.body.extend_from_slice(&chunk);
            }
        }
        if end_of_stream && !self.body_too_long {
            let body = std::mem::take(&mut self.body);
            for (i, outcome) in worker.plan.outcomes.iter().enumerate() {
                if let Some(positive) = outcome.from_json_body(&body) {
                    self.record_outcome(&worker, i, positive);
                }
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        // Trailers end a response.
        if let Some(worker) = self.worker.clone() {
            self.finish_response(&worker);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(worker), Some(routed)) = (&self.worker, &self.routed) else {
            return;
        };
        // A stream that ended before its response did was reset (by the client, the upstream or
        // a timeout): either no response headers came, or the body stopped short.
        let cut_short = self.unfinished.take();
        if self.responded_ms.is_none() || cut_short.is_some() {
            worker.metrics.reset(routed.arm);
            if let Some(role) = routed.role {
                worker.window.borrow_mut().record_reset(now_ms(self), role);
            }
        }
    }
}

impl Stream {
    /// The response reached its end: it enters the rollout window.
    fn finish_response(&mut self, worker: &Worker) {
        if let Some(r) = self.unfinished.take() {
            worker.window.borrow_mut().record_response(
                r.at_ms,
                r.role,
                r.status,
                r.latency_us,
                r.local,
            );
        }
    }

    fn record_outcome(&self, worker: &Worker, outcome: usize, positive: bool) {
        let Some(routed) = &self.routed else { return };
        let column = routed.segment_values.first().copied().unwrap_or(0);
        worker
            .metrics
            .outcome(routed.arm, outcome, usize::from(column), positive);
        if let Some(role) = routed.role {
            let value_of = |segment: u8| {
                routed
                    .segment_values
                    .get(usize::from(segment))
                    .copied()
                    .unwrap_or(u16::MAX)
            };
            // The outcome belongs to the response: it counts when the response began.
            let now = self.responded_ms.unwrap_or_else(|| now_ms(self));
            let mut window = worker.window.borrow_mut();
            for cell in worker.rollout.layout.cells_for(outcome as u8, value_of) {
                window.record_outcome(now, role, cell, positive);
            }
        }
    }

    /// Give a keyless client a random key, bucket it, and keep it in the split's cookie.
    fn mint_sticky_key(&mut self, plan: &Plan, decision: &mut Decision) {
        let Some(index) = decision.split else { return };
        let Some(Fallback::RandomSticky {
            cookie,
            max_age_seconds,
        }) = plan.splits.get(usize::from(index)).map(|s| &s.fallback)
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
        let stream = proxy_wasm::hostcalls::get_property(vec!["connection_id"])
            .ok()
            .flatten()
            .unwrap_or_default();
        let key = format!(
            "{:08x}{:08x}",
            murmur3_x86_32(&seed, &stream, 0x5e41),
            murmur3_x86_32(&stream, &seed, 0x1d)
        );
        if let Some(b) = plan.assign(index, key.as_bytes()) {
            decision.arm = b.arm;
            decision.hash = Some(b.hash);
            decision.bucket = Some(b.bucket);
        }
        self.set_cookie = Some(format!(
            "{cookie}={key}; Max-Age={max_age_seconds}; Path=/; HttpOnly; SameSite=Lax"
        ));
    }

    /// The request headers the decision can read: those by name when the plan reads a few (a
    /// repeated header gives its first value, as in the whole map and in `Request::header`),
    /// else every header.
    fn request_headers<'w>(&self, worker: &'w Worker) -> Vec<(Cow<'w, str>, Vec<u8>)> {
        let Some(names) = &worker.headers_read else {
            let headers = self.get_http_request_headers_bytes();
            return headers
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), v))
                .collect();
        };
        names
            .iter()
            .filter_map(|name| {
                Some((
                    Cow::Borrowed(name.as_str()),
                    self.get_http_request_header_bytes(name)?,
                ))
            })
            .collect()
    }

    fn source_ip(&self) -> Option<std::net::IpAddr> {
        let raw = self.get_property(vec!["source", "address"])?;
        let text = std::str::from_utf8(&raw).ok()?;
        // Envoy gives `ip:port`, with IPv6 in brackets.
        let addr = text.parse::<std::net::SocketAddr>().map(|s| s.ip());
        addr.or_else(|_| text.parse()).ok()
    }
}
