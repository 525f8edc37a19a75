//! Artefacts for the systems a plan runs in, all derived from the compiled [`Plan`]: a
//! standalone Envoy config, Istio resources, the wasm OCI image, Prometheus alert rules, a
//! Grafana dashboard and Argo Rollouts / Flagger analysis with the policy's own thresholds.
//!
//! Every emitter is a pure function of the plan and its options; the `serin emit` and
//! `serin package` subcommands only read files and write the result.
//!
//! [`Plan`]: serin_policy::Plan

pub mod argo;
pub mod envoy;
pub mod flagger;
pub mod grafana;
pub mod istio;
pub mod metrics;
pub mod oci;
pub mod prometheus;
pub mod yaml;

/// The `serin` version that wrote an artefact, for its header comment.
pub const GENERATOR: &str = concat!("serin ", env!("CARGO_PKG_VERSION"));

/// A header comment for a generated YAML file.
pub fn header(lines: &[&str]) -> String {
    let mut s = String::new();
    for l in lines {
        if l.is_empty() {
            s.push_str("#\n");
        } else {
            s.push_str("# ");
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}
