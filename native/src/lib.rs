//! Serin's native backend: an Envoy dynamic module (`libserin.so`) that runs a plan with the
//! same [`serin_policy::Engine`] as `filter.wasm`. Glue only: each hook reads from Envoy what the
//! engine asks for and writes back what it returns.
//!
//! - Envoy calls `config_new` once per filter config on the main thread: the plan is parsed
//!   (refused with the reason in the log), one engine is made per worker, the catalogue's
//!   metrics are defined, and a ticker thread starts.
//! - Per stream (`stream.rs`), on the stream's worker: that worker's engine routes and measures.
//! - HTTP filters have no tick: the ticker thread wakes the main thread once a second through
//!   the config scheduler, and `config_scheduled` ticks every worker's engine there, flushes the
//!   metric tallies and, in fleet mode, asks Prometheus (`fleet.rs`).
//! - A panic never unwinds into Envoy: every hook catches it (`guarded`), a request being routed
//!   goes to the stable arm, and the panic is counted in `serin_panics_total`.

pub mod abi;
mod fleet;
mod metrics;
mod stream;
mod unused;

pub use fleet::envoy_dynamic_module_on_http_filter_config_http_callout_done;
pub use stream::{
    envoy_dynamic_module_on_http_filter_destroy, envoy_dynamic_module_on_http_filter_new,
    envoy_dynamic_module_on_http_filter_request_headers,
    envoy_dynamic_module_on_http_filter_response_body,
    envoy_dynamic_module_on_http_filter_response_headers,
    envoy_dynamic_module_on_http_filter_response_trailers,
    envoy_dynamic_module_on_http_filter_stream_complete,
};

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serin_policy::guard::Params;
use serin_policy::{Engine, InMemory, Plan};

use crate::abi::{EnvoyBuffer, EnvoyPtr, LOG_ERROR, LOG_INFO, LOG_WARN, log};
use crate::metrics::Metrics;

/// How often the engines publish their counts and advance the rollout.
const TICK_MS: u64 = 1000;

/// The workers' shared data (merged windows, rollout states, the fleet book), process-wide as
/// proxy-wasm's is, so a reload of the same policy finds its rollout where it was. Only the main
/// thread reads or writes it (engines tick there).
static SHARED: Mutex<Option<InMemory>> = Mutex::new(None);

/// Hook panics caught since the last flush, on any thread.
static PANICS: AtomicU64 = AtomicU64::new(0);

/// One filter config: a plan, an engine per worker, the metrics, the ticker.
pub struct Config {
    envoy: Envoy,
    engines: Vec<Mutex<Engine>>,
    metrics: Metrics,
    /// Where a request goes when a hook panics: the routing header and the stable arm's value.
    stable: (String, String),
    ticker: Option<Ticker>,
    /// Fleet mode: the callout id of the query in flight.
    asking: Mutex<Option<u64>>,
}

/// Envoy's pointer to the config; Envoy keeps it valid until `config_destroy`.
struct Envoy(EnvoyPtr);
// SAFETY: the pointer is only handed back to Envoy, from the main thread (callouts, config
// metrics) or to the scheduler, whose commit is safe from any thread.
unsafe impl Send for Envoy {}
unsafe impl Sync for Envoy {}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    scheduler: Envoy,
}

impl Config {
    /// This worker's engine. A panic while it was held leaves it usable: the engine's state
    /// is plain counts, and dropping it would lose more than a half-counted request.
    fn engine(&self, worker: usize) -> MutexGuard<'_, Engine> {
        let m = &self.engines[worker % self.engines.len()];
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Run a hook's body; a panic is logged, counted, and answered with `fallback`.
fn guarded<T>(hook: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(payload) => {
            PANICS.fetch_add(1, Ordering::Relaxed);
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log(LOG_ERROR, &format!("serin: panic in {hook}: {what}"));
            fallback
        }
    }
}

fn with_shared<T>(f: impl FnOnce(&mut InMemory) -> T) -> T {
    let mut guard = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(InMemory::default))
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    abi::ABI_VERSION.as_ptr()
}

