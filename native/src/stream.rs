//! One HTTP stream, on its worker's thread: what the engine asks for is read from Envoy, what
//! it returns is written. Header values are read in place (Envoy's buffers, valid until the
//! hook returns or a header is written), so nothing is copied before the engine has decided.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use serin_policy::{Exchange, HeaderList};

use crate::abi::{
    self, ATTRIBUTE_RESPONSE_CODE_DETAILS, ATTRIBUTE_SOURCE_ADDRESS, EnvoyBuffer, EnvoyHeader,
    EnvoyPtr, ModuleBuffer, RECEIVED_RESPONSE_BODY, REQUEST_HEADER, RESPONSE_HEADER,
};
use crate::{Config, guarded, now_ms};

/// `envoy_dynamic_module_type_on_http_filter_*_status_Continue`, the same value for every hook.
const CONTINUE: u32 = 0;

pub struct Stream {
    config: *const Config,
    worker: usize,
    exchange: Option<Exchange>,
}

impl Stream {
    fn config(&self) -> &Config {
        // SAFETY: Envoy destroys every stream of a config before the config itself.
        unsafe { &*self.config }
    }
}

/// # Safety
/// Envoy passes the config `config_new` returned and the new stream's pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    filter: EnvoyPtr,
) -> *const c_void {
    // SAFETY: called on the stream's worker with its own pointer.
    let worker = unsafe { abi::envoy_dynamic_module_callback_http_filter_get_worker_index(filter) };
    let stream = Stream {
        config: config as *const Config,
        worker: worker as usize,
        exchange: None,
    };
    Box::into_raw(Box::new(stream)) as *const c_void
}

/// # Safety
/// `stream` is what `new` returned, on its worker.
unsafe fn stream<'a>(stream: *const c_void) -> &'a mut Stream {
    // SAFETY: the caller's promise; a stream's hooks never run concurrently.
    unsafe { &mut *(stream as *mut Stream) }
}

/// # Safety
/// Envoy's stream pointer and this module's stream, on the stream's worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter: EnvoyPtr,
    s: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: as promised by Envoy for this hook.
    let s = unsafe { stream(s) };
    let routed = guarded("request_headers", false, || route(filter, s));
    if !routed {
        // The engine failed mid-request: send it where no canary can hurt it.
        let (header, value) = &s.config().stable;
        set_header(filter, REQUEST_HEADER, header, Some(value));
        // SAFETY: this stream's hook.
        unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(filter) };
    }
    CONTINUE
}

fn route(filter: EnvoyPtr, s: &mut Stream) -> bool {
    let config = s.config();
    let mut engine = config.engine(s.worker);
    for name in engine.headers_to_strip_first() {
        set_header(filter, REQUEST_HEADER, name, None);
    }
    // Header slices stay valid until the next header write: the decision is made before any.
    let names = engine.headers_to_read();
    let headers = request_headers(filter, names.as_deref());
    let mut request = HeaderList::new(&headers);
    if engine.reads_source_ip() {
        request.source_ip = attribute(filter, ATTRIBUTE_SOURCE_ADDRESS).and_then(parse_address);
    }
    let route = engine.route(&request, now_ms(), || entropy(s.worker));
    for (name, value) in route.edits.iter() {
        set_header(filter, REQUEST_HEADER, name, value);
    }
    // SAFETY: this stream's hook, after the routing header changed.
    unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(filter) };
    let exchange = route.exchange;
    drop(engine);
    s.exchange = Some(exchange);
    true
}

/// # Safety
/// Envoy's stream pointer and this module's stream, on the stream's worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter: EnvoyPtr,
    s: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: as promised by Envoy for this hook.
    let s = unsafe { stream(s) };
    guarded("response_headers", (), || {
        let Some(mut ex) = s.exchange.take() else {
            return;
        };
        if let Some(cookie) = ex.take_set_cookie() {
            let (key, value) = (
                ModuleBuffer::of(b"set-cookie"),
                ModuleBuffer::of(cookie.as_bytes()),
            );
            // SAFETY: this stream's hook; the buffers outlive the call.
            unsafe {
                abi::envoy_dynamic_module_callback_http_add_header(
                    filter,
                    RESPONSE_HEADER,
                    key,
                    value,
                )
            };
        }
        let status = header(filter, RESPONSE_HEADER, ":status")
            .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
            .unwrap_or(0u16);
        let config = s.config();
        let sample = config.engine(s.worker).response_headers(
            &mut ex,
            now_ms(),
            status,
            end_of_stream,
            || {
                attribute(filter, ATTRIBUTE_RESPONSE_CODE_DETAILS)
                    .is_some_and(|d| d != b"via_upstream")
            },
            |name| header(filter, RESPONSE_HEADER, name).map(<[u8]>::to_vec),
        );
        config.metrics.record(filter, sample.series, sample.value);
        s.exchange = Some(ex);
    });
    CONTINUE
}

/// # Safety
/// Envoy's stream pointer and this module's stream, on the stream's worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    filter: EnvoyPtr,
    s: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: as promised by Envoy for this hook.
    let s = unsafe { stream(s) };
    guarded("response_body", (), || {
        let Some(mut ex) = s.exchange.take() else {
            return;
        };
        let config = s.config();
        let mut engine = config.engine(s.worker);
        let read = engine.wants_body(&ex);
        // SAFETY: this stream's hook.
        let size = unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_size(filter, RECEIVED_RESPONSE_BODY)
        };
        engine.response_body(&mut ex, now_ms, size, end_of_stream, || {
            read.then(|| body_chunk(filter)).flatten()
        });
        drop(engine);
        s.exchange = Some(ex);
    });
    CONTINUE
}

