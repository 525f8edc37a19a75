//! The README's first command: Envoy with Serin in front of two stand-in fraud models, traffic
//! from fresh users, the split shown second by second; then the canary starts failing and Serin
//! rolls it back by itself. Ends with a plot of the run.

use std::path::Path;
use std::time::{Duration, Instant};

use serin_e2e::{Load, Paths, Stack};

use crate::{envoy_config, plot, tools, wasm};

const POLICY: &str = "examples/fraud-model.toml";
const HEALTHY_SECONDS: u64 = 6;
const AFTER_ROLLBACK_SECONDS: u64 = 4;

/// One row of the table (and one point of the plot).
pub struct Second {
    pub at: f64,
    pub requests: u64,
    pub canary_share: f64,
    pub canary_error_rate: f64,
    pub state: f64,
}

pub fn run(root: &Path) -> Result<(), String> {
    let envoy = tools::ensure_envoy(root)?;
    let wasm = wasm::build_filter(root)?;
    let plan = envoy_config::compile_example(root, POLICY)?;
    let paths = Paths {
        root: root.to_path_buf(),
        envoy,
        wasm,
    };

    println!(
        "serin demo: {POLICY} ({}): {} guards, canary at 5% of users",
        plan.digest,
        plan.guards.len()
    );
    let stack = Stack::start_with(&paths, &plan, 2)?;
    println!(
        "envoy (2 workers) with serin on http://127.0.0.1:{} → stable :{} / canary :{}\n",
        stack.ports.listener, stack.ports.stable, stack.ports.canary
    );
    println!(
        "{:>5} {:>9} {:>13} {:>14}  state",
        "t (s)", "requests", "canary share", "canary errors"
    );

    let load = Load::default();
    let mut rows: Vec<Second> = Vec::new();
    let mut fault_at = None;
    let mut rolled_back_at: Option<(f64, u64)> = None;
    load.during(&stack, 4, || -> Result<(), String> {
        let start = Instant::now();
        let mut last = load.snapshot();
        let result = loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = load.snapshot();
            let at = start.elapsed().as_secs_f64();
            let state = stack.prometheus("serin_rollout_state").unwrap_or(0.0);
            let row = row(at, &last, &now, state);
            println!(
                "{:>5.0} {:>9} {:>12.2}% {:>13.2}%  {}",
                row.at,
                row.requests,
                row.canary_share,
                row.canary_error_rate,
                state_name(state)
            );
            rows.push(row);
            last = now;
            if fault_at.is_none() && at >= HEALTHY_SECONDS as f64 {
                stack.set_upstream_runtime("fault.http.abort.abort_percent", 10)?;
                stack.set_upstream_runtime("fault.http.delay.fixed_delay_percent", 100)?;
                println!(
                    "      ── the canary model starts failing: 10% of its answers are 503, all 50 ms slower ──"
                );
                fault_at = Some(at);
            }
            if rolled_back_at.is_none() && state == 4.0 {
                rolled_back_at = Some((at, now[1]));
                println!(
                    "      ── serin rolled the canary back; every new request goes to the stable model ──"
                );
            }
            if let Some((t, _)) = rolled_back_at {
                if at >= t + AFTER_ROLLBACK_SECONDS as f64 {
                    break Ok(());
                }
            }
            if at > 90.0 {
                break Err("the canary was not rolled back within 90 s".to_string());
            }
        };
        result
    })?;

    let transition = stack.front.log().lines().find_map(|l| {
        l.split_once("rollout transition ")
            .map(|(_, j)| j.to_string())
    });
    let [sent, canary, ..] = load.snapshot();
    println!("\n{sent} requests, {canary} served by the canary.");
    if let Some((at, canary_then)) = rolled_back_at {
        let fault = fault_at.unwrap_or(0.0);
        println!(
            "rolled back {:.0} s after the fault began, after {canary_then} canary requests in all.",
            at - fault
        );
    }
    if let Some(t) = transition {
        println!("the filter's log line for it:\n  {t}");
    }
    let svg = root.join("target/demo-rollout.svg");
    std::fs::write(&svg, plot::rollout_svg(&rows, fault_at)).map_err(|e| e.to_string())?;
    println!("\nplot of the run: {}", svg.display());
    drop(stack);
    println!("stopped Envoy cleanly.");
    Ok(())
}

fn row(at: f64, before: &[u64; 4], now: &[u64; 4], state: f64) -> Second {
    let d = |i: usize| now[i] - before[i];
    let pct = |x: u64, n: u64| {
        if n == 0 {
            0.0
        } else {
            100.0 * x as f64 / n as f64
        }
    };
    Second {
        at,
        requests: d(0),
        canary_share: pct(d(1), d(0)),
        canary_error_rate: pct(d(3), d(1)),
        state,
    }
}

fn state_name(code: f64) -> &'static str {
    match code as u8 {
        1 => "ramping",
        2 => "held",
        3 => "promoted",
        4 => "ROLLED BACK",
        _ => "starting",
    }
}
