//! A stand-in for Envoy, in process: it defines the dynamic-module callbacks the native backend
//! calls (as Envoy 1.40 exports them) over plain Rust state, and drives the backend's hooks the
//! way Envoy does: `config_new` on the "main thread", a stream's hooks in order, the config
//! scheduler's events. The native crate's tests and the `native` fuzz target use it; the e2e
//! suite runs the same hooks in the real Envoy.
//!
//! It can also answer like a broken host ([`Hostile`]), to show that nothing the host says makes
//! a hook unwind into Envoy.

mod callbacks;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use callbacks::Hostile;

/// One stream as the host sees it.
#[derive(Debug, Default, Clone)]
pub struct StreamState {
    pub request: Vec<(String, Vec<u8>)>,
    pub response: Vec<(String, Vec<u8>)>,
    /// The body chunk of the current `response_body` hook.
    pub chunk: Vec<u8>,
    pub source_address: Option<String>,
    pub code_details: Option<String>,
    pub route_cache_cleared: u32,
}

/// What the host holds across hooks (one at a time: the tests and the fuzzer are one thread).
#[derive(Debug, Default)]
pub struct HostState {
    pub stream: StreamState,
    pub hostile: Hostile,
    pub concurrency: u32,
    pub worker: u32,
    /// Metric names by id, with their label names.
    pub metrics: Vec<(String, Vec<String>)>,
    /// `name{label="value",...}` → value (counters add, gauges set, histograms count samples).
    pub values: BTreeMap<String, u64>,
    pub logs: Vec<String>,
    pub callouts: Vec<String>,
    /// The commit count of the scheduler made last (by the last config loaded on this thread).
    pub last_scheduler: Option<Arc<AtomicU64>>,
}

thread_local! {
    pub(crate) static HOST: RefCell<HostState> = RefCell::new(HostState::default());
}

pub fn with_host<T>(f: impl FnOnce(&mut HostState) -> T) -> T {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// A filter config loaded by the backend.
pub struct Config {
    ptr: *const c_void,
    /// Its ticker's wake-ups so far.
    commits: Arc<AtomicU64>,
}

/// The host's pointer for a config or a stream: never dereferenced by the backend, only handed
/// back. A stable non-null value is enough.
fn envoy_ptr() -> *mut c_void {
    std::ptr::dangling_mut::<u8>() as *mut c_void
}

impl Config {
    /// `config_new` with this plugin config, `workers` workers. `Err` with the log when the
    /// backend refuses it.
    pub fn load(config: &[u8], workers: u32) -> Result<Config, Vec<String>> {
        with_host(|h| {
            h.concurrency = workers;
            h.logs.clear();
        });
        let name = b"serin";
        // SAFETY: the hook reads the two buffers during the call only.
        let ptr = unsafe {
            serin::envoy_dynamic_module_on_http_filter_config_new(
                envoy_ptr(),
                buffer(name),
                buffer(config),
            )
        };
        if ptr.is_null() {
            return Err(with_host(|h| h.logs.clone()));
        }
        let commits = with_host(|h| h.last_scheduler.take()).unwrap_or_default();
        Ok(Config { ptr, commits })
    }

    /// What the ticker's wake-up does: tick every worker, flush the metrics.
    pub fn tick(&self) {
        // SAFETY: the config is live until `drop`.
        unsafe {
            serin::envoy_dynamic_module_on_http_filter_config_scheduled(envoy_ptr(), self.ptr, 0)
        }
    }

    /// A request through the hooks, as `worker`: request headers, then (when `response` is
    /// given) the response's headers, its body chunks and the end. Returns the request headers
    /// as the backend left them, and the response headers it added.
    pub fn exchange(
        &self,
        worker: u32,
        request: StreamState,
        response: Option<Response>,
    ) -> StreamState {
        with_host(|h| {
            h.worker = worker;
            h.stream = request;
        });
        let filter = envoy_ptr();
        // SAFETY: Envoy's order of hooks on one stream of a live config.
        unsafe {
            let s = serin::envoy_dynamic_module_on_http_filter_new(self.ptr, filter);
            serin::envoy_dynamic_module_on_http_filter_request_headers(filter, s, false);
            if let Some(r) = response {
                with_host(|h| {
                    h.stream.response = r.headers;
                    h.stream.code_details = r.code_details;
                });
                let eos = r.body.is_empty();
                serin::envoy_dynamic_module_on_http_filter_response_headers(filter, s, eos);
                let n = r.body.len();
                for (i, chunk) in r.body.into_iter().enumerate() {
                    with_host(|h| h.stream.chunk = chunk);
                    serin::envoy_dynamic_module_on_http_filter_response_body(filter, s, i + 1 == n);
                }
            }
            serin::envoy_dynamic_module_on_http_filter_stream_complete(filter, s);
            serin::envoy_dynamic_module_on_http_filter_destroy(s);
        }
        with_host(|h| std::mem::take(&mut h.stream))
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        // SAFETY: every stream is done; Envoy destroys a config once.
        unsafe { serin::envoy_dynamic_module_on_http_filter_config_destroy(self.ptr) }
    }
}

/// A response as the upstream sends it.
#[derive(Debug, Default, Clone)]
pub struct Response {
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<Vec<u8>>,
    pub code_details: Option<String>,
}

impl Config {
    /// How many times its ticker has woken the main thread, then or now (a handle that
    /// outlives the config).
    pub fn ticks(&self) -> Arc<AtomicU64> {
        self.commits.clone()
    }
}

pub fn ticks(handle: &AtomicU64) -> u64 {
    handle.load(Ordering::Relaxed)
}

fn buffer(bytes: &[u8]) -> serin::abi::EnvoyBuffer {
    serin::abi::EnvoyBuffer {
        ptr: bytes.as_ptr(),
        len: bytes.len(),
    }
}
