//! `cargo xtask demo --fleet`: three Envoys with Serin in fleet mode and a real Prometheus
//! scraping them every second. The first proxy carries nearly all the traffic, the other two a
//! trickle; the canary starts failing, the first proxy rolls back on its own evidence and the
//! other two learn it from Prometheus within one query interval plus one scrape. Ends with a
//! plot of each proxy's state.

use std::path::Path;
use std::time::{Duration, Instant};

use serin_e2e::{Paths, Prometheus, Stack, free_port, uneven};

use crate::demo::{ROLLED_BACK, state_name};
use crate::{plot, tools, wasm};

pub const POLICY: &str = "examples/fraud-model-fleet.toml";
const FAULT_AT: f64 = 6.0;

pub fn run(root: &Path) -> Result<(), String> {
    let envoy = tools::ensure_envoy(root)?;
    tools::ensure_debian_program("prometheus", "prometheus")?;
    let wasm = wasm::build_filter(root)?;
    let port = free_port();
    let source = std::fs::read_to_string(root.join(POLICY)).map_err(|e| e.to_string())?;
    // Point the policy at this run's Prometheus.
    let source = source.replace("127.0.0.1:9090", &format!("127.0.0.1:{port}"));
    let plan = serin_compiler::compile_str(&source, POLICY)
        .map_err(|d| d.to_string())?
        .plan;
    let paths = Paths {
        root: root.to_path_buf(),
        envoy,
        backend: serin_e2e::Backend::Wasm,
        module: wasm,
    };
    let stacks: Vec<Stack> = (0..3)
        .map(|_| Stack::start_with(&paths, &plan, 1))
        .collect::<Result<_, _>>()?;
    let admins: Vec<u16> = stacks.iter().map(|s| s.ports.admin).collect();
    let _prometheus = Prometheus::start(port, &admins, 1_000)?;
    println!(
        "serin demo --fleet: {POLICY}: three Envoys, Prometheus on :{port} scraping them every second;\n\
         proxy 1 carries nearly all the traffic, proxies 2 and 3 twenty requests a second each\n"
    );
    println!(
        "{:>5}  {:>14} {:>14} {:>14}",
        "t (s)", "proxy 1", "proxy 2", "proxy 3"
    );
    let mut rows: Vec<(f64, Vec<f64>)> = Vec::new();
    let mut fault_at = None;
    let result = uneven(&stacks, || {
        let start = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let at = start.elapsed().as_secs_f64();
            let states: Vec<f64> = stacks
                .iter()
                .map(|s| s.prometheus("serin_rollout_state").unwrap_or(0.0))
                .collect();
            // In fleet mode 0 is a proxy that has not heard from the fleet yet.
            let name = |s: f64| if s == 0.0 { "joining" } else { state_name(s) };
            println!(
                "{at:>5.1}  {:>14} {:>14} {:>14}",
                name(states[0]),
                name(states[1]),
                name(states[2])
            );
            rows.push((at, states.clone()));
            if fault_at.is_none() && at >= FAULT_AT {
                let failed = stacks.iter().find_map(|s| {
                    s.set_upstream_runtime("fault.http.abort.abort_percent", 10)
                        .err()
                });
                if let Some(e) = failed {
                    break Err(e);
                }
                println!("      ── the canary model starts failing: 10% of its answers are 503 ──");
                fault_at = Some(at);
            }
            if states.iter().all(|s| *s == ROLLED_BACK) {
                break Ok(at);
            }
            if at > 90.0 {
                break Err("the fleet did not roll back within 90 s".to_string());
            }
        }
    });
    let done = result?;
    let first = rows
        .iter()
        .find(|(_, s)| s.contains(&ROLLED_BACK))
        .map_or(done, |(t, _)| *t);
    println!(
        "\nthe first proxy rolled back {:.1} s after the fault, the last {:.1} s after the first",
        first - fault_at.unwrap_or(0.0),
        done - first
    );
    let svg = root.join("target/demo-fleet.svg");
    std::fs::write(&svg, plot::fleet_svg(POLICY, &rows, fault_at)).map_err(|e| e.to_string())?;
    println!("plot of the run: {}", svg.display());
    Ok(())
}
