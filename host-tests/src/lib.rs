//! A wasmtime host for the proxy-wasm ABI v0.2.1 that runs a filter module the way Envoy 1.40
//! does, so that Serin's tests and benches drive the real `filter.wasm`.
//!
//! The vocabulary follows the filter's life cycle:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use serin_host_tests::{Action, Host};
//! let host = Host::new(&std::fs::read("target/filter.wasm")?)?;
//! let mut worker = host.worker()?;
//! assert!(worker.configure(br#"{"format": 1}"#)?);
//! let mut stream = worker.request().path("/").header("x-user-id", "42");
//! assert_eq!(stream.send_headers()?, Action::Continue);
//! println!("{:?}", stream.request_header("x-serin-arm"));
//! stream.deliver_response_headers(&[(":status", "200")], true)?;
//! stream.done()?;
//! # Ok(()) }
//! ```
//!
//! A [`Host`] is one Envoy process: the compiled module, the virtual clock, shared data, shared
//! queues and the stats store. Each [`Worker`] is one worker thread's VM, with its own wasmtime
//! `Store` holding all of its host state. Nothing is global, so tests run in parallel.
//!
//! For debugging a filter: `SERIN_HOST_TRACE=1` prints every host↔VM call (or
//! [`HostConfig::trace`]); `SERIN_HOST_PERFMAP=1` has wasmtime write `/tmp/perf-<pid>.map`, which
//! names the module's JIT-compiled functions in `perf report` (build the module with
//! `CARGO_PROFILE_WASM_STRIP=false` to keep its names).

#![forbid(unsafe_code)]

pub mod abi;
pub mod headers;
mod hostcalls;
mod imports;
pub mod pairs;
mod properties;
mod shared;
mod state;
mod wasi;

#[cfg(test)]
mod conformance;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use wasmtime::{Engine, Instance, Linker, Module, Store, TypedFunc};

pub use abi::{Action, BufferType, LogLevel, MapType, MetricType, Status, StreamType};
pub use headers::HeaderMap;
pub use shared::MetricValue;
pub use state::{ForeignCall, HttpCall, LocalResponse, LogEntry};

use shared::{Clock, Shared};
use state::{ContextKind, HostState, HttpCallResponse, StreamState};

/// How the host presents itself to the module.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// `vm_config.vm_id`: scopes shared data and queues.
    pub vm_id: String,
    /// `root_id` of the plugin.
    pub root_id: String,
    /// The plugin's `name` (the `plugin_name` property).
    pub plugin_name: String,
    /// `vm_config.configuration`, read in `proxy_on_vm_start`.
    pub vm_config: Vec<u8>,
    /// Envoy's log level for the module: lower levels are dropped, and `proxy_get_log_level`
    /// returns it. Envoy's default is `info`.
    pub log_level: LogLevel,
    /// Print every host↔VM call to stderr. Also on when `SERIN_HOST_TRACE` is set.
    pub trace: bool,
    /// `vm_config.environment_variables`, for WASI modules.
    pub env: Vec<(String, String)>,
    /// Cluster names `proxy_http_call` may target.
    pub clusters: Vec<String>,
    /// Properties every context can read, by path (e.g. `["node", "id"]`).
    pub properties: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Where the virtual clock starts.
    pub start_time: SystemTime,
    /// Seed for `random_get`.
    pub random_seed: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            vm_id: String::new(),
            root_id: String::new(),
            plugin_name: "serin".into(),
            vm_config: Vec::new(),
            log_level: LogLevel::Info,
            trace: std::env::var_os("SERIN_HOST_TRACE").is_some_and(|v| !v.is_empty() && v != "0"),
            env: Vec::new(),
            clusters: Vec::new(),
            properties: BTreeMap::new(),
            // 2026-01-01T00:00:00Z: a fixed start keeps runs reproducible.
            start_time: UNIX_EPOCH + Duration::from_secs(1_767_225_600),
            random_seed: 0x5e41_2026,
        }
    }
}

impl HostConfig {
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = on;
        self
    }
    pub fn vm_id(mut self, id: impl Into<String>) -> Self {
        self.vm_id = id.into();
        self
    }
    pub fn root_id(mut self, id: impl Into<String>) -> Self {
        self.root_id = id.into();
        self
    }
    pub fn plugin_name(mut self, name: impl Into<String>) -> Self {
        self.plugin_name = name.into();
        self
    }
    pub fn vm_config(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.vm_config = bytes.into();
        self
    }
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.clusters.push(name.into());
        self
    }
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties
            .insert(path.join("\0").into_bytes(), value.into());
        self
    }
}

struct Compiled {
    engine: Engine,
    module: Module,
    linker: Linker<HostState>,
}

/// One Envoy process running one plugin: the compiled module plus process-wide state.
/// Cloning shares everything.
#[derive(Clone)]
pub struct Host {
    compiled: Arc<Compiled>,
    config: Arc<HostConfig>,
    shared: Arc<Mutex<Shared>>,
    clock: Arc<Clock>,
    next_worker: Arc<AtomicU32>,
    /// Envoy's connection ids are process-wide.
    next_connection: Arc<AtomicU64>,
}

fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// Where the filter's wasm is: `$SERIN_FILTER_WASM`, else `target/filter.wasm` in the workspace.
pub fn filter_wasm_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SERIN_FILTER_WASM") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("filter.wasm")
}

/// The filter's wasm bytes, or an error that says how to build them.
pub fn filter_wasm() -> Result<Vec<u8>> {
    read_filter_wasm(&filter_wasm_path())
}

fn read_filter_wasm(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "cannot read the filter module at `{}`: run `cargo xtask wasm` to build it \
             (or point SERIN_FILTER_WASM at a built filter.wasm)",
            path.display()
        )
    })
}

impl Host {
    /// Compile a module with the default [`HostConfig`].
    pub fn new(wasm: &[u8]) -> Result<Host> {
        Host::with_config(wasm, HostConfig::default())
    }

    pub fn with_config(wasm: &[u8], config: HostConfig) -> Result<Host> {
        let mut wconfig = wasmtime::Config::new();
        if std::env::var_os("SERIN_HOST_PERFMAP").is_some_and(|v| !v.is_empty() && v != "0") {
            // `/tmp/perf-<pid>.map` names the JIT-compiled functions for `perf report`, or for
            // matching callgrind's unnamed frames to the module's functions by address.
            wconfig.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wconfig).map_err(wt)?;
        let module = Module::new(&engine, wasm)
            .map_err(wt)
            .context("compiling the module")?;
        let mut linker = Linker::new(&engine);
        hostcalls::add_to_linker(&mut linker).map_err(wt)?;
        wasi::add_to_linker(&mut linker).map_err(wt)?;
        let host = Host {
            compiled: Arc::new(Compiled {
                engine,
                module,
                linker,
            }),
            shared: Arc::new(Mutex::new(Shared::new())),
            clock: Arc::new(Clock::new(config.start_time)),
            config: Arc::new(config),
            next_worker: Arc::new(AtomicU32::new(0)),
            next_connection: Arc::new(AtomicU64::new(0)),
        };
        host.check_abi()?;
        Ok(host)
    }

    /// A new process with its own state that reuses this host's compiled module.
    pub fn fresh(&self) -> Host {
        self.fresh_with_config((*self.config).clone())
    }

    pub fn fresh_with_config(&self, config: HostConfig) -> Host {
        Host {
            compiled: self.compiled.clone(),
            shared: Arc::new(Mutex::new(Shared::new())),
            clock: Arc::new(Clock::new(config.start_time)),
            config: Arc::new(config),
            next_worker: Arc::new(AtomicU32::new(0)),
            next_connection: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    fn check_abi(&self) -> Result<()> {
        let exports: Vec<&str> = self.compiled.module.exports().map(|e| e.name()).collect();
        if exports.contains(&"proxy_abi_version_0_2_1")
            || exports.contains(&"proxy_abi_version_0_2_0")
        {
            return Ok(());
        }
        if exports.contains(&"proxy_abi_version_0_1_0") {
            bail!("the module speaks proxy-wasm ABI 0.1.0; this host implements 0.2.1");
        }
        bail!("the module exports no proxy_abi_version_* marker, so Envoy would refuse it")
    }

    /// Names the module imports, as `module.name`.
    pub fn imports(&self) -> Vec<String> {
        self.compiled
            .module
            .imports()
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect()
    }

    /// Start a new worker's VM: instantiate and run `_initialize` (and `main`) as Envoy does.
    pub fn worker(&self) -> Result<Worker> {
        Worker::start(self.clone())
    }

    /// A worker whose `proxy_on_configure` accepted `plugin_config`; an error carries its logs.
    pub fn configured_worker(&self, plugin_config: impl AsRef<[u8]>) -> Result<Worker> {
        let mut w = self.worker()?;
        if !w.configure(plugin_config)? {
            bail!("proxy_on_configure returned false; logs:\n{}", w.log_text());
        }
        Ok(w)
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Move the virtual clock forward. Ticks fall due; deliver them with [`Worker::run_due_ticks`].
    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The virtual wall-clock time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.clock.now().0)
    }

    /// Custom metrics by name, as the stats store holds them (summed over workers).
    pub fn metrics(&self) -> BTreeMap<String, MetricValue> {
        self.shared().metrics_by_name()
    }

    pub fn metric(&self, name: &str) -> Option<MetricValue> {
        self.metrics().remove(name)
    }

    /// Shared data under this host's vm_id: the value and its CAS.
    pub fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared()
            .get_data(&self.config.vm_id, key.as_bytes())
            .ok()
    }

    /// Set shared data as another VM would (CAS 0: unconditional).
    pub fn set_shared_data(&self, key: &str, value: impl AsRef<[u8]>) {
        let _ = self
            .shared()
            .set_data(&self.config.vm_id, key.as_bytes(), value.as_ref(), 0);
    }

