//! The Grafana dashboards against Grafana's own dashboard model. No Grafana runs here, but the
//! `@grafana/schema` npm package ships the model's TypeScript types (the ones Grafana's frontend
//! uses, generated from its CUE schema). `tests/grafana/` pins it and TypeScript in a
//! package-lock; `model.ts` there types a dashboard with them. Each dashboard is written as
//! `export const dashboard = <JSON> satisfies SerinDashboard;` and `tsc --noEmit --strict`
//! checks it: an unknown field, a missing required one, a wrong type or a value outside an enum
//! is an error. `cargo xtask tools` runs `npm ci` there and passes the folder in
//! `SERIN_GRAFANA_CHECK`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use serin_compiler::emit::grafana;

use crate::common::*;

/// The checker's folder with its `node_modules` installed at the pinned versions, or `None`
/// after a skip message.
fn checker(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SERIN_GRAFANA_CHECK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("policy-compiler/tests/grafana"));
    let read = |rel: &str| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(rel)).ok()?).ok()
    };
    let Some(pins) = read("package.json") else {
        missing(test, &format!("no package.json in {}", dir.display()));
        return None;
    };
    for (name, version) in pins["devDependencies"].as_object().unwrap() {
        let installed = read(&format!("node_modules/{name}/package.json"));
        if installed.as_ref().map(|p| &p["version"]) != Some(version) {
            missing(
                test,
                &format!(
                    "{name} {version} is not installed in {} (run `cargo xtask tools`, or `npm ci` there)",
                    dir.display()
                ),
            );
            return None;
        }
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing(test, "`node` is not installed (apt-get install nodejs)");
        return None;
    }
    Some(dir)
}

