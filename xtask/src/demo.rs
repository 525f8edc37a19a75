//! The README's first command: Envoy with Serin in front of two stand-in fraud models, traffic
//! from fresh users, the ramp shown second by second (5% → 10% → 25% of users); then the canary
//! starts failing and Serin rolls it back by itself. Ends with a plot of the run.

use std::path::Path;
use std::time::{Duration, Instant};

use serin_e2e::{Backend, Load, Paths, Stack};
use serin_policy::{Gate, Plan};

use crate::{envoy_config, plot, tools, wasm};

pub const POLICY: &str = "examples/fraud-model-ramp.toml";
/// Seconds at the ramp's last automatic step before the fault is injected.
const FAULT_AFTER_STEP_SECONDS: f64 = 3.0;
/// The fault comes at this time even if the ramp has not reached that step.
const FAULT_AT_THE_LATEST: f64 = 40.0;
const AFTER_ROLLBACK_SECONDS: f64 = 4.0;
/// `serin_rollout_state`'s value after a rollback.
pub const ROLLED_BACK: f64 = 4.0;

/// One row of the table (and one point of the plot).
pub struct Second {
    pub at: f64,
    pub requests: u64,
    pub canary_share: f64,
    pub canary_error_rate: f64,
    /// The canary's weight in force (%), as the filter reports it; `None` before its first tick.
    pub weight: Option<f64>,
    pub state: f64,
}

/// The weight (%) of the last step the ramp reaches without an operator: the first step that
/// needs an approval to move on, or the last step.
fn last_automatic_weight(plan: &Plan) -> Option<f64> {
    let steps = &plan.ramp.as_ref()?.steps;
    let step = steps
        .iter()
        .find(|s| s.gates.contains(&Gate::Manual))
        .or(steps.last())?;
    Some(f64::from(step.weight) / 100.0)
}

fn pct(w: f64) -> String {
    format!("{}%", (w * 100.0).round() / 100.0)
}

/// `backend`: which of Serin's filters runs the policy (`--backend native|wasm`).
pub fn run(root: &Path, backend: Backend) -> Result<(), String> {
    let envoy = tools::ensure_envoy(root)?;
    let module = match backend {
        Backend::Wasm => wasm::build_filter(root)?,
        Backend::Native => crate::native::build(root)?,
    };
    let plan = envoy_config::compile_example(root, POLICY)?;
    let paths = Paths {
        root: root.to_path_buf(),
        envoy,
        backend,
        module,
    };
    let fault_weight = last_automatic_weight(&plan)
        .ok_or_else(|| format!("{POLICY} has no ramp: the demo shows one"))?;
    let mut steps = String::new();
    for s in plan.ramp.iter().flat_map(|r| &r.steps) {
        if !steps.is_empty() {
            steps.push_str(" → ");
        }
        steps.push_str(&pct(f64::from(s.weight) / 100.0));
        if s.gates.contains(&Gate::Manual) {
            steps.push_str(" → an operator's approval");
        }
    }

    println!(
        "serin demo: {POLICY} ({}): {} guards; the canary's share of users ramps {steps}",
        plan.digest,
        plan.guards.len(),
    );
    let stack = Stack::start_with(&paths, &plan, 2)?;
    println!(
        "envoy (2 workers) with serin on http://127.0.0.1:{} → stable :{} / canary :{}\n",
        stack.ports.listener, stack.ports.stable, stack.ports.canary
    );
    println!(
        "{:>5} {:>9} {:>7} {:>13} {:>14}  state",
        "t (s)", "requests", "weight", "canary share", "canary errors"
    );

    let load = Load::default();
    let mut rows: Vec<Second> = Vec::new();
    let mut fault_at = None;
    let mut step_reached_at: Option<f64> = None;
    let mut rolled_back_at: Option<(f64, u64)> = None;
    load.during(&stack, 4, || -> Result<(), String> {
        let start = Instant::now();
        let mut last = load.snapshot();
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = load.snapshot();
            let at = start.elapsed().as_secs_f64();
            let state = stack.prometheus("serin_rollout_state").unwrap_or(0.0);
            let weight = stack
                .prometheus("serin_canary_weight_bp")
                .map(|bp| bp / 100.0);
            let row = row(at, &last, &now, weight, state);
            let before = rows.last().and_then(|r| r.weight);
            if state != ROLLED_BACK
                && let (Some(b), Some(w)) = (before, weight)
                    && b != w {
                        println!(
                            "      ── ramp step: the canary's weight goes from {} to {} ──",
                            pct(b),
                            pct(w)
                        );
                    }
            println!(
                "{:>5.0} {:>9} {:>7} {:>12.2}% {:>13.2}%  {}",
                row.at,
                row.requests,
                weight.map_or("-".into(), pct),
                row.canary_share,
                row.canary_error_rate,
                state_name(state)
            );
            rows.push(row);
            last = now;
            if step_reached_at.is_none() && weight == Some(fault_weight) {
                step_reached_at = Some(at);
            }
            let fault_due = step_reached_at.is_some_and(|t| at >= t + FAULT_AFTER_STEP_SECONDS)
                || at >= FAULT_AT_THE_LATEST;
            if fault_at.is_none() && fault_due && state != ROLLED_BACK {
                if step_reached_at.is_none() {
                    println!(
                        "      ── the ramp has not reached {} in {FAULT_AT_THE_LATEST} s; breaking the canary anyway ──",
                        pct(fault_weight)
                    );
                }
                stack.set_upstream_runtime("fault.http.abort.abort_percent", 10)?;
                stack.set_upstream_runtime("fault.http.delay.fixed_delay_percent", 100)?;
                println!(
                    "      ── the canary model starts failing: 10% of its answers are 503, all 50 ms slower ──"
                );
                fault_at = Some(at);
            }
            if rolled_back_at.is_none() && state == ROLLED_BACK {
                rolled_back_at = Some((at, now[1]));
                println!(
                    "      ── serin rolled the canary back; every new request goes to the stable model ──"
                );
            }
            if let Some((t, _)) = rolled_back_at
                && at >= t + AFTER_ROLLBACK_SECONDS {
                    break Ok(());
                }
            if at > 90.0 {
                break Err("the canary was not rolled back within 90 s".to_string());
            }
        }
    })?;

    let log = stack.front.log();
    let transitions: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("rollout transition ").map(|(_, j)| j))
        .collect();
    let [sent, canary, ..] = load.snapshot();
    println!("\n{sent} requests, {canary} served by the canary.");
    if let Some((at, canary_then)) = rolled_back_at {
        let fault = fault_at.unwrap_or(0.0);
        println!(
            "rolled back {:.0} s after the fault began, after {canary_then} canary requests in all.",
            at - fault
        );
    }
    if let Some(t) = transitions.iter().find(|t| t.contains("\"rolled_back\"")) {
        println!(
            "the filter logged {} transitions; its log line for the rollback:\n  {t}",
            transitions.len()
        );
    }
    let svg = root.join("target/demo-rollout.svg");
    std::fs::write(&svg, plot::rollout_svg(POLICY, &rows, fault_at)).map_err(|e| e.to_string())?;
    println!("\nplot of the run: {}", svg.display());
    drop(stack);
    println!("stopped Envoy cleanly.");
    Ok(())
}

fn row(at: f64, before: &[u64; 4], now: &[u64; 4], weight: Option<f64>, state: f64) -> Second {
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
        weight,
        state,
    }
}

pub fn state_name(code: f64) -> &'static str {
    match code as u8 {
        1 => "ramping",
        2 => "held",
        3 => "promoted",
        4 => "ROLLED BACK",
        _ => "starting",
    }
}
