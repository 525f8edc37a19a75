//! Faults in real Envoy: plugin configurations the filter must refuse (at start and as a live
//! update), a canary whose upstream refuses connections, and an upstream that resets a response
//! after it started.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use serde_norway::Value;
use serin_e2e::{Envoy, Load, Paths, Ports, Stack, free_port, front_config};

use crate::compile;
use crate::rollout::{FAULTY_CANARY_POLICY, ROLLED_BACK, wait_for_state};

/// 20% of users on the canary; more than 2% canary errors roll it back.
const GUARDED_POLICY: &str = FAULTY_CANARY_POLICY;

/// Each bad plugin configuration, and the words the filter's refusal must contain.
fn bad_configs(good: &str) -> Vec<(&'static str, String, String)> {
    let good: Json = serde_json::from_str(good).expect("a plan is JSON");
    let with = |edit: &dyn Fn(&mut Json)| {
        let mut v = good.clone();
        edit(&mut v);
        v.to_string()
    };
    let next = serin_policy::PLAN_FORMAT + 1;
    // Over the filter's 4 MiB plan limit, and otherwise a valid plan.
    let oversized = with(&|v| v["policy"] = json!("x".repeat(5 << 20)));
    vec![
        ("empty", String::new(), "empty".into()),
        ("not JSON", "not json".into(), "not a JSON object".into()),
        (
            "a newer plan format",
            with(&|v| v["format"] = json!(next)),
            format!("format {next} is not supported"),
        ),
        ("oversized", oversized, "4194304-byte limit".into()),
        (
            "a wrong type",
            with(&|v| v["arms"] = json!("stable")),
            "invalid type: string \"stable\"".into(),
        ),
        (
            "an absurd value",
            with(&|v| v["stable"] = json!(200)),
            "out of range".into(),
        ),
    ]
}

/// Replace every string equal to `from` (the plan, inside the wasm filter's configuration).
fn replace_string(v: &mut Value, from: &str, to: &str) -> usize {
    match v {
        Value::String(s) if s == from => {
            *s = to.to_string();
            1
        }
        Value::Sequence(items) => items.iter_mut().map(|i| replace_string(i, from, to)).sum(),
        Value::Mapping(m) => m.values_mut().map(|i| replace_string(i, from, to)).sum(),
        _ => 0,
    }
}

#[test]
fn envoy_refuses_to_start_with_a_bad_plugin_config_and_says_why() {
    let Some(paths) =
        Paths::for_test("envoy_refuses_to_start_with_a_bad_plugin_config_and_says_why")
    else {
        return;
    };
    let plan = compile(GUARDED_POLICY, "faults.toml");
    let ports = Ports::free();
    let good_yaml = front_config(&plan, ports, paths.backend, &paths.module);
    let good = plan.to_json();
    for (case, bad, reason) in bad_configs(&good) {
        let mut config: Value = serde_norway::from_str(&good_yaml).unwrap();
        assert_eq!(replace_string(&mut config, &good, &bad), 1);
        let yaml = serde_norway::to_string(&config).unwrap();
        match Envoy::start(&paths.envoy, &yaml, ports.admin, &paths.root, 1) {
            Ok(envoy) => panic!(
                "{case}: Envoy started with a plan the filter refuses:\n{}",
                envoy.problems()
            ),
            Err(problems) => assert!(
                problems.contains("serin: refusing plugin configuration")
                    && problems.contains(&reason),
                "{case}: the log does not say `{reason}`:\n{problems}"
            ),
        }
    }
}

/// The front config with its listener moved to a file that Envoy watches (LDS from a path),
/// as a control plane such as Istio would push it.
struct LiveListener {
    dir: tempfile::TempDir,
    listener: Value,
}

impl LiveListener {
    fn split(front_yaml: &str) -> (String, LiveListener) {
        let mut bootstrap: Value = serde_norway::from_str(front_yaml).unwrap();
        let listener = bootstrap["static_resources"]["listeners"][0].clone();
        bootstrap["static_resources"]
            .as_mapping_mut()
            .unwrap()
            .remove("listeners");
        let dir = tempfile::tempdir().unwrap();
        let live = LiveListener { dir, listener };
        let lds = json!({
            "lds_config": {
                "resource_api_version": "V3",
                "path_config_source": {
                    "path": live.path().display().to_string(),
                    "watched_directory": { "path": live.dir.path().display().to_string() },
                },
            },
        });
        bootstrap["dynamic_resources"] = serde_norway::to_value(lds).unwrap();
        // Envoy requires a node identity for any xDS source, a file included.
        bootstrap["node"] =
            serde_norway::to_value(json!({ "id": "front", "cluster": "serin-e2e" })).unwrap();
        live.publish(&live.listener.clone());
        (serde_norway::to_string(&bootstrap).unwrap(), live)
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("lds.yaml")
    }

