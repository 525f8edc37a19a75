//! filter.wasm's size budget. Issue 8's target is 150 KB (150,000 bytes); the module is well
//! above it today, so CI enforces a ceiling (its size when the ceiling was last set plus 3%)
//! that keeps it from growing unnoticed, and the target itself is an ignored test that states
//! the gap (`cargo test -p serin-e2e --test it size -- --include-ignored`). BENCHMARKS.md has
//! the current sizes (docs/benchmarks/request-path.md the table); docs/perf-log.md says where
//! the bytes go.
//!
//! The two build routes of `cargo xtask wasm` give different sizes for the same code, so the
//! ceiling depends on the route, which the module itself tells: the Debian route (CI's) builds
//! std for `panic = "immediate-abort"` and so has no panic runtime, whose source path a module
//! built with the prebuilt std of rustup's target carries in its data. Both assume `wasm-opt`
//! ran (`cargo xtask test` installs binaryen first).

use std::path::PathBuf;

/// Issue 8's target.
const TARGET_BYTES: u64 = 150_000;
/// The Debian route (CI's, and `cargo xtask wasm`'s first choice wherever `apt-get` works):
/// 262,874 bytes (2026-12-08: wasm-opt -Oz, std built for immediate-abort and optimize_for_size,
/// the request path at opt-level 2, the engine's cold entry points at "z", no float formatting,
/// the SDK's unused exports removed, no serde). The ceiling is issue 20's target itself, 280 KB,
/// which this route meets; lower it as the module shrinks.
const CEILING_BYTES: u64 = 280_000;
/// rustup's prebuilt std for wasm32 (the route of a machine without apt): 302,139 bytes (the
/// same code, 2026-12-08) + 3%. Above issue 20's 280 KB by std's panic runtime and its
/// speed-first code paths, which only a std built from source leaves out; lower it as the
/// module shrinks.
const CEILING_WITH_PANIC_RUNTIME_BYTES: u64 = 311_200;

/// `SERIN_FILTER_WASM`, else target/filter.wasm.
fn filter_path() -> PathBuf {
    std::env::var_os("SERIN_FILTER_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/filter.wasm"))
}

/// The module's size; `None` after a loud skip message (a failure under `SERIN_E2E=require`, as
/// in CI).
fn filter_size(test: &str) -> Option<u64> {
    let path = filter_path();
    match std::fs::metadata(&path) {
        Ok(m) => Some(m.len()),
        Err(e) if std::env::var("SERIN_E2E").as_deref() == Ok("require") => {
            panic!("{test}: {}: {e}", path.display())
        }
        Err(e) => {
            eprintln!(
                "SKIPPED {test}: {}: {e}: run `cargo xtask wasm`",
                path.display()
            );
            None
        }
    }
}

fn gap(size: u64) -> String {
    format!(
        "filter.wasm is {size} bytes; the target is {TARGET_BYTES} bytes ({} bytes, {:.0}%, to go)",
        size.saturating_sub(TARGET_BYTES),
        (size as f64 / TARGET_BYTES as f64 - 1.0).max(0.0) * 100.0
    )
}

/// Whether the module carries std's panic runtime (its source path is in the data of every
/// build with one, stripped or not).
fn has_panic_runtime(wasm: &[u8]) -> bool {
    let marker = b"std/src/panicking.rs";
    wasm.windows(marker.len()).any(|w| w == marker)
}

#[test]
fn filter_wasm_stays_under_its_ceiling() {
    let Some(size) = filter_size("filter_wasm_stays_under_its_ceiling") else {
        return;
    };
    let path = filter_path();
    let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (ceiling, route) = if has_panic_runtime(&wasm) {
        (
            CEILING_WITH_PANIC_RUNTIME_BYTES,
            "with std's panic runtime (rustup's target)",
        )
    } else {
        (
            CEILING_BYTES,
            "std built for panic=immediate-abort (the Debian route)",
        )
    };
    eprintln!("{}; {route}", gap(size));
    assert!(
        size <= ceiling,
        "filter.wasm, {route}, grew past its ceiling of {ceiling} bytes: {} \
         (was wasm-opt on PATH when it was built? `cargo xtask tools` installs binaryen)",
        gap(size)
    );
}

#[test]
#[ignore = "filter.wasm is above issue 8's 150 KB target; run with --include-ignored to see the gap"]
fn filter_wasm_meets_the_150_kb_target() {
    let Some(size) = filter_size("filter_wasm_meets_the_150_kb_target") else {
        return;
    };
    assert!(size <= TARGET_BYTES, "{}", gap(size));
}
