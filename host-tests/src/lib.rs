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
//! assert!(worker.configure(format!(r#"{{"format": {}}}"#, serin_policy::PLAN_FORMAT).as_bytes())?);
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
#[doc(hidden)]
pub mod conformance;
pub mod headers;
mod host;
mod hostcalls;
mod imports;
pub mod pairs;
mod properties;
mod shared;
mod state;
mod stream;
mod wasi;
mod worker;

pub use abi::{Action, BufferType, LogLevel, MapType, MetricType, Status, StreamType};
pub use headers::HeaderMap;
pub use host::{Host, HostConfig, filter_wasm, filter_wasm_path};
pub use shared::MetricValue;
pub use state::{ForeignCall, HttpCall, LocalResponse, LogEntry};
pub use stream::Stream;
pub use worker::Worker;