    /// Write the listener the way a file-based control plane must: a new file moved into place.
    fn publish(&self, listener: &Value) {
        let mut resource = listener.clone();
        resource.as_mapping_mut().unwrap().insert(
            "@type".into(),
            "type.googleapis.com/envoy.config.listener.v3.Listener".into(),
        );
        let doc = serde_norway::to_string(&json_like_resources(resource)).unwrap();
        let tmp = self.dir.path().join("lds.yaml.tmp");
        std::fs::write(&tmp, doc).unwrap();
        std::fs::rename(&tmp, self.path()).unwrap();
    }

    /// The listener with this plan in place of `good`.
    fn with_plan(&self, good: &str, plan: &str) -> Value {
        let mut l = self.listener.clone();
        assert_eq!(replace_string(&mut l, good, plan), 1);
        l
    }
}

fn json_like_resources(resource: Value) -> Value {
    let mut m = serde_norway::Mapping::new();
    m.insert("resources".into(), Value::Sequence(vec![resource]));
    Value::Mapping(m)
}

/// `plan` in Envoy with 2 workers, its listener served from a watched file, ready for traffic.
fn live_stack(paths: &Paths, plan: &serin_policy::Plan) -> (Stack, LiveListener) {
    let mut live = None;
    let stack = Stack::start_edited(paths, plan, 2, |yaml, _| {
        let (bootstrap, l) = LiveListener::split(&yaml);
        live = Some(l);
        bootstrap
    })
    .expect("envoy starts");
    wait_for("the listener", Duration::from_secs(20), || {
        stack.send("/", &[("x-user-id", "warm")]).is_ok()
    });
    (stack, live.expect("the config was edited"))
}

