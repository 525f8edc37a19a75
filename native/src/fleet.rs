//! Fleet mode: once an interval the engine names a Prometheus query, sent here as a config-level
//! HTTP callout from the main thread; the answer goes back to the engine that asked.

use std::ffi::c_void;

use serin_policy::fleet::{self, MAX_ANSWER_BYTES};

use crate::abi::{
    self, CALLOUT_SUCCESS, EnvoyBuffer, EnvoyHeader, EnvoyPtr, LOG_WARN, ModuleBuffer,
    ModuleHeader, log,
};
use crate::{Config, guarded, now_ms, with_shared};

/// The worker whose engine asks Prometheus and takes its answers.
const ASKING_WORKER: usize = 0;

/// Ask Prometheus when an engine finds the interval over (one query per proxy per interval).
pub fn ask(config: &Config) {
    let now = now_ms();
    // One engine asks for the proxy; its answer reaches the others through the shared state.
    let worker = ASKING_WORKER;
    let Some(call) = with_shared(|shared| config.engine(worker).fleet_call(now, shared)) else {
        return;
    };
    let header = |k: &'static str, v: &str| ModuleHeader {
        key: k.as_ptr(),
        key_len: k.len(),
        value: v.as_ptr(),
        value_len: v.len(),
    };
    let headers = [
        header(":method", "GET"),
        header(":path", &call.path),
        header(":authority", &call.authority),
        header("host", &call.authority),
    ];
    let mut id = 0u64;
    // SAFETY: main thread; the buffers outlive the call (Envoy copies them).
    let result = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_http_callout(
            config.envoy.0,
            &mut id,
            ModuleBuffer::of(call.cluster.as_bytes()),
            headers.as_ptr(),
            headers.len(),
            ModuleBuffer::NULL,
            u64::from(call.timeout_ms),
        )
    };
    if result == CALLOUT_SUCCESS {
        *config.asking.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        return;
    }
    let failed = Err(format!(
        "cannot call cluster `{}`: callout result {result}",
        call.cluster
    ));
    answer(config, worker, failed);
}

fn answer(config: &Config, worker: usize, answer: Result<&[u8], String>) {
    let mut engine = config.engine(worker);
    let outcome = with_shared(|shared| engine.fleet_answer(now_ms(), answer, shared));
    if let Some(refused) = outcome.refused {
        log(
            LOG_WARN,
            &format!("serin: {refused}; keeping the local rollout"),
        );
    }
    if let Some(t) = outcome.transition {
        log(
            LOG_WARN,
            &format!("serin: rollout transition {}", t.log_line()),
        );
    }
}

/// Prometheus's answer, or its absence (a reset, an overflow).
///
/// # Safety
/// Envoy passes the config `config_new` returned and buffers valid for this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: EnvoyPtr,
    config: *const c_void,
    id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    n_headers: usize,
    chunks: *const EnvoyBuffer,
    n_chunks: usize,
) {
    // SAFETY: Envoy keeps the config alive while its callouts are pending.
    let config = unsafe { &*(config as *const Config) };
    // SAFETY: Envoy's arrays, valid for this call (null when empty).
    let (headers, chunks) = unsafe { (slice(headers, n_headers), slice(chunks, n_chunks)) };
    guarded("config_http_callout_done", (), || {
        // The answer to the query in flight; any other (a late one) is dropped.
        {
            let mut asking = config.asking.lock().unwrap_or_else(|p| p.into_inner());
            if *asking != Some(id) {
                return;
            }
            *asking = None;
        }
        let status = headers.iter().find_map(|h| {
            // SAFETY: Envoy's header views, valid for this call.
            let key = unsafe {
                EnvoyBuffer {
                    ptr: h.key,
                    len: h.key_len,
                }
                .bytes()
            };
            (key == b":status").then(|| unsafe {
                EnvoyBuffer {
                    ptr: h.value,
                    len: h.value_len,
                }
                .bytes()
            })
        });
        let size: usize = chunks.iter().map(|c| c.len).sum();
        // Copy no more than the engine would accept.
        let body = || -> Vec<u8> {
            // SAFETY: Envoy's body views, valid for this call.
            chunks
                .iter()
                .flat_map(|c| unsafe { c.bytes() })
                .copied()
                .collect()
        };
        let body = (size <= MAX_ANSWER_BYTES).then(body).unwrap_or_default();
        let status = status.filter(|_| result == CALLOUT_SUCCESS);
        let why = format!("callout result {result}");
        let answer = fleet::reply(status, size, &body, &why);
        self::answer(config, ASKING_WORKER, answer);
    });
}

/// # Safety
/// `ptr` points to `n` values (or is null with `n == 0`).
unsafe fn slice<'a, T>(ptr: *const T, n: usize) -> &'a [T] {
    if ptr.is_null() || n == 0 {
        return &[];
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(ptr, n) }
}
