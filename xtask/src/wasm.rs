//! Building `filter.wasm` for `wasm32-unknown-unknown`.
//!
//! Route 1, wherever `apt-get` works (CI, Debian and Ubuntu machines): Debian's `rustc-web`
//! with its library source (`rust-web-src`), building std from source (`-Zbuild-std`, for
//! `panic = "immediate-abort"` and size) and linking with the rustup toolchain's `rust-lld`.
//! Route 2, elsewhere (a laptop without apt): rustup's wasm32 target and its prebuilt std (the
//! target added on the fly when rustup can). The same code is 272,940 bytes by route 1 and
//! 311,802 by route 2 (2026-12-08), and as fast per request in Envoy (`cargo xtask
//! bench-instructions --filter-wasm`: (b) 179,120 and 178,942, (b′) 151,051 and 151,706), so
//! route 1 comes first. Set `SERIN_WASM_ROUTE=rustup|debian` to force one.
//!
//! Both routes then run binaryen's `wasm-opt -Oz` on the module when `wasm-opt` is on PATH
//! (`cargo xtask tools` installs Debian's `binaryen`); without it the module is used as linked,
//! after a note. `SERIN_WASM_OPT=off` skips it. Before it, `filter.wasm` loses the SDK's exports
//! that Envoy never calls on an HTTP filter (binaryen's `wasm-metadce`, [`HTTP_FILTER_EXPORTS`]).
//! docs/perf-log.md ("filter.wasm size: build-level steps", and 2026-12-08) has the bytes each
//! step saves.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::shell::{self, output};

const TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

pub fn build_filter(root: &Path) -> Result<PathBuf, String> {
    build_module(root, "serin-filter", "filter.wasm")
}

/// What `filter.wasm` exports: the proxy-wasm ABI of an HTTP filter that makes HTTP calls (its
/// memory and allocator, the VM, root and stream life cycle, the six HTTP callbacks, the call's
/// response) and the linker's two globals. The SDK also exports the callbacks of a network
/// filter, of gRPC calls and streams, of shared queues and of foreign functions, which Serin
/// never asks Envoy for, and whose dispatch code (about 17 K) nothing else removes: a host skips
/// a callback the module does not export. Add an export here when the filter starts using one
/// (the e2e suite runs the module in Envoy).
const HTTP_FILTER_EXPORTS: [&str; 21] = [
    "memory",
    "__data_end",
    "__heap_base",
    "_initialize",
    "malloc",
    "proxy_abi_version_0_2_1",
    "proxy_on_memory_allocate",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_tick",
    "proxy_on_context_create",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_http_call_response",
    "proxy_on_log",
    "proxy_on_done",
    "proxy_on_delete",
];

/// Build `target/probe.wasm`: the conformance probe that the e2e test runs in Envoy and in the
/// wasmtime host (`host-tests/probe`).
pub fn build_probe(root: &Path) -> Result<PathBuf, String> {
    build_module(root, "serin-host-probe", "probe.wasm")
}

/// Build `target/empty-filter.wasm`: `bench/empty-filter`, the proxy-wasm filter that does
/// nothing, built like `filter.wasm` so that the host-tests benches can take its cost as the
/// floor under the filter's.
pub fn build_empty_filter(root: &Path) -> Result<PathBuf, String> {
    build_module(root, "serin-bench-empty-filter", "empty-filter.wasm")
}

