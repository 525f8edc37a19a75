//! `cargo xtask bench-instructions [--requests N] [--no-write]`: how many instructions the front
//! Envoy executes per request under each config of the load bench (direct-response routes),
//! counted by valgrind's callgrind. For experiments, `--only b′,d` counts some configs (by
//! letter), and `--filter-wasm PATH` and `--native-module PATH` a variant of either backend
//! built elsewhere; none of them writes.
//!
//! The load bench's requests per second move by 10% or more from run to run on a shared
//! machine; an instruction count does not: the same binary, config and requests give the same
//! count whatever else the machine is doing. Envoy runs with one worker under callgrind with
//! instrumentation off while it starts and warms up; it is switched on for exactly N requests
//! (sequential, keep-alive, a new user each), then for 20 s more with no requests, and off
//! again. What it does not see: cache misses, and time spent waiting. Envoy's timers (Serin's
//! 1 s tick among them) also run during the counted requests, which under callgrind's slowdown
//! last tens of seconds, longer the busier the machine: a tick over the ~100 requests a second
//! that callgrind lets through weighs far more than under real load, and it made counts of one
//! module differ by up to 35 k a request on a loaded machine. So the idle part prices the
//! timers per second, and that rate over the requests' duration is taken out: the same module
//! then reads the same to within about 50 instructions a request with three CPU hogs running.
//!
//! The report judges the rows against the instruction targets: the native backend's split
//! (f′) within 10 k of no filter (a); proxy-wasm's rows against the empty filter (d) rather than
//! (a), because (d), the ABI's floor, is a cost no proxy-wasm filter can go below.
//!
//! Rewrites the "Instructions per request" section of docs/benchmarks/envoy.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use serin_e2e::bench::{self, Filter, Mode, Setup};
use serin_e2e::{Envoy, Ports};

use crate::shell;
use crate::{native, tools, wasm};

pub const SECTION: &str = "## Instructions per request (callgrind)";
const POLICY: &str = "examples/fraud-model.toml";
const SPLIT_POLICY: &str = "examples/percent-canary.toml";
/// The load bench's configs but (e), which needs clusters and so cannot run on direct routes.
const CONFIGS: [Filter; 7] = [
    Filter::None,
    Filter::Serin,
    Filter::SerinSplit,
    Filter::Lua,
    Filter::EmptyWasm,
    Filter::NativeSerin,
    Filter::NativeSerinSplit,
];

/// An instruction target: `row` at most `limit` instructions per request over `base`.
struct Target {
    row: Filter,
    base: Filter,
    limit: f64,
}

