//! What one VM's host side holds: everything lives in the wasmtime `Store` data, so that workers
//! and tests never share anything but the [`Shared`] handle of their own host.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::{Memory, TypedFunc};

use crate::HostConfig;
use crate::abi::{LogLevel, MapType, MetricType, StreamType};
use crate::headers::HeaderMap;
use crate::shared::{Clock, Shared};

/// Maps keyed by context id. Ids are small sequential numbers the host hands out, so they need
/// no SipHash protection against chosen keys; hashing them by a multiply keeps the several
/// lookups of every callback cheap.
pub(crate) type ById<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        // Fibonacci hashing: spreads sequential ids over the table's high bits.
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One `proxy_log` line (or a line a WASI module wrote to stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub level: LogLevel,
    pub message: String,
    /// The context that was current (or effective) when it was logged.
    pub context_id: u32,
}

/// A reply the filter sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    /// `response_code_details`, with whitespace replaced by `_` as Envoy does.
    pub details: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// `None` when the module passed a value outside gRPC's known codes (the SDKs pass -1).
    pub grpc_status: Option<u32>,
}

/// One `proxy_call_foreign_function` as the host logs it: a known function's name is not
/// allocated per call.
#[derive(Debug, Clone)]
pub(crate) struct ForeignCallRecord {
    pub context_id: u32,
    pub name: std::borrow::Cow<'static, str>,
    pub args: Vec<u8>,
    pub status: crate::abi::Status,
}

impl From<&ForeignCallRecord> for ForeignCall {
    fn from(r: &ForeignCallRecord) -> ForeignCall {
        ForeignCall {
            context_id: r.context_id,
            name: r.name.clone().into_owned(),
            args: r.args.clone(),
            status: r.status,
        }
    }
}

/// One `proxy_call_foreign_function` the filter made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignCall {
    pub context_id: u32,
    pub name: String,
    pub args: Vec<u8>,
    /// The status the host returned.
    pub status: crate::abi::Status,
}

/// One `proxy_http_call` the filter dispatched and that waits for an answer from the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub token: u32,
    pub upstream: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub timeout_ms: u32,
    /// The context that dispatched it (the root context: Envoy makes calls from there).
    pub context_id: u32,
}

/// An answer to an [`HttpCall`], while `proxy_on_http_call_response` runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpCallResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// The host side of one HTTP stream (one `HttpContext` in the module).
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub request_headers: HeaderMap,
    pub request_trailers: Option<HeaderMap>,
    pub response_headers: Option<HeaderMap>,
    pub response_trailers: Option<HeaderMap>,
    /// Which maps the module may touch right now (Envoy drops its pointer to a map once a
    /// callback returns `Continue`).
    pub live: Live,
    /// `proxy_on_log` is running: maps are read-only views.
    pub access_log: bool,
    pub end_of_stream: bool,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    pub buffering_request_body: bool,
    pub buffering_response_body: bool,
    /// Body bytes the filter let through, per direction.
    pub forwarded_request_body: Vec<u8>,
    pub forwarded_response_body: Vec<u8>,
    pub local_response: Option<LocalResponse>,
    pub route_cache_clears: u32,
    pub continued: Vec<StreamType>,
    pub closed: Vec<StreamType>,
    /// `set_property` values (Envoy's filter state, `wasm.` prefix).
    pub filter_state: HashMap<Vec<u8>, Vec<u8>>,
    /// Attributes the test gave this stream (`source.address`, ...).
    pub properties: BTreeMap<Vec<u8>, Vec<u8>>,
    pub created: bool,
    pub done: bool,
    /// Envoy's `connection_id`: every stream of the host comes on a connection of its own.
    pub connection_id: u64,
    /// Envoy's `response.code_details`: `via_upstream` once an upstream's response began, or
    /// the reason Envoy (or the filter) answered itself.
    pub response_code_details: Option<String>,
}

