//! For the ABI conformance tests (`tests/it/abi_conformance.rs`), not a stable API.
//!
//! Those tests call each host function as a filter would, through a module that re-exports the
//! host's imports, with pointers into its memory. To reach each case without a filter that steers
//! there, they put a stream in the phase that has it (which maps Envoy lends, the last body
//! chunk, the access log) and make its context current, then check what the host function
//! changed. These functions do just that and reach nothing else of the host's state.

use anyhow::{Context as _, Result, anyhow};
use wasmtime::Val;

use crate::abi::Status;
use crate::headers::HeaderMap;
use crate::properties;
use crate::state::{LocalResponse, StreamState};
use crate::worker::Worker;

pub use crate::state::Live;

/// Open an HTTP stream's context with these request headers and properties (`(path, value)`),
/// as in `proxy_on_request_headers` before the end of the stream: its request headers lent, and
/// its context current. The module is not told (no `proxy_on_context_create`): the tests call
/// host functions, not callbacks. Returns its context id.
pub fn open_stream(
    worker: &mut Worker,
    request_headers: &[(&str, &str)],
    props: &[(&[&str], &str)],
) -> u32 {
    let mut s = StreamState {
        request_headers: HeaderMap::from_pairs(request_headers),
        ..StreamState::default()
    };
    s.live.request_headers = true;
    for (path, value) in props {
        s.properties
            .insert(properties::key(path), value.as_bytes().to_vec());
    }
    let id = worker.add_stream(s);
    enter(worker, id);
    id
}

/// Make `context` the one host functions act on, as while the host calls into it. Calls through
/// [`call_export`] keep it (and any effective context the module sets) until the next `enter`.
pub fn enter(worker: &mut Worker, context: u32) {
    worker.store.data_mut().current_context = context;
}

/// The state of the stream `id` that the tests set or check. Panics if there is no such stream.
pub fn stream(worker: &mut Worker, id: u32) -> StreamMut<'_> {
    StreamMut(
        worker
            .store
            .data_mut()
            .streams
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no stream {id}")),
    )
}

/// One stream's host state, as far as the conformance tests set or check it.
pub struct StreamMut<'w>(&'w mut StreamState);

impl StreamMut<'_> {
    /// Which maps and bodies the module may touch now.
    pub fn live(&mut self) -> &mut Live {
        &mut self.0.live
    }

    /// Whether the chunk in flight is the last of its direction.
    pub fn set_end_of_stream(&mut self, eos: bool) {
        self.0.end_of_stream = eos;
    }

    /// Whether `proxy_on_log` is running (the access-log phase, whose maps are read-only views).
    pub fn set_access_log(&mut self, on: bool) {
        self.0.access_log = on;
    }

    pub fn set_request_body(&mut self, body: &[u8]) {
        self.0.request_body = body.to_vec();
    }

    pub fn set_response_headers(&mut self, headers: HeaderMap) {
        self.0.response_headers = Some(headers);
    }

    pub fn request_headers(&self) -> &HeaderMap {
        &self.0.request_headers
    }

    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        self.0.request_trailers.as_ref()
    }

    pub fn request_body(&self) -> &[u8] {
        &self.0.request_body
    }

    pub fn route_cache_clears(&self) -> u32 {
        self.0.route_cache_clears
    }

    pub fn local_response(&self) -> Option<&LocalResponse> {
        self.0.local_response.as_ref()
    }
}

/// Write `bytes` into the module's memory at `at`.
pub fn write_memory(worker: &mut Worker, at: usize, bytes: &[u8]) -> Result<()> {
    let memory = worker
        .store
        .data()
        .memory
        .context("the module has no memory")?;
    memory
        .write(&mut worker.store, at, bytes)
        .with_context(|| format!("writing {} bytes at {at}", bytes.len()))
}

/// `len` bytes of the module's memory at `at`.
pub fn read_memory(worker: &Worker, at: usize, len: usize) -> Result<Vec<u8>> {
    let memory = worker
        .store
        .data()
        .memory
        .context("the module has no memory")?;
    let mut out = vec![0; len];
    memory
        .read(&worker.store, at, &mut out)
        .with_context(|| format!("reading {len} bytes at {at}"))?;
    Ok(out)
}

/// Call the module's export `name` with `args`, an export that returns a status: a host
/// function the module re-exports. It runs in the current context as it stands, not through the
/// host's callback path, which would reset the effective context on every call.
pub fn call_export(worker: &mut Worker, name: &str, args: &[Val]) -> Result<Status> {
    let f = worker
        .instance
        .get_func(&mut worker.store, name)
        .ok_or_else(|| anyhow!("the module exports no `{name}`"))?;
    let mut results = [Val::I32(0)];
    f.call(&mut worker.store, args, &mut results)
        .map_err(|e| anyhow!("{name} failed: {e:?}"))?;
    let code = results[0]
        .i32()
        .ok_or_else(|| anyhow!("{name} returned no i32"))?;
    Status::from_code(code).ok_or_else(|| anyhow!("{name} returned {code}, no status"))
}
