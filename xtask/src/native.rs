//! Building `target/native/libserin.so`: the native backend, an Envoy dynamic module, for the
//! host (Envoy loads it into its own process, so it is built like any host library, with the
//! `native` profile).

use std::path::{Path, PathBuf};

use crate::shell;

pub fn build(root: &Path) -> Result<PathBuf, String> {
    let target = shell::cargo_build(root, &["-p", "serin-native", "--profile", "native"])?;
    let out = target.join("native").join("libserin.so");
    let size = std::fs::metadata(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .len();
    eprintln!("xtask: {} ({size} bytes)", out.display());
    Ok(out)
}
