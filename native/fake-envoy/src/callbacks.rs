//! Envoy's callbacks, as the backend declares them in `native/src/abi.rs`, over [`HostState`].
//! Views handed out (`EnvoyBuffer`) point into the host's state, which no callback changes
//! while the backend may still hold a view (as in Envoy: until the next header write).

use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serin::abi::{EnvoyBuffer, EnvoyHeader, EnvoyPtr, ModuleBuffer, ModuleHeader};

use crate::{HOST, HostState};

/// Ways a broken host answers, to show that the backend survives them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Hostile {
    /// `get_headers_size` and `get_body_chunks_size` report absurd counts (more than any
    /// vector can hold).
    pub absurd_counts: bool,
    /// `get_header` says found and gives a view of non-UTF-8 bytes for every name.
    pub garbage_headers: bool,
    /// Every metric definition fails.
    pub no_metrics: bool,
}

fn with<T>(f: impl FnOnce(&mut HostState) -> T) -> T {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

/// # Safety
/// A module buffer: valid for the call, or null.
unsafe fn text(b: ModuleBuffer) -> String {
    if b.ptr.is_null() {
        return String::new();
    }
    // SAFETY: the caller's promise.
    let bytes = unsafe { std::slice::from_raw_parts(b.ptr, b.len) };
    String::from_utf8_lossy(bytes).into_owned()
}

fn view(bytes: &[u8]) -> EnvoyBuffer {
    EnvoyBuffer {
        ptr: bytes.as_ptr(),
        len: bytes.len(),
    }
}

const GARBAGE: &[u8] = b"\xff\xfe\x00;=,";

fn headers_of(h: &mut HostState, header_type: u32) -> &mut Vec<(String, Vec<u8>)> {
    if header_type == serin::abi::RESPONSE_HEADER {
        &mut h.stream.response
    } else {
        &mut h.stream.request
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer) {
    // SAFETY: the backend's buffer, valid for the call.
    let line = format!("[{level}] {}", unsafe { text(message) });
    with(|h| h.logs.push(line));
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_get_concurrency() -> u32 {
    with(|h| h.concurrency)
}

/// # Safety
/// As Envoy's: `out` writable, `count` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_header(
    _filter: EnvoyPtr,
    header_type: u32,
    key: ModuleBuffer,
    out: *mut EnvoyBuffer,
    index: usize,
    count: *mut usize,
) -> bool {
    // SAFETY: the backend's buffer.
    let key = unsafe { text(key) };
    with(|h| {
        if h.hostile.garbage_headers {
            // SAFETY: the backend's out-pointer.
            unsafe { *out = view(GARBAGE) };
            return true;
        }
        let values: Vec<&Vec<u8>> = headers_of(h, header_type)
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .collect();
        if !count.is_null() {
            // SAFETY: the backend's out-pointer.
            unsafe { *count = values.len() };
        }
        match values.get(index) {
            Some(v) => {
                // SAFETY: the view points into the host's state, unchanged until a write.
                unsafe { *out = view(v) };
                true
            }
            None => false,
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_headers_size(
    _filter: EnvoyPtr,
    header_type: u32,
) -> usize {
    with(|h| {
        if h.hostile.absurd_counts {
            return usize::MAX / 4;
        }
        headers_of(h, header_type).len()
    })
}

/// # Safety
/// `out` holds `get_headers_size` pairs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_headers(
    _filter: EnvoyPtr,
    header_type: u32,
    out: *mut EnvoyHeader,
) -> bool {
    with(|h| {
        for (i, (k, v)) in headers_of(h, header_type).iter().enumerate() {
            // SAFETY: the backend sized `out` by get_headers_size.
            unsafe {
                *out.add(i) = EnvoyHeader {
                    key: k.as_ptr(),
                    key_len: k.len(),
                    value: v.as_ptr(),
                    value_len: v.len(),
                }
            };
        }
        true
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_set_header(
    _filter: EnvoyPtr,
    header_type: u32,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    // SAFETY: the backend's buffers.
    let key = unsafe { text(key) };
    let value = (!value.ptr.is_null())
        // SAFETY: the backend's buffer.
        .then(|| unsafe { std::slice::from_raw_parts(value.ptr, value.len) }.to_vec());
    with(|h| {
        let headers = headers_of(h, header_type);
        headers.retain(|(k, _)| *k != key);
        if let Some(v) = value {
            headers.push((key, v));
        }
        true
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_add_header(
    _filter: EnvoyPtr,
    header_type: u32,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    // SAFETY: the backend's buffers.
    let (key, value) = unsafe { (text(key), text(value)) };
    with(|h| headers_of(h, header_type).push((key, value.into_bytes())));
    true
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_clear_route_cache(_filter: EnvoyPtr) {
    with(|h| h.stream.route_cache_cleared += 1);
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_body_size(
    _filter: EnvoyPtr,
    _body_type: u32,
) -> usize {
    with(|h| h.stream.chunk.len())
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks_size(
    _filter: EnvoyPtr,
    _body_type: u32,
) -> usize {
    with(|h| {
        if h.hostile.absurd_counts {
            usize::MAX / 4
        } else {
            usize::from(!h.stream.chunk.is_empty())
        }
    })
}

/// # Safety
/// `out` holds `get_body_chunks_size` buffers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks(
    _filter: EnvoyPtr,
    _body_type: u32,
    out: *mut EnvoyBuffer,
) -> bool {
    with(|h| {
        if !h.stream.chunk.is_empty() {
            // SAFETY: one buffer, as get_body_chunks_size said.
            unsafe { *out = view(&h.stream.chunk) };
        }
        true
    })
}

/// # Safety
/// `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
    _filter: EnvoyPtr,
    attribute: u32,
    out: *mut EnvoyBuffer,
) -> bool {
    with(|h| {
        let value = match attribute {
            serin::abi::ATTRIBUTE_SOURCE_ADDRESS => h.stream.source_address.as_deref(),
            serin::abi::ATTRIBUTE_RESPONSE_CODE_DETAILS => h.stream.code_details.as_deref(),
            _ => None,
        };
        match value {
            Some(v) => {
                // SAFETY: a view of the host's state.
                unsafe { *out = view(v.as_bytes()) };
                true
            }
            None => false,
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_get_worker_index(
    _filter: EnvoyPtr,
) -> u32 {
    with(|h| h.worker)
}

/// # Safety
/// `labels` holds `n` buffers; `id` writable.
unsafe fn define(name: ModuleBuffer, labels: *const ModuleBuffer, n: usize, id: *mut usize) -> u32 {
    // SAFETY: the caller's promise.
    let (name, labels) = unsafe {
        let labels = if n == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(labels, n)
        };
        (text(name), labels.iter().map(|l| text(*l)).collect())
    };
    with(|h| {
        if h.hostile.no_metrics {
            return 2;
        }
        h.metrics.push((name, labels));
        // SAFETY: the backend's out-pointer.
        unsafe { *id = h.metrics.len() - 1 };
        serin::abi::METRICS_SUCCESS
    })
}

/// # Safety
/// See [`define`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_counter(
    _config: EnvoyPtr,
    name: ModuleBuffer,
    labels: *const ModuleBuffer,
    n: usize,
    id: *mut usize,
) -> u32 {
    // SAFETY: forwarded.
    unsafe { define(name, labels, n, id) }
}

/// # Safety
/// See [`define`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
    _config: EnvoyPtr,
    name: ModuleBuffer,
    labels: *const ModuleBuffer,
    n: usize,
    id: *mut usize,
) -> u32 {
    // SAFETY: forwarded.
    unsafe { define(name, labels, n, id) }
}

/// # Safety
/// See [`define`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
    _config: EnvoyPtr,
    name: ModuleBuffer,
    labels: *const ModuleBuffer,
    n: usize,
    id: *mut usize,
) -> u32 {
    // SAFETY: forwarded.
    unsafe { define(name, labels, n, id) }
}

enum Op {
    Add(u64),
    Set(u64),
}

/// # Safety
/// `labels` holds `n` buffers.
unsafe fn update(id: usize, labels: *const ModuleBuffer, n: usize, op: Op) -> u32 {
    // SAFETY: the caller's promise.
    let values: Vec<String> = unsafe {
        let labels = if n == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(labels, n)
        };
        labels.iter().map(|l| text(*l)).collect()
    };
    with(|h| {
        let Some((name, names)) = h.metrics.get(id) else {
            return 1;
        };
        if names.len() != values.len() {
            return 2;
        }
        let labels: Vec<String> = names
            .iter()
            .zip(&values)
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let key = format!("{name}{{{}}}", labels.join(","));
        let slot = h.values.entry(key).or_default();
        match op {
            Op::Add(v) => *slot += v,
            Op::Set(v) => *slot = v,
        }
        serin::abi::METRICS_SUCCESS
    })
}

/// # Safety
/// See [`update`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
    _config: EnvoyPtr,
    id: usize,
    labels: *const ModuleBuffer,
    n: usize,
    value: u64,
) -> u32 {
    // SAFETY: forwarded.
    unsafe { update(id, labels, n, Op::Add(value)) }
}

/// # Safety
/// See [`update`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
    _config: EnvoyPtr,
    id: usize,
    labels: *const ModuleBuffer,
    n: usize,
    value: u64,
) -> u32 {
    // SAFETY: forwarded.
    unsafe { update(id, labels, n, Op::Set(value)) }
}

/// A histogram counts its samples here.
///
/// # Safety
/// See [`update`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
    _filter: EnvoyPtr,
    id: usize,
    labels: *const ModuleBuffer,
    n: usize,
    _value: u64,
) -> u32 {
    // SAFETY: forwarded.
    unsafe { update(id, labels, n, Op::Add(1)) }
}

/// A scheduler counts its commits, which the host keeps after the scheduler is deleted.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
    _config: EnvoyPtr,
) -> *mut c_void {
    let commits = Arc::new(AtomicU64::new(0));
    with(|h| h.last_scheduler = Some(commits.clone()));
    Arc::into_raw(commits) as *mut c_void
}

/// # Safety
/// A live scheduler from `scheduler_new`; any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
    scheduler: *mut c_void,
    _event: u64,
) {
    // SAFETY: live until `scheduler_delete`, as the ABI requires of the module.
    let commits = unsafe { &*(scheduler as *const AtomicU64) };
    commits.fetch_add(1, Ordering::Relaxed);
}

/// # Safety
/// A scheduler from `scheduler_new`, once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
    scheduler: *mut c_void,
) {
    // SAFETY: ours, from Arc::into_raw.
    drop(unsafe { Arc::from_raw(scheduler as *const AtomicU64) });
}

/// # Safety
/// `headers` holds `n` pairs; `id` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_http_callout(
    _config: EnvoyPtr,
    id: *mut u64,
    cluster: ModuleBuffer,
    headers: *const ModuleHeader,
    n: usize,
    _body: ModuleBuffer,
    _timeout_ms: u64,
) -> u32 {
    // SAFETY: the backend's buffers.
    let (cluster, path) = unsafe {
        let headers = std::slice::from_raw_parts(headers, n);
        let path = headers.iter().find_map(|h| {
            let key = std::slice::from_raw_parts(h.key, h.key_len);
            (key == b":path").then(|| {
                String::from_utf8_lossy(std::slice::from_raw_parts(h.value, h.value_len))
                    .into_owned()
            })
        });
        (text(cluster), path.unwrap_or_default())
    };
    with(|h| {
        h.callouts.push(format!("{cluster} {path}"));
        // SAFETY: the backend's out-pointer.
        unsafe { *id = h.callouts.len() as u64 };
    });
    0
}