    /// Enqueue on a queue some worker registered; its owner gets `proxy_on_queue_ready` on
    /// its next [`Worker::pump`].
    pub fn enqueue(&self, queue: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let mut shared = self.shared();
        let token = shared
            .resolve_queue(&self.config.vm_id, queue.as_bytes())
            .ok_or_else(|| anyhow!("no queue `{queue}` is registered"))?;
        shared
            .enqueue(token, value.as_ref())
            .map_err(|s| anyhow!("enqueue failed: {s}"))
    }
}

/// An export the host calls. Cloning a `TypedFunc` clones its registered type (a lock and a
/// hash in the engine's type registry), which cost more than the call itself; an `Arc` is shared
/// for the price of a reference count.
type Callback<Params, Results> = Option<Arc<TypedFunc<Params, Results>>>;

/// The module's exported callbacks, as far as it has them.
struct Callbacks {
    on_context_create: Callback<(i32, i32), ()>,
    on_vm_start: Callback<(i32, i32), i32>,
    on_configure: Callback<(i32, i32), i32>,
    on_tick: Callback<i32, ()>,
    on_queue_ready: Callback<(i32, i32), ()>,
    on_done: Callback<i32, i32>,
    on_log: Callback<i32, ()>,
    on_delete: Callback<i32, ()>,
    on_request_headers: Callback<(i32, i32, i32), i32>,
    on_request_body: Callback<(i32, i32, i32), i32>,
    on_request_trailers: Callback<(i32, i32), i32>,
    on_response_headers: Callback<(i32, i32, i32), i32>,
    on_response_body: Callback<(i32, i32, i32), i32>,
    on_response_trailers: Callback<(i32, i32), i32>,
    on_http_call_response: Callback<(i32, i32, i32, i32, i32), ()>,
    on_foreign_function: Callback<(i32, i32, i32), ()>,
}

/// One worker thread's VM.
pub struct Worker {
    host: Host,
    store: Store<HostState>,
    #[cfg_attr(not(test), allow(dead_code))]
    instance: Instance,
    callbacks: Callbacks,
    failure: Option<String>,
    vm_started: bool,
    configured: Option<bool>,
}

