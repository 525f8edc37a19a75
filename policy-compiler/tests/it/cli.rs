//! The `serin` binary: exit codes, outputs and formats.

use std::path::PathBuf;
use std::process::{Command, Output};

fn serin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(args)
        .output()
        .expect("serin runs")
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .display()
        .to_string()
}

/// Every policy in `examples/`.
fn examples() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    names
}

fn temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("serin-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const WARNS: &str = "[policy]\nname = \"w\"\n[arms.stable]\n[arms.canary]\n[split]\nkey = \"header:x-u\"\nweights = { stable = 90, canary = 5 }\n";

#[test]
fn check_exit_codes() {
    for ex in examples() {
        let out = serin(&["check", "--deny-warnings", &example(&ex)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{ex}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let warns = temp("warns.toml", WARNS);
    assert_eq!(serin(&["check", &warns]).status.code(), Some(0));
    assert_eq!(
        serin(&["check", "--deny-warnings", &warns]).status.code(),
        Some(2)
    );
    let bad = temp("bad.toml", "[policy]\nname = 1\n");
    let out = serin(&["check", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:2:8"), "{stderr}");
    assert_eq!(serin(&["check"]).status.code(), Some(64));
    assert_eq!(
        serin(&["check", "--format", "yaml", &bad]).status.code(),
        Some(64)
    );
}

#[test]
fn check_json_report() {
    let warns = temp("warns-json.toml", WARNS);
    let out = serin(&["check", "--format", "json", &warns]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["warnings"], 1);
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "weights-do-not-sum");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(7), Some(11))
    );
}

#[test]
fn compile_writes_the_plan() {
    let out_path = temp("plan.json", "");
    let out = serin(&["compile", &example("percent-canary.toml"), "-o", &out_path]);
    assert_eq!(out.status.code(), Some(0));
    let bytes = std::fs::read(&out_path).unwrap();
    let plan = serin_policy::Plan::from_json(bytes.trim_ascii_end()).unwrap();
    assert_eq!(plan.policy, "fraud-model-v2");
    let ast = serin(&["compile", "--emit", "ast", &example("percent-canary.toml")]);
    let v: serde_json::Value = serde_json::from_slice(&ast.stdout).unwrap();
    assert_eq!(v["name"]["v"], "fraud-model-v2");
}

#[test]
fn explain_json_has_the_trace() {
    let out = serin(&[
        "explain",
        &example("percent-canary.toml"),
        "--header",
        "x-user-id=u-42",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = serin_policy::murmur3_x86_32(
        b"",
        b"u-42",
        serin_policy::murmur3_x86_32(b"", b"fraud-v2", 0),
    );
    assert_eq!(v["hash"], hash);
    assert_eq!(v["bucket"], ((u64::from(hash) * 10_000) >> 32));
    assert_eq!(
        v["arm"],
        if (u64::from(hash) * 10_000) >> 32 < 500 {
            "canary"
        } else {
            "stable"
        }
    );
    assert!(v["rule"].is_null());

    let out = serin(&[
        "explain",
        &example("header-testers.toml"),
        "--header",
        "X-Team=ml-platform",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["arm"].as_str(), v["rule"].as_str()),
        (Some("canary"), Some("ml team"))
    );
    assert_eq!(
        serin(&[
            "explain",
            &example("header-testers.toml"),
            "--header",
            "novalue"
        ])
        .status
        .code(),
        Some(64)
    );
}

#[test]
fn explain_override_rules_and_request_parts() {
    let testers = example("header-testers.toml");
    let run = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["explain", testers.as_str(), "--format", "json"];
        all.extend_from_slice(args);
        serde_json::from_slice(&serin(&all).stdout).unwrap()
    };
    // Forcing an arm needs the token or a trusted source.
    let v = run(&["--header", "x-serin-force=canary"]);
    assert_eq!(v["reason"], "default");
    let v = run(&[
        "--header",
        "x-serin-force=canary",
        "--source-ip",
        "10.20.1.2",
    ]);
    assert_eq!(
        (v["reason"].as_str(), v["arm"].as_str()),
        (Some("override"), Some("canary"))
    );
    let v = run(&[
        "--header",
        "x-serin-force=canary",
        "--header",
        "x-serin-token=change-me-per-environment",
    ]);
    assert_eq!(v["reason"], "override");
    // Path and method together.
    let v = run(&["--path", "/v1/batch/score", "--method", "POST"]);
    assert_eq!(v["rule"], "batch");
    let v = run(&["--path", "/v1/batch/score", "--method", "GET"]);
    assert!(v["rule"].is_null());
    // Allow-listed users by header.
    let v = run(&["--header", "x-user-id=u-1002"]);
    assert_eq!(
        (v["rule"].as_str(), v["arm"].as_str()),
        (Some("beta users"), Some("canary"))
    );
}

#[test]
fn fmt_check_and_rewrite() {
    let messy = temp(
        "messy.toml",
        "[policy]\nname=\"m\"  # keep me\n[arms.stable]\n",
    );
    assert_eq!(serin(&["fmt", "--check", &messy]).status.code(), Some(1));
    assert_eq!(serin(&["fmt", &messy]).status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        "[policy]\nname = \"m\"  # keep me\n\n[arms.stable]\n"
    );
    assert_eq!(serin(&["fmt", "--check", &messy]).status.code(), Some(0));
    for ex in examples() {
        assert_eq!(
            serin(&["fmt", "--check", &example(&ex)]).status.code(),
            Some(0),
            "{ex} is not formatted"
        );
    }
}

#[test]
fn schema_is_json() {
    let out = serin(&["schema"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "Serin policy");
}