/// The native backend's split next to no filter at all; proxy-wasm's rows next to the empty
/// proxy-wasm filter, the floor any proxy-wasm filter pays.
const TARGETS: [Target; 3] = [
    Target {
        row: Filter::NativeSerinSplit,
        base: Filter::None,
        limit: 10_000.0,
    },
    Target {
        row: Filter::SerinSplit,
        base: Filter::EmptyWasm,
        limit: 40_000.0,
    },
    Target {
        row: Filter::Serin,
        base: Filter::EmptyWasm,
        limit: 65_000.0,
    },
];

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut requests = 2_000u32;
    let mut write = true;
    // For experiments: some configs only, and a variant of either backend built elsewhere.
    let mut only: Option<Vec<String>> = None;
    let mut filter_wasm: Option<PathBuf> = None;
    let mut native_module: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--requests" => {
                requests = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--requests takes a positive number")?;
            }
            "--no-write" => write = false,
            "--only" => {
                let letters = it.next().ok_or("--only takes config letters, e.g. b,d")?;
                only = Some(letters.split(',').map(str::to_owned).collect::<Vec<_>>());
            }
            "--filter-wasm" => {
                let path = it.next().ok_or("--filter-wasm takes a module path")?;
                filter_wasm = Some(PathBuf::from(path));
            }
            "--native-module" => {
                let path = it.next().ok_or("--native-module takes a library path")?;
                native_module = Some(PathBuf::from(path));
            }
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    let tools = tools::ensure_all(root)?;
    let envoy = envoy_binary(&tools.envoy)?;
    let compile = |file: &str| -> Result<serin_policy::Plan, String> {
        let source =
            std::fs::read_to_string(root.join(file)).map_err(|e| format!("{file}: {e}"))?;
        serin_compiler::compile_str(&source, file)
            .map(|c| c.plan)
            .map_err(|d| format!("{file}:\n{d}"))
    };
    let plan = compile(POLICY)?;
    let split_plan = compile(SPLIT_POLICY)?;
    // A variant of either backend, or some configs only, is an experiment: print, do not write.
    let experiment = only.is_some() || filter_wasm.is_some() || native_module.is_some();
    let setup = Setup {
        plan: &plan,
        split_plan: &split_plan,
        serin_wasm: match filter_wasm {
            Some(path) => path,
            None => wasm::build_filter(root)?,
        },
        serin_native: match native_module {
            Some(path) => path,
            None => native::build(root)?,
        },
        empty_wasm: wasm::build_wasm(root, "serin-bench-empty-filter")?,
    };
    let mut rows = Vec::new();
    let chosen = |f: &Filter| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|l| l == f.letter()))
    };
    for which in CONFIGS.into_iter().filter(chosen) {
        let c = count(root, &envoy, &setup, which, requests)?;
        eprintln!(
            "instructions: ({}) {}: {:.0} per request (timers idle: {:.0} a second, taken out)",
            which.letter(),
            which.label(),
            c.per_request,
            c.background_per_second
        );
        rows.push((which, c.per_request));
    }
    let section = report(&rows, requests);
    print!("{section}");
    if write && !experiment {
        crate::bench::write_section(&root.join(crate::bench::REPORT), SECTION, &section)?;
        eprintln!("instructions: {} updated", crate::bench::REPORT);
    }
    Ok(())
}

/// The Envoy executable itself: the venv's `bin/envoy` is a Python launcher, which valgrind
/// would count instead.
fn envoy_binary(launcher: &Path) -> Result<PathBuf, String> {
    let venv = launcher
        .parent()
        .and_then(Path::parent)
        .ok_or("unexpected Envoy location")?;
    let lib = venv.join("lib");
    for entry in std::fs::read_dir(&lib).map_err(|e| format!("{}: {e}", lib.display()))? {
        let candidate = entry
            .map_err(|e| e.to_string())?
            .path()
            .join("site-packages/envoy/_bin/envoy");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!("no envoy/_bin/envoy under {}", lib.display()))
}

/// How long the front Envoy is counted idle after the requests, to price its timers.
const IDLE: std::time::Duration = std::time::Duration::from_secs(20);

/// One config's count: instructions per request, with the timers' cost while idle taken out.
struct Count {
    per_request: f64,
    /// Instructions a second of the idle Envoy: its timers (Serin's 1 s tick among them).
    background_per_second: f64,
}