impl Worker {
    fn start(host: Host) -> Result<Worker> {
        let id = host.next_worker.fetch_add(1, Ordering::Relaxed);
        let state = HostState::new(
            id,
            host.config.clone(),
            host.shared.clone(),
            host.clock.clone(),
        );
        let mut store = Store::new(&host.compiled.engine, state);
        let instance = host
            .compiled
            .linker
            .instantiate(&mut store, &host.compiled.module)
            .map_err(wt)
            .context("instantiating the module (Envoy fails on a missing import the same way)")?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| anyhow!("the module exports no `memory`"))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "malloc")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate"))
            .map_err(|_| anyhow!("Wasm module is missing malloc function (neither `malloc` nor `proxy_on_memory_allocate`)"))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().alloc = Some(Arc::new(alloc));

        macro_rules! get {
            ($name:literal) => {
                match instance.get_func(&mut store, $name) {
                    None => None,
                    Some(f) => Some(Arc::new(f.typed(&store).map_err(wt).with_context(
                        || format!("the module's `{}` has the wrong signature", $name),
                    )?)),
                }
            };
        }
        let callbacks = Callbacks {
            on_context_create: get!("proxy_on_context_create"),
            on_vm_start: get!("proxy_on_vm_start"),
            on_configure: get!("proxy_on_configure"),
            on_tick: get!("proxy_on_tick"),
            on_queue_ready: get!("proxy_on_queue_ready"),
            on_done: get!("proxy_on_done"),
            on_log: get!("proxy_on_log"),
            on_delete: get!("proxy_on_delete"),
            on_request_headers: get!("proxy_on_request_headers"),
            on_request_body: get!("proxy_on_request_body"),
            on_request_trailers: get!("proxy_on_request_trailers"),
            on_response_headers: get!("proxy_on_response_headers"),
            on_response_body: get!("proxy_on_response_body"),
            on_response_trailers: get!("proxy_on_response_trailers"),
            on_http_call_response: get!("proxy_on_http_call_response"),
            on_foreign_function: get!("proxy_on_foreign_function"),
        };
        let initialize: Callback<(), ()> = get!("_initialize");
        let main: Callback<(i32, i32), i32> = get!("main");
        let main_void: Callback<(), i32> = get!("__main_void");
        let start: Callback<(), ()> = get!("_start");

        let mut w = Worker {
            host,
            store,
            instance,
            callbacks,
            failure: None,
            vm_started: false,
            configured: None,
        };
        w.store.data_mut().restricted = true;
        let r = (|| -> Result<()> {
            if let Some(init) = initialize {
                w.call("_initialize", 0, |s| init.call(s, ()))?;
                if let Some(main) = main {
                    w.call("main", 0, |s| main.call(s, (0, 0)))?;
                } else if let Some(main) = main_void {
                    w.call("__main_void", 0, |s| main.call(s, ()))?;
                }
            } else if let Some(start) = start {
                w.call("_start", 0, |s| start.call(s, ()))?;
            }
            Ok(())
        })();
        w.store.data_mut().restricted = false;
        r?;
        Ok(w)
    }

    /// Call into the VM with `context` current. A trap fails the VM for good (Envoy's
    /// fail-closed default), and the error carries the module's last error logs.
    fn call<R>(
        &mut self,
        what: &str,
        context: u32,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        if let Some(failure) = &self.failure {
            bail!("the VM failed earlier and serves no more calls: {failure}");
        }
        let d = self.store.data_mut();
        let saved = (d.current_context, d.effective_context);
        d.current_context = context;
        d.effective_context = 0;
        if d.trace {
            eprintln!("[w{}] host->vm {what} ctx={context}", d.worker);
        }
        let r = f(&mut self.store);
        let d = self.store.data_mut();
        (d.current_context, d.effective_context) = saved;
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                let logs: Vec<String> = d
                    .logs
                    .iter()
                    .rev()
                    .take_while(|l| l.level >= LogLevel::Error)
                    .map(|l| l.message.clone())
                    .collect();
                let msg = format!("{what} trapped: {e:?}");
                self.failure = Some(msg.clone());
                if logs.is_empty() {
                    bail!("{msg}")
                }
                bail!(
                    "{msg}\nmodule logs:\n{}",
                    logs.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }

    pub fn id(&self) -> u32 {
        self.store.data().worker
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Why the VM failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Turn call tracing on or off for this worker.
    pub fn set_trace(&mut self, on: bool) {
        self.store.data_mut().trace = on;
    }

    /// The root context's id (0 before [`Worker::vm_start`]).
    pub fn root_context_id(&self) -> u32 {
        self.store.data().root_context
    }

    fn new_context(&mut self, kind: ContextKind) -> u32 {
        let d = self.store.data_mut();
        let id = d.next_context_id;
        d.next_context_id += 1;
        d.contexts.insert(id, kind);
        id
    }

    /// Create the root context and call `proxy_on_vm_start`, as Envoy does once per VM.
    pub fn vm_start(&mut self) -> Result<bool> {
        if self.vm_started {
            bail!("vm_start was already called on this worker");
        }
        self.vm_started = true;
        let root = self.new_context(ContextKind::Root);
        self.store.data_mut().root_context = root;
        if let Some(f) = self.callbacks.on_context_create.clone() {
            self.call("proxy_on_context_create", root, |s| {
                f.call(s, (root as i32, 0))
            })?;
        }
        let size = self.host.config.vm_config.len() as i32;
        match self.callbacks.on_vm_start.clone() {
            Some(f) => Ok(self.call("proxy_on_vm_start", root, |s| {
                f.call(s, (root as i32, size))
            })? != 0),
            None => Ok(true),
        }
    }

    /// Call `proxy_on_configure` with `plugin_config` (after `vm_start`, run first if needed)
    /// and return what it returned.
    pub fn configure(&mut self, plugin_config: impl AsRef<[u8]>) -> Result<bool> {
        if !self.vm_started {
            self.vm_start()?;
        }
        let root = self.root_context_id();
        let config = plugin_config.as_ref().to_vec();
        let size = config.len() as i32;
        self.store.data_mut().plugin_config = Some(config);
        let r = match self.callbacks.on_configure.clone() {
            Some(f) => self
                .call("proxy_on_configure", root, |s| {
                    f.call(s, (root as i32, size))
                })
                .map(|v| v != 0),
            None => Ok(true),
        };
        self.store.data_mut().plugin_config = None;
        let ok = r?;
        self.configured = Some(ok);
        Ok(ok)
    }

    /// A new HTTP stream: a `GET /` of `example.com`, to change with the [`Stream`] builder.
    /// Its context is created in the VM when its headers are sent.
    pub fn request(&mut self) -> Stream<'_> {
        self.request_with_headers(&[
            (":authority", "example.com"),
            (":path", "/"),
            (":method", "GET"),
            (":scheme", "http"),
        ])
    }

    /// A new HTTP stream whose request headers are exactly `headers`, in this order: what
    /// Envoy's codec and connection manager hand the filter (keys lower-cased, pseudo-headers
    /// first, and what the connection manager adds, like `x-forwarded-proto`, last).
    pub fn request_with_headers(&mut self, headers: &[(&str, &str)]) -> Stream<'_> {
        let id = self.new_context(ContextKind::Http);
        let s = StreamState {
            request_headers: self.store.data_mut().header_map(headers),
            end_of_stream: true,
            connection_id: self.host.next_connection.fetch_add(1, Ordering::Relaxed),
            ..StreamState::default()
        };
        self.store.data_mut().streams.insert(id, s);
        Stream { worker: self, id }
    }

    /// Everything the module logged at or above the host's level.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.store.data().logs.clone()
    }

    pub fn take_logs(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.store.data_mut().logs)
    }

    /// The log as text, one `level: message` per line.
    pub fn log_text(&self) -> String {
        self.store
            .data()
            .logs
            .iter()
            .map(|l| format!("{:?}: {}", l.level, l.message))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every foreign function the module called, in order.
    pub fn foreign_calls(&self) -> Vec<ForeignCall> {
        self.store
            .data()
            .foreign_calls
            .iter()
            .map(ForeignCall::from)
            .collect()
    }

    /// The stats store (shared by all workers of the host).
    pub fn metrics(&self) -> BTreeMap<String, MetricValue> {
        self.host.metrics()
    }

    /// The tick period the module set, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        let ms = self.store.data().tick_period_ms;
        (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
    }

    /// Deliver one `proxy_on_tick` now. The module must have set a tick period.
    pub fn tick(&mut self) -> Result<()> {
        if self.tick_period().is_none() {
            bail!("the module set no tick period, so Envoy would not tick it");
        }
        self.deliver_tick()
    }

    fn deliver_tick(&mut self) -> Result<()> {
        let root = self.root_context_id();
        if let Some(f) = self.callbacks.on_tick.clone() {
            self.call("proxy_on_tick", root, |s| f.call(s, root as i32))?;
        }
        Ok(())
    }

    /// Deliver every tick that fell due on the virtual clock, each seeing the time it was due.
    /// Returns how many ran.
    pub fn run_due_ticks(&mut self) -> Result<usize> {
        let mut n = 0;
        loop {
            let (wall, mono) = self.host.clock.now();
            let d = self.store.data_mut();
            let (Some(due), true) = (d.next_tick_ns, d.tick_period_ms > 0) else {
                break;
            };
            if due > mono {
                break;
            }
            let period = u64::from(d.tick_period_ms) * 1_000_000;
            d.next_tick_ns = Some(due + period);
            d.time_override = Some((wall - (mono - due), due));
            let r = self.deliver_tick();
            self.store.data_mut().time_override = None;
            r?;
            n += 1;
            if n >= 1_000_000 {
                bail!("over a million ticks fell due: advance the clock in smaller steps");
            }
        }
        Ok(n)
    }

    /// Deliver the `proxy_on_queue_ready` calls posted to this worker. Returns how many ran.
    pub fn pump(&mut self) -> Result<usize> {
        let ready = self.host.shared().take_queue_ready(self.id());
        for r in &ready {
            if let Some(f) = self.callbacks.on_queue_ready.clone() {
                let (ctx, token) = (r.context_id, r.token);
                self.call("proxy_on_queue_ready", ctx, |s| {
                    f.call(s, (ctx as i32, token as i32))
                })?;
            }
        }
        Ok(ready.len())
    }

    /// HTTP calls the module dispatched that wait for an answer.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.store.data().http_calls.values().cloned().collect()
    }

    /// Answer an HTTP call: `proxy_on_http_call_response` runs with these maps and body.
    pub fn respond_http_call(
        &mut self,
        token: u32,
        headers: &[(&str, &str)],
        body: &[u8],
        trailers: &[(&str, &str)],
    ) -> Result<()> {
        let call = self
            .store
            .data_mut()
            .http_calls
            .remove(&token)
            .ok_or_else(|| anyhow!("no pending HTTP call {token}"))?;
        let response = HttpCallResponse {
            headers: HeaderMap::from_pairs(headers),
            body: body.to_vec(),
            trailers: HeaderMap::from_pairs(trailers),
        };
        let (nh, nb, nt) = (
            response.headers.len(),
            response.body.len(),
            response.trailers.len(),
        );
        self.store.data_mut().http_call_response = Some(response);
        self.store.data_mut().status = (0, Vec::new());
        let ctx = call.context_id;
        let r = match self.callbacks.on_http_call_response.clone() {
            Some(f) => self.call("proxy_on_http_call_response", ctx, |s| {
                f.call(
                    s,
                    (ctx as i32, token as i32, nh as i32, nb as i32, nt as i32),
                )
            }),
            None => Ok(()),
        };
        self.store.data_mut().http_call_response = None;
        r
    }

    /// Call `proxy_on_foreign_function` on the root context, with `args` as its arguments.
    pub fn call_foreign_callback(&mut self, function_id: u32, args: &[u8]) -> Result<()> {
        let root = self.root_context_id();
        self.store.data_mut().call_data = args.to_vec();
        let n = args.len() as i32;
        let r = match self.callbacks.on_foreign_function.clone() {
            Some(f) => self.call("proxy_on_foreign_function", root, |s| {
                f.call(s, (root as i32, function_id as i32, n))
            }),
            None => Ok(()),
        };
        self.store.data_mut().call_data.clear();
        r
    }

    /// Shut the plugin down as Envoy does: `proxy_on_done` on the root context, then
    /// `proxy_on_delete` if it returned true. Returns what `proxy_on_done` returned; after
    /// `false` the module may finish with `proxy_done` (from a tick, say): see
    /// [`Worker::finish_pending_done`].
    pub fn shutdown(&mut self) -> Result<bool> {
        let root = self.root_context_id();
        let done = match self.callbacks.on_done.clone() {
            Some(f) => self.call("proxy_on_done", root, |s| f.call(s, root as i32))? != 0,
            None => true,
        };
        if done {
            self.delete_root()?;
        } else {
            self.store.data_mut().root_pending_done = true;
        }
        Ok(done)
    }

    /// If the module called `proxy_done`, delete the root context. Returns whether it did.
    pub fn finish_pending_done(&mut self) -> Result<bool> {
        if !self.store.data().root_done {
            return Ok(false);
        }
        self.store.data_mut().root_done = false;
        self.delete_root()?;
        Ok(true)
    }

    fn delete_root(&mut self) -> Result<()> {
        let root = self.root_context_id();
        if let Some(f) = self.callbacks.on_delete.clone() {
            self.call("proxy_on_delete", root, |s| f.call(s, root as i32))?;
        }
        self.store.data_mut().contexts.remove(&root);
        Ok(())
    }
}

