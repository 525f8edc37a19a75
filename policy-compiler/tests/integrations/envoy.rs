//! `serin emit envoy`: the real Envoy accepts the config for every example, with the real
//! filter.wasm, whose `on_configure` must accept the inline plan (validate mode runs it).

use serin_compiler::emit::envoy::{self, Backend, Options, Upstream};
use serin_policy::Plan;

use crate::common::*;

fn options(wasm: &std::path::Path) -> Options {
    backend_options(Backend::Wasm, wasm)
}

fn backend_options(backend: Backend, module: &std::path::Path) -> Options {
    Options {
        backend,
        module: module.display().to_string(),
        source: "test".into(),
        ..Options::default()
    }
}

#[test]
fn every_example_validates_in_envoy_with_either_backend() {
    for backend in Backend::ALL {
        let test = format!("every_example_validates_in_envoy ({})", backend.name());
        let Some((bin, module)) = envoy_and_module(&test, backend) else {
            return;
        };
        for ex in EXAMPLES {
            let config = envoy::config(&plan(ex), &backend_options(backend, &module));
            if let Err(e) = envoy_validate(&bin, &config, ex) {
                panic!("{ex}, {test}: Envoy refused the emitted config:\n{e}\n{config}");
            }
        }
    }
}

#[test]
fn envoy_validate_runs_the_filter_on_the_plan_with_either_backend() {
    // Proof that the test above checks the plan, not only the YAML: a plan of another format
    // makes the filter refuse its configuration, and validation fails.
    for backend in Backend::ALL {
        let test = format!(
            "envoy_validate_runs_the_filter_on_the_plan ({})",
            backend.name()
        );
        let Some((bin, module)) = envoy_and_module(&test, backend) else {
            return;
        };
        let config = envoy::config(
            &plan("percent-canary.toml"),
            &backend_options(backend, &module),
        );
        let format = format!(r#"{{"format":{},"#, serin_policy::PLAN_FORMAT);
        assert!(config.contains(&format), "{config}");
        let broken = config.replacen(&format, r#"{"format":99,"#, 1);
        let err = envoy_validate(&bin, &broken, "format-99").unwrap_err();
        assert!(err.contains("plan format 99"), "{test}: {err}");
    }
}

#[test]
fn dogstatsd_sink_validates_in_envoy() {
    let Some((bin, wasm)) = envoy_and_wasm("dogstatsd_sink_validates_in_envoy") else {
        return;
    };
    let opts = Options {
        dogstatsd: Some(Upstream {
            host: "127.0.0.1".into(),
            port: 8125,
        }),
        ..options(&wasm)
    };
    let config = envoy::config(&plan("fraud-model.toml"), &opts);
    assert!(config.contains("envoy.stat_sinks.dog_statsd"));
    envoy_validate(&bin, &config, "dogstatsd").unwrap();
    // The snippet in docs/guides/observability.md is the same sink.
    let guide = std::fs::read_to_string(root().join("docs/guides/observability.md")).unwrap();
    assert!(guide.contains("type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink"));
}

fn doc(config: &str) -> serde_json::Value {
    yaml_docs(config).remove(0)
}

fn hcm(d: &serde_json::Value) -> &serde_json::Value {
    &d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

#[test]
fn structure_fails_safe_to_stable() {
    for ex in EXAMPLES {
        let p = plan(ex);
        let d = doc(&envoy::config(&p, &Options::default()));
        let hcm = hcm(&d);
        let filters: Vec<&str> = hcm["http_filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            filters,
            [
                "envoy.filters.http.header_mutation",
                "serin",
                "envoy.filters.http.router"
            ],
            "{ex}"
        );
        let removed: Vec<&str> =
            hcm["http_filters"][0]["typed_config"]["mutations"]["request_mutations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["remove"].as_str().unwrap())
                .collect();
        assert!(removed.contains(&p.routing_header.as_str()), "{ex}");
        if let Some(sh) = &p.shadow {
            assert!(removed.contains(&sh.header.as_str()), "{ex}");
        }
        let wasm = &hcm["http_filters"][1]["typed_config"]["config"];
        assert_eq!(wasm["failure_policy"], "FAIL_OPEN");
        let inline = wasm["configuration"]["value"].as_str().unwrap();
        assert_eq!(Plan::from_json(inline.as_bytes()).unwrap(), p, "{ex}");
        let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
            .as_array()
            .unwrap();
        let last = routes.last().unwrap();
        assert!(
            last["match"].get("headers").is_none(),
            "{ex}: the last route matches everything"
        );
        assert_eq!(
            last["route"]["cluster"],
            p.arm(p.stable).name.as_str(),
            "{ex}"
        );
        for (i, arm) in p.arms.iter().enumerate() {
            if i == usize::from(p.stable) {
                continue;
            }
            let r = routes
                .iter()
                .find(|r| r["name"] == arm.name.as_str())
                .unwrap();
            assert_eq!(r["match"]["headers"][0]["name"], p.routing_header.as_str());
            assert_eq!(
                r["match"]["headers"][0]["string_match"]["exact"],
                arm.value.as_str()
            );
            assert_eq!(r["route"]["cluster"], arm.name.as_str());
        }
        let tags: Vec<&str> = d["stats_config"]["stats_tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tag_name"].as_str().unwrap())
            .collect();
        assert_eq!(tags, serin_compiler::emit::metrics::LABELS, "{ex}");
    }
}

#[test]
fn shadow_route_mirrors_to_the_canary() {
    let p = plan("multi-step-ramp.toml");
    let d = doc(&envoy::config(&p, &Options::default()));
    let routes = hcm(&d)["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(routes[0]["name"], "shadow");
    let headers = &routes[0]["match"]["headers"];
    assert_eq!(headers[0]["name"], "x-model-arm");
    assert_eq!(headers[0]["string_match"]["exact"], "v6");
    assert_eq!(headers[1]["name"], "x-serin-shadow");
    assert_eq!(headers[1]["string_match"]["exact"], "1");
    assert_eq!(routes[0]["route"]["cluster"], "stable");
    assert_eq!(
        routes[0]["route"]["request_mirror_policies"][0]["cluster"],
        "canary"
    );
    // The latency histogram gets the policy's buckets (milliseconds).
    let hb = &d["stats_config"]["histogram_bucket_settings"];
    assert!(hb.is_null(), "multi-step-ramp has no [metrics]");
    let f = doc(&envoy::config(
        &plan("fraud-model.toml"),
        &Options::default(),
    ));
    let b = &f["stats_config"]["histogram_bucket_settings"][0]["buckets"];
    assert_eq!(b[0].as_f64(), Some(5.0));
    assert_eq!(b.as_array().unwrap().len(), 8);
}

#[test]
fn cli_upstreams_and_usage_errors() {
    let out = serin(&[
        "emit",
        "envoy",
        "examples/fraud-model.toml",
        "--upstream",
        "canary=fraud-v2.models.svc:8501",
        "--listen",
        "8080",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = doc(&String::from_utf8(out.stdout).unwrap());
    let clusters = d["static_resources"]["clusters"].as_array().unwrap();
    let canary = clusters.iter().find(|c| c["name"] == "canary").unwrap();
    assert_eq!(canary["type"], "STRICT_DNS");
    let addr = &canary["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"];
    assert_eq!(addr["address"], "fraud-v2.models.svc");
    assert_eq!(addr["port_value"], 8501);
    let stable = clusters.iter().find(|c| c["name"] == "stable").unwrap();
    assert_eq!(stable["type"], "STATIC");
    assert_eq!(
        d["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"],
        8080
    );

    // The native backend: the dynamic-module filter, loading the default module path.
    let out = serin(&[
        "emit",
        "envoy",
        "examples/fraud-model.toml",
        "--backend",
        "native",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let d = doc(&String::from_utf8(out.stdout).unwrap());
    // Serin first (no header_mutation: the native filter has no fail-open path to guard).
    let serin_filter = &hcm(&d)["http_filters"][0]["typed_config"];
    assert_eq!(
        serin_filter["dynamic_module_config"]["module"]["local"]["filename"],
        "target/native/libserin.so"
    );
    let bad = serin(&[
        "emit",
        "envoy",
        "examples/fraud-model.toml",
        "--backend",
        "so",
    ]);
    assert_eq!(bad.status.code(), Some(64), "a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown backend `so`"));

    let bad = serin(&[
        "emit",
        "envoy",
        "examples/fraud-model.toml",
        "--upstream",
        "nope=1.2.3.4:80",
    ]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("names no arm"));
    let bad = serin(&[
        "emit",
        "envoy",
        "examples/fraud-model.toml",
        "--upstream",
        "canary",
    ]);
    assert_eq!(bad.status.code(), Some(64));
}
