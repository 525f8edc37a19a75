//! The process: the compiled module, how the host presents itself, and the state every
//! worker of one Envoy process shares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use wasmtime::{Engine, Linker, Module};

use crate::abi::LogLevel;
use crate::shared::{Clock, MetricValue, Shared};
use crate::state::HostState;
use crate::worker::Worker;
use crate::{hostcalls, properties, wasi};

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
        self.properties.insert(properties::key(path), value.into());
        self
    }
}

pub(crate) struct Compiled {
    pub(crate) engine: Engine,
    pub(crate) module: Module,
    pub(crate) linker: Linker<HostState>,
}

/// One Envoy process running one plugin: the compiled module plus process-wide state.
/// Cloning shares everything.
#[derive(Clone)]
pub struct Host {
    pub(crate) compiled: Arc<Compiled>,
    pub(crate) config: Arc<HostConfig>,
    pub(crate) shared: Arc<Mutex<Shared>>,
    pub(crate) clock: Arc<Clock>,
    pub(crate) next_worker: Arc<AtomicU32>,
    /// Envoy's connection ids are process-wide.
    pub(crate) next_connection: Arc<AtomicU64>,
}

pub(crate) fn wt(e: wasmtime::Error) -> anyhow::Error {
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

    pub(crate) fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_filter_module_says_how_to_build_it() {
        let err =
            super::read_filter_wasm(std::path::Path::new("/nonexistent/filter.wasm")).unwrap_err();
        assert!(format!("{err:#}").contains("cargo xtask wasm"), "{err:#}");
    }
}
