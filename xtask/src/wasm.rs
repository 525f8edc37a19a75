//! Building `filter.wasm` for `wasm32-unknown-unknown`.
//!
//! Route 1, a developer's laptop: rustup's wasm32 target (added on the fly when rustup can).
//! Route 2, a machine where rustup cannot download targets: Debian's `rustc-web` with its
//! library source (`rust-web-src`), building std from source (`-Zbuild-std`) and linking with
//! the rustup toolchain's `rust-lld`. Set `SERIN_WASM_ROUTE=rustup|debian` to force one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::shell::{self, output};

const TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

pub fn build_filter(root: &Path) -> Result<PathBuf, String> {
    build_module(root, "serin-filter", "filter.wasm")
}

/// Build `target/probe.wasm`: the conformance probe that the e2e test runs in Envoy and in the
/// wasmtime host (`host-tests/probe`).
pub fn build_probe(root: &Path) -> Result<PathBuf, String> {
    build_module(root, "serin-host-probe", "probe.wasm")
}

/// Build `package` and copy its module to `target/<name>`.
fn build_module(root: &Path, package: &str, name: &str) -> Result<PathBuf, String> {
    let built = build_wasm(root, package)?;
    let out = root.join("target").join(name);
    std::fs::copy(&built, &out)
        .map_err(|e| format!("copy {} → {}: {e}", built.display(), out.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!("xtask: {} ({size} bytes)", out.display());
    Ok(out)
}

/// Build a workspace `cdylib` package for wasm32 with the `wasm` profile, by whichever route
/// works here; returns the module cargo wrote (under the route's target dir).
pub fn build_wasm(root: &Path, package: &str) -> Result<PathBuf, String> {
    let forced = std::env::var("SERIN_WASM_ROUTE").ok();
    match forced.as_deref() {
        Some("debian") => build_with_debian_rust(root, package),
        Some("rustup") => build_with_rustup_target(root, package),
        Some(other) => Err(format!(
            "SERIN_WASM_ROUTE=`{other}`: expected `rustup` or `debian`"
        )),
        None if has_rustup_target() || add_rustup_target() => {
            build_with_rustup_target(root, package)
        }
        None => {
            eprintln!(
                "xtask: rustup has no {TARGET} target and cannot add one; using Debian's rust-web-src"
            );
            build_with_debian_rust(root, package)
        }
    }
}

fn module_name(package: &str) -> String {
    format!("{}.wasm", package.replace('-', "_"))
}

fn sysroot(rustc: &str) -> Option<PathBuf> {
    output(Command::new(rustc).args(["--print", "sysroot"])).map(PathBuf::from)
}

fn has_rustup_target() -> bool {
    sysroot("rustc").is_some_and(|s| s.join("lib/rustlib").join(TARGET).join("lib").is_dir())
}

fn add_rustup_target() -> bool {
    output(Command::new("rustup").args(["target", "add", TARGET])).is_some() && has_rustup_target()
}

fn build_with_rustup_target(root: &Path, package: &str) -> Result<PathBuf, String> {
    let target_dir = root.join("target");
    shell::run(
        shell::cargo()
            .current_dir(root)
            .args([
                "build",
                "--profile",
                "wasm",
                "--target",
                TARGET,
                "-p",
                package,
            ])
            .env("CARGO_TARGET_DIR", &target_dir),
    )?;
    Ok(target_dir
        .join(TARGET)
        .join("wasm")
        .join(module_name(package)))
}

fn build_with_debian_rust(root: &Path, package: &str) -> Result<PathBuf, String> {
    let has_source = |s: PathBuf| s.join("lib/rustlib/src/rust/library/std").is_dir();
    if !sysroot(DEBIAN_RUSTC).is_some_and(has_source) {
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
