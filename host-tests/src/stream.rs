//! One HTTP stream through the filter, driven the way Envoy's connection manager drives it.

use anyhow::{Result, bail};
use wasmtime::Store;

use crate::abi::{Action, StreamType};
use crate::headers::HeaderMap;
use crate::properties;
use crate::state::{HostState, LocalResponse, StreamState};
use crate::worker::Worker;

/// One HTTP request/response pair through the filter.
pub struct Stream<'w> {
    worker: &'w mut Worker,
    id: u32,
}

impl<'w> Stream<'w> {
    pub(crate) fn new(worker: &'w mut Worker, id: u32) -> Self {
        Stream { worker, id }
    }

    fn state(&self) -> &StreamState {
        &self.worker.store.data().streams[&self.id]
    }

    fn state_mut(&mut self) -> &mut StreamState {
        self.worker
            .store
            .data_mut()
            .streams
            .get_mut(&self.id)
            .expect("a stream's state lives as long as it")
    }

    /// The stream's context id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Add a request header (the key is lower-cased, as a codec would).
    pub fn header(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.state_mut().request_headers.add(key, value);
        self
    }

    /// Set a request header, replacing any with the same name where the first one stood (as
    /// a client writing it would; the ABI's replace moves it to the end instead).
    pub fn set_header(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.state_mut().request_headers.set(key, value);
        self
    }

    pub fn method(self, method: &str) -> Self {
        self.set_header(":method", method)
    }

    pub fn path(self, path: &str) -> Self {
        self.set_header(":path", path)
    }

    pub fn authority(self, authority: &str) -> Self {
        self.set_header(":authority", authority)
    }

    /// Whether the request ends with its headers (the default: a request without a body).
    pub fn end_of_stream(mut self, eos: bool) -> Self {
        self.state_mut().end_of_stream = eos;
        self
    }

    /// The downstream peer, `ip:port` (`[v6]:port` for IPv6): the `source.address` and
    /// `source.port` properties.
    pub fn source_address(self, address: &str) -> Self {
        self.address("source", address)
    }

    /// The local end of the downstream connection, `ip:port`: the `destination.address` and
    /// `destination.port` properties.
    pub fn destination_address(self, address: &str) -> Self {
        self.address("destination", address)
    }