/// `listener_manager.lds.<name>` from the admin's stats.
fn lds_stat(envoy: &Envoy, name: &str) -> u64 {
    let stats = envoy.admin("/stats?filter=listener_manager.lds").unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("listener_manager.lds.{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many of `users` distinct users the canary served. Each on a new connection, so that
/// after a listener update every request reaches the listener Envoy serves new connections with.
fn canary_share(stack: &Stack, users: u32, tag: &str) -> u32 {
    (0..users)
        .filter(|i| {
            let reply = stack
                .send_on_new_connection("/", &[("x-user-id", &format!("{tag}-{i}"))])
                .unwrap();
            assert_eq!(reply.status, 200, "request {i} ({tag})");
            reply.served_by.as_deref() == Some("canary")
        })
        .count() as u32
}

#[test]
fn a_bad_plugin_config_pushed_to_a_running_envoy_is_rejected_and_the_old_plan_keeps_serving() {
    let Some(paths) = Paths::for_test(
        "a_bad_plugin_config_pushed_to_a_running_envoy_is_rejected_and_the_old_plan_keeps_serving",
    ) else {
        return;
    };
    let plan = compile(GUARDED_POLICY, "faults.toml");
    let good = plan.to_json();
    let (stack, live) = live_stack(&paths, &plan);
    let before = canary_share(&stack, 2_000, "before");
    assert!((300..500).contains(&before), "20% of 2,000: {before}");

    for (case, bad, reason) in bad_configs(&good) {
        let rejected = lds_stat(&stack.front, "update_rejected");
        live.publish(&live.with_plan(&good, &bad));
        wait_for(case, Duration::from_secs(20), || {
            lds_stat(&stack.front, "update_rejected") > rejected
        });
        let log = stack.front.log();
        assert!(
            log.contains("serin: refusing plugin configuration") && log.contains(&reason),
            "{case}: the log does not say `{reason}`:\n{}",
            stack.front.problems()
        );
        // Still the good plan: the same users on the same arms.
        assert_eq!(canary_share(&stack, 2_000, "before"), before, "{case}");
    }

    // A good update is still taken afterwards: everything to stable.
    let mut v: Json = serde_json::from_str(&good).unwrap();
    v["splits"][0]["lanes"] = json!([]);
    let accepted = lds_stat(&stack.front, "update_success");
    live.publish(&live.with_plan(&good, &v.to_string()));
    wait_for("the good update", Duration::from_secs(20), || {
        lds_stat(&stack.front, "update_success") > accepted
    });
    wait_for("the new listener serving", Duration::from_secs(20), || {
        canary_share(&stack, 200, "after") == 0
    });
}

#[test]
fn a_rollback_survives_a_live_reload_of_the_same_policy() {
    let Some(paths) = Paths::for_test("a_rollback_survives_a_live_reload_of_the_same_policy")
    else {
        return;
    };
    let plan = compile(GUARDED_POLICY, "faults.toml");
    let (stack, live) = live_stack(&paths, &plan);
    stack
        .set_upstream_runtime("fault.http.abort.abort_percent", 50)
        .unwrap();
    let load = Load::default();
    let rolled_back = load.during(&stack, 4, || {
        wait_for_state(&stack, ROLLED_BACK, Duration::from_secs(60))
    });
    assert!(
        rolled_back.is_some(),
        "no rollback:\n{}",
        stack.front.problems()
    );
    // The canary is healthy again, but a rollback is not undone by itself...
    stack
        .set_upstream_runtime("fault.http.abort.abort_percent", 0)
        .unwrap();

    // ...nor by a reload: the same plan re-serialized (as a control plane may push it), so that
    // Envoy configures the plugin afresh, in a listener it has to rebuild (another stat prefix).
    // The filter finds the rollout in shared data, by the plan's digest.
    let good = plan.to_json();
    let mut reloaded = live.with_plan(&good, &format!("{good}\n"));
    reloaded["filter_chains"][0]["filters"][0]["typed_config"]["stat_prefix"] =
        "ingress_reloaded".into();
    let accepted = lds_stat(&stack.front, "update_success");
    let loads = stack.front.log().matches("serin: loaded policy").count();
    live.publish(&reloaded);
    wait_for("the reload", Duration::from_secs(20), || {
        lds_stat(&stack.front, "update_success") > accepted
    });
    wait_for(
        "the reloaded listener serving",
        Duration::from_secs(20),
        || {
            let _ = stack.send_on_new_connection("/", &[("x-user-id", "probe")]);
            stack
                .front
                .admin("/stats?filter=^http.ingress_reloaded.downstream_rq_total$")
                .is_ok_and(|t| {
                    t.lines()
                        .any(|l| !l.ends_with(": 0") && l.contains("rq_total"))
                })
        },
    );
    let reloads = stack.front.log().matches("serin: loaded policy").count() - loads;
    eprintln!("the reload configured the filter {reloads} times");
    assert!(
        reloads >= 1,
        "the reload configured the filter again:\n{}",
        stack.front.problems()
    );
    for i in 0..1_000 {
        let reply = stack
            .send("/", &[("x-user-id", &format!("reloaded-{i}"))])
            .unwrap();
        assert_eq!(
            reply.served_by.as_deref(),
            Some("stable"),
            "request {i} after the reload"
        );
    }
    assert_eq!(stack.prometheus("serin_rollout_state"), Some(ROLLED_BACK));
}

#[test]
fn a_canary_that_refuses_connections_is_rolled_back() {
    let Some(paths) = Paths::for_test("a_canary_that_refuses_connections_is_rolled_back") else {
        return;
    };
    let plan = compile(GUARDED_POLICY, "faults.toml");
    // Nothing listens on the canary's port: every connection attempt is refused.
    let dead = free_port();
    let stack = Stack::start_edited(&paths, &plan, 2, |yaml, ports| {
        point_canary_at(&yaml, ports, dead)
    })
    .expect("envoy starts");
    let load = Load::default();
    let rolled_back = load.during(&stack, 8, || {
        wait_for_state(&stack, ROLLED_BACK, Duration::from_secs(60))
    });
    let after = rolled_back
        .unwrap_or_else(|| panic!("no rollback within 60 s:\n{}", stack.front.problems()));
    eprintln!(
        "rolled back after {after:?}; {} requests, {} errors seen by clients",
        load.sent.load(Ordering::Relaxed),
        load.errors.load(Ordering::Relaxed)
    );
    // The refused connections were counted as the canary's 5xx (Envoy's own 503 replies).
    let canary_5xx = stack
        .prometheus(r#"serin_responses_total{arm="canary",class="5xx"}"#)
        .unwrap_or(0.0);
    assert!(canary_5xx >= 100.0, "canary 5xx counted: {canary_5xx}");
    let stable_5xx = stack
        .prometheus(r#"serin_responses_total{arm="stable",class="5xx"}"#)
        .unwrap_or(0.0);
    assert_eq!(stable_5xx, 0.0, "stable stays healthy");
    std::thread::sleep(Duration::from_millis(1_100));
    for i in 0..1_000 {
        let reply = stack
            .send("/", &[("x-user-id", &format!("after-{i}"))])
            .unwrap();
        assert_eq!(
            (reply.status, reply.served_by.as_deref()),
            (200, Some("stable")),
            "request {i} after the rollback"
        );
    }
}

/// The front config with the canary cluster's endpoint moved to `port`.
fn point_canary_at(yaml: &str, ports: Ports, port: u16) -> String {
    let from = format!("port_value: {}\n", ports.canary);
    assert_eq!(yaml.matches(&from).count(), 1, "one canary endpoint");
    yaml.replace(&from, &format!("port_value: {port}\n"))
}

/// The front config with the connection manager's `delayed_close_timeout` off. When Envoy
/// cuts a response short it closes the client's connection; by default it first waits up to 1 s
/// for the client to close, which would make each cut request take a second.
fn without_delayed_close(yaml: &str) -> String {
    let mut config: Value = serde_norway::from_str(yaml).unwrap();
    let hcm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert!(hcm.is_mapping(), "the ingress connection manager");
    hcm["delayed_close_timeout"] = "0s".into();
    serde_norway::to_string(&config).unwrap()
}

/// An HTTP/1.1 upstream that promises a 1,000-byte body, sends 20 bytes and closes the
/// connection: a reset after the response started. Returns its port and how many it cut.
fn cutting_upstream(stop: Arc<AtomicBool>) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let cut = Arc::new(AtomicU64::new(0));
    let counted = cut.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        content-length: 1000\r\nx-served-by: canary\r\n\r\n";
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(b"{\"predictions\": [0.");
            let _ = conn.flush();
            counted.fetch_add(1, Ordering::Relaxed);
            drop(conn);
        }
    });
    (port, cut)
}

