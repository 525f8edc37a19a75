//! One HTTP stream: what the engine asks for is read from Envoy, what it returns is written.

use std::borrow::Cow;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use serin_policy::{Exchange, HeaderList, Update};

use crate::Worker;
use crate::host::now_ms;

pub struct Stream {
    worker: Option<Rc<Worker>>,
    exchange: Option<Exchange>,
}

impl Stream {
    pub fn new(worker: Option<Rc<Worker>>) -> Stream {
        Stream {
            worker,
            exchange: None,
        }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            return Action::Continue;
        };
        let mut engine = worker.engine.borrow_mut();
        for name in engine.headers_to_strip_first() {
            self.set_http_request_header(name, None);
        }
        let names = engine.headers_to_read();
        let headers = self.request_headers(names.as_deref());
        let mut request = HeaderList::new(&headers);
        if engine.reads_source_ip() {
            request.source_ip = self.source_ip();
        }
        let route = engine.route(&request, now_ms(self), || self.entropy());
        for (name, value) in route.edits.iter() {
            self.set_http_request_header(name, value);
        }
        // Envoy clears the route cache when a filter changes a header today; asking explicitly
        // keeps routing on the new header correct if that default ever changes.
        let _ = proxy_wasm::hostcalls::call_foreign_function("clear_route_cache", None);
        self.exchange = Some(route.exchange);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let (Some(worker), Some(mut ex)) = (self.worker.clone(), self.exchange.take()) else {
            return Action::Continue;
        };
        if let Some(cookie) = ex.take_set_cookie() {
            self.add_http_response_header("set-cookie", &cookie);
        }
        let status = self.get_http_response_header(":status");
        let status = status.and_then(|s| s.parse().ok()).unwrap_or(0u16);
        let now = now_ms(self);
        let sample = worker.engine.borrow_mut().response_headers(
            &mut ex,
            now,
            status,
            end_of_stream,
            || {
                self.get_property(vec!["response", "code_details"])
                    .is_some_and(|d| d != b"via_upstream")
            },
            |name| self.get_http_response_header_bytes(name),
        );
        worker
            .metrics
            .update(sample.series, Update::Record(sample.value));
        self.exchange = Some(ex);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(worker), Some(mut ex)) = (self.worker.clone(), self.exchange.take()) else {
            return Action::Continue;
        };
        let mut engine = worker.engine.borrow_mut();
        let read = engine.wants_body(&ex);
        let body = || {
            read.then(|| self.get_http_response_body(0, body_size))
                .flatten()
        };
        engine.response_body(&mut ex, || now_ms(self), body_size, end_of_stream, body);
        self.exchange = Some(ex);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if let (Some(worker), Some(ex)) = (&self.worker, &mut self.exchange) {
            worker.engine.borrow_mut().response_trailers(ex);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let (Some(worker), Some(ex)) = (self.worker.clone(), self.exchange.take()) {
            worker.engine.borrow_mut().stream_done(ex, || now_ms(self));
        }
    }
}

impl Stream {
    /// The request headers the engine reads: those it names (a repeated header gives its first
    /// value, as in the whole map), else every header.
    fn request_headers<'n>(&self, names: Option<&'n [String]>) -> Vec<(Cow<'n, str>, Vec<u8>)> {
        let Some(names) = names else {
            let headers = self.get_http_request_headers_bytes();
            return headers.into_iter().map(|(k, v)| (k.into(), v)).collect();
        };
        let present = names.iter().filter_map(|name| {
            let value = self.get_http_request_header_bytes(name)?;
            Some((Cow::Borrowed(name.as_str()), value))
        });
        present.collect()
    }

    fn source_ip(&self) -> Option<std::net::IpAddr> {
        let raw = self.get_property(vec!["source", "address"])?;
        let text = std::str::from_utf8(&raw).ok()?;
        // Envoy gives `ip:port`, with IPv6 in brackets.
        let addr = text.parse::<std::net::SocketAddr>().map(|s| s.ip());
        addr.or_else(|_| text.parse()).ok()
    }

    /// Bytes that differ between requests, for a minted sticky key: the clock's nanoseconds
    /// and the connection id.
    fn entropy(&self) -> Vec<u8> {
        let nanos = self
            .get_current_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut bytes = nanos.to_le_bytes().to_vec();
        let connection = self.get_property(vec!["connection_id"]);
        bytes.extend(connection.unwrap_or_default());
        bytes
    }
}
