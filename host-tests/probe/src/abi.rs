//! The host functions of proxy-wasm ABI v0.2.1 the probe calls, and wrappers that hand back the
//! host's status code with whatever value came with it, untouched by any SDK's interpretation.

use std::alloc::{Layout, alloc, dealloc};

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_log(level: u32, ptr: *const u8, len: usize) -> u32;
    fn proxy_get_log_level(level: *mut u32) -> u32;
    fn proxy_get_buffer_bytes(
        ty: u32,
        start: usize,
        max: usize,
        out_ptr: *mut *mut u8,
        out_len: *mut usize,
    ) -> u32;
    fn proxy_get_buffer_status(ty: u32, len: *mut usize, flags: *mut u32) -> u32;
    fn proxy_set_buffer_bytes(
        ty: u32,
        start: usize,
        size: usize,
        ptr: *const u8,
        len: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(ty: u32, out_ptr: *mut *mut u8, out_len: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        ty: u32,
        key: *const u8,
        key_len: usize,
        out_ptr: *mut *mut u8,
        out_len: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        ty: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        ty: u32,
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(ty: u32, key: *const u8, key_len: usize) -> u32;
    fn proxy_get_header_map_size(ty: u32, size: *mut usize) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_len: usize,
        out_ptr: *mut *mut u8,
        out_len: *mut usize,
    ) -> u32;
    fn proxy_set_property(path: *const u8, path_len: usize, value: *const u8, len: usize) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_len: usize,
        out_ptr: *mut *mut u8,
        out_len: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key: *const u8,
        key_len: usize,
        value: *const u8,
        value_len: usize,
        cas: u32,
    ) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_len: usize,
        body: *const u8,
        body_len: usize,
        headers: *const u8,
        headers_len: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_len: usize,
        args: *const u8,
        args_len: usize,
        out_ptr: *mut *mut u8,
        out_len: *mut usize,
    ) -> u32;
    fn proxy_define_metric(ty: u32, name: *const u8, name_len: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_get_metric(id: u32, value: *mut u64) -> u32;
    fn proxy_continue_stream(ty: u32) -> u32;
    fn proxy_close_stream(ty: u32) -> u32;
    fn proxy_set_effective_context(id: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_http_call(
        upstream: *const u8,
        upstream_len: usize,
        headers: *const u8,
        headers_len: usize,
        body: *const u8,
        body_len: usize,
        trailers: *const u8,
        trailers_len: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> u32;
}

/// The allocator the host calls to hand values to the module (`malloc` is the name Envoy looks
/// for first). Blocks have byte alignment, so [`take`] can free them knowing only their size.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut u8 {
    match Layout::from_size_align(size.max(1), 1) {
        // SAFETY: the layout has a non-zero size.
        Ok(layout) => unsafe { alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Written into out-parameters before a call, to tell "the host wrote nothing" from a value.
const UNTOUCHED: usize = 0xFFFF_FFF0;

/// A value the host may have handed back through an (address, size) pair of out-parameters.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// The host left both out-parameters as they were.
    Untouched,
    Bytes(Vec<u8>),
}

/// Read and free what the host wrote into `(ptr, len)`.
fn take(ptr: *mut u8, len: usize) -> Out {
    if ptr as usize == UNTOUCHED && len == UNTOUCHED {
        return Out::Untouched;
    }
    if ptr.is_null() || len == 0 || ptr as usize == UNTOUCHED || len == UNTOUCHED {
        return Out::Bytes(Vec::new());
    }
    // SAFETY: the host allocated `len` bytes at `ptr` with `malloc` above and filled them.
    unsafe {
        let bytes = std::slice::from_raw_parts(ptr, len).to_vec();
        dealloc(ptr, Layout::from_size_align_unchecked(len, 1));
        Out::Bytes(bytes)
    }
}

/// Call a host function that returns bytes through `(out_ptr, out_len)`.
fn with_out(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> (u32, Out) {
    let mut ptr = UNTOUCHED as *mut u8;
    let mut len = UNTOUCHED;
    let status = call(&mut ptr, &mut len);
    (status, take(ptr, len))
}

pub fn log(level: u32, message: &str) -> u32 {
    unsafe { proxy_log(level, message.as_ptr(), message.len()) }
}

pub fn log_level() -> (u32, u32) {
    let mut level = u32::MAX;
    let status = unsafe { proxy_get_log_level(&mut level) };
    (status, level)
}

pub fn current_time() -> (u32, u64) {
    let mut t = 0;
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    (status, t)
}

pub fn buffer_bytes(ty: u32, start: usize, max: usize) -> (u32, Out) {
    with_out(|p, l| unsafe { proxy_get_buffer_bytes(ty, start, max, p, l) })
}

pub fn buffer_status(ty: u32) -> (u32, usize, u32) {
    let (mut len, mut flags) = (UNTOUCHED, u32::MAX);
    let status = unsafe { proxy_get_buffer_status(ty, &mut len, &mut flags) };
    (status, len, flags)
}

pub fn set_buffer_bytes(ty: u32, start: usize, size: usize, data: &[u8]) -> u32 {
    unsafe { proxy_set_buffer_bytes(ty, start, size, data.as_ptr(), data.len()) }
}

pub fn header_pairs(map: u32) -> (u32, Out) {
    with_out(|p, l| unsafe { proxy_get_header_map_pairs(map, p, l) })
}

pub fn header(map: u32, key: &str) -> (u32, Out) {
    with_out(|p, l| unsafe { proxy_get_header_map_value(map, key.as_ptr(), key.len(), p, l) })
}

pub fn replace_header(map: u32, key: &str, value: &str) -> u32 {
    unsafe {
        proxy_replace_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    }
}

pub fn add_header(map: u32, key: &str, value: &str) -> u32 {
    unsafe { proxy_add_header_map_value(map, key.as_ptr(), key.len(), value.as_ptr(), value.len()) }
}

pub fn remove_header(map: u32, key: &str) -> u32 {
    unsafe { proxy_remove_header_map_value(map, key.as_ptr(), key.len()) }
}

pub fn header_map_size(map: u32) -> (u32, usize) {
    let mut size = UNTOUCHED;
    let status = unsafe { proxy_get_header_map_size(map, &mut size) };
    (status, size)
}

/// A property by its path segments (joined with NUL bytes, as the ABI wants).
pub fn property(path: &[&str]) -> (u32, Out) {
    let path = path.join("\0");
    with_out(|p, l| unsafe { proxy_get_property(path.as_ptr(), path.len(), p, l) })
}

pub fn set_property(path: &[&str], value: &str) -> u32 {
    let path = path.join("\0");
    unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) }
}

pub fn shared_data(key: &str) -> (u32, Out, u32) {
    let mut cas = u32::MAX;
    let (status, out) =
        with_out(|p, l| unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), p, l, &mut cas) });
    (status, out, cas)
}

