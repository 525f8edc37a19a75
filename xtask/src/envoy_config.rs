//! envoy-config/envoy.yaml is `serin emit envoy examples/percent-canary.toml`; this regenerates
//! it (a test in e2e/ fails when it is stale).

use std::path::Path;

use serin_policy::Plan;

pub const EXAMPLE: &str = "examples/percent-canary.toml";

/// An example policy, compiled.
pub fn compile_example(root: &Path, relative: &str) -> Result<Plan, String> {
    let source =
        std::fs::read_to_string(root.join(relative)).map_err(|e| format!("{relative}: {e}"))?;
    let compiled =
        serin_compiler::compile_str(&source, relative).map_err(|d| format!("{relative}: {d}"))?;
    Ok(compiled.plan)
}

pub fn write(root: &Path) -> Result<(), String> {
    let path = root.join("envoy-config/envoy.yaml");
    let plan = compile_example(root, EXAMPLE)?;
    let options = serin_compiler::emit::envoy::Options {
        source: EXAMPLE.into(),
        ..Default::default()
    };
    std::fs::write(&path, serin_compiler::emit::envoy::config(&plan, &options))
        .map_err(|e| e.to_string())?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}
