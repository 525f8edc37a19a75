//! envoy-config/envoy.yaml carries the plan of examples/percent-canary.toml inline; this
//! regenerates it (a test in e2e/ fails when it is stale).

use std::path::Path;

pub const EXAMPLE: &str = "examples/percent-canary.toml";

/// The plan JSON of an example policy.
pub fn compile_example(root: &Path, relative: &str) -> Result<String, String> {
    let source = std::fs::read_to_string(root.join(relative)).map_err(|e| format!("{relative}: {e}"))?;
    let compiled = serin_compiler::compile_str(&source, relative).map_err(|d| format!("{relative}: {d}"))?;
    Ok(compiled.plan.to_json())
}

pub fn write(root: &Path) -> Result<(), String> {
    let path = root.join("envoy-config/envoy.yaml");
    let current = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let plan = compile_example(root, EXAMPLE)?;
    let fresh = serin_e2e::front_config(
        &current,
        serin_e2e::Ports::SHIPPED,
        Path::new("target/filter.wasm"),
        &plan,
    )?;
    std::fs::write(&path, fresh).map_err(|e| e.to_string())?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}