/// # Safety
/// Envoy passes its config pointer and two buffers valid for this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: EnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy's buffer, valid for this call.
    let json = unsafe { config.bytes() };
    guarded("config_new", std::ptr::null(), || {
        match configure(config_envoy, json) {
            Ok(config) => Box::into_raw(Box::new(config)) as *const c_void,
            Err(e) => {
                // Refusing the config keeps Envoy from serving with a half-understood policy.
                log(
                    LOG_ERROR,
                    &format!("serin: refusing plugin configuration: {e}"),
                );
                std::ptr::null()
            }
        }
    })
}

fn configure(config_envoy: EnvoyPtr, json: &[u8]) -> Result<Config, String> {
    let plan = Plan::from_json(json).map_err(|e| e.to_string())?;
    // SAFETY: main thread, during config_new, as the ABI requires.
    let workers = unsafe { abi::envoy_dynamic_module_callback_get_concurrency() }.max(1);
    // As in filter.wasm: a sub-window is judged once every worker has ticked after it ended.
    let params = Params {
        settle_ms: (TICK_MS * 3 / 2) as u32,
        ..Params::default()
    };
    let engines: Vec<Mutex<Engine>> = (0..workers)
        .map(|_| Mutex::new(Engine::new(plan.clone(), params.clone())))
        .collect();
    let metrics = {
        let engine = engines[0].lock().map_err(|_| "poisoned")?;
        log(LOG_INFO, &format!("serin: {}", engine.summary()));
        Metrics::define(config_envoy, engine.catalogue())
    };
    let stable = (
        plan.routing_header.clone(),
        plan.arm(plan.stable).value.clone(),
    );
    let mut config = Config {
        envoy: Envoy(config_envoy),
        engines,
        metrics,
        stable,
        ticker: None,
        asking: Mutex::new(None),
    };
    // Pick up a rollout already under way (a reload of the same policy).
    tick(&config);
    config.ticker = Some(start_ticker(config_envoy));
    Ok(config)
}

/// A thread that wakes the main thread every tick through the config's scheduler.
fn start_ticker(config_envoy: EnvoyPtr) -> Ticker {
    // SAFETY: main thread, config pointer valid; deleted in config_destroy after the thread ends.
    let scheduler = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(config_envoy)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, sched) = (stop.clone(), Envoy(scheduler));
    let thread = std::thread::Builder::new()
        .name("serin-ticker".into())
        .spawn(move || {
            let sched = sched;
            while !flag.load(Ordering::Acquire) {
                std::thread::park_timeout(Duration::from_millis(TICK_MS));
                if flag.load(Ordering::Acquire) {
                    break;
                }
                // SAFETY: the scheduler lives until this thread has been joined.
                unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
                        sched.0, 0,
                    )
                };
            }
        })
        .expect("a thread can be spawned");
    Ticker {
        stop,
        thread,
        scheduler: Envoy(scheduler),
    }
}

/// # Safety
/// `config` is what `config_new` returned, not destroyed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    // SAFETY: ours, from Box::into_raw in config_new; Envoy destroys it once.
    let mut config = unsafe { Box::from_raw(config as *mut Config) };
    guarded("config_destroy", (), || {
        if let Some(t) = config.ticker.take() {
            t.stop.store(true, Ordering::Release);
            t.thread.thread().unpark();
            let _ = t.thread.join();
            // SAFETY: no thread commits to it any more.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
                    t.scheduler.0,
                )
            };
        }
    });
}

/// The ticker's wake-up, on the main thread.
///
/// # Safety
/// `config` is what `config_new` returned, not destroyed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: EnvoyPtr,
    config: *const c_void,
    _event: u64,
) {
    // SAFETY: Envoy keeps the config alive while it schedules events for it.
    let config = unsafe { &*(config as *const Config) };
    guarded("config_scheduled", (), || {
        tick(config);
        fleet::ask(config);
    });
}

/// Every worker's engine publishes its window and advances the shared rollout; one transition
/// line per change; the metric tallies go to Envoy.
fn tick(config: &Config) {
    let now = now_ms();
    for worker in 0..config.engines.len() {
        let mut engine = config.engine(worker);
        if let Some(t) = with_shared(|shared| engine.tick(now, shared)) {
            log(
                LOG_WARN,
                &format!("serin: rollout transition {}", t.log_line()),
            );
        }
        engine.flush(|series, update| config.metrics.flush(config.envoy.0, series, update));
    }
    let panics = PANICS.swap(0, Ordering::Relaxed);
    config.metrics.count_panics(config.envoy.0, panics);
}
