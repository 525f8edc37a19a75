//! `cargo xtask fuzz [--seconds N] [TARGET...]`: every cargo-fuzz target in `fuzz/`, each for a
//! bounded time, starting from its committed corpus. CI runs it briefly after the tests; long
//! runs (`--seconds 600`) are for finding bugs.
//!
//! It builds with the machine's stable toolchain and `RUSTC_BOOTSTRAP=1`, without a sanitizer:
//! a fresh machine has no nightly, and the targets' oracles are their assertions (no trap, no
//! panic, the invariants of a decision), which need no sanitizer in safe Rust. New inputs go to a
//! scratch directory, so a run never changes the committed corpora; `fuzz/artifacts/` keeps any
//! crash.

use std::path::Path;
use std::process::Command;

use crate::shell;
use crate::wasm;

pub const TARGETS: [&str; 5] = ["compile", "plan", "decide", "filter", "native"];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut seconds = 30u32;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a whole number")?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => {
                return Err(format!(
                    "unknown fuzz argument `{other}`: targets are {}",
                    TARGETS.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    ensure_cargo_fuzz()?;
    let wasm = wasm::build_filter(root)?;
    let dir = root.join("fuzz");
    for target in targets {
        let scratch = std::env::temp_dir().join(format!("serin-fuzz-{target}"));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let corpus = dir.join("corpus").join(target);
        let mut cmd = cargo_fuzz(&dir);
        cmd.args(["run", "--sanitizer", "none", target])
            .arg(&scratch)
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-max_len=4096",
                "-print_final_stats=1",
            ])
            .env("SERIN_FILTER_WASM", &wasm);
        if target == "compile" {
            cmd.arg(format!("-dict={}", dir.join("policy.dict").display()));
        }
        shell::run(&mut cmd).map_err(|e| format!("fuzz target `{target}`: {e}"))?;
    }
    Ok(())
}

fn cargo_fuzz(dir: &Path) -> Command {
    let mut cmd = shell::cargo();
    cmd.arg("fuzz").current_dir(dir).env("RUSTC_BOOTSTRAP", "1");
    cmd
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let installed = shell::output(shell::cargo().args(["fuzz", "--version"]))
        .is_some_and(|v| v.contains(CARGO_FUZZ_VERSION));
    if installed {
        return Ok(());
    }
    shell::run(shell::cargo().args([
        "install",
        "--locked",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}
