//! End-to-end tests in real Envoy: the shipped configs, the real filter.wasm, compiled example
//! policies. They need Envoy and filter.wasm (`cargo xtask test` provides both).

mod backends;
mod config;
mod conformance;
mod faults;
mod fleet;
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

/// A test's own policy, compiled, running in Envoy with `workers` workers; `None` after the
/// skip message when Envoy or filter.wasm is missing outside CI.
pub fn running(test: &str, source: &str, workers: u32) -> Option<(Plan, serin_e2e::Stack)> {
    let paths = Paths::for_test(test)?;
    let plan = compile(source, &format!("{test}.toml"));
    let stack = serin_e2e::Stack::start_with(&paths, &plan, workers).expect("envoy starts");
    Some((plan, stack))
}

/// Compile a test's own policy with the real compiler.
pub fn compile(source: &str, file: &str) -> Plan {
    match serin_compiler::compile_str(source, file) {
        Ok(compiled) => compiled.plan,
        Err(diagnostics) => panic!("{file} does not compile:\n{diagnostics}"),
    }
}
