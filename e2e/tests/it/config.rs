//! The shipped Envoy configs are real: Envoy validates them, and envoy-config/envoy.yaml is
//! exactly what `serin emit envoy examples/percent-canary.toml` writes.

use std::process::Command;

use serin_e2e::Paths;

use crate::compile_example;

#[test]
fn shipped_envoy_config_is_the_emitted_one() {
    let Some(paths) = Paths::for_test("shipped_envoy_config_is_the_emitted_one") else {
        return;
    };
    let shipped = std::fs::read_to_string(paths.root.join("envoy-config/envoy.yaml")).unwrap();
    let plan = compile_example(&paths, "percent-canary.toml");
    let options = serin_compiler::emit::envoy::Options {
        source: "examples/percent-canary.toml".into(),
        ..Default::default()
    };
    let fresh = serin_compiler::emit::envoy::config(&plan, &options);
    assert!(
        fresh == shipped,
        "envoy-config/envoy.yaml is stale: run `cargo xtask envoy-config`"
    );
}

#[test]
fn envoy_validates_the_shipped_configs() {
    let Some(paths) = Paths::for_test("envoy_validates_the_shipped_configs") else {
        return;
    };
    for (file, config) in [
        ("envoy.yaml", {
            let shipped =
                std::fs::read_to_string(paths.root.join("envoy-config/envoy.yaml")).unwrap();
            // Validate mode checks that the wasm file exists; point it at the built one.
            shipped.replace(
                "filename: target/filter.wasm",
                &format!("filename: {}", paths.wasm.display()),
            )
        }),
        (
            "upstreams.yaml",
            std::fs::read_to_string(paths.root.join("envoy-config/upstreams.yaml")).unwrap(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, config).unwrap();
        let out = Command::new(&paths.envoy)
            .args(["--mode", "validate", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "envoy rejects {file}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
