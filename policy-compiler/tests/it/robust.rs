//! A cheap, deterministic stand-in for the fuzz target that runs with every `cargo test`: every
//! prefix of every corpus case and example must compile or fail cleanly, and every plan that
//! comes out must pass the filter's own checks.

use std::path::PathBuf;

use serin_policy::Plan;

fn inputs() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [root.join("tests/corpus"), root.join("../examples")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                out.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    out
}

#[test]
fn every_prefix_compiles_or_fails_cleanly() {
    let mut plans = 0;
    for (name, source) in inputs() {
        for end in (0..=source.len())
            .step_by(3)
            .filter(|&i| source.is_char_boundary(i))
        {
            let text = &source[..end];
            match serin_compiler::compile_str(text, &name) {
                Ok(c) => {
                    c.plan
                        .check()
                        .unwrap_or_else(|e| panic!("{name}[..{end}]: {e}"));
                    c.plan
                        .check_rollout()
                        .unwrap_or_else(|e| panic!("{name}[..{end}]: {e}"));
                    let back = Plan::from_json(c.plan.to_json().as_bytes()).unwrap();
                    assert_eq!(back, c.plan);
                    plans += 1;
                }
                Err(d) => {
                    assert!(d.has_errors(), "{name}[..{end}]: failed without an error");
                    for item in &d.items {
                        let span = item.span.clone().unwrap_or(0..0);
                        assert!(
                            span.start <= span.end && span.end <= text.len(),
                            "{name}[..{end}]: span {span:?} out of range"
                        );
                    }
                }
            }
        }
    }
    assert!(plans > 100, "only {plans} prefixes compiled");
}

#[test]
fn fmt_is_idempotent_and_keeps_meaning() {
    for (name, source) in inputs() {
        let Ok(once) = serin_compiler::format::format(&source) else {
            continue;
        };
        let twice = serin_compiler::format::format(&once).unwrap();
        assert_eq!(once, twice, "{name}: fmt is not idempotent");
        let a: toml::Table = toml::from_str(&source).unwrap();
        let b: toml::Table = toml::from_str(&once).unwrap();
        assert_eq!(a, b, "{name}: fmt changed meaning");
    }
}