#[test]
fn an_upstream_reset_after_the_response_started_counts_as_a_reset() {
    let Some(paths) =
        Paths::for_test("an_upstream_reset_after_the_response_started_counts_as_a_reset")
    else {
        return;
    };
    let plan = compile(GUARDED_POLICY, "faults.toml");
    let stop = Arc::new(AtomicBool::new(false));
    let (port, cut) = cutting_upstream(stop.clone());
    let stack = Stack::start_edited(&paths, &plan, 1, |yaml, ports| {
        without_delayed_close(&point_canary_at(&yaml, ports, port))
    })
    .expect("envoy starts");
    let (mut canary, mut failed) = (0u64, 0u64);
    for i in 0..1_000 {
        match stack.send("/", &[("x-user-id", &format!("user-{i}"))]) {
            Ok(reply) if reply.served_by.as_deref() == Some("canary") => canary += 1,
            Ok(reply) => assert_eq!(reply.status, 200, "request {i}"),
            // The client sees the truncated body as an error.
            Err(_) => failed += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let cut = cut.load(Ordering::Relaxed);
    assert!(cut >= 50, "the canary cut {cut} responses");
    eprintln!("{cut} responses cut; the client saw {failed} failures and {canary} canary replies");
    // Counters are flushed on the filter's 1 s tick.
    let resets = |arm: &str| {
        stack
            .prometheus(&format!(r#"serin_resets_total{{arm="{arm}"}}"#))
            .unwrap_or(0.0) as u64
    };
    wait_for("the resets flushed", Duration::from_secs(5), || {
        resets("canary") == cut
    });
    assert_eq!(resets("stable"), 0);
    // ...and the rollout judged them as failures: a rollback.
    wait_for("the rollback", Duration::from_secs(10), || {
        stack.prometheus("serin_rollout_state") == Some(ROLLED_BACK)
    });
}
