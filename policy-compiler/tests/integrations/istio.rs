//! `serin emit istio`: every document validates against Istio's own CRD schema, and the
//! WasmPlugin's pluginConfig, as Istio hands it to the module, is the plan.

use serin_compiler::emit::envoy::Backend;
use serin_compiler::emit::istio::{self, Options};
use serin_policy::Plan;

use crate::common::*;

const CRDS: &str = "istio/crds.gen.yaml";

fn schema_for(crds: &std::path::Path, doc: &serde_json::Value) -> serde_json::Value {
    let version = doc["apiVersion"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    crd_schema(crds, doc["kind"].as_str().unwrap(), version)
}

/// The options of the shipped `istio/fraud-model.yaml`; see istio/README.md.
pub fn shipped_options() -> Options {
    Options {
        namespace: Some("fraud".into()),
        selector: vec![("app".into(), "checkout".into())],
        host: Some("fraud-model".into()),
        source: "examples/fraud-model.toml".into(),
        ..Options::default()
    }
}

fn variants() -> Vec<Options> {
    vec![
        Options::default(),
        Options {
            image: Some("oci://registry.example/serin/filter:1.2.3".into()),
            sha256: Some(format!("sha256:{}", "ab".repeat(32))),
            ..shipped_options()
        },
        Options {
            backend: Backend::Native,
            ..Options::default()
        },
        Options {
            backend: Backend::Native,
            module: Some("/opt/serin/libserin.so".into()),
            ..shipped_options()
        },
    ]
}

#[test]
fn every_document_validates_against_istio_crds() {
    let Some(crds) = shared_schema("every_document_validates_against_istio_crds", CRDS) else {
        return;
    };
    for ex in EXAMPLES {
        let p = plan(ex);
        for opts in variants() {
            let docs = yaml_docs(&istio::manifests(&p, &opts));
            let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
            let filter = match opts.backend {
                Backend::Wasm => "WasmPlugin",
                Backend::Native => "EnvoyFilter",
            };
            assert_eq!(kinds, ["DestinationRule", "VirtualService", filter]);
            for d in &docs {
                let errors = validate(&schema_for(&crds, d), d);
                assert!(
                    errors.is_empty(),
                    "{ex}: {} is invalid:\n{}\n{d:#}",
                    d["kind"],
                    errors.join("\n")
                );
            }
        }
    }
}

#[test]
fn the_strict_schema_catches_mistakes() {
    let Some(crds) = shared_schema("the_strict_schema_catches_mistakes", CRDS) else {
        return;
    };
    let docs = yaml_docs(&istio::manifests(
        &plan("fraud-model.toml"),
        &Options::default(),
    ));
    let mut wp = docs[2].clone();
    let schema = schema_for(&crds, &wp);
    wp["spec"]["failStrategy"] = "FAIL_OPENLY".into();
    assert!(!validate(&schema, &wp).is_empty());
    let mut wp = docs[2].clone();
    wp["spec"]["pluginConfg"] = serde_json::json!({});
    assert!(
        !validate(&schema, &wp).is_empty(),
        "an unknown field is refused"
    );
    let mut wp = docs[2].clone();
    wp["spec"]["sha256"] = "sha256:abc".into();
    assert!(!validate(&schema, &wp).is_empty());
}

#[test]
fn the_native_envoy_filter_inserts_serin_before_the_callers_router() {
    let p = plan("fraud-model.toml");
    let opts = Options {
        backend: Backend::Native,
        ..shipped_options()
    };
    let docs = yaml_docs(&istio::manifests(&p, &opts));
    let spec = &docs[2]["spec"];
    assert_eq!(spec["workloadSelector"]["labels"]["app"], "checkout");
    let patch = &spec["configPatches"][0];
    assert_eq!(patch["applyTo"], "HTTP_FILTER");
    assert_eq!(patch["match"]["context"], "SIDECAR_OUTBOUND");
    assert_eq!(
        patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"],
        "envoy.filters.http.router"
    );
    assert_eq!(patch["patch"]["operation"], "INSERT_BEFORE");
    // The same filter `serin emit envoy --backend native` writes, which Envoy validates
    // (envoy.rs), with the plan as its config and the module at the sidecar's path.
    let value = &patch["patch"]["value"];
    let typed = &value["typed_config"];
    assert_eq!(
        typed["dynamic_module_config"]["module"]["local"]["filename"],
        istio::NATIVE_MODULE_IN_SIDECAR
    );
    let plan_json = typed["filter_config"]["value"].as_str().unwrap();
    assert_eq!(Plan::from_json(plan_json.as_bytes()).unwrap(), p);
}

/// What Istio does to pluginConfig: a protobuf Struct (every number a double) printed as JSON
/// by protojson, which writes integral doubles below 1e21 without a fraction or exponent.
fn as_istio_delivers(v: &serde_json::Value) -> String {
    use serde_json::Value;
    fn go(v: &Value, out: &mut String) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let f = n.as_f64().unwrap();
                out.push_str(&format!("{f}"));
            }
            Value::String(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go(x, out);
                }
                out.push(']');
            }
            Value::Object(o) => {
                out.push('{');
                // protobuf Struct fields are a map: protojson sorts them.
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    go(&o[k], out);
                }
                out.push('}');
            }
        }
    }
    let mut s = String::new();
    go(v, &mut s);
    s
}

