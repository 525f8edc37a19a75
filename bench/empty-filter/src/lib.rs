//! The cheapest filter the proxy-wasm ABI allows: an HTTP context per stream whose callbacks
//! all return `Continue` (the SDK's defaults). `cargo xtask bench` runs it as config (d), the
//! floor that Serin's own per-request cost is measured against.

use proxy_wasm::traits::{Context, HttpContext};

proxy_wasm::main! {{
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(Empty) });
}}

struct Empty;

impl Context for Empty {}

impl HttpContext for Empty {}