/// One HTTP request/response pair through the filter.
pub struct Stream<'w> {
    worker: &'w mut Worker,
    id: u32,
}

impl Stream<'_> {
    fn state(&self) -> &StreamState {
        &self.worker.store.data().streams[&self.id]
    }

    fn state_mut(&mut self) -> &mut StreamState {
        self.worker
            .store
            .data_mut()
            .streams
            .get_mut(&self.id)
            .expect("a stream's state lives as long as it")
    }

    /// The stream's context id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Add a request header (the key is lower-cased, as a codec would).
    pub fn header(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.state_mut().request_headers.add(key, value);
        self
    }

    /// Set a request header, replacing any with the same name where the first one stood (as
    /// a client writing it would; the ABI's replace moves it to the end instead).
    pub fn set_header(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.state_mut().request_headers.set(key, value);
        self
    }

    pub fn method(self, method: &str) -> Self {
        self.set_header(":method", method)
    }

    pub fn path(self, path: &str) -> Self {
        self.set_header(":path", path)
    }

    pub fn authority(self, authority: &str) -> Self {
        self.set_header(":authority", authority)
    }

    /// Whether the request ends with its headers (the default: a request without a body).
    pub fn end_of_stream(mut self, eos: bool) -> Self {
        self.state_mut().end_of_stream = eos;
        self
    }

    /// The downstream peer, `ip:port` (`[v6]:port` for IPv6): the `source.address` and
    /// `source.port` properties.
    pub fn source_address(self, address: &str) -> Self {
        self.address("source", address)
    }

    /// The local end of the downstream connection, `ip:port`: the `destination.address` and
    /// `destination.port` properties.
    pub fn destination_address(self, address: &str) -> Self {
        self.address("destination", address)
    }

    fn address(mut self, end: &str, address: &str) -> Self {
        let port = address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<i64>().ok());
        let s = self.state_mut();
        s.properties.insert(
            format!("{end}\0address").into_bytes(),
            address.as_bytes().to_vec(),
        );
        if let Some(port) = port {
            s.properties.insert(
                format!("{end}\0port").into_bytes(),
                port.to_le_bytes().to_vec(),
            );
        }
        self
    }

    /// A property this stream's context can read.
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.state_mut()
            .properties
            .insert(path.join("\0").into_bytes(), value.into());
        self
    }

    fn check_configured(&self) -> Result<()> {
        match self.worker.configured {
            Some(true) => Ok(()),
            Some(false) => {
                bail!("proxy_on_configure returned false, so Envoy creates no filter for requests")
            }
            None => bail!("configure the worker before sending requests"),
        }
    }

    /// Run a stream callback and apply Envoy's bookkeeping: a map or body stays reachable only
    /// while the stream is stopped.
    fn run(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Store<HostState>, i32) -> wasmtime::Result<i32>,
    ) -> Result<(Action, bool)> {
        let id = self.id;
        let had_reply = self.state().local_response.is_some();
        let raw = self.worker.call(what, id, |s| f(s, id as i32))?;
        let action = Action::from_raw(raw);
        let replied = !had_reply && self.state().local_response.is_some();
        if replied && self.state().response_headers.is_none() {
            // Envoy sends the reply once the callback has returned, and it passes back
            // through the filter like any response.
            let reply = self.local_response().expect("the filter just replied");
            self.reply_through_filter(reply.status, &reply.headers, &reply.body)?;
        }
        Ok((action, action == Action::Continue && !replied))
    }

    /// Envoy answers the request itself (a `direct_response` route, an upstream it could not
    /// reach, ...): the reply passes through the filter's response callbacks with the headers
    /// Envoy gives a local reply, and `response.code_details` is `details`.
    pub fn local_reply(&mut self, status: u32, body: &[u8], details: &str) -> Result<()> {
        self.ensure_created()?;
        self.state_mut().response_code_details = Some(details.to_owned());
        self.reply_through_filter(status, &[], body)
    }

    /// A local reply's response as Envoy 1.40 encodes it: `:status`, the headers the filter
    /// added, then `content-length` and `content-type: text/plain` when there is a body; the
    /// body in one chunk that ends the stream.
    fn reply_through_filter(
        &mut self,
        status: u32,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<()> {
        let (status, length) = (status.to_string(), body.len().to_string());
        let mut pairs = vec![(":status", status.as_str())];
        pairs.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if !body.is_empty() {
            pairs.extend([
                ("content-length", length.as_str()),
                ("content-type", "text/plain"),
            ]);
        }
        self.deliver_response_headers(&pairs, body.is_empty())?;
        if !body.is_empty() {
            self.deliver_response_body(body, true)?;
        }
        Ok(())
    }

    fn ensure_created(&mut self) -> Result<()> {
        self.check_configured()?;
        if self.state().created {
            return Ok(());
        }
        self.state_mut().created = true;
        let (id, root) = (self.id, self.worker.root_context_id());
        if let Some(f) = self.worker.callbacks.on_context_create.clone() {
            self.worker.call("proxy_on_context_create", id, |s| {
                f.call(s, (id as i32, root as i32))
            })?;
        }
        Ok(())
    }

    /// Deliver the request headers (`proxy_on_request_headers`) and return the module's answer.
    pub fn send_headers(&mut self) -> Result<Action> {
        self.ensure_created()?;
        self.state_mut().live.request_headers = true;
        let (n, eos) = (
            self.state().request_headers.len() as i32,
            self.state().end_of_stream,
        );
        let Some(f) = self.worker.callbacks.on_request_headers.clone() else {
            self.state_mut().live.request_headers = false;
            return Ok(Action::Continue);
        };
        let (action, go) = self.run("proxy_on_request_headers", |s, id| {
            f.call(s, (id, n, i32::from(eos)))
        })?;
        if go {
            self.state_mut().live.request_headers = false;
        }
        Ok(action)
    }

    /// Deliver a request body chunk. While the module pauses, chunks are buffered and it sees
    /// the whole buffer, as with Envoy's `StopIterationAndBuffer`.
    pub fn send_body(&mut self, chunk: impl AsRef<[u8]>, end_of_stream: bool) -> Result<Action> {
        self.body(true, chunk.as_ref(), end_of_stream)
    }

    /// Deliver the request trailers.
    pub fn send_trailers(&mut self, trailers: &[(&str, &str)]) -> Result<Action> {
        self.trailers(true, trailers)
    }

    /// Deliver the response headers (`proxy_on_response_headers`).
    pub fn deliver_response_headers(
        &mut self,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action> {
        self.ensure_created()?;
        let map = self.worker.store.data_mut().header_map(headers);
        let n = map.len() as i32;
        {
            let s = self.state_mut();
            s.response_headers = Some(map);
            s.live.response_headers = true;
            s.end_of_stream = end_of_stream;
            // Unless Envoy or the filter answered, the response is the upstream's.
            s.response_code_details
                .get_or_insert_with(|| "via_upstream".to_owned());
        }
        let Some(f) = self.worker.callbacks.on_response_headers.clone() else {
            self.state_mut().live.response_headers = false;
            return Ok(Action::Continue);
        };
        let (action, go) = self.run("proxy_on_response_headers", |s, id| {
            f.call(s, (id, n, i32::from(end_of_stream)))
        })?;
        if go {
            self.state_mut().live.response_headers = false;
        }
        Ok(action)
    }

    /// Deliver a response body chunk.
    pub fn deliver_response_body(
        &mut self,
        chunk: impl AsRef<[u8]>,
        end_of_stream: bool,
    ) -> Result<Action> {
        self.body(false, chunk.as_ref(), end_of_stream)
    }

    /// Deliver the response trailers.
    pub fn deliver_response_trailers(&mut self, trailers: &[(&str, &str)]) -> Result<Action> {
        self.trailers(false, trailers)
    }

    fn body(&mut self, request: bool, chunk: &[u8], eos: bool) -> Result<Action> {
        self.ensure_created()?;
        let size = {
            let s = self.state_mut();
            s.end_of_stream = eos;
            let (buf, buffering) = if request {
                s.live.request_body = true;
                (&mut s.request_body, s.buffering_request_body)
            } else {
                s.live.response_body = true;
                (&mut s.response_body, s.buffering_response_body)
            };
            if !buffering {
                buf.clear();
            }
            buf.extend_from_slice(chunk);
            buf.len() as i32
        };
        let f = if request {
            self.worker.callbacks.on_request_body.clone()
        } else {
            self.worker.callbacks.on_response_body.clone()
        };
        let name = if request {
            "proxy_on_request_body"
        } else {
            "proxy_on_response_body"
        };
        let (action, go) = match f {
            Some(f) => self.run(name, |s, id| f.call(s, (id, size, i32::from(eos))))?,
            None => (Action::Continue, true),
        };
        let s = self.state_mut();
        let (buf, forwarded, buffering, live) = if request {
            (
                &mut s.request_body,
                &mut s.forwarded_request_body,
                &mut s.buffering_request_body,
                &mut s.live.request_body,
            )
        } else {
            (
                &mut s.response_body,
                &mut s.forwarded_response_body,
                &mut s.buffering_response_body,
                &mut s.live.response_body,
            )
        };
        *buffering = action == Action::Pause;
        if go {
            forwarded.append(buf);
            *live = false;
        }
        Ok(action)
    }

    fn trailers(&mut self, request: bool, trailers: &[(&str, &str)]) -> Result<Action> {
        self.ensure_created()?;
        let map = HeaderMap::from_pairs(trailers);
        let n = map.len() as i32;
        {
            let s = self.state_mut();
            if request {
                s.request_trailers = Some(map);
                s.live.request_trailers = true;
            } else {
                s.response_trailers = Some(map);
                s.live.response_trailers = true;
            }
        }
        let f = if request {
            self.worker.callbacks.on_request_trailers.clone()
        } else {
            self.worker.callbacks.on_response_trailers.clone()
        };
        let name = if request {
            "proxy_on_request_trailers"
        } else {
            "proxy_on_response_trailers"
        };
        let (action, go) = match f {
            Some(f) => self.run(name, |s, id| f.call(s, (id, n)))?,
            None => (Action::Continue, true),
        };
        if go {
            let s = self.state_mut();
            if request {
                s.live.request_trailers = false;
            } else {
                s.live.response_trailers = false;
            }
        }
        Ok(action)
    }

    /// End the stream as Envoy does: `proxy_on_log` (maps readable), then `proxy_on_done` and
    /// `proxy_on_delete`.
    pub fn done(&mut self) -> Result<()> {
        if self.state().done {
            return Ok(());
        }
        self.state_mut().done = true;
        if !self.state().created {
            // No headers were sent: Envoy never created the context in the VM.
            self.worker.store.data_mut().contexts.remove(&self.id);
            return Ok(());
        }
        let id = self.id;
        let cb = &self.worker.callbacks;
        let (on_log, on_done, on_delete) =
            (cb.on_log.clone(), cb.on_done.clone(), cb.on_delete.clone());
        self.state_mut().access_log = true;
        let r = match on_log {
            Some(f) => self
                .worker
                .call("proxy_on_log", id, |s| f.call(s, id as i32)),
            None => Ok(()),
        };
        self.state_mut().access_log = false;
        r?;
        if let Some(f) = on_done {
            // Envoy ignores a stream's answer here.
            self.worker
                .call("proxy_on_done", id, |s| f.call(s, id as i32))?;
        }
        if let Some(f) = on_delete {
            self.worker
                .call("proxy_on_delete", id, |s| f.call(s, id as i32))?;
        }
        self.worker.store.data_mut().contexts.remove(&id);
        Ok(())
    }

    /// The request headers as they stand (as the filter left them for the upstream).
    pub fn request_headers(&self) -> HeaderMap {
        self.state().request_headers.clone()
    }

    pub fn request_header(&self, name: &str) -> Option<String> {
        self.state().request_headers.get_str(name)
    }

    pub fn request_trailers(&self) -> Option<HeaderMap> {
        self.state().request_trailers.clone()
    }

    pub fn response_headers(&self) -> Option<HeaderMap> {
        self.state().response_headers.clone()
    }

    pub fn response_header(&self, name: &str) -> Option<String> {
        self.state()
            .response_headers
            .as_ref()
            .and_then(|m| m.get_str(name))
    }

    pub fn response_trailers(&self) -> Option<HeaderMap> {
        self.state().response_trailers.clone()
    }

    /// Body bytes the filter let through upstream so far.
    pub fn forwarded_request_body(&self) -> Vec<u8> {
        self.state().forwarded_request_body.clone()
    }

    /// Body bytes the filter let through downstream so far.
    pub fn forwarded_response_body(&self) -> Vec<u8> {
        self.state().forwarded_response_body.clone()
    }

    /// The local reply the filter sent, if any.
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.state().local_response.clone()
    }

    /// How often the filter cleared the route cache (foreign function or `proxy_clear_route_cache`).
    pub fn route_cache_clears(&self) -> u32 {
        self.state().route_cache_clears
    }

    /// Streams the filter resumed with `proxy_continue_stream`, in order.
    pub fn continued(&self) -> Vec<StreamType> {
        self.state().continued.clone()
    }

    /// Streams the filter closed with `proxy_close_stream`, in order.
    pub fn closed(&self) -> Vec<StreamType> {
        self.state().closed.clone()
    }

    /// A value the filter stored with `proxy_set_property`.
    pub fn filter_state(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.state()
            .filter_state
            .get(path.join("\0").as_bytes())
            .cloned()
    }

    /// The worker this stream runs on.
    pub fn worker(&mut self) -> &mut Worker {
        self.worker
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        // Envoy always ends a stream; do so unless the VM is gone, then forget the state.
        if self.worker.failure.is_none() && !std::thread::panicking() {
            let _ = self.done();
        }
        self.worker.store.data_mut().remove_stream(self.id);
        self.worker.store.data_mut().contexts.remove(&self.id);
    }
}
