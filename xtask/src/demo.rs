//! The README's first command: Envoy with Serin in front of two model servers, traffic from a
//! population of users, and the split shown as it happens.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{envoy_config, tools, wasm};

const POLICY: &str = "examples/percent-canary.toml";
const USERS: u32 = 10_000;

pub fn run(root: &Path) -> Result<(), String> {
    let envoy = tools::ensure_envoy(root)?;
    let wasm = wasm::build_filter(root)?;
    let plan_json = envoy_config::compile_example(root, POLICY)?;
    let plan = serin_policy::Plan::from_json(plan_json.as_bytes()).map_err(|e| e.to_string())?;
    let paths = serin_e2e::Paths { root: root.to_path_buf(), envoy, wasm };

    println!("serin demo: policy {POLICY} ({}), {} arms", plan.digest, plan.arms.len());
    let stack = serin_e2e::Stack::start(&paths, &plan_json)?;
    println!(
        "envoy with serin on http://127.0.0.1:{} → stable :{} / canary :{}\n",
        stack.ports.listener, stack.ports.stable, stack.ports.canary
    );

    println!("{:>6} {:>9} {:>9} {:>9} {:>12}", "second", "requests", "stable", "canary", "canary share");
    let mut total: BTreeMap<String, u32> = BTreeMap::new();
    let mut second: BTreeMap<String, u32> = BTreeMap::new();
    let (started, mut tick) = (Instant::now(), Instant::now());
    let (mut mismatched, mut spoofs_honoured) = (0u32, 0u32);
    for user in 0..USERS {
        let id = format!("user-{user}");
        // Every fourth client tries to pick the canary itself; the filter ignores it.
        let spoof: &[(&str, &str)] = if user % 4 == 0 { &[("x-serin-arm", "canary")] } else { &[] };
        let mut headers = vec![("x-user-id", id.as_str())];
        headers.extend_from_slice(spoof);
        let reply = stack.send("/v1/models/fraud:predict", &headers)?;
        let arm = reply.served_by.unwrap_or_else(|| format!("http-{}", reply.status));
        let expected = plan.arm(plan.decide(&serin_policy::HeaderList::new(&[("x-user-id", id.as_str())])).arm);
        let wrong = arm != expected.value;
        mismatched += u32::from(wrong);
        spoofs_honoured += u32::from(wrong && !spoof.is_empty());
        *total.entry(arm.clone()).or_default() += 1;
        *second.entry(arm).or_default() += 1;
        if tick.elapsed() >= Duration::from_secs(1) || user + 1 == USERS {
            print_row(started.elapsed().as_secs_f64(), &second);
            second.clear();
            tick = Instant::now();
        }
    }
    println!("\nsplit over {USERS} users:");
    for (arm, n) in &total {
        println!("  {arm:<8} {n:>6}  {:>6.2}%", 100.0 * f64::from(*n) / f64::from(USERS));
    }
    println!("every answer agreed with the policy's own decision: {}", mismatched == 0);
    println!("spoofed `x-serin-arm: canary` headers honoured: {spoofs_honoured} of {}", USERS.div_ceil(4));
    drop(stack);
    println!("\nstopped Envoy cleanly.");
    if mismatched > 0 {
        return Err(format!("{mismatched} requests were served by another arm than the policy chose"));
    }
    Ok(())
}

fn print_row(at: f64, counts: &BTreeMap<String, u32>) {
    let n: u32 = counts.values().sum();
    let get = |arm: &str| counts.get(arm).copied().unwrap_or(0);
    let share = 100.0 * f64::from(get("canary")) / f64::from(n.max(1));
    println!("{at:>6.1} {n:>9} {:>9} {:>9} {share:>11.2}%", get("stable"), get("canary"));
}
