//! The compatibility modes against the published conformance vectors of Unleash and flagd, which
//! live beside the repository (`../shared/vectors/bucketing`). Skipped, with a message, where
//! that folder is absent.

use std::path::PathBuf;

use serde_json::Value;
use serin_compiler::compile_str;

fn vectors(file: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/bucketing")
        .join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("vector file is JSON")),
        Err(_) => {
            eprintln!("skipped: {} is absent", path.display());
            None
        }
    }
}

/// Compile a one-split policy and return the arm name the key lands on.
fn assign(
    arms: &[String],
    stable: &str,
    weights: &[(String, i64)],
    bucketing: &str,
    key: &str,
) -> String {
    let mut src = format!("[policy]\nname = \"vectors\"\nstable = {stable:?}\n");
    for a in arms {
        src.push_str(&format!(
            "[arms.{a:?}]\nvalue = \"arm-{}\"\n",
            arms.iter().position(|x| x == a).unwrap()
        ));
    }
    let w: Vec<String> = weights
        .iter()
        .map(|(a, w)| format!("{a:?} = {w}"))
        .collect();
    src.push_str(&format!(
        "[split]\nkey = [\"header:x-id\"]\nweights = {{ {} }}\nbucketing = {bucketing}\n",
        w.join(", ")
    ));
    let plan = match compile_str(&src, "vectors.toml") {
        Ok(c) => c.plan,
        Err(e) => panic!("{}\n{src}", e.render_short()),
    };
    let b = plan.assign(0, key.as_bytes()).unwrap();
    plan.arm(b.arm).name.clone()
}

#[test]
fn unleash_rollout_and_variants() {
    let Some(v) = vectors("unleash_client_specification.json") else {
        return;
    };
    let mut checked = 0;
    for case in v["vectors"].as_array().unwrap() {
        let group = case["groupId"].as_str().unwrap();
        let id = case["identifier"].as_str().unwrap();
        let bucketing = format!("{{ unleash = {{ group_id = {group:?} }} }}");
        match case["kind"].as_str().unwrap() {
            "rollout" => {
                let pct = case["rollout_percentage"].as_i64().unwrap();
                let arms = ["off".to_owned(), "on".to_owned()];
                let got = assign(&arms, "off", &[("on".into(), pct)], &bucketing, id);
                let want = if case["expected_enabled"].as_bool().unwrap() {
                    "on"
                } else {
                    "off"
                };
                assert_eq!(got, want, "{case}");
            }
            _ => {
                let variants = case["variants"].as_array().unwrap();
                let arms: Vec<String> = variants
                    .iter()
                    .map(|x| x["name"].as_str().unwrap().to_owned())
                    .collect();
                let weights: Vec<(String, i64)> = variants
                    .iter()
                    .map(|x| {
                        (
                            x["name"].as_str().unwrap().to_owned(),
                            x["weight"].as_i64().unwrap(),
                        )
                    })
                    .collect();
                let total = case["total_weight"].as_i64().unwrap();
                let bucketing =
                    format!("{{ unleash = {{ group_id = {group:?}, total_weight = {total} }} }}");
                let got = assign(&arms, &arms[0], &weights, &bucketing, id);
                assert_eq!(got, case["expected_variant"].as_str().unwrap(), "{case}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 38);
}

#[test]
fn flagd_fractional() {
    let Some(v) = vectors("flagd_fractional_v2_core.json") else {
        return;
    };
    let (mut checked, mut skipped) = (0, 0);
    for case in v["vectors"].as_array().unwrap() {
        let variants = case["variants"].as_array().unwrap();
        let weights: Vec<(String, i64)> = variants
            .iter()
            .map(|x| (x[0].as_str().unwrap().to_owned(), x[1].as_i64().unwrap()))
            .collect();
        if weights.iter().any(|(_, w)| *w < 0) {
            // Serin rejects negative weights rather than clamping them as flagd does.
            skipped += 1;
            continue;
        }
        // flagd hashes `flagKey + targetingKey` by default, or whatever a bucketing expression
        // builds; Serin's flagd mode hashes `flag_key + key`, so split the input the same way.
        let flag_key = case["flagKey"].as_str().unwrap();
        let input = case["hash_input"].as_str().unwrap();
        let (prefix, key) =
            if let Some(rest) = input.strip_prefix(flag_key).filter(|r| !r.is_empty()) {
                (flag_key, rest)
            } else if let Some(rest) = input.strip_prefix("my-seed") {
                // flagd's `seed` parameter replaces the flag key as the prefix.
                ("my-seed", rest)
            } else {
                // A bucketing expression of the key alone.
                ("", input)
            };
        let arms: Vec<String> = weights.iter().map(|(a, _)| a.clone()).collect();
        let bucketing = format!("{{ flagd = {{ flag_key = {prefix:?} }} }}");
        let got = assign(&arms, &arms[0], &weights, &bucketing, key);
        assert_eq!(got, case["expected_variant"].as_str().unwrap(), "{case}");
        checked += 1;
    }
    assert_eq!((checked, skipped), (22, 1));
}
