//! Prometheus rules (structure, and `promtool check rules` when installed), the Grafana
//! dashboard (structure; `grafana.rs` checks it against Grafana's schema), Argo Rollouts and Flagger analysis (their CRD schemas), and the metric
//! names against the filter's source.

use std::process::Command;

use serin_compiler::emit::{argo, flagger, grafana, metrics, prometheus};
use serin_policy::fleet::{Fleet, Query};

use crate::common::*;

fn is_duration(s: &str) -> bool {
    let (num, unit) = s.split_at(s.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit())
        && ["s", "m", "h", "d"].contains(&unit)
}

fn balanced(expr: &str) -> bool {
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escaped = false;
    for c in expr.chars() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0 && !in_str
}

#[test]
fn prometheus_rules_have_the_policy_thresholds() {
    for ex in EXAMPLES {
        let p = plan(ex);
        let text = prometheus::file(&p, ex);
        let doc = yaml_docs(&text).remove(0);
        let groups = doc["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1);
        let rules = groups[0]["rules"].as_array().unwrap();
        let checks = metrics::checks(&p);
        assert_eq!(
            rules.len(),
            checks.len() + 2,
            "{ex}: one rule per guard threshold, plus the state alerts"
        );
        for r in rules {
            let alert = r["alert"].as_str().unwrap();
            assert!(alert.chars().all(|c| c.is_ascii_alphanumeric()), "{alert}");
            let expr = r["expr"].as_str().unwrap();
            assert!(balanced(expr), "{ex}: unbalanced {expr}");
            assert!(is_duration(r["for"].as_str().unwrap()), "{ex}: {r}");
            assert!(["critical", "warning"].contains(&r["labels"]["severity"].as_str().unwrap()));
            assert_eq!(r["labels"]["policy"], p.policy.as_str());
            assert!(r["annotations"]["summary"].is_string());
        }
    }
    // The case study: the elderly-customers guard, per segment value, 20% above stable.
    let p = plan("fraud-model.toml");
    let doc = yaml_docs(&prometheus::file(&p, "fraud-model.toml")).remove(0);
    let elderly = doc["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["labels"]["guard"] == "elderly customers flagged")
        .unwrap()
        .clone();
    let expr = elderly["expr"].as_str().unwrap();
    assert!(
        expr.contains(r#"segment="age_band",segment_value=~"65\\+""#),
        "{expr}"
    );
    assert!(expr.contains("> 1.2"), "{expr}");
    assert!(expr.contains(">= 200"), "{expr}");
    assert!(expr.contains("[10m]"), "{expr}");
    assert_eq!(elderly["labels"]["on_breach"], "rollback");
    assert_eq!(elderly["labels"]["severity"], "critical");
}

/// `promtool`, or `None` after the skip message when it is not installed outside CI.
fn promtool(test: &str) -> Option<std::ffi::OsString> {
    let promtool = std::env::var_os("SERIN_PROMTOOL").unwrap_or_else(|| "promtool".into());
    if Command::new(&promtool).arg("--version").output().is_err() {
        // `cargo xtask test` installs it (Debian's `prometheus` package) and requires it.
        assert!(
            std::env::var("SERIN_E2E").as_deref() != Ok("require"),
            "promtool is missing: run `cargo xtask tools`"
        );
        eprintln!("SKIPPED {test}: `promtool` is not installed (apt-get install prometheus)");
        return None;
    }
    Some(promtool)
}

/// Run `promtool ARGS` in `dir`, and fail with its output and `what` unless it succeeds.
fn run_promtool(promtool: &std::ffi::OsStr, dir: &std::path::Path, args: &[&str], what: &str) {
    let out = Command::new(promtool)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules() {
    let Some(promtool) = promtool("promtool_accepts_the_rules") else {
        return;
    };
    let dir = temp_dir("promtool");
    for ex in EXAMPLES {
        let file = ex.replace(".toml", ".rules.yaml");
        std::fs::write(dir.join(&file), prometheus::file(&plan(ex), ex)).unwrap();
        run_promtool(
            &promtool,
            &dir,
            &["check", "rules", &file],
            &format!("{ex}: promtool refused the rules"),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn grafana_dashboard_structure() {
    for ex in EXAMPLES {
        let p = plan(ex);
        let d = grafana::dashboard(&p);
        assert!(d["uid"].as_str().unwrap().len() <= 40);
        assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
        let panels = d["panels"].as_array().unwrap();
        let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
        ids.dedup();
        assert_eq!(ids.len(), panels.len(), "unique panel ids");
        let titles: Vec<&str> = panels
            .iter()
            .map(|p| p["title"].as_str().unwrap())
            .collect();
        for want in [
            "Traffic share per arm",
            "Error rate",
            "Latency quantiles per arm",
            "Rollout state",
        ] {
            assert!(
                titles.iter().any(|t| t.starts_with(want)),
                "{ex}: no `{want}` panel in {titles:?}"
            );
        }
        assert_eq!(
            titles.iter().any(|t| t.starts_with("Outcome rate")),
            !p.outcomes.is_empty(),
            "{ex}"
        );
        for panel in panels {
            for k in ["type", "gridPos", "targets", "datasource"] {
                assert!(!panel[k].is_null(), "{ex}: panel without {k}");
            }
            for t in panel["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                assert!(balanced(expr), "{expr}");
                assert!(
                    metrics::FAMILIES.iter().any(|f| expr.contains(f.name)),
                    "{ex}: a query on no Serin metric: {expr}"
                );
            }
        }
    }
    let fraud = grafana::dashboard(&plan("fraud-model.toml"));
    let outcome = fraud["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"].as_str().unwrap().starts_with("Outcome"))
        .unwrap()
        .clone();
    assert!(
        outcome["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .contains("segment_value")
    );
    let errors = &fraud["panels"][1];
    assert_eq!(
        errors["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"].as_f64(),
        Some(0.02)
    );
}

#[test]
fn argo_analysis_template_validates_against_its_crd() {
    let Some(crd) = shared_schema(
        "argo_analysis_template_validates_against_its_crd",
        "argo-rollouts/analysis-template-crd.yaml",
    ) else {
        return;
    };
    let schema = crd_schema(&crd, "AnalysisTemplate", "v1alpha1");
    for ex in EXAMPLES {
        let p = plan(ex);
        let doc = yaml_docs(&argo::file(
            &p,
            Some("models"),
            argo::DEFAULT_PROMETHEUS,
            ex,
        ))
        .remove(0);
        let errors = validate(&schema, &doc);
        assert!(errors.is_empty(), "{ex}:\n{}\n{doc:#}", errors.join("\n"));
        let m = doc["spec"]["metrics"].as_array().unwrap();
        assert_eq!(m.len(), metrics::checks(&p).len(), "{ex}");
    }
    let p = plan("fraud-model.toml");
    let doc = yaml_docs(&argo::file(&p, None, "http://prom:9090", "x")).remove(0);
    let m = doc["spec"]["metrics"].as_array().unwrap();
    let err = m.iter().find(|m| m["name"] == "error-rate-max").unwrap();
    assert_eq!(
        err["successCondition"],
        "isNaN(result[0]) || result[0] <= 0.02"
    );
    assert_eq!(err["failureLimit"], 0);
    let hold = m
        .iter()
        .find(|m| m["name"] == "flag-rate-overall-ratio")
        .unwrap();
    assert_eq!(
        hold["failureCondition"], "false",
        "a hold guard is inconclusive, never failed"
    );
    // The strict schema is live: a misspelt field is refused.
    let mut bad = doc.clone();
    bad["spec"]["metrics"][0]["sucessCondition"] = "true".into();
    assert!(!validate(&schema, &bad).is_empty());
}

#[test]
fn flagger_templates_and_canary_validate_against_the_crds() {
    let Some(crd) = shared_schema(
        "flagger_templates_and_canary_validate_against_the_crds",
        "flagger/crd.yaml",
    ) else {
        return;
    };
    let mt = crd_schema(&crd, "MetricTemplate", "v1beta1");
    let canary = crd_schema(&crd, "Canary", "v1beta1");
    for ex in EXAMPLES {
        let p = plan(ex);
        let opts = flagger::Options {
            namespace: Some("models".into()),
            ..flagger::Options::default()
        };
        let docs = yaml_docs(&flagger::file(&p, &opts, ex));
        assert_eq!(docs.len(), metrics::checks(&p).len() + 1, "{ex}");
        for d in &docs {
            let schema = if d["kind"] == "Canary" { &canary } else { &mt };
            let errors = validate(schema, d);
            assert!(
                errors.is_empty(),
                "{ex}: {}:\n{}\n{d:#}",
                d["kind"],
                errors.join("\n")
            );
        }
    }
    let docs = yaml_docs(&flagger::file(
        &plan("multi-step-ramp.toml"),
        &flagger::Options::default(),
        "x",
    ));
    let c = docs.last().unwrap();
    assert_eq!(
        c["spec"]["analysis"]["stepWeights"],
        serde_json::json!([1, 5, 25])
    );
    let m = &c["spec"]["analysis"]["metrics"][1];
    assert_eq!(m["thresholdRange"]["max"].as_f64(), Some(300.0), "{m}");
}

#[test]
fn the_guide_lists_every_metric() {
    let guide = std::fs::read_to_string(root().join("docs/guides/observability.md")).unwrap();
    // The native backend's relabelling, as the catalogue says it.
    let (regex, replacement) = serin_policy::catalogue::NATIVE_RELABEL;
    let relabel =
        format!(r#"regex: "{regex}", target_label: __name__, replacement: "{replacement}""#);
    assert!(guide.contains(&relabel), "no `{relabel}` in the guide");
    for family in metrics::FAMILIES {
        let row = format!("| `{}` | {} |", family.name, family.kind.name());
        assert!(
            guide.contains(&row),
            "docs/guides/observability.md has no row `{row}`"
        );
        for label in family.labels {
            assert!(
                guide.contains(&format!("`{label}`")),
                "no `{label}` in the guide"
            );
        }
    }
}

/// The files under `deploy/`, as `serin emit` writes them for examples/fraud-model.toml.
fn deploy_files() -> Vec<(&'static str, String)> {
    use serin_compiler::emit::envoy;
    let p = plan("fraud-model.toml");
    let src = "examples/fraud-model.toml";
    let dogstatsd = envoy::Options {
        dogstatsd: Some(envoy::Upstream {
            host: "127.0.0.1".into(),
            port: 8125,
        }),
        source: src.into(),
        ..envoy::Options::default()
    };
    vec![
        (
            "deploy/prometheus/fraud-model.rules.yaml",
            prometheus::file(&p, src),
        ),
        (
            "deploy/grafana/fraud-model.dashboard.json",
            format!(
                "{}\n",
                serde_json::to_string_pretty(&grafana::dashboard(&p)).unwrap()
            ),
        ),
        (
            "deploy/argo/fraud-model.analysis-template.yaml",
            argo::file(&p, None, argo::DEFAULT_PROMETHEUS, src),
        ),
        (
            "deploy/flagger/fraud-model.yaml",
            flagger::file(&p, &flagger::Options::default(), src),
        ),
        ("deploy/dogstatsd/envoy.yaml", envoy::config(&p, &dogstatsd)),
    ]
}

#[test]
fn deploy_examples_are_fresh() {
    let update = std::env::var_os("SERIN_UPDATE").is_some();
    let mut stale = Vec::new();
    for (rel, want) in deploy_files() {
        let path = root().join(rel);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "stale: {stale:?}; regenerate with `SERIN_UPDATE=1 cargo test -p serin-policy-compiler --test integrations fresh`"
    );
}

#[test]
fn deploy_dogstatsd_example_validates_in_envoy() {
    let Some((bin, wasm)) = envoy_and_wasm("deploy_dogstatsd_example_validates_in_envoy") else {
        return;
    };
    let text = std::fs::read_to_string(root().join("deploy/dogstatsd/envoy.yaml")).unwrap();
    let config = text.replace(
        "filename: target/filter.wasm",
        &format!("filename: {}", wasm.display()),
    );
    envoy_validate(&bin, &config, "deploy-dogstatsd").unwrap();
}

/// Fleet mode's one query, evaluated by Prometheus's own engine (`promtool test rules`) over
/// three proxies: two run this policy version (one of them rolled back, then went away), one
/// another version. The answer must count only this version's live proxies, remember the
/// rollback, and give the largest weight among them; in both of its forms, the recorded one
/// reading what the emitted recording rules computed.
#[test]
fn prometheus_answers_the_fleet_query_as_the_engine_reads_it() {
    fleet_answer(Query::Raw);
}

#[test]
fn prometheus_answers_the_recorded_fleet_query_as_the_engine_reads_it() {
    fleet_answer(Query::Recorded);
}

fn fleet_answer(form: Query) {
    let Some(promtool) = promtool("prometheus_answers_the_fleet_query_as_the_engine_reads_it")
    else {
        return;
    };
    let mut plan = plan("fraud-model.toml");
    plan.fleet = Some(Fleet {
        query: form,
        ..Fleet::new("prometheus", "prometheus:9090")
    });
    let query = serin_policy::fleet::query(&plan, plan.fleet.as_ref().unwrap());
    let d = serin_policy::fleet::digest_label(&plan.digest);
    let dir = temp_dir(&format!("fleet-query-{form:?}"));
    let (rule_files, responses, buckets) = match form {
        Query::Raw => (
            "[]",
            r#"serin_responses_total{arm="canary",class="5xx"}"#.to_string(),
            r#"serin_distribution_total{arm="canary",guard="score-drift",bucket="le_0.2"}"#
                .to_string(),
        ),
        Query::Recorded => {
            std::fs::write(
                dir.join("rules.yaml"),
                prometheus::file(&plan, "fraud-model.toml"),
            )
            .unwrap();
            (
                "[rules.yaml]",
                format!(r#"serin:responses:sum{{arm="canary",class="5xx",digest="{d}"}}"#),
                format!(
                    r#"serin:distribution:sum{{arm="canary",guard="score-drift",bucket="le_0.2",digest="{d}"}}"#
                ),
            )
        }
    };
    let test = format!(
        r#"rule_files: {rule_files}
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'serin_responses_total{{arm="canary",class="5xx",instance="a"}}'
    values: '0+1x10'
  - series: 'serin_responses_total{{arm="canary",class="5xx",instance="b"}}'
    values: '0+2x10'
  - series: 'serin_responses_total{{arm="canary",class="5xx",instance="c"}}'
    values: '0+100x10'
  - series: 'serin_policy_state{{digest="{d}",instance="a"}}'
    values: '1 1 4 4 _ _ _ _ _ _ _'
  - series: 'serin_policy_state{{digest="{d}",instance="b"}}'
    values: '1x10'
  - series: 'serin_policy_state{{digest="0000000000000000",instance="c"}}'
    values: '1x10'
  - series: 'serin_canary_weight_bp{{instance="b"}}'
    values: '500x10'
  - series: 'serin_canary_weight_bp{{instance="c"}}'
    values: '9000x10'
  - series: 'serin_distribution_total{{arm="canary",guard="score-drift",bucket="le_0.2",instance="b"}}'
    values: '0+3x10'
  promql_expr_test:
  - expr: '{query}'
    eval_time: 10m
    exp_samples:
    - labels: '{responses}'
      value: 20
    - labels: '{buckets}'
      value: 30
    - labels: '{{serin_fleet="rolled_back"}}'
      value: 1
    - labels: '{{serin_fleet="weight_bp"}}'
      value: 500
"#
    );
    std::fs::write(dir.join("fleet.test.yaml"), test).unwrap();
    run_promtool(
        &promtool,
        &dir,
        &["test", "rules", "fleet.test.yaml"],
        &format!("Prometheus answers the {form:?} fleet query otherwise"),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `query = "recorded"`: the rules file gains the fleet's recording rules, and `promtool test
/// rules` shows they sum each version's proxies (and only them), remember which version rolled
/// back, and keep the largest weight: the series the recorded fleet query reads.
#[test]
fn the_fleet_recording_rules_sum_each_version_over_its_proxies() {
    let source = std::fs::read_to_string(example("fraud-model-fleet.toml"))
        .unwrap()
        .replace("[fleet]\n", "[fleet]\nquery = \"recorded\"\n");
    let plan = match serin_compiler::compile_str(&source, "fraud-model-fleet.toml") {
        Ok(c) => c.plan,
        Err(d) => panic!("{}", d.render(false)),
    };
    let rules = prometheus::rules(&plan);
    let groups = rules["groups"].as_sequence().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[1]["name"], "serin-fleet");
    assert_eq!(groups[1]["interval"], "2s");
    let raw = serin_compiler::compile_str(
        &std::fs::read_to_string(example("fraud-model-fleet.toml")).unwrap(),
        "fraud-model-fleet.toml",
    )
    .unwrap()
    .plan;
    assert_eq!(
        prometheus::rules(&raw)["groups"]
            .as_sequence()
            .unwrap()
            .len(),
        1
    );

    let Some(promtool) = promtool("the_fleet_recording_rules_sum_each_version_over_its_proxies")
    else {
        return;
    };
    let dir = temp_dir("fleet-rules");
    std::fs::write(
        dir.join("rules.yaml"),
        prometheus::file(&plan, "fraud-model-fleet.toml"),
    )
    .unwrap();
    // Proxies a and b run version d1 (a rolls back at the fourth sample), c runs d0.
    let test = r#"rule_files: [rules.yaml]
evaluation_interval: 1s
tests:
- interval: 1s
  input_series:
  - { series: 'serin_policy_state{instance="a", digest="d1"}', values: '2 2 2 4 4' }
  - { series: 'serin_policy_state{instance="b", digest="d1"}', values: '2 2 2 2 2' }
  - { series: 'serin_policy_state{instance="c", digest="d0"}', values: '2 2 2 2 2' }
  - { series: 'serin_responses_total{instance="a", arm="canary", class="5xx"}', values: '0 1 2 3 4' }
  - { series: 'serin_responses_total{instance="b", arm="canary", class="5xx"}', values: '0 10 20 30 40' }
  - { series: 'serin_responses_total{instance="c", arm="canary", class="5xx"}', values: '0 100 200 300 400' }
  - { series: 'serin_outcomes_total{instance="a", arm="canary", outcome="flagged", segment="age_band", segment_value="65+"}', values: '0 1 2 3 4' }
  - { series: 'serin_outcomes_total{instance="b", arm="canary", outcome="flagged", segment="age_band", segment_value="65+"}', values: '0 1 2 3 4' }
  - { series: 'serin_canary_weight_bp{instance="a"}', values: '500 500 500 0 0' }
  - { series: 'serin_canary_weight_bp{instance="b"}', values: '500 1000 1000 1000 1000' }
  promql_expr_test:
  - expr: serin:responses:sum
    eval_time: 4s
    exp_samples:
    - { labels: 'serin:responses:sum{digest="d1", arm="canary", class="5xx"}', value: 44 }
    - { labels: 'serin:responses:sum{digest="d0", arm="canary", class="5xx"}', value: 400 }
  - expr: serin:outcomes:sum
    eval_time: 4s
    exp_samples:
    - { labels: 'serin:outcomes:sum{digest="d1", arm="canary", outcome="flagged", segment="age_band", segment_value="65+"}', value: 8 }
  - expr: max_over_time(serin:rolled_back:max{digest="d1"}[10s])
    eval_time: 4s
    exp_samples:
    - { labels: '{digest="d1"}', value: 1 }
  - expr: serin:rolled_back:max
    eval_time: 2s
    exp_samples:
    - { labels: 'serin:rolled_back:max{digest="d1"}', value: 0 }
    - { labels: 'serin:rolled_back:max{digest="d0"}', value: 0 }
  - expr: serin:canary_weight_bp:max
    eval_time: 4s
    exp_samples:
    - { labels: 'serin:canary_weight_bp:max{digest="d1"}', value: 1000 }
"#;
    std::fs::write(dir.join("test.yaml"), test).unwrap();
    run_promtool(
        &promtool,
        &dir,
        &["test", "rules", "test.yaml"],
        "the fleet's recording rules compute otherwise",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