    fn address(mut self, end: &str, address: &str) -> Self {
        let port = address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<i64>().ok());
        let s = self.state_mut();
        s.properties
            .insert(properties::key(&[end, "address"]), address.into());
        if let Some(port) = port {
            s.properties
                .insert(properties::key(&[end, "port"]), port.to_le_bytes().to_vec());
        }
        self
    }

    /// A property this stream's context can read.
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.state_mut()
            .properties
            .insert(properties::key(path), value.into());
        self
    }

    fn check_configured(&self) -> Result<()> {
        match self.worker.configured {
            Some(true) => Ok(()),
            Some(false) => {
                bail!("proxy_on_configure returned false, so Envoy creates no filter for requests")
            }
            None => bail!("configure the worker before sending requests"),
        }
    }

    /// Run a stream callback and apply Envoy's bookkeeping: a map or body stays reachable only
    /// while the stream is stopped.
    fn run(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Store<HostState>, i32) -> wasmtime::Result<i32>,
    ) -> Result<(Action, bool)> {
        let id = self.id;
        let had_reply = self.state().local_response.is_some();
        let raw = self.worker.call(what, id, |s| f(s, id as i32))?;
        let action = Action::from_raw(raw);
        let replied = !had_reply && self.state().local_response.is_some();
        if replied && self.state().response_headers.is_none() {
            // Envoy sends the reply once the callback has returned, and it passes back
            // through the filter like any response.
            let reply = self.local_response().expect("the filter just replied");
            self.reply_through_filter(reply.status, &reply.headers, &reply.body)?;
        }
        Ok((action, action == Action::Continue && !replied))
    }

    /// Envoy answers the request itself (a `direct_response` route, an upstream it could not
    /// reach, ...): the reply passes through the filter's response callbacks with the headers
    /// Envoy gives a local reply, and `response.code_details` is `details`.
    pub fn local_reply(&mut self, status: u32, body: &[u8], details: &str) -> Result<()> {
        self.ensure_created()?;
        self.state_mut().response_code_details = Some(details.to_owned());
        self.reply_through_filter(status, &[], body)
    }

    /// A local reply's response as Envoy 1.40 encodes it: `:status`, the headers the filter
    /// added, then `content-length` and `content-type: text/plain` when there is a body; the
    /// body in one chunk that ends the stream.
    fn reply_through_filter(
        &mut self,
        status: u32,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<()> {
        let (status, length) = (status.to_string(), body.len().to_string());
        let mut pairs = vec![(":status", status.as_str())];
        pairs.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if !body.is_empty() {
            pairs.extend([
                ("content-length", length.as_str()),
                ("content-type", "text/plain"),
            ]);
        }
        self.deliver_response_headers(&pairs, body.is_empty())?;
        if !body.is_empty() {
            self.deliver_response_body(body, true)?;
        }
        Ok(())
    }

    fn ensure_created(&mut self) -> Result<()> {
        self.check_configured()?;
        if self.state().created {
            return Ok(());
        }
        self.state_mut().created = true;
        let (id, root) = (self.id, self.worker.root_context_id());
        if let Some(f) = self.worker.callbacks.on_context_create.clone() {
            self.worker.call("proxy_on_context_create", id, |s| {
                f.call(s, (id as i32, root as i32))
            })?;
        }
        Ok(())
    }

    /// Deliver the request headers (`proxy_on_request_headers`) and return the module's answer.
    pub fn send_headers(&mut self) -> Result<Action> {
        self.ensure_created()?;
        self.state_mut().live.request_headers = true;
        let (n, eos) = (
            self.state().request_headers.len() as i32,
            self.state().end_of_stream,
        );
        let Some(f) = self.worker.callbacks.on_request_headers.clone() else {
            self.state_mut().live.request_headers = false;
            return Ok(Action::Continue);
        };
        let (action, go) = self.run("proxy_on_request_headers", |s, id| {
            f.call(s, (id, n, i32::from(eos)))
        })?;
        if go {
            self.state_mut().live.request_headers = false;
        }
        Ok(action)
    }

    /// Deliver a request body chunk. While the module pauses, chunks are buffered and it sees
    /// the whole buffer, as with Envoy's `StopIterationAndBuffer`.
    pub fn send_body(&mut self, chunk: impl AsRef<[u8]>, end_of_stream: bool) -> Result<Action> {
        self.body(true, chunk.as_ref(), end_of_stream)
    }

    /// Deliver the request trailers.
    pub fn send_trailers(&mut self, trailers: &[(&str, &str)]) -> Result<Action> {
        self.trailers(true, trailers)
    }

    /// Deliver the response headers (`proxy_on_response_headers`).
    pub fn deliver_response_headers(
        &mut self,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action> {
        self.ensure_created()?;
        let map = HeaderMap::from_pairs(headers);
        let n = map.len() as i32;
        {
            let s = self.state_mut();
            s.response_headers = Some(map);
            s.live.response_headers = true;
            s.end_of_stream = end_of_stream;
            // Unless Envoy or the filter answered, the response is the upstream's.
            s.response_code_details
                .get_or_insert_with(|| "via_upstream".to_owned());
        }
        let Some(f) = self.worker.callbacks.on_response_headers.clone() else {
            self.state_mut().live.response_headers = false;
            return Ok(Action::Continue);
        };
        let (action, go) = self.run("proxy_on_response_headers", |s, id| {
            f.call(s, (id, n, i32::from(end_of_stream)))
        })?;
        if go {
            self.state_mut().live.response_headers = false;
        }
        Ok(action)
    }

    /// Deliver a response body chunk.
    pub fn deliver_response_body(
        &mut self,
        chunk: impl AsRef<[u8]>,
        end_of_stream: bool,
    ) -> Result<Action> {
        self.body(false, chunk.as_ref(), end_of_stream)
    }

    /// Deliver the response trailers.
    pub fn deliver_response_trailers(&mut self, trailers: &[(&str, &str)]) -> Result<Action> {
        self.trailers(false, trailers)
    }

    fn body(&mut self, request: bool, chunk: &[u8], eos: bool) -> Result<Action> {
        self.ensure_created()?;
        let size = {
            let s = self.state_mut();
            s.end_of_stream = eos;
            let (buf, buffering) = if request {
                s.live.request_body = true;
                (&mut s.request_body, s.buffering_request_body)
            } else {
                s.live.response_body = true;
                (&mut s.response_body, s.buffering_response_body)
            };
            if !buffering {
                buf.clear();
            }
            buf.extend_from_slice(chunk);
            buf.len() as i32
        };
        let f = if request {
            self.worker.callbacks.on_request_body.clone()
        } else {
            self.worker.callbacks.on_response_body.clone()
        };
        let name = if request {
            "proxy_on_request_body"
        } else {
            "proxy_on_response_body"
        };
        let (action, go) = match f {
            Some(f) => self.run(name, |s, id| f.call(s, (id, size, i32::from(eos))))?,
            None => (Action::Continue, true),
        };
        let s = self.state_mut();
        let (buf, forwarded, buffering, live) = if request {
            (
                &mut s.request_body,
                &mut s.forwarded_request_body,
                &mut s.buffering_request_body,
                &mut s.live.request_body,
            )
        } else {
            (
                &mut s.response_body,
                &mut s.forwarded_response_body,
                &mut s.buffering_response_body,
                &mut s.live.response_body,
            )
        };
        *buffering = action == Action::Pause;
        if go {
            forwarded.append(buf);
            *live = false;
        }
        Ok(action)
    }

    fn trailers(&mut self, request: bool, trailers: &[(&str, &str)]) -> Result<Action> {
        self.ensure_created()?;
        let map = HeaderMap::from_pairs(trailers);
        let n = map.len() as i32;
        {
            let s = self.state_mut();
            if request {
                s.request_trailers = Some(map);
                s.live.request_trailers = true;
            } else {
                s.response_trailers = Some(map);
                s.live.response_trailers = true;
            }
        }
        let f = if request {
            self.worker.callbacks.on_request_trailers.clone()
        } else {
            self.worker.callbacks.on_response_trailers.clone()
        };
        let name = if request {
            "proxy_on_request_trailers"
        } else {
            "proxy_on_response_trailers"
        };
        let (action, go) = match f {
            Some(f) => self.run(name, |s, id| f.call(s, (id, n)))?,
            None => (Action::Continue, true),
        };
        if go {
            let s = self.state_mut();
            if request {
                s.live.request_trailers = false;
            } else {
                s.live.response_trailers = false;
            }
        }
        Ok(action)
    }

    /// End the stream as Envoy does: `proxy_on_log` (maps readable), then `proxy_on_done` and
    /// `proxy_on_delete`.
    pub fn done(&mut self) -> Result<()> {
        if self.state().done {
            return Ok(());
        }
        self.state_mut().done = true;
        if !self.state().created {
            // No headers were sent: Envoy never created the context in the VM.
            self.worker.store.data_mut().contexts.remove(&self.id);
            return Ok(());
        }
        let id = self.id;
        let cb = &self.worker.callbacks;
        let (on_log, on_done, on_delete) =
            (cb.on_log.clone(), cb.on_done.clone(), cb.on_delete.clone());
        self.state_mut().access_log = true;
        let r = match on_log {
            Some(f) => self
                .worker
                .call("proxy_on_log", id, |s| f.call(s, id as i32)),
            None => Ok(()),
        };
        self.state_mut().access_log = false;
        r?;
        if let Some(f) = on_done {
            // Envoy ignores a stream's answer here.
            self.worker
                .call("proxy_on_done", id, |s| f.call(s, id as i32))?;
        }
        if let Some(f) = on_delete {
            self.worker
                .call("proxy_on_delete", id, |s| f.call(s, id as i32))?;
        }
        self.worker.store.data_mut().contexts.remove(&id);
        Ok(())
    }

    /// The request headers as they stand (as the filter left them for the upstream).
    pub fn request_headers(&self) -> HeaderMap {
        self.state().request_headers.clone()
    }

    pub fn request_header(&self, name: &str) -> Option<String> {
        self.state().request_headers.get_str(name)
    }

    pub fn request_trailers(&self) -> Option<HeaderMap> {
        self.state().request_trailers.clone()
    }

    pub fn response_headers(&self) -> Option<HeaderMap> {
        self.state().response_headers.clone()
    }

    pub fn response_header(&self, name: &str) -> Option<String> {
        self.state()
            .response_headers
            .as_ref()
            .and_then(|m| m.get_str(name))
    }

    pub fn response_trailers(&self) -> Option<HeaderMap> {
        self.state().response_trailers.clone()
    }

    /// Body bytes the filter let through upstream so far.
    pub fn forwarded_request_body(&self) -> Vec<u8> {
        self.state().forwarded_request_body.clone()
    }

    /// Body bytes the filter let through downstream so far.
    pub fn forwarded_response_body(&self) -> Vec<u8> {
        self.state().forwarded_response_body.clone()
    }

    /// The local reply the filter sent, if any.
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.state().local_response.clone()
    }

    /// How often the filter cleared the route cache (foreign function or `proxy_clear_route_cache`).
    pub fn route_cache_clears(&self) -> u32 {
        self.state().route_cache_clears
    }

    /// Streams the filter resumed with `proxy_continue_stream`, in order.
    pub fn continued(&self) -> Vec<StreamType> {
        self.state().continued.clone()
    }

    /// Streams the filter closed with `proxy_close_stream`, in order.
    pub fn closed(&self) -> Vec<StreamType> {
        self.state().closed.clone()
    }

    /// A value the filter stored with `proxy_set_property`.
    pub fn filter_state(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.state()
            .filter_state
            .get(&properties::key(path))
            .cloned()
    }

    /// The worker this stream runs on.
    pub fn worker(&mut self) -> &mut Worker {
        self.worker
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        // Envoy always ends a stream; do so unless the VM is gone, then forget the state.
        if self.worker.failure.is_none() && !std::thread::panicking() {
            let _ = self.done();
        }
        let state = self.worker.store.data_mut();
        state.streams.remove(&self.id);
        state.contexts.remove(&self.id);
    }
}
