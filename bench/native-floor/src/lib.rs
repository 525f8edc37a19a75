//! The native split's floor, for issue 20's instruction target: an Envoy dynamic module that
//! does only what any sticky header split must do per request under this ABI, and nothing of
//! Serin's engine. On the request headers: read `x-user-id` in place, hash it (MurmurHash3, as
//! the plan's lanes do), set the routing header and re-pick the route. On the response headers:
//! read `:status`. Plus one clock read a request, as measuring latency needs.
//!
//! Measured in place of `libserin.so` under config (f′):
//! `cargo xtask bench-instructions --only f′ --native-module target/native/libserin_native_floor.so`
//! (build: `cargo build -p serin-bench-native-floor --profile native`). What (f′) costs above
//! this is the engine and its metrics; what this costs above no filter (a) is the ABI's floor.
//!
//! It shares the backend's hand-written ABI declarations and its no-op hooks, so the two
//! modules make exactly the same calls into Envoy for the same work.

use std::ffi::c_void;
use std::time::Instant;

#[allow(dead_code)] // the floor uses a few of the declarations
#[path = "../../../native/src/abi.rs"]
mod abi;
#[path = "../../../native/src/unused.rs"]
mod unused;

use abi::{EnvoyBuffer, EnvoyHeader, EnvoyPtr, ModuleBuffer, REQUEST_HEADER, RESPONSE_HEADER};

const CONTINUE: u32 = 0;
/// A non-null pointer for Envoy to hand back: the floor keeps no state.
const NOTHING: *const c_void = std::ptr::dangling::<u8>() as *const c_void;
/// 5% of the hash space, like `examples/percent-canary.toml`.
const CANARY_BELOW: u32 = u32::MAX / 20;

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    abi::ABI_VERSION.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _: EnvoyPtr,
    _: EnvoyBuffer,
    _: EnvoyBuffer,
) -> *const c_void {
    NOTHING
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_: *const c_void) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _: EnvoyPtr,
    _: *const c_void,
    _: u64,
) {
}

#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the ABI's signature
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _: EnvoyPtr,
    _: *const c_void,
    _: u64,
    _: u32,
    _: *const EnvoyHeader,
    _: usize,
    _: *const EnvoyBuffer,
    _: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    _: *const c_void,
    _: EnvoyPtr,
) -> *const c_void {
    NOTHING
}

/// # Safety
/// Envoy's stream pointer, on the stream's worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter: EnvoyPtr,
    _: *const c_void,
    _: bool,
) -> u32 {
    let started = Instant::now();
    let key = header(filter, REQUEST_HEADER, "x-user-id").unwrap_or_default();
    let arm = if serin_policy::murmur3_x86_32(b"salt:", key, 0) < CANARY_BELOW {
        "canary"
    } else {
        "stable"
    };
    // SAFETY: this stream's hook; the buffers outlive the calls.
    unsafe {
        abi::envoy_dynamic_module_callback_http_set_header(
            filter,
            REQUEST_HEADER,
            ModuleBuffer::of(b"x-serin-arm"),
            ModuleBuffer::of(arm.as_bytes()),
        );
        abi::envoy_dynamic_module_callback_http_clear_route_cache(filter);
    }
    std::hint::black_box(started);
    CONTINUE
}

/// # Safety
/// Envoy's stream pointer, on the stream's worker.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter: EnvoyPtr,
    _: *const c_void,
    _: bool,
) -> u32 {
    std::hint::black_box(header(filter, RESPONSE_HEADER, ":status"));
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _: EnvoyPtr,
    _: *const c_void,
    _: bool,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _: EnvoyPtr,
    _: *const c_void,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _: EnvoyPtr,
    _: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_: *const c_void) {}

/// A header's first value, in place.
fn header<'e>(filter: EnvoyPtr, header_type: u32, name: &str) -> Option<&'e [u8]> {
    let mut out = EnvoyBuffer::EMPTY;
    // SAFETY: this stream's hook; the view is read before any header is written.
    unsafe {
        abi::envoy_dynamic_module_callback_http_get_header(
            filter,
            header_type,
            ModuleBuffer::of(name.as_bytes()),
            &mut out,
            0,
            std::ptr::null_mut(),
        )
        .then(|| out.bytes())
    }
}
