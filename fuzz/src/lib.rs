//! What the backend fuzz targets (`filter`, `native`) share: plugin configurations built from
//! the example plans, byte-level mutations of them, or raw bytes.

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{self, Arbitrary};

#[derive(Arbitrary, Debug)]
pub enum PluginConfig {
    Example(u8),
    /// An example plan with `bytes` written over it at `at`.
    Mutated {
        example: u8,
        at: u16,
        bytes: Vec<u8>,
    },
    Raw(Vec<u8>),
}

/// The example plans, as `serin compile` writes them, in file-name order.
pub fn example_plans() -> &'static [Vec<u8>] {
    static PLANS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PLANS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("examples/")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| {
                let source = std::fs::read_to_string(path).expect("readable");
                let compiled =
                    serin_compiler::compile_str(&source, "example.toml").expect("examples compile");
                compiled.plan.to_json().into_bytes()
            })
            .collect()
    })
}

impl PluginConfig {
    /// The configuration's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let plans = example_plans();
        let pick = |i: u8| plans[usize::from(i) % plans.len()].clone();
        match self {
            PluginConfig::Example(i) => pick(*i),
            PluginConfig::Mutated { example, at, bytes } => {
                let mut plan = pick(*example);
                let at = usize::from(*at) % plan.len();
                for (slot, b) in plan[at..].iter_mut().zip(bytes) {
                    *slot = *b;
                }
                plan
            }
            PluginConfig::Raw(bytes) => bytes.clone(),
        }
    }
}

/// Header bytes Envoy's codecs never let through, so a backend never sees them and must never
/// write them.
pub fn forbidden(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | 0)
}