/// # Safety
/// Envoy's stream pointer and this module's stream, on the stream's worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter: EnvoyPtr,
    s: *const c_void,
) -> u32 {
    // SAFETY: as promised by Envoy for this hook.
    let s = unsafe { stream(s) };
    guarded("response_trailers", (), || {
        if let Some(ex) = &mut s.exchange {
            // SAFETY: Envoy destroys every stream of a config before the config itself.
            let config = unsafe { &*s.config };
            config.engine(s.worker).response_trailers(ex);
        }
    });
    CONTINUE
}

/// # Safety
/// Envoy's stream pointer and this module's stream, on the stream's worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter: EnvoyPtr,
    s: *const c_void,
) {
    // SAFETY: as promised by Envoy for this hook.
    let s = unsafe { stream(s) };
    guarded("stream_complete", (), || {
        if let Some(ex) = s.exchange.take() {
            s.config().engine(s.worker).stream_done(ex, now_ms);
        }
    });
}

/// # Safety
/// This module's stream, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(s: *const c_void) {
    // SAFETY: ours, from Box::into_raw in `new`; Envoy destroys it once.
    drop(unsafe { Box::from_raw(s as *mut Stream) });
}

/// The request headers the engine reads, in place: those it names (a repeated header gives its
/// first value), else every header.
fn request_headers<'e, 'n>(
    filter: EnvoyPtr,
    names: Option<&'n [String]>,
) -> Vec<(&'n str, &'e [u8])>
where
    'e: 'n,
{
    if let Some(names) = names {
        return names
            .iter()
            .filter_map(|name| Some((name.as_str(), header(filter, REQUEST_HEADER, name)?)))
            .collect();
    }
    // SAFETY: this stream's hook; the vector holds as many pairs as Envoy reports.
    unsafe {
        let n = abi::envoy_dynamic_module_callback_http_get_headers_size(filter, REQUEST_HEADER);
        let mut pairs = vec![
            EnvoyHeader {
                key: std::ptr::null(),
                key_len: 0,
                value: std::ptr::null(),
                value_len: 0
            };
            n
        ];
        if !abi::envoy_dynamic_module_callback_http_get_headers(
            filter,
            REQUEST_HEADER,
            pairs.as_mut_ptr(),
        ) {
            return Vec::new();
        }
        pairs
            .iter()
            .filter_map(|h| {
                let key = EnvoyBuffer {
                    ptr: h.key,
                    len: h.key_len,
                }
                .bytes();
                let value = EnvoyBuffer {
                    ptr: h.value,
                    len: h.value_len,
                }
                .bytes();
                Some((std::str::from_utf8(key).ok()?, value))
            })
            .collect()
    }
}

/// A header's first value, in place.
fn header<'e>(filter: EnvoyPtr, header_type: u32, name: &str) -> Option<&'e [u8]> {
    let mut out = EnvoyBuffer::EMPTY;
    // SAFETY: this stream's hook; Envoy fills `out` with a view into its header map, valid
    // until the hook returns or a header is written (callers read before they write).
    unsafe {
        let found = abi::envoy_dynamic_module_callback_http_get_header(
            filter,
            header_type,
            ModuleBuffer::of(name.as_bytes()),
            &mut out,
            0,
            std::ptr::null_mut(),
        );
        found.then(|| out.bytes())
    }
}

/// Set (`Some`) or remove (`None`) a header.
fn set_header(filter: EnvoyPtr, header_type: u32, name: &str, value: Option<&str>) {
    let value = value.map_or(ModuleBuffer::NULL, |v| ModuleBuffer::of(v.as_bytes()));
    // SAFETY: this stream's hook; the buffers outlive the call.
    unsafe {
        abi::envoy_dynamic_module_callback_http_set_header(
            filter,
            header_type,
            ModuleBuffer::of(name.as_bytes()),
            value,
        )
    };
}

fn attribute<'e>(filter: EnvoyPtr, id: u32) -> Option<&'e [u8]> {
    let mut out = EnvoyBuffer::EMPTY;
    // SAFETY: this stream's hook; the view is read before the hook returns.
    unsafe {
        abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(filter, id, &mut out)
            .then(|| out.bytes())
    }
}

/// Envoy gives `ip:port`, with IPv6 in brackets.
fn parse_address(raw: &[u8]) -> Option<std::net::IpAddr> {
    let text = std::str::from_utf8(raw).ok()?;
    let addr = text.parse::<std::net::SocketAddr>().map(|s| s.ip());
    addr.or_else(|_| text.parse()).ok()
}

/// The chunk of response body this hook received, copied.
fn body_chunk(filter: EnvoyPtr) -> Option<Vec<u8>> {
    // SAFETY: this stream's hook; the vector holds as many buffers as Envoy reports.
    unsafe {
        let n = abi::envoy_dynamic_module_callback_http_get_body_chunks_size(
            filter,
            RECEIVED_RESPONSE_BODY,
        );
        let mut chunks = vec![EnvoyBuffer::EMPTY; n];
        if !abi::envoy_dynamic_module_callback_http_get_body_chunks(
            filter,
            RECEIVED_RESPONSE_BODY,
            chunks.as_mut_ptr(),
        ) {
            return None;
        }
        Some(chunks.iter().flat_map(|c| c.bytes()).copied().collect())
    }
}

/// Bytes that differ between requests, for a minted sticky key: the clock's nanoseconds, the
/// worker and a process-wide count.
fn entropy(worker: usize) -> Vec<u8> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut bytes = nanos.to_le_bytes().to_vec();
    bytes.extend((worker as u64).to_le_bytes());
    bytes.extend(COUNT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    bytes
}