pub fn set_shared_data(key: &str, value: &str, cas: u32) -> u32 {
    unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
}

pub fn send_local_response(status: u32, details: &str, body: &[u8], headers: &[u8]) -> u32 {
    unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    }
}

pub fn foreign_function(name: &str, args: &[u8]) -> (u32, Out) {
    with_out(|p, l| unsafe {
        proxy_call_foreign_function(name.as_ptr(), name.len(), args.as_ptr(), args.len(), p, l)
    })
}

pub fn define_metric(ty: u32, name: &str) -> (u32, u32) {
    let mut id = u32::MAX;
    let status = unsafe { proxy_define_metric(ty, name.as_ptr(), name.len(), &mut id) };
    (status, id)
}

pub fn increment_metric(id: u32, offset: i64) -> u32 {
    unsafe { proxy_increment_metric(id, offset) }
}

pub fn record_metric(id: u32, value: u64) -> u32 {
    unsafe { proxy_record_metric(id, value) }
}

pub fn metric(id: u32) -> (u32, u64) {
    let mut value = u64::MAX;
    let status = unsafe { proxy_get_metric(id, &mut value) };
    (status, value)
}

pub fn continue_stream(ty: u32) -> u32 {
    unsafe { proxy_continue_stream(ty) }
}

pub fn close_stream(ty: u32) -> u32 {
    unsafe { proxy_close_stream(ty) }
}

pub fn set_effective_context(id: u32) -> u32 {
    unsafe { proxy_set_effective_context(id) }
}

pub fn http_call(upstream: &str, headers: &[u8]) -> (u32, u32) {
    let mut token = u32::MAX;
    let status = unsafe {
        proxy_http_call(
            upstream.as_ptr(),
            upstream.len(),
            headers.as_ptr(),
            headers.len(),
            std::ptr::null(),
            0,
            std::ptr::null(),
            0,
            1000,
            &mut token,
        )
    };
    (status, token)
}

/// Header pairs in the ABI's serialization: a count, (key length, value length) per pair, then
/// each key and value NUL-terminated.
pub fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        for part in [k, v] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
    }
    out
}

/// The pairs of a serialized map, or `None` if it does not parse.
pub fn parse_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let word = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let count = word(0)?;
    let mut pos = 4 + count.checked_mul(8)?;
    let mut pairs = Vec::new();
    for i in 0..count {
        let (key_len, value_len) = (word(4 + i * 8)?, word(8 + i * 8)?);
        let key = bytes.get(pos..pos + key_len)?.to_vec();
        pos += key_len + 1;
        let value = bytes.get(pos..pos + value_len)?.to_vec();
        pos += value_len + 1;
        pairs.push((key, value));
    }
    (pos == bytes.len()).then_some(pairs)
}
