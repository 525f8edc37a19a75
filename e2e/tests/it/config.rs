//! The shipped Envoy configs are real: Envoy validates them, and the inline plan is fresh.

use std::path::Path;
use std::process::Command;

use serin_e2e::{Paths, Ports, front_config};

use crate::compile_example;

#[test]
fn shipped_envoy_config_carries_the_current_example_plan() {
    let Some(paths) = Paths::for_test("shipped_envoy_config_carries_the_current_example_plan")
    else {
        return;
    };
    let shipped = std::fs::read_to_string(paths.root.join("envoy-config/envoy.yaml")).unwrap();
    let plan = compile_example(&paths, "percent-canary.toml");
    let fresh = front_config(
        &shipped,
        Ports::SHIPPED,
        Path::new("target/filter.wasm"),
        &plan.to_json(),
    )
    .unwrap();
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