fn count(
    root: &Path,
    envoy: &Path,
    setup: &Setup,
    which: Filter,
    requests: u32,
) -> Result<Count, String> {
    let ports = Ports::free();
    let config = bench::config(setup, which, Mode::Direct, ports)
        .ok_or("direct-response routes cannot run this config")?;
    let out = std::env::temp_dir().join(format!("serin-callgrind-{}", std::process::id()));
    let launcher: Vec<String> = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        // V8 compiles the wasm module and rewrites its own code.
        "--smc-check=all-non-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--callgrind-out-file={}.%p", out.display())])
    .collect();
    let mut front = Envoy::start_under(&launcher, envoy, &config, ports.admin, root, 1)?;
    bench::served_by(ports.listener, 300, "stable")?;
    let pid = front.pid().to_string();
    let control = |args: &[&str]| {
        shell::run(
            Command::new("callgrind_control")
                .args(args)
                .arg(&pid)
                .stdout(std::process::Stdio::null()),
        )
    };
    // Two parts, dumped one after the other: the requests (with whatever the timers did while
    // they ran, which under callgrind's slowdown is some seconds' worth), then the same Envoy
    // idle for `IDLE`. The second prices the timers per second, and that rate times the first
    // part's length comes off the first: what is left is the requests' own cost, whatever the
    // machine's load made the requests last.
    control(&["-i", "on"])?;
    let started = std::time::Instant::now();
    let (_, failed) = bench::served_by(ports.listener, requests, "canary")?;
    control(&["-d"])?;
    let loaded = started.elapsed();
    let idle_from = std::time::Instant::now();
    std::thread::sleep(IDLE);
    control(&["-d"])?;
    let idle = idle_from.elapsed();
    control(&["-i", "off"])?;
    front.terminate()?;
    if failed > 0 {
        return Err(format!("{failed} requests failed under {}", which.label()));
    }
    // `SERIN_KEEP_CALLGRIND=1` keeps the profiles for `callgrind_annotate --inclusive=yes`:
    // Envoy's binary is stripped, but the dynamic-module callbacks it exports and the module's
    // own functions are named, which is enough to price each callback.
    let keep = std::env::var_os("SERIN_KEEP_CALLGRIND").is_some();
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(std::env::temp_dir()).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.to_string_lossy().into_owned();
        // `<out>.<pid>.<part>` for a dump, `<out>.<pid>` at exit.
        let Some(rest) = name.strip_prefix(&format!("{}.{pid}", out.display())) else {
            continue;
        };
        let part: Option<u32> = rest.strip_prefix('.').and_then(|n| n.parse().ok());
        if let (Some(part), Ok(text)) = (part, std::fs::read_to_string(&path)) {
            parts.push((part, total(&text)));
        }
        if keep {
            eprintln!("callgrind profile of {}: {}", which.label(), path.display());
        } else {
            let _ = std::fs::remove_file(path);
        }
    }
    parts.sort_unstable();
    let (Some(&(1, Some(loaded_count))), Some(&(2, Some(idle_count)))) =
        (parts.first(), parts.get(1))
    else {
        return Err(format!(
            "expected two callgrind dumps, found {parts:?}; log:\n{}",
            front.log_tail(20)
        ));
    };
    let background_per_second = idle_count as f64 / idle.as_secs_f64();
    Ok(Count {
        per_request: per_request(loaded_count, background_per_second, loaded, requests),
        background_per_second,
    })
}

/// The requests' own instructions: the loaded part less the background rate over its length.
fn per_request(
    loaded_count: u64,
    background_per_second: f64,
    loaded: std::time::Duration,
    requests: u32,
) -> f64 {
    (loaded_count as f64 - background_per_second * loaded.as_secs_f64()) / f64::from(requests)
}