#[test]
fn plugin_config_is_the_plan_the_filter_reads() {
    for ex in EXAMPLES {
        let p = plan(ex);
        let docs = yaml_docs(&istio::manifests(&p, &Options::default()));
        let wp = &docs[2];
        assert_eq!(wp["spec"]["failStrategy"], "FAIL_OPEN");
        assert_eq!(
            wp["spec"]["match"],
            serde_json::json!([{ "mode": "CLIENT" }])
        );
        assert_eq!(wp["spec"]["pluginName"], "serin");
        let delivered = as_istio_delivers(&wp["spec"]["pluginConfig"]);
        let back = Plan::from_json(delivered.as_bytes())
            .unwrap_or_else(|e| panic!("{ex}: {e}\n{delivered}"));
        assert_eq!(back, p, "{ex}");
    }
}

#[test]
fn routes_and_subsets() {
    let p = plan("multi-step-ramp.toml");
    let docs = yaml_docs(&istio::manifests(&p, &shipped_options()));
    let (dr, vs) = (&docs[0], &docs[1]);
    assert_eq!(dr["spec"]["host"], "fraud-model");
    assert_eq!(
        dr["spec"]["subsets"],
        serde_json::json!([
            { "name": "stable", "labels": { "version": "v6" } },
            { "name": "canary", "labels": { "version": "v7" } },
        ])
    );
    let http = vs["spec"]["http"].as_array().unwrap();
    assert_eq!(http[0]["name"], "shadow");
    assert_eq!(http[0]["match"][0]["headers"]["x-model-arm"]["exact"], "v6");
    assert_eq!(
        http[0]["match"][0]["headers"]["x-serin-shadow"]["exact"],
        "1"
    );
    assert_eq!(http[0]["mirror"]["subset"], "canary");
    assert_eq!(http[1]["match"][0]["headers"]["x-model-arm"]["exact"], "v7");
    assert_eq!(http[1]["route"][0]["destination"]["subset"], "canary");
    let last = http.last().unwrap();
    assert!(last.get("match").is_none());
    assert_eq!(last["route"][0]["destination"]["subset"], "stable");
    let wp = &docs[2];
    assert_eq!(wp["metadata"]["namespace"], "fraud");
    assert_eq!(wp["spec"]["selector"]["matchLabels"]["app"], "checkout");
}

#[test]
fn shipped_istio_manifests_are_fresh() {
    let native = Options {
        backend: Backend::Native,
        ..shipped_options()
    };
    for (file, opts) in [
        ("istio/fraud-model.yaml", shipped_options()),
        ("istio/fraud-model-native.yaml", native),
    ] {
        let path = root().join(file);
        let want = istio::manifests(&plan("fraud-model.toml"), &opts);
        if std::env::var_os("SERIN_UPDATE").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{file} is stale: regenerate it with `SERIN_UPDATE=1 cargo test -p serin-policy-compiler --test integrations shipped` (see istio/README.md)"
        );
    }
}

#[test]
fn cli_checks_its_arguments() {
    let ok = serin(&[
        "emit",
        "istio",
        "examples/fraud-model.toml",
        "--sha256",
        &"0f".repeat(32),
        "--workload-selector",
        "app=checkout",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let docs = yaml_docs(&String::from_utf8(ok.stdout).unwrap());
    assert_eq!(docs[2]["spec"]["sha256"], "0f".repeat(32));
    let no_sha = serin(&["emit", "istio", "examples/fraud-model.toml"]);
    assert_eq!(no_sha.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&no_sha.stderr).contains("no `--sha256`"));
    assert_eq!(
        serin(&[
            "emit",
            "istio",
            "examples/fraud-model.toml",
            "--sha256",
            "abc"
        ])
        .status
        .code(),
        Some(64)
    );
    assert_eq!(
        serin(&[
            "emit",
            "istio",
            "examples/fraud-model.toml",
            "--workload-selector",
            "app"
        ])
        .status
        .code(),
        Some(64)
    );
}
