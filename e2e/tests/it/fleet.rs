//! Fleet mode in real Envoy: three front proxies, each with its own upstreams, and a real
//! Prometheus scraping their admin `/stats/prometheus` every second and answering their fleet
//! queries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serin_e2e::{Load, Paths, Prometheus, Stack, StopOnDrop, free_port, uneven};

use serin_policy::fleet::Query;

use crate::compile;
use crate::rollout::ROLLED_BACK;

const INTERVAL_S: u64 = 2;
const SCRAPE_MS: u32 = 1_000;

fn policy(prometheus_port: u16) -> String {
    policy_reading(prometheus_port, "raw")
}

/// The test policy, its fleet query in the form `query` (`raw` or `recorded`).
fn policy_reading(prometheus_port: u16, query: &str) -> String {
    format!(
        r#"
[policy]
name = "e2e-fleet"
[arms.stable]
[arms.canary]
[split]
key = ["header:x-user-id"]
salt = "e2e-fleet"
weights = {{ canary = 20 }}
fallback = "stable"
[guard_defaults]
window = "1m"
min_samples = 100
[[guards]]
name = "error rate"
metric = "error_rate"
max = 0.02
[fleet]
cluster = "prometheus"
authority = "127.0.0.1:{prometheus_port}"
interval = "{INTERVAL_S}s"
timeout = "1s"
memory = "5m"
query = "{query}"
"#
    )
}

/// A faulty canary, and the traffic uneven: the first proxy carries nearly all of it, the other
/// two a trickle (20 requests a second each), too little to reach their own `min_samples` for
/// half a minute. The first proxy rolls back on its own evidence; the others learn it from
/// Prometheus within one query interval plus one scrape.
#[test]
fn a_rollback_reaches_every_proxy_within_an_interval_and_a_scrape() {
    rollback_reaches_every_proxy(
        "a_rollback_reaches_every_proxy_within_an_interval_and_a_scrape",
        Query::Raw,
    );
}

/// The same through the recording rules that `serin emit prometheus` writes for
/// `query = "recorded"`: the evidence waits for one more rule evaluation (the group runs at the
/// query interval), and the rollback latch is read from the recorded series.
#[test]
fn a_rollback_reaches_every_proxy_through_the_recording_rules() {
    rollback_reaches_every_proxy(
        "a_rollback_reaches_every_proxy_through_the_recording_rules",
        Query::Recorded,
    );
}

