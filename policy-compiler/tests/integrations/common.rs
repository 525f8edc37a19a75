//! Paths, policies, CRD schemas and tools the integration tests share.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serin_policy::Plan;

pub const EXAMPLES: &[&str] = &[
    "fraud-model.toml",
    "header-testers.toml",
    "multi-step-ramp.toml",
    "percent-canary.toml",
];

pub fn root() -> PathBuf {
    let r = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    r.canonicalize().unwrap_or(r)
}

pub fn example(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

pub fn plan(name: &str) -> Plan {
    let path = example(name);
    let src = std::fs::read_to_string(&path).unwrap();
    match serin_compiler::compile_str(&src, name) {
        Ok(c) => c.plan,
        Err(d) => panic!("{name}: {}", d.render(false)),
    }
}

pub fn serin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serin"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("serin runs")
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("serin-integrations-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Under `SERIN_E2E=require` (what `cargo xtask test` and CI set) a missing piece fails the test;
/// otherwise the test is skipped with a loud message.
pub fn missing(test: &str, what: &str) {
    if std::env::var("SERIN_E2E").as_deref() == Ok("require") {
        panic!("{test}: {what}");
    }
    eprintln!("SKIPPED {test}: {what}");
}

/// The real Envoy and filter.wasm, or `None` after a skip message.
pub fn envoy_and_wasm(test: &str) -> Option<(PathBuf, PathBuf)> {
    envoy_and_module(test, serin_compiler::emit::envoy::Backend::Wasm)
}

/// Envoy and the backend's module (`SERIN_FILTER_WASM` / `SERIN_NATIVE_MODULE`, else where
/// `cargo xtask` builds it).
pub fn envoy_and_module(
    test: &str,
    backend: serin_compiler::emit::envoy::Backend,
) -> Option<(PathBuf, PathBuf)> {
    let from_env =
        |var: &str, default: PathBuf| std::env::var_os(var).map(PathBuf::from).unwrap_or(default);
    let envoy = from_env("SERIN_ENVOY", root().join(".tools/venv/bin/envoy"));
    let var = match backend {
        serin_compiler::emit::envoy::Backend::Wasm => "SERIN_FILTER_WASM",
        serin_compiler::emit::envoy::Backend::Native => "SERIN_NATIVE_MODULE",
    };
    let module = from_env(var, root().join(backend.default_module()));
    for (what, p) in [("Envoy", &envoy), (backend.name(), &module)] {
        if !p.is_file() {
            missing(
                test,
                &format!(
                    "{what} not found at {} (run `cargo xtask test`)",
                    p.display()
                ),
            );
            return None;
        }
    }
    Some((envoy, module))
}

/// `envoy --mode validate -c CONFIG`: Ok, or Envoy's complaint.
pub fn envoy_validate(envoy: &Path, config: &str, name: &str) -> Result<(), String> {
    let dir = temp_dir(&format!("envoy-{name}"));
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(envoy)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .args(["--disable-hot-restart", "-l", "error"])
        .current_dir(root())
        .output()
        .expect("envoy runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() && text.contains(" OK") {
        Ok(())
    } else {
        Err(text)
    }
}

/// `../shared/schemas/<rel>`, or `None` after a skip message.
pub fn shared_schema(test: &str, rel: &str) -> Option<PathBuf> {
    let p = root().join("../shared/schemas").join(rel);
    if p.is_file() {
        Some(p)
    } else {
        missing(test, &format!("{} is absent", p.display()));
        None
    }
}

/// Every document of a YAML stream, as JSON values.
pub fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(text)
        .map(|d| serde_json::Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// A CRD's schema for `kind` at `version`, made strict the way `kubectl apply` (server-side
/// field validation `Strict`) is: an object that lists its properties and does not preserve
/// unknown fields accepts no others. The root also gets `apiVersion`, `kind` and `metadata`.
pub fn crd_schema(crds: &Path, kind: &str, version: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(crds).unwrap();
    let crd = yaml_docs(&text)
        .into_iter()
        .find(|d| d["kind"] == "CustomResourceDefinition" && d["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind} in {}", crds.display()));
    let v = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{kind} has no version {version}"));
    let mut schema = v["schema"]["openAPIV3Schema"].clone();
    strict(&mut schema);
    let props = schema["properties"].as_object_mut().unwrap();
    props.insert("apiVersion".into(), serde_json::json!({ "type": "string" }));
    props.insert(
        "kind".into(),
        serde_json::json!({ "type": "string", "const": kind }),
    );
    props
        .entry("metadata")
        .or_insert(serde_json::json!({ "type": "object" }));
    schema
}

fn strict(s: &mut serde_json::Value) {
    let Some(obj) = s.as_object_mut() else {
        if let Some(a) = s.as_array_mut() {
            a.iter_mut().for_each(strict);
        }
        return;
    };
    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&serde_json::Value::Bool(true)) {
        return;
    }
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") {
        obj.insert(
            "additionalProperties".into(),
            serde_json::Value::Bool(false),
        );
    }
    // OpenAPI's `nullable` is not JSON Schema; nothing here emits nulls.
    obj.remove("nullable");
    for v in obj.values_mut() {
        strict(v);
    }
}

/// Validate one manifest; every error, with its path.
pub fn validate(schema: &serde_json::Value, doc: &serde_json::Value) -> Vec<String> {
    let v = jsonschema::validator_for(schema).expect("the CRD schema compiles");
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}
