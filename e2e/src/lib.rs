//! Serin in real Envoy: start the shipped configs (envoy-config/) as processes on free ports,
//! send requests, read which arm answered. Used by the e2e tests, the demo and the load bench.

pub mod bench;
mod envoy;
mod load;
pub mod probe;
mod prometheus;
mod stack;

pub use envoy::Envoy;
pub use load::{Load, StopOnDrop, uneven};
pub use prometheus::Prometheus;
pub use stack::{Ports, Reply, Stack, front_config, upstream_config};

use std::path::PathBuf;

pub use serin_compiler::emit::envoy::Backend;

/// Where the pieces a real-Envoy run needs are, and which backend runs the plan.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub envoy: PathBuf,
    /// `SERIN_BACKEND`: `wasm` (the default) or `native`. The whole e2e suite runs once per
    /// backend (`cargo xtask test` does both), so every test is a test of each.
    pub backend: Backend,
    /// The backend's module: `SERIN_FILTER_WASM` or `SERIN_NATIVE_MODULE`, else where `cargo
    /// xtask` builds it.
    pub module: PathBuf,
}

impl Paths {
    /// `SERIN_ENVOY`, `SERIN_BACKEND` and the backend's module, else the places `cargo xtask`
    /// puts them.
    pub fn locate() -> Result<Paths, String> {
        let backend: Backend = std::env::var("SERIN_BACKEND")
            .unwrap_or_else(|_| "wasm".into())
            .parse()?;
        Paths::locate_backend(backend)
    }

    /// [`Paths::locate`] for this backend, whatever `SERIN_BACKEND` says (the differential
    /// test runs both).
    pub fn locate_backend(backend: Backend) -> Result<Paths, String> {
        let root = workspace_root();
        let envoy = from_env("SERIN_ENVOY", root.join(".tools/venv/bin/envoy"));
        let (var, what) = match backend {
            Backend::Wasm => ("SERIN_FILTER_WASM", "filter.wasm"),
            Backend::Native => ("SERIN_NATIVE_MODULE", "libserin.so"),
        };
        let module = from_env(var, root.join(backend.default_module()));
        for (what, path) in [("Envoy", &envoy), (what, &module)] {
            if !path.is_file() {
                return Err(format!(
                    "{what} not found at {}: run `cargo xtask test`",
                    path.display()
                ));
            }
        }
        Ok(Paths {
            root,
            envoy,
            backend,
            module,
        })
    }

    /// For tests: the paths, or `None` after a loud skip message. Under `SERIN_E2E=require`
    /// (what `cargo xtask test` and CI set) a missing piece is a failure, not a skip.
    pub fn for_test(test: &str) -> Option<Paths> {
        required(test, Paths::locate())
    }
}

/// Where the conformance probe's pieces are: Envoy and the probe module (`host-tests/probe`).
#[derive(Debug, Clone)]
pub struct ProbePaths {
    pub root: PathBuf,
    pub envoy: PathBuf,
    pub probe: PathBuf,
}

impl ProbePaths {
    /// `SERIN_ENVOY` and `SERIN_PROBE_WASM`, else the places `cargo xtask` puts them.
    pub fn locate() -> Result<ProbePaths, String> {
        let root = workspace_root();
        let envoy = from_env("SERIN_ENVOY", root.join(".tools/venv/bin/envoy"));
        let probe = from_env("SERIN_PROBE_WASM", root.join("target/probe.wasm"));
        for (what, path) in [("Envoy", &envoy), ("probe.wasm", &probe)] {
            if !path.is_file() {
                return Err(format!(
                    "{what} not found at {}: run `cargo xtask test`",
                    path.display()
                ));
            }
        }
        Ok(ProbePaths { root, envoy, probe })
    }

    /// For tests, with [`Paths::for_test`]'s rule: skip loudly, or fail under
    /// `SERIN_E2E=require`.
    pub fn for_test(test: &str) -> Option<ProbePaths> {
        required(test, ProbePaths::locate())
    }
}

fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

fn from_env(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

/// What a test needs, or `None` after a loud skip message; a failure instead under
/// `SERIN_E2E=require`, where nothing may be skipped.
fn required<T>(test: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(p) => Some(p),
        Err(e) if std::env::var("SERIN_E2E").as_deref() == Ok("require") => {
            panic!("{test}: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            None
        }
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the loopback interface has free ports")
}