fn rollback_reaches_every_proxy(test: &str, form: Query) {
    let Some(paths) = Paths::for_test(test) else {
        return;
    };
    let prometheus_port = free_port();
    let form_name = match form {
        Query::Raw => "raw",
        Query::Recorded => "recorded",
    };
    let plan = compile(
        &policy_reading(prometheus_port, form_name),
        "e2e-fleet.toml",
    );
    let mut stacks: Vec<Stack> = (0..3)
        .map(|_| Stack::start_with(&paths, &plan, 1).expect("envoy starts"))
        .collect();
    let admins: Vec<u16> = stacks.iter().map(|s| s.ports.admin).collect();
    let rules = (form == Query::Recorded)
        .then(|| serin_compiler::emit::prometheus::file(&plan, "e2e-fleet.toml"));
    let _prometheus =
        match Prometheus::start_with_rules(prometheus_port, &admins, SCRAPE_MS, rules.as_deref()) {
            Ok(p) => p,
            Err(e) if std::env::var("SERIN_E2E").as_deref() == Ok("require") => panic!("{e}"),
            Err(e) => {
                eprintln!("SKIPPED {test}: {e}");
                return;
            }
        };
    // The clock starts once Prometheus has every proxy's series: before, no evidence travels
    // (and a fast proxy could roll back alone before the first scrape).
    assert!(
        _prometheus.wait_for_series("serin_policy_state", stacks.len(), Duration::from_secs(20)),
        "Prometheus scrapes every proxy within 20 s"
    );
    for s in &stacks {
        s.set_upstream_runtime("fault.http.abort.abort_percent", 10)
            .unwrap();
    }
    let start = Instant::now();
    let rolled_back: Vec<Option<Duration>> = uneven(&stacks, || {
        let mut at: Vec<Option<Duration>> = vec![None; stacks.len()];
        while start.elapsed() < Duration::from_secs(90) && at.iter().any(Option::is_none) {
            for (i, s) in stacks.iter().enumerate() {
                if at[i].is_none() && s.prometheus("serin_rollout_state") == Some(ROLLED_BACK) {
                    at[i] = Some(start.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        at
    });
    for (i, s) in stacks.iter().enumerate() {
        let log = s.front.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("rollout transition") || l.contains("fleet"))
            .collect();
        eprintln!(
            "proxy {i}: rolled back at {:?}\n  {}",
            rolled_back[i],
            lines.join("\n  ")
        );
    }
    for t in &rolled_back {
        t.expect("every proxy rolls back within 90 s");
    }
    // The spread between the rollbacks as each engine timed them (the transition's `at_ms`),
    // not as the state gauges show them: a gauge waits for its proxy's next tick.
    let times: Vec<Duration> = stacks
        .iter()
        .map(|s| rollback_at(&s.front.log()).expect("the rollback is logged"))
        .collect();
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    // One query interval plus one scrape, and a second: queries leave on a 1 s tick. Recorded:
    // plus one evaluation of the rules' group, which runs at the query interval.
    let rules_s = if form == Query::Recorded {
        INTERVAL_S
    } else {
        0
    };
    let bound = Duration::from_secs(INTERVAL_S + rules_s)
        + Duration::from_millis(u64::from(SCRAPE_MS) + 1_000);
    eprintln!(
        "first {first:?}, last {last:?}, spread {:?} (bound {bound:?})",
        last - first
    );
    assert!(
        last - first <= bound,
        "spread {:?} above {bound:?}",
        last - first
    );
    // The light proxies learnt it from the fleet, not from their own few requests.
    for s in &stacks[1..] {
        let log = s.front.log();
        assert!(
            log.lines()
                .any(|l| l.contains("rollout transition") && l.contains(r#""cause":"fleet"#)),
            "a light proxy rolled back on its own:\n{}",
            s.front.log_tail(20)
        );
    }

    // A proxy that restarts after the fleet rolled back joins (routing to stable), hears of the
    // rollback at its first answer, and sends nothing to the canary; so do all three when they
    // restart at once, as long as Prometheus remembers (`memory`).
    stacks[1].restart_front().expect("proxy 1 restarts");
    assert_rolled_back_and_stable(&stacks[1..2]);
    for s in stacks.iter_mut() {
        s.restart_front().expect("every proxy restarts");
    }
    assert_rolled_back_and_stable(&stacks);
}

/// When the engine logged its first rollback (`at_ms`, Unix time).
fn rollback_at(log: &str) -> Option<Duration> {
    let line = log.lines().find(|l| {
        l.contains("rollout transition") && l.contains(r#""to":{"state":"rolled_back""#)
    })?;
    let json = &line[line.find('{')?..];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(Duration::from_millis(v["at_ms"].as_u64()?))
}

/// Each proxy reports a rollback within an interval, a scrape and a tick of starting, and
/// serves 300 new users from stable only.
fn assert_rolled_back_and_stable(stacks: &[Stack]) {
    let limit =
        Duration::from_secs(INTERVAL_S) + Duration::from_millis(u64::from(SCRAPE_MS) + 3_000);
    for (i, s) in stacks.iter().enumerate() {
        let start = Instant::now();
        while s.prometheus("serin_rollout_state") != Some(ROLLED_BACK) && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            s.prometheus("serin_rollout_state"),
            Some(ROLLED_BACK),
            "proxy {i} did not adopt the fleet's rollback within {limit:?}:\n{}",
            s.front.log_tail(20)
        );
        let canary = (0..300)
            .filter(|n| {
                let user = format!("after-restart-{i}-{n}");
                s.send("/", &[("x-user-id", &user)])
                    .is_ok_and(|r| r.served_by.as_deref() == Some("canary"))
            })
            .count();
        assert_eq!(
            canary, 0,
            "proxy {i} sent requests to the rolled-back canary"
        );
    }
}

/// How the stand-in Prometheus of [`bad_answers_are_refused_and_the_proxy_stays_on_stable`]
/// misbehaves, one way per connection in turn.
const BAD_ANSWERS: [&str; 4] = ["garbage", "500", "slow", "huge"];

/// A stand-in for Prometheus that never answers well: garbage, a 500, an answer slower than
/// the timeout (Envoy turns it into a 504), and 10 MB (never read into the VM). The proxy must
/// refuse each, log it, keep serving, and, having never heard from the fleet, route every
/// request to stable.
#[test]
fn bad_answers_are_refused_and_the_proxy_stays_on_stable() {
    let Some(paths) = Paths::for_test("bad_answers_are_refused_and_the_proxy_stays_on_stable")
    else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = AtomicBool::new(false);
    let plan = compile(&policy(port), "e2e-fleet-bad.toml");
    let stack = Stack::start_with(&paths, &plan, 2).expect("envoy starts");
    listener.set_nonblocking(true).unwrap();
    std::thread::scope(|scope| {
        let stop = &stop;
        scope.spawn(move || serve_badly(&listener, stop));
        // Long enough for every kind of bad answer to arrive at least twice.
        std::thread::sleep(Duration::from_secs(4 * INTERVAL_S * 2 + 2));
        // Still serving, still stable-only while it has never heard from the fleet.
        for n in 0..50 {
            let r = stack
                .send("/", &[("x-user-id", &format!("bad-{n}"))])
                .expect("Envoy answers");
            assert_eq!(r.status, 200);
            assert_eq!(
                r.served_by.as_deref(),
                Some("stable"),
                "a joining proxy routes to stable"
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    let log = stack.front.log();
    for what in [
        "not a Prometheus vector",
        "status 500",
        "status 504",
        "an answer of 10485760 bytes",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("serin: fleet") && l.contains(what)),
            "no refusal mentioning `{what}`:\n{}",
            stack.front.log_tail(30)
        );
    }
    let refused = stack.prometheus("serin_fleet_refused_total");
    assert!(
        refused.is_some_and(|n| n >= 4.0),
        "refusals counted: {refused:?}"
    );
    assert!(
        !log.contains("panicked") && !log.contains("wasm trap"),
        "{}",
        stack.front.log_tail(30)
    );
}

/// Answer each connection badly, in turn.
fn serve_badly(listener: &std::net::TcpListener, stop: &AtomicBool) {
    use std::io::{Read, Write};
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let _ = conn.set_nonblocking(false);
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        let reply = |status: &str, body: &[u8]| {
            let mut r = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        };
        let answer = match BAD_ANSWERS[turn % BAD_ANSWERS.len()] {
            "garbage" => reply("200 OK", b"<html>this is not Prometheus</html>"),
            "500" => reply("500 Internal Server Error", b"{\"status\":\"error\"}"),
            "slow" => {
                std::thread::sleep(Duration::from_millis(1_500));
                reply(
                    "200 OK",
                    b"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}",
                )
            }
            _ => reply("200 OK", &vec![b' '; 10 << 20]),
        };
        turn += 1;
        let _ = conn.write_all(&answer);
    }
}

/// A healthy canary ramps in lockstep across three proxies; with Prometheus killed no proxy
/// takes a step; when it is back the ramp resumes to promotion.
#[test]
fn a_healthy_canary_ramps_in_lockstep_and_waits_while_prometheus_is_down() {
    let Some(paths) = Paths::for_test("a_healthy_canary_ramps_in_lockstep") else {
        return;
    };
    let prometheus_port = free_port();
    let source = policy(prometheus_port).replace(
        "[guard_defaults]",
        "[ramp]\nsteps = [\n  { weight = 20, min_duration = \"4s\" },\n  { weight = 50, min_duration = \"4s\" },\n  { weight = 100, min_duration = \"4s\" },\n]\n[guard_defaults]",
    );
    let plan = compile(&source, "e2e-fleet-ramp.toml");
    let stacks: Vec<Stack> = (0..3)
        .map(|_| Stack::start_with(&paths, &plan, 1).expect("envoy starts"))
        .collect();
    let admins: Vec<u16> = stacks.iter().map(|s| s.ports.admin).collect();
    let mut prometheus =
        Some(Prometheus::start(prometheus_port, &admins, SCRAPE_MS).expect("Prometheus starts"));
    let weights = || -> Vec<Option<f64>> {
        stacks
            .iter()
            .map(|s| s.prometheus("serin_canary_weight_bp"))
            .collect()
    };
    let loads: Vec<Load> = (0..3).map(|_| Load::default()).collect();
    std::thread::scope(|scope| {
        for (i, (stack, load)) in stacks.iter().zip(&loads).enumerate() {
            scope.spawn(move || load.run(stack, i as u64));
        }
        let _stop = StopOnDrop(loads.iter().collect());
        // Lockstep: every proxy reaches the second step within an interval, a scrape and a
        // tick of the first.
        let start = Instant::now();
        let mut at: Vec<Option<Duration>> = vec![None; 3];
        while start.elapsed() < Duration::from_secs(60) && at.iter().any(Option::is_none) {
            for (i, w) in weights().into_iter().enumerate() {
                if at[i].is_none() && w.is_some_and(|w| w >= 5000.0) {
                    at[i] = Some(start.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let times: Vec<Duration> = at
            .iter()
            .map(|t| t.expect("every proxy reaches 50%"))
            .collect();
        let spread = *times.iter().max().unwrap() - *times.iter().min().unwrap();
        eprintln!("reached 50% at {times:?}, spread {spread:?}");
        let bound =
            Duration::from_secs(INTERVAL_S) + Duration::from_millis(u64::from(SCRAPE_MS) + 2_000);
        assert!(spread <= bound, "spread {spread:?} above {bound:?}");

        // Prometheus down: no step for three intervals and more than a step's duration.
        if let Some(mut p) = prometheus.take() {
            p.kill();
        }
        let before = weights();
        std::thread::sleep(Duration::from_secs(3 * INTERVAL_S + 4));
        assert_eq!(weights(), before, "a proxy stepped without fleet evidence");

        // Back: the ramp resumes to promotion.
        prometheus = Some(
            Prometheus::start(prometheus_port, &admins, SCRAPE_MS).expect("Prometheus restarts"),
        );
        let resumed = Instant::now();
        while resumed.elapsed() < Duration::from_secs(60)
            && !weights().iter().all(|w| *w == Some(10_000.0))
        {
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    assert!(
        weights().iter().all(|w| *w == Some(10_000.0)),
        "not every proxy promoted after Prometheus came back: {:?}\n{}",
        weights(),
        stacks[0].front.log_tail(20)
    );
}

/// Prometheus killed after the proxies joined: a broken canary is still rolled back by each
/// proxy's own guards.
#[test]
fn with_prometheus_down_the_local_guards_still_roll_back() {
    let Some(paths) = Paths::for_test("with_prometheus_down_the_local_guards_still_roll_back")
    else {
        return;
    };
    let prometheus_port = free_port();
    let plan = compile(&policy(prometheus_port), "e2e-fleet-down.toml");
    let stack = Stack::start_with(&paths, &plan, 2).expect("envoy starts");
    let mut prometheus = Prometheus::start(prometheus_port, &[stack.ports.admin], SCRAPE_MS)
        .expect("Prometheus starts");
    // Joined: the first answers came, the canary gets its share.
    let start = Instant::now();
    while stack.prometheus("serin_rollout_state") != Some(1.0)
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stack.prometheus("serin_rollout_state"),
        Some(1.0),
        "the proxy joined"
    );
    prometheus.kill();
    stack
        .set_upstream_runtime("fault.http.abort.abort_percent", 10)
        .unwrap();
    let load = Load::default();
    let rolled_back = load.during(&stack, 4, || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if stack.prometheus("serin_rollout_state") == Some(ROLLED_BACK) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    });
    assert!(
        rolled_back.is_some(),
        "no local rollback with Prometheus down:\n{}",
        stack.front.log_tail(20)
    );
    assert!(
        stack.front.log().contains("fleet query failed"),
        "the failed queries are logged"
    );
}
