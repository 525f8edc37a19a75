//! One worker thread's VM: its start, its root context's callbacks, and the calls into it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use wasmtime::{Instance, Store, TypedFunc};

use crate::abi::LogLevel;
use crate::headers::HeaderMap;
use crate::host::{Host, wt};
use crate::shared::MetricValue;
use crate::state::{
    ContextKind, ForeignCall, HostState, HttpCall, HttpCallResponse, LogEntry, StreamState,
};
use crate::stream::Stream;

/// An export the host calls. Cloning a `TypedFunc` clones its registered type (a lock and a
/// hash in the engine's type registry), which cost more than the call itself; an `Arc` is shared
/// for the price of a reference count.
pub(crate) type Callback<Params, Results> = Option<Arc<TypedFunc<Params, Results>>>;

/// The module's exported callbacks, as far as it has them.
pub(crate) struct Callbacks {
    pub(crate) on_context_create: Callback<(i32, i32), ()>,
    pub(crate) on_vm_start: Callback<(i32, i32), i32>,
    pub(crate) on_configure: Callback<(i32, i32), i32>,
    pub(crate) on_tick: Callback<i32, ()>,
    pub(crate) on_queue_ready: Callback<(i32, i32), ()>,
    pub(crate) on_done: Callback<i32, i32>,
    pub(crate) on_log: Callback<i32, ()>,
    pub(crate) on_delete: Callback<i32, ()>,
    pub(crate) on_request_headers: Callback<(i32, i32, i32), i32>,
    pub(crate) on_request_body: Callback<(i32, i32, i32), i32>,
    pub(crate) on_request_trailers: Callback<(i32, i32), i32>,
    pub(crate) on_response_headers: Callback<(i32, i32, i32), i32>,
    pub(crate) on_response_body: Callback<(i32, i32, i32), i32>,
    pub(crate) on_response_trailers: Callback<(i32, i32), i32>,
    pub(crate) on_http_call_response: Callback<(i32, i32, i32, i32, i32), ()>,
    pub(crate) on_foreign_function: Callback<(i32, i32, i32), ()>,
}

/// One worker thread's VM.
pub struct Worker {
    host: Host,
    pub(crate) store: Store<HostState>,
    /// For the conformance tests, which call the host functions a test module re-exports.
    pub(crate) instance: Instance,
    pub(crate) callbacks: Callbacks,
    pub(crate) failure: Option<String>,
    vm_started: bool,
    pub(crate) configured: Option<bool>,
}

impl Worker {
    pub(crate) fn start(host: Host) -> Result<Worker> {
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
    pub(crate) fn call<R>(
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
        let s = StreamState {
            request_headers: HeaderMap::from_pairs(headers),
            end_of_stream: true,
            connection_id: self.host.next_connection.fetch_add(1, Ordering::Relaxed),
            ..StreamState::default()
        };
        let id = self.add_stream(s);
        Stream::new(self, id)
    }

    /// A new HTTP stream's context with `state`, not yet created in the VM. Returns its id.
    pub(crate) fn add_stream(&mut self, state: StreamState) -> u32 {
        let id = self.new_context(ContextKind::Http);
        self.store.data_mut().streams.insert(id, state);
        id
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