/// Type-check each `(name, dashboard)` in one `tsc` run; the errors of each file by name
/// (empty when it passed).
fn type_check(test: &str, dashboards: &[(String, Value)]) -> Option<BTreeMap<String, Vec<String>>> {
    let dir = checker(test)?;
    let work = temp_dir(test);
    let model = serde_json::to_string(&dir.join("model").to_string_lossy()).unwrap();
    let mut files = Vec::new();
    for (name, d) in dashboards {
        let file = format!("{name}.ts");
        let json = serde_json::to_string_pretty(d).unwrap();
        std::fs::write(
            work.join(&file),
            format!(
                "import type {{ SerinDashboard }} from {model};\n\n\
                 export const dashboard = {json} satisfies SerinDashboard;\n"
            ),
        )
        .unwrap();
        files.push(file);
    }
    let tsconfig = serde_json::json!({
        "extends": dir.join("tsconfig.json"),
        "files": files,
    });
    std::fs::write(work.join("tsconfig.json"), tsconfig.to_string()).unwrap();
    let out = Command::new("node")
        .arg(dir.join("node_modules/typescript/bin/tsc"))
        .args([
            "-p",
            "tsconfig.json",
            "--noEmit",
            "--strict",
            "--pretty",
            "false",
        ])
        .current_dir(&work)
        .output()
        .expect("node runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut errors: BTreeMap<String, Vec<String>> = dashboards
        .iter()
        .map(|(name, _)| (name.clone(), Vec::new()))
        .collect();
    let mut last: Option<String> = None;
    for line in text.lines() {
        let file = line
            .split_once(".ts(")
            .map(|(f, _)| f)
            .filter(|f| errors.contains_key(*f));
        match (file, &last) {
            (Some(f), _) => {
                errors.get_mut(f).unwrap().push(line.to_string());
                last = Some(f.to_string());
            }
            // tsc indents an error's elaboration under it.
            (None, Some(f)) if line.starts_with(' ') => {
                errors
                    .get_mut(f)
                    .unwrap()
                    .last_mut()
                    .unwrap()
                    .push_str(&format!("\n{line}"));
            }
            _ => panic!("{test}: tsc said something about no dashboard:\n{text}"),
        }
    }
    let failed = errors.values().any(|e| !e.is_empty());
    assert_eq!(
        out.status.success(),
        !failed,
        "{test}: tsc's exit status and its errors disagree:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&work);
    Some(errors)
}

#[test]
fn grafana_dashboards_type_check_against_grafana_schema() {
    // Every policy in examples/ (scenarios/ holds simulation scenarios).
    let mut names: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= EXAMPLES.len(), "{names:?}");
    let dashboards: Vec<(String, Value)> = names
        .iter()
        .map(|ex| {
            (
                ex.trim_end_matches(".toml").replace('-', "_"),
                grafana::dashboard(&plan(ex)),
            )
        })
        .collect();
    let Some(errors) = type_check(
        "grafana_dashboards_type_check_against_grafana_schema",
        &dashboards,
    ) else {
        return;
    };
    for (name, e) in &errors {
        assert!(
            e.is_empty(),
            "{name}: the dashboard does not fit Grafana's schema:\n{}",
            e.join("\n")
        );
    }
}

/// The check is live: each of these mistakes alone makes tsc refuse the dashboard, while the
/// unchanged dashboard in the same run passes.
#[test]
fn grafana_schema_check_rejects_broken_dashboards() {
    type Break = fn(&mut Value);
    let breaks: &[(&str, Break)] = &[
        // An unknown field: on the dashboard, a panel, a custom field config, a query.
        ("dashboard_field_misspelt", |d| d["refersh"] = "10s".into()),
        ("panel_field_misspelt", |d| {
            d["panels"][0]["gridpos"] = d["panels"][0]["gridPos"].clone()
        }),
        ("custom_field_unknown", |d| {
            d["panels"][0]["fieldConfig"]["defaults"]["custom"]["lineWidht"] = 2.into()
        }),
        ("query_field_misspelt", |d| {
            d["panels"][0]["targets"][0]["legend"] = "{{arm}}".into()
        }),
        ("state_timeline_option_unknown", |d| {
            d["panels"][4]["options"]["showValues"] = "auto".into()
        }),
        // A value outside an enum.
        ("thresholds_mode_invalid", |d| {
            d["panels"][1]["fieldConfig"]["defaults"]["thresholds"]["mode"] = "abs".into()
        }),
        ("tooltip_mode_invalid", |d| {
            d["panels"][0]["options"]["tooltip"]["mode"] = "multiple".into()
        }),
        ("mapping_type_invalid", |d| {
            d["panels"][4]["fieldConfig"]["defaults"]["mappings"][0]["type"] = "values".into()
        }),
        ("variable_type_invalid", |d| {
            d["templating"]["list"][0]["type"] = "datasources".into()
        }),
        // A wrong type, a missing required field.
        ("grid_height_a_string", |d| {
            d["panels"][0]["gridPos"]["h"] = "8".into()
        }),
        ("query_without_ref_id", |d| {
            d["panels"][0]["targets"][0]
                .as_object_mut()
                .unwrap()
                .remove("refId");
        }),
        ("legend_without_show_legend", |d| {
            d["panels"][0]["options"]["legend"]
                .as_object_mut()
                .unwrap()
                .remove("showLegend");
        }),
        ("without_schema_version", |d| {
            d.as_object_mut().unwrap().remove("schemaVersion");
        }),
    ];
    let good = grafana::dashboard(&plan("fraud-model.toml"));
    assert_eq!(good["panels"][4]["type"], "state-timeline");
    let mut dashboards = vec![("unchanged".to_string(), good.clone())];
    for (name, f) in breaks {
        let mut d = good.clone();
        f(&mut d);
        assert_ne!(d, good, "{name} changes nothing");
        dashboards.push((name.to_string(), d));
    }
    let Some(errors) = type_check(
        "grafana_schema_check_rejects_broken_dashboards",
        &dashboards,
    ) else {
        return;
    };
    assert!(
        errors["unchanged"].is_empty(),
        "{}",
        errors["unchanged"].join("\n")
    );
    for (name, _) in breaks {
        assert!(!errors[*name].is_empty(), "tsc accepted {name}");
    }
}
