//! Hooks Envoy requires every HTTP filter module to export but Serin has no use for: request
//! bodies and trailers, per-stream callouts and schedules, watermarks. Each lets the stream go on.

use std::ffi::c_void;

use crate::abi::{EnvoyBuffer, EnvoyHeader, EnvoyPtr};

const CONTINUE: u32 = 0;

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _: EnvoyPtr,
    _: *const c_void,
    _: bool,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _: EnvoyPtr,
    _: *const c_void,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
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
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _: EnvoyPtr,
    _: *const c_void,
    _: u64,
    _: *const EnvoyHeader,
    _: usize,
    _: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _: EnvoyPtr,
    _: *const c_void,
    _: u64,
    _: *const EnvoyBuffer,
    _: usize,
    _: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _: EnvoyPtr,
    _: *const c_void,
    _: u64,
    _: *const EnvoyHeader,
    _: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _: EnvoyPtr,
    _: *const c_void,
    _: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _: EnvoyPtr,
    _: *const c_void,
    _: u64,
    _: u32,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _: EnvoyPtr,
    _: *const c_void,
    _: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _: EnvoyPtr,
    _: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _: EnvoyPtr,
    _: *const c_void,
) {
}
