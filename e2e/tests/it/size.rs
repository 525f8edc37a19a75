//! filter.wasm's size budget. Issue 8's target is 150 KB (150,000 bytes); the module is well
//! above it today, so CI enforces a ceiling (its size when this test was written plus 5%) that
//! keeps it from growing unnoticed, and the target itself is an ignored test that states the gap
//! (`cargo test -p serin-e2e --test it size -- --include-ignored`). BENCHMARKS.md says where
//! the bytes go.

use std::path::PathBuf;

/// Issue 8's target.
const TARGET_BYTES: u64 = 150_000;
/// 363,331 bytes (the wasm profile, 2026-11-26) + 5%: lower it as the module shrinks.
const CEILING_BYTES: u64 = 381_500;

/// `SERIN_FILTER_WASM`, else target/filter.wasm; `None` after a loud skip message (a failure
/// under `SERIN_E2E=require`, as in CI).
fn filter_size(test: &str) -> Option<u64> {
    let path = std::env::var_os("SERIN_FILTER_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/filter.wasm"));
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

#[test]
fn filter_wasm_stays_under_its_ceiling() {
    let Some(size) = filter_size("filter_wasm_stays_under_its_ceiling") else {
        return;
    };
    eprintln!("{}", gap(size));
    assert!(
        size <= CEILING_BYTES,
        "filter.wasm grew past its ceiling of {CEILING_BYTES} bytes: {}",
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