/// Build `package` and copy its module to `target/<name>`.
fn build_module(root: &Path, package: &str, name: &str) -> Result<PathBuf, String> {
    let built = if package == "serin-filter" {
        let linked = link_wasm(root, package)?;
        optimize(&keep_exports(&linked, &HTTP_FILTER_EXPORTS)?)?
    } else {
        build_wasm(root, package)?
    };
    let out = root.join("target").join(name);
    std::fs::copy(&built, &out)
        .map_err(|e| format!("copy {} → {}: {e}", built.display(), out.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!("xtask: {} ({size} bytes)", out.display());
    Ok(out)
}

/// Build a workspace `cdylib` package for wasm32 with the `wasm` profile, by whichever route
/// works here, and shrink it with `wasm-opt` when there is one; returns the module (under the
/// route's target dir).
pub fn build_wasm(root: &Path, package: &str) -> Result<PathBuf, String> {
    let built = link_wasm(root, package)?;
    optimize(&built)
}

/// The features the linked module uses, which binaryen must be told about (it assumes the MVP
/// otherwise and rejects the module): rustc's wasm32 target emits `memory.copy`/`memory.fill`,
/// sign-extension and saturating float-to-int instructions. Mutable globals are MVP-adjacent
/// and harmless to allow. Nothing else is enabled, so wasm-opt cannot introduce other features
/// (SIMD, reference types, …) that a host might not have.
const WASM_OPT_FEATURES: [&str; 5] = [
    "--mvp-features",
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
];

/// `wasm-opt -Oz` from `module` to `<module>.opt.wasm` beside it (cargo's own output stays as
/// linked, so a rebuild that changes nothing does not optimise twice); returns the module to
/// use. Without `wasm-opt` (or with `SERIN_WASM_OPT=off`) that is `module` itself.
fn optimize(module: &Path) -> Result<PathBuf, String> {
    if std::env::var("SERIN_WASM_OPT").as_deref() == Ok("off") {
        eprintln!("xtask: SERIN_WASM_OPT=off: not running wasm-opt");
        return Ok(module.to_path_buf());
    }
    if output(Command::new("wasm-opt").arg("--version")).is_none() {
        eprintln!(
            "xtask: note: no wasm-opt on PATH (Debian: apt-get install binaryen, or `cargo xtask tools`); \
             {} is used as linked, about 14% larger",
            module.display()
        );
        return Ok(module.to_path_buf());
    }
    let out = module.with_extension("opt.wasm");
    shell::run(
        Command::new("wasm-opt")
            .arg("-Oz")
            .args(WASM_OPT_FEATURES)
            .args(keep_names().then_some("--debuginfo"))
            .arg(module)
            .arg("-o")
            .arg(&out),
    )?;
    Ok(out)
}

/// `wasm-metadce` from `module` to `<module>.dce.wasm` beside it, keeping `exports` and what they
/// reach; returns the module to optimise. Without binaryen (no `wasm-opt`, the same package) or
/// with `SERIN_WASM_OPT=off` that is `module` itself, as linked.
fn keep_exports(module: &Path, exports: &[&str]) -> Result<PathBuf, String> {
    let skip = std::env::var("SERIN_WASM_OPT").as_deref() == Ok("off");
    if skip || output(Command::new("wasm-metadce").arg("--version")).is_none() {
        return Ok(module.to_path_buf());
    }
    // The reachability graph: the host reaches every export kept; an export left out of the
    // graph is removed.
    let quoted = |e: &&str| format!("\"{e}\"");
    let nodes: Vec<String> = exports
        .iter()
        .map(|e| format!("{{\"name\": \"{e}\", \"export\": \"{e}\"}}"))
        .collect();
    let graph = format!(
        "[{{\"name\": \"host\", \"root\": true, \"reaches\": [{}]}}, {}]",
        exports.iter().map(quoted).collect::<Vec<_>>().join(", "),
        nodes.join(", ")
    );
    let graph_file = module.with_extension("exports.json");
    std::fs::write(&graph_file, graph)
        .map_err(|e| format!("write {}: {e}", graph_file.display()))?;
    let out = module.with_extension("dce.wasm");
    // It reports each export it removes on stdout, one line each; the list is the one above.
    let run = Command::new("wasm-metadce")
        .args(WASM_OPT_FEATURES)
        .args(keep_names().then_some("--debuginfo"))
        .arg("-f")
        .arg(&graph_file)
        .arg(module)
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run wasm-metadce: {e}"))?;
    if !run.success() {
        return Err(format!(
            "wasm-metadce on {} failed: {run}",
            module.display()
        ));
    }
    Ok(out)
}

/// A build that keeps its symbols (for twiggy) keeps them through binaryen too.
fn keep_names() -> bool {
    std::env::var("CARGO_PROFILE_WASM_STRIP").as_deref() == Ok("false")
}

/// The linking half of [`build_wasm`]: returns the module cargo wrote.
fn link_wasm(root: &Path, package: &str) -> Result<PathBuf, String> {
    let forced = std::env::var("SERIN_WASM_ROUTE").ok();
    match forced.as_deref() {
        Some("debian") => build_with_debian_rust(root, package),
        Some("rustup") => build_with_rustup_target(root, package),
        Some(other) => Err(format!(
            "SERIN_WASM_ROUTE=`{other}`: expected `rustup` or `debian`"
        )),
        None if has_debian_route() => build_with_debian_rust(root, package),
        None if has_rustup_target() || add_rustup_target() => {
            eprintln!(
                "xtask: note: no apt-get, so rustup's prebuilt std for {TARGET}: filter.wasm is about 40 K larger than where std is built for size"
            );
            build_with_rustup_target(root, package)
        }
        None => Err(format!(
            "no way to build for {TARGET}: neither apt-get (Debian's rustc-web) nor a rustup that has or can add the target"
        )),
    }
}

fn module_name(package: &str) -> String {
    format!("{}.wasm", package.replace('-', "_"))
}

fn sysroot(rustc: &str) -> Option<PathBuf> {
    output(Command::new(rustc).args(["--print", "sysroot"])).map(PathBuf::from)
}

/// Debian's toolchain is installed with std's source, or `apt-get` can install it.
fn has_debian_route() -> bool {
    has_debian_std_source() || output(Command::new("apt-get").arg("--version")).is_some()
}

/// Debian's `rustc-web` with the library source that `-Zbuild-std` builds.
fn has_debian_std_source() -> bool {
    sysroot(DEBIAN_RUSTC).is_some_and(|s| s.join("lib/rustlib/src/rust/library/std").is_dir())
}

fn has_rustup_target() -> bool {
    sysroot("rustc").is_some_and(|s| s.join("lib/rustlib").join(TARGET).join("lib").is_dir())
}

fn add_rustup_target() -> bool {
    output(Command::new("rustup").args(["target", "add", TARGET])).is_some() && has_rustup_target()
}

fn build_with_rustup_target(root: &Path, package: &str) -> Result<PathBuf, String> {
    let target_dir = shell::cargo_build(
        root,
        &["--profile", "wasm", "--target", TARGET, "-p", package],
    )?;
    Ok(target_dir
        .join(TARGET)
        .join("wasm")
        .join(module_name(package)))
}

fn build_with_debian_rust(root: &Path, package: &str) -> Result<PathBuf, String> {
    if !has_debian_std_source() {
        shell::apt_install(&["rustc-web", "cargo-web", "rust-web-src"])?;
    }
    let host_sysroot = sysroot("rustc").ok_or("cannot find the host toolchain's sysroot")?;
    let lld = std::fs::read_dir(host_sysroot.join("lib/rustlib"))
        .map_err(|e| format!("read host sysroot: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/rust-lld"))
        .find(|p| p.is_file())
        .ok_or("the host toolchain has no rust-lld to link wasm with")?;
    // A target dir of its own: another rustc must not invalidate the host builds' fingerprints.
    let target_dir = root.join("target/wasm-build");
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if supports_immediate_abort() {
        // std is built here anyway, so it can be built for `panic = "immediate-abort"`: a panic
        // is a bare `unreachable` trap, as it already ends in one under `panic = "abort"`
        // (the filter never unwinds either way), but without the panic machinery and the
        // message formatting. The price: the SDK's panic hook no longer logs the message and
        // location at `critical` before the trap; Envoy still logs the trap and the function.
        rustflags.push_str(" -Zunstable-options -Cpanic=immediate-abort");
    } else {
        eprintln!(
            "xtask: note: {DEBIAN_RUSTC} has no `-Cpanic=immediate-abort`; building with panic = \"abort\""
        );
    }
    // std's own size-over-speed choices (smaller sort and formatting code paths; the same
    // results). These features replace the default `panic-unwind`, which an abort build never
    // uses.
    let library = sysroot(DEBIAN_RUSTC)
        .ok_or("cannot find Debian rustc's sysroot")?
        .join("lib/rustlib/src/rust/library");
    let std_features = std::fs::read_to_string(library.join("sysroot/Cargo.toml"))
        .is_ok_and(|manifest| manifest.contains("optimize_for_size = "))
        .then_some("-Zbuild-std-features=optimize_for_size");
    shell::run(
        shell::cargo()
            .current_dir(root)
            .args([
                "build",
                "--profile",
                "wasm",
                "--target",
                TARGET,
                "-Zbuild-std=std,panic_abort",
                "-p",
                package,
            ])
            .args(std_features)
            .env("RUSTFLAGS", rustflags.trim())
            .env("RUSTC", DEBIAN_RUSTC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", lld)
            .env("CARGO_TARGET_DIR", &target_dir),
    )?;
    Ok(target_dir
        .join(TARGET)
        .join("wasm")
        .join(module_name(package)))
}

/// Whether Debian's rustc has the `immediate-abort` panic strategy (1.96 here; it replaced std's
/// `panic_immediate_abort` feature, which older ones had and newer ones reject).
fn supports_immediate_abort() -> bool {
    output(
        Command::new(DEBIAN_RUSTC)
            .args([
                "-Zunstable-options",
                "-Cpanic=immediate-abort",
                "--print",
                "cfg",
            ])
            .args(["--target", TARGET])
            .env("RUSTC_BOOTSTRAP", "1"),
    )
    .is_some_and(|cfg| cfg.lines().any(|l| l == "panic=\"immediate-abort\""))
}