/// A callgrind profile's event total (its `summary:` or `totals:` line).
fn total(profile: &str) -> Option<u64> {
    profile.lines().find_map(|l| {
        let v = l
            .strip_prefix("summary:")
            .or_else(|| l.strip_prefix("totals:"))?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// The instructions callgrind counted, from the line it ends its log with (`==pid== Collected :
/// N`).
pub fn collected(log: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.split("Collected :").nth(1)?.trim().parse().ok())
}

fn report(rows: &[(Filter, f64)], requests: u32) -> String {
    let date = shell::output(Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default();
    render(rows, requests, &date)
}

fn render(rows: &[(Filter, f64)], requests: u32, date: &str) -> String {
    let base = rows
        .iter()
        .find(|(f, _)| *f == Filter::None)
        .map_or(f64::NAN, |r| r.1);
    let mut s = format!(
        "{SECTION}\n\n\
         Measured {date} with `cargo xtask bench-instructions` (Envoy {}, one worker, the load \
         bench's configs on direct-response routes): callgrind counts the instructions of the \
         whole front Envoy process over {requests} sequential keep-alive requests, each from a new \
         user; the table divides by {requests}.\n\
         Envoy's timers (Serin's 1 s tick among them) are priced while Envoy is idle for 20 s \
         after the requests, and their rate over the requests' duration is taken out, so a rerun \
         gives the same figures to within about 50 instructions a request however loaded the \
         machine is; the count does not see cache misses or waiting.\n\
         \"(a) ÷ config\" is the rps ratio the load bench would show if time were proportional to \
         instructions. Every run without `--only`, `--filter-wasm`, `--native-module` or \
         `--no-write` rewrites this section.\n\n\
         | config | instructions per request | over (a) | (a) ÷ config |\n|---|---|---|---|\n",
        tools::ENVOY_VERSION
    );
    for (which, n) in rows {
        s.push_str(&format!(
            "| ({}) {} | {:.0} | {:+.0} | {:.3} |\n",
            which.letter(),
            which.label(),
            n,
            n - base,
            base / n
        ));
    }
    let row = |f: Filter| rows.iter().find(|r| r.0 == f).map(|r| r.1);
    let judged: Vec<String> = TARGETS
        .iter()
        .filter_map(|t| {
            let over = row(t.row)? - row(t.base)?;
            Some(format!(
                "- ({}) ≤ ({}) + {:.0} k: {:+.0} — {}.\n",
                t.row.letter(),
                t.base.letter(),
                t.limit / 1000.0,
                over,
                crate::bench::verdict(over <= t.limit)
            ))
        })
        .collect();
    if !judged.is_empty() {
        s.push_str(
            "\nAgainst the targets, in instructions per request over the row named: the native \
             backend's split against no filter; proxy-wasm's rows against the empty proxy-wasm \
             filter (d), the floor every proxy-wasm filter pays.\n\n",
        );
        s.push_str(&judged.concat());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2,000 requests that took 20 s with timers at 300 k instructions a second: 6 M of the
    /// loaded part is the timers', and 3 k a request is what the requests cost.
    #[test]
    fn the_timers_idle_rate_over_the_requests_duration_is_taken_out() {
        let loaded = std::time::Duration::from_secs(20);
        let n = per_request(6_000_000 + 2_000 * 3_000, 300_000.0, loaded, 2_000);
        assert!((n - 3_000.0).abs() < 1e-6, "{n}");
    }

    #[test]
    fn a_profile_s_total_is_read_from_its_summary_or_totals_line() {
        assert_eq!(total("events: Ir\nsummary: 180765275\n"), Some(180_765_275));
        assert_eq!(total("fn=main\n1 5\ntotals: 42\n"), Some(42));
        assert_eq!(total("events: Ir\n"), None);
    }

    /// The section starts with its heading and holds no other `## ` heading, which would end it
    /// early for the next rewrite.
    #[test]
    fn the_section_is_one_section() {
        // The 2026-11-26 figures, and made-up ones for the native rows.
        let rows: Vec<(Filter, f64)> = CONFIGS
            .iter()
            .zip([
                90344.0, 183542.0, 154465.0, 109573.0, 107466.0, 104000.0, 99000.0,
            ])
            .map(|(&f, n)| (f, n))
            .collect();
        let s = render(&rows, 2000, "2026-11-26");
        assert!(s.starts_with(&format!("{SECTION}\n\n")));
        assert_eq!(s.matches("\n## ").count(), 0);
        assert!(s.contains("| (b) Serin (fraud-model.toml) | 183542 | +93198 | 0.492 |\n"));
        assert!(s.contains(
            "| (f′) Serin native, split only (percent-canary.toml) | 99000 | +8656 | 0.913 |\n"
        ));
        assert!(s.contains("- (f′) ≤ (a) + 10 k: +8656 — **met**.\n"));
        assert!(s.contains("- (b′) ≤ (d) + 40 k: +46999 — **not met**.\n"));
        assert!(s.contains("- (b) ≤ (d) + 65 k: +76076 — **not met**.\n"));
        assert!(s.lines().count() < 24, "{} lines", s.lines().count());
    }

    /// With `--only`, a target whose rows were not both counted is left out, not judged.
    #[test]
    fn a_target_needs_both_its_rows() {
        let rows = [
            (Filter::EmptyWasm, 107466.0),
            (Filter::SerinSplit, 140000.0),
        ];
        let s = render(&rows, 2000, "2026-11-26");
        assert!(s.contains("- (b′) ≤ (d) + 40 k: +32534 — **met**.\n"));
        assert!(!s.contains("(f′) ≤"));
        assert!(!s.contains("(b) ≤"));
    }
}
