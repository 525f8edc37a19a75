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
            let wasm = Paths::locate_backend(serin_e2e::Backend::Wasm).unwrap();
            shipped.replace(
                "filename: target/filter.wasm",
                &format!("filename: {}", wasm.module.display()),
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

/// No Docker engine runs here, so the compose file is checked for what would break it: every
/// file its Envoys read exists at the path it mounts, both run the Envoy these tests run, and
/// the front Envoy shares the upstreams' loopback (its clusters use 127.0.0.1).
#[test]
fn compose_file_runs_the_shipped_configs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("envoy-config/docker-compose.yaml")).unwrap();
    let compose: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let services = compose["services"].as_mapping().expect("services");
    assert_eq!(services.len(), 2);
    for (name, service) in services {
        assert_eq!(
            service["image"].as_str(),
            Some("envoyproxy/envoy:v1.40.0"),
            "{name:?}"
        );
        assert_eq!(
            service["volumes"][0].as_str(),
            Some("..:/serin:ro"),
            "{name:?} mounts the repository"
        );
        let command: Vec<&str> = service["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let config = command
            .iter()
            .skip_while(|a| **a != "-c")
            .nth(1)
            .expect("a -c CONFIG");
        let on_host = root.join(
            config
                .strip_prefix("/serin/")
                .expect("config under the mount"),
        );
        assert!(
            on_host.is_file(),
            "{name:?} runs {config}, missing at {}",
            on_host.display()
        );
    }
    assert_eq!(
        compose["services"]["envoy"]["network_mode"].as_str(),
        Some("service:upstreams")
    );
    assert_eq!(
        compose["services"]["envoy"]["working_dir"].as_str(),
        Some("/serin")
    );
    let front = std::fs::read_to_string(root.join("envoy-config/envoy.yaml")).unwrap();
    assert!(
        front.contains("filename: target/filter.wasm"),
        "the wasm path is relative to working_dir"
    );
}
