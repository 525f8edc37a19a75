//! End-to-end tests in real Envoy: the shipped configs, the real filter.wasm, compiled example
//! policies. They need Envoy and filter.wasm (`cargo xtask test` provides both).

mod config;
mod rollout;
mod routing;
mod size;
mod split;

use serin_e2e::Paths;
use serin_policy::Plan;

/// Compile a policy from examples/ with the real compiler.
pub fn compile_example(paths: &Paths, name: &str) -> Plan {
    let file = format!("examples/{name}");
    let source = std::fs::read_to_string(paths.root.join(&file)).expect("example exists");
    compile(&source, &file)
}

/// Compile a test's own policy with the real compiler.
pub fn compile(source: &str, file: &str) -> Plan {
    match serin_compiler::compile_str(source, file) {
        Ok(compiled) => compiled.plan,
        Err(diagnostics) => panic!("{file} does not compile:\n{diagnostics}"),
    }
}