/// Which of a stream's maps and bodies Envoy lends the module right now. Public only through
/// [`crate::conformance`], whose tests set it to reach each phase of a stream.
#[derive(Debug, Default, Clone, Copy)]
pub struct Live {
    pub request_headers: bool,
    pub request_trailers: bool,
    pub request_body: bool,
    pub response_headers: bool,
    pub response_trailers: bool,
    pub response_body: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextKind {
    Root,
    Http,
}

/// The guest's allocator, as Envoy picks it: `malloc` first, then `proxy_on_memory_allocate`.
/// Shared rather than cloned per call: cloning a `TypedFunc` goes through the engine's type
/// registry.
pub(crate) type Alloc = Arc<TypedFunc<i32, i32>>;

pub(crate) struct HostState {
    pub worker: u32,
    pub config: Arc<HostConfig>,
    pub shared: Arc<Mutex<Shared>>,
    pub clock: Arc<Clock>,
    pub memory: Option<Memory>,
    pub alloc: Option<Alloc>,
    /// Only the functions Envoy allows during `_initialize`/`main` may be called.
    pub restricted: bool,
    pub trace: bool,
    pub current_context: u32,
    pub effective_context: u32,
    pub contexts: ById<ContextKind>,
    pub next_context_id: u32,
    pub root_context: u32,
    pub streams: ById<StreamState>,
    /// The plugin configuration, while `proxy_on_configure` runs.
    pub plugin_config: Option<Vec<u8>>,
    /// Arguments of `proxy_on_foreign_function`, while it runs.
    pub call_data: Vec<u8>,
    pub logs: Vec<LogEntry>,
    pub tick_period_ms: u32,
    /// Monotonic time of the next tick, when a period is set.
    pub next_tick_ns: Option<u64>,
    /// While a tick runs, the time it was due: the clock reads this.
    pub time_override: Option<(u64, u64)>,
    /// A defined metric's id -> its type and its slot in the stats store.
    pub metric_ids: ById<(MetricType, usize)>,
    pub next_metric_id: [u32; 3],
    pub foreign_calls: Vec<ForeignCallRecord>,
    pub http_calls: BTreeMap<u32, HttpCall>,
    pub next_http_call: u32,
    pub http_call_response: Option<HttpCallResponse>,
    pub status: (u32, Vec<u8>),
    /// The root context returned `false` from `proxy_on_done` and may call `proxy_done`.
    pub root_pending_done: bool,
    pub root_done: bool,
    pub rng: u64,
    /// Bytes on their way into the guest (see `hostcalls::copy_out_assembled`), kept to reuse
    /// the allocation.
    pub scratch: Vec<u8>,
}

impl HostState {
    pub(crate) fn new(
        worker: u32,
        config: Arc<HostConfig>,
        shared: Arc<Mutex<Shared>>,
        clock: Arc<Clock>,
    ) -> Self {
        let trace = config.trace;
        let rng = config.random_seed ^ (u64::from(worker) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        HostState {
            worker,
            config,
            shared,
            clock,
            memory: None,
            alloc: None,
            restricted: false,
            trace,
            current_context: 0,
            effective_context: 0,
            contexts: ById::default(),
            next_context_id: 1,
            root_context: 0,
            streams: ById::default(),
            plugin_config: None,
            call_data: Vec::new(),
            logs: Vec::new(),
            tick_period_ms: 0,
            next_tick_ns: None,
            time_override: None,
            metric_ids: ById::default(),
            // Envoy numbers metrics per type: the low two bits are the type.
            next_metric_id: [0, 1, 2],
            foreign_calls: Vec::new(),
            http_calls: BTreeMap::new(),
            next_http_call: 0,
            http_call_response: None,
            status: (0, Vec::new()),
            root_pending_done: false,
            root_done: false,
            rng,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere never leaves `Shared` half-updated in a way that matters to tests.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The context host functions act on: the effective one if the module set it and it
    /// still exists, else the one the host called into.
    pub(crate) fn context(&self) -> u32 {
        if self.effective_context != 0 && self.contexts.contains_key(&self.effective_context) {
            self.effective_context
        } else {
            self.current_context
        }
    }

    pub(crate) fn stream(&self) -> Option<&StreamState> {
        self.streams.get(&self.context())
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut StreamState> {
        let id = self.context();
        self.streams.get_mut(&id)
    }

    /// Wall and monotonic time as the module sees them now, in nanoseconds.
    pub(crate) fn now(&self) -> (u64, u64) {
        match self.time_override {
            Some(t) => t,
            None => self.clock.now(),
        }
    }

    pub(crate) fn next_random(&mut self) -> u64 {
        // splitmix64: deterministic per host seed and worker, so tests replay.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        if level < self.config.log_level {
            return;
        }
        if self.trace {
            eprintln!("[w{}] log {:?}: {}", self.worker, level, message);
        }
        let context_id = self.context();
        self.logs.push(LogEntry {
            level,
            message,
            context_id,
        });
    }

    /// Envoy's `getConstMap`: a map to read, or `None` when the current callback has none.
    pub(crate) fn const_map(&self, ty: MapType) -> Option<&HeaderMap> {
        match ty {
            MapType::HttpCallResponseHeaders => {
                return self.http_call_response.as_ref().map(|r| &r.headers);
            }
            MapType::HttpCallResponseTrailers => {
                return self.http_call_response.as_ref().map(|r| &r.trailers);
            }
            MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => {
                return None;
            }
            _ => {}
        }
        let s = self.stream()?;
        if s.access_log {
            return match ty {
                MapType::HttpRequestHeaders => Some(&s.request_headers),
                MapType::HttpRequestTrailers => None,
                MapType::HttpResponseHeaders => s.response_headers.as_ref(),
                MapType::HttpResponseTrailers => s.response_trailers.as_ref(),
                _ => None,
            };
        }
        match ty {
            MapType::HttpRequestHeaders if s.live.request_headers => Some(&s.request_headers),
            MapType::HttpRequestTrailers if s.live.request_trailers => s.request_trailers.as_ref(),
            MapType::HttpResponseHeaders if s.live.response_headers => s.response_headers.as_ref(),
            MapType::HttpResponseTrailers if s.live.response_trailers => {
                s.response_trailers.as_ref()
            }
            _ => None,
        }
    }

    /// Envoy's `getMap`: a map to change, or `None`. In the last body chunk of a direction
    /// without trailers, asking for its trailers adds an empty trailer map (as Envoy does).
    pub(crate) fn map_mut(&mut self, ty: MapType) -> Option<&mut HeaderMap> {
        let s = self.stream_mut()?;
        match ty {
            MapType::HttpRequestHeaders if s.live.request_headers => Some(&mut s.request_headers),
            MapType::HttpRequestTrailers => {
                if s.request_trailers.is_none() && s.live.request_body && s.end_of_stream {
                    s.request_trailers = Some(HeaderMap::new());
                    s.live.request_trailers = true;
                }
                if s.live.request_trailers {
                    s.request_trailers.as_mut()
                } else {
                    None
                }
            }
            MapType::HttpResponseHeaders if s.live.response_headers => s.response_headers.as_mut(),
            MapType::HttpResponseTrailers => {
                if s.response_trailers.is_none() && s.live.response_body && s.end_of_stream {
                    s.response_trailers = Some(HeaderMap::new());
                    s.live.response_trailers = true;
                }
                if s.live.response_trailers {
                    s.response_trailers.as_mut()
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}
