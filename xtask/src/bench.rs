//! `cargo xtask bench`: the load bench of issue 8, in real Envoy.
//!
//! The front configs of `serin_e2e::bench` (no filter, Serin on each of its two backends with the
//! fraud model and with a split alone, a Lua hash split, an empty proxy-wasm filter, Envoy's
//! `weighted_clusters` hash split), measured in interleaved rounds in one run, once with
//! direct-response routes and once proxying to the stand-in upstreams. The front Envoy
//! (one worker) is pinned to core 0; wrk (one thread) and the upstream Envoy share core 1.
//! Prints a table and, for a full run, rewrites the "Load bench in real Envoy" section of
//! docs/benchmarks/envoy.md (a short one; the method in full is here), whose figures
//! BENCHMARKS.md's summary quotes.
//!
//! Method. The front Envoy runs with `--concurrency 1`, all its threads pinned to core 0
//! (`taskset -a -p -c 0`); wrk runs pinned to core 1 (`taskset -c 1 wrk -t1 --latency`) with a Lua
//! script that gives every request a new `x-user-id` (a random prefix per run, then a counter;
//! one request in ten in the `65+` age band). The proxied configs' upstream, a second Envoy with
//! one worker, is pinned to core 1 beside wrk rather than to core 0, so that the front Envoy,
//! whose cost is what differs between configs, has its core to itself; the upstream and wrk then
//! share a core, which bounds the throughput the same way for every config. On a shared machine
//! absolute numbers move by 10% or more between runs, so the configs are measured side by side in
//! one run, in rounds whose order rotates, and each is compared with (a) of the same round; the
//! report gives the median over rounds. Each measurement starts a fresh front Envoy, checks the
//! split with 1,000 new users (first round only: the canary share column), loads it for the
//! warm-up, then measures. Front CPU per request is the front Envoy's user + system time
//! (`/proc/<pid>/stat`) over the measured requests.
//!
//! Memory. Envoy's admin `/memory` counts only its own heap (tcmalloc), not V8's, and 1.40 has no
//! per-VM memory stat, so the bench reads the process's resident memory (`VmRSS`) after 2 s of
//! load, with one worker and with nine: per additional worker = (RSS with 9 − RSS with 1) / 8 for
//! the config − the same for (a). That is one more VM instance (its linear memory as far as
//! touched, its contexts), with the module's compiled code shared. "With one worker" also counts
//! the main thread's VM and V8 itself. A single RSS reading moves by a few hundred KiB between
//! starts of the same config, so the eight extra workers divide that noise by eight, and each
//! figure is the median of three readings; a negative per-worker figure is still reported as no
//! reading. The native backend has no VM: its per-worker figure is one more engine (its filter
//! config makes one per worker), the module's code being loaded once per process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serin_e2e::bench::{self, Filter, Mode, Pinned, Setup, WrkResult};
use serin_e2e::{Ports, free_port, upstream_config};

use crate::shell::output;
use crate::{envoy_config, native, tools, wasm};

const POLICY: &str = "examples/fraud-model.toml";
const SPLIT_POLICY: &str = "examples/percent-canary.toml";
pub const SECTION: &str = "## Load bench in real Envoy";
/// The page the Envoy benches write their sections into; BENCHMARKS.md's summary links to it.
pub const REPORT: &str = "docs/benchmarks/envoy.md";
const FRONT_CORE: u32 = 0;
const OTHER_CORE: u32 = 1;
/// The configs whose resident memory is read: (a), the base of every difference; Serin on each
/// backend; (d), the proxy-wasm floor.
const MEMORY_CONFIGS: [Filter; 4] = [
    Filter::None,
    Filter::Serin,
    Filter::EmptyWasm,
    Filter::NativeSerin,
];

pub const USAGE: &str = "\
usage: cargo xtask bench [--quick] [--rounds N] [--seconds S] [--warmup S] [--connections C]
                         [--mode direct|proxied|both] [--no-write]

  --quick          one round of 3 s per config (about a minute); does not touch the report
  --rounds N       interleaved rounds (default 5)
  --seconds S      measured seconds per config and round (default 10)
  --warmup S       unmeasured load before each measurement (default 2)
  --connections C  wrk connections (default 32)
  --no-write       print the table only (a full run rewrites its section of
                   docs/benchmarks/envoy.md)";

struct Args {
    rounds: u32,
    seconds: u64,
    warmup: u64,
    connections: u32,
    modes: Vec<Mode>,
    write: bool,
    quick: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        rounds: 5,
        seconds: 10,
        warmup: 2,
        connections: 32,
        modes: vec![Mode::Direct, Mode::Proxied],
        write: true,
        quick: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |v: &String| {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag}: expected a positive number, got `{v}`"))
        };
        match flag.as_str() {
            "--quick" => {
                a.quick = true;
                a.rounds = 1;
                a.seconds = 3;
                a.warmup = 1;
                a.write = false;
            }
            "--rounds" => a.rounds = number(value()?)? as u32,
            "--seconds" => a.seconds = number(value()?)?,
            "--warmup" => a.warmup = number(value()?)?,
            "--connections" => a.connections = number(value()?)? as u32,
            "--no-write" => a.write = false,
            "--mode" => {
                a.modes = match value()?.as_str() {
                    "direct" => vec![Mode::Direct],
                    "proxied" => vec![Mode::Proxied],
                    "both" => vec![Mode::Direct, Mode::Proxied],
                    other => return Err(format!("--mode `{other}`: direct, proxied or both")),
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

/// One measurement of one config in one round.
#[derive(Clone, Copy)]
struct Sample {
    round: u32,
    wrk: WrkResult,
    /// The front Envoy's CPU time per request, in µs.
    cpu_us: f64,
}

#[derive(Default)]
struct Results {
    samples: BTreeMap<(u8, Filter), Vec<Sample>>,
    /// Share of 1,000 fresh users sent to the canary (round 0's check).
    canary: BTreeMap<(u8, Filter), f64>,
}

fn mode_key(m: Mode) -> u8 {
    match m {
        Mode::Direct => 0,
        Mode::Proxied => 1,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Per config, the medians over rounds: ratio of rps to (a) in the same round, rps, p50, p99
/// (µs), CPU µs per request; and `best`, the config's best round over (a)'s best round.
struct Row {
    filter: Filter,
    ratio: f64,
    ratio_min: f64,
    ratio_max: f64,
    /// The best round's rps ÷ (a)'s best round's. On this kind of machine other tenants slow
    /// the cores by up to 3× for seconds at a time ((a)'s own CPU per request moved from 18 to
    /// 43 µs within one run), and that only ever slows a round down, so the fastest round of
    /// each config is the one nearest its unhindered cost. Shown beside the judged median,
    /// never instead of it: the targets keep the rule they were set with.
    best: f64,
    rps: f64,
    p50: f64,
    p99: f64,
    cpu_us: f64,
    canary: f64,
    errors: u64,
}

fn rows(results: &Results, mode: Mode) -> Vec<Row> {
    let m = mode_key(mode);
    let baseline: BTreeMap<u32, f64> = results
        .samples
        .get(&(m, Filter::None))
        .map(|v| v.iter().map(|s| (s.round, s.wrk.rps)).collect())
        .unwrap_or_default();
    let fastest = |v: &mut dyn Iterator<Item = f64>| v.fold(f64::NAN, f64::max);
    let baseline_best = fastest(&mut baseline.values().copied());
    Filter::ALL
        .iter()
        .filter_map(|&f| {
            let samples = results.samples.get(&(m, f))?;
            let ratios: Vec<f64> = samples
                .iter()
                .filter_map(|s| baseline.get(&s.round).map(|b| s.wrk.rps / b))
                .collect();
            let pick = |g: fn(&Sample) -> f64| median(samples.iter().map(g).collect());
            Some(Row {
                filter: f,
                ratio: median(ratios.clone()),
                ratio_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratio_max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                best: fastest(&mut samples.iter().map(|s| s.wrk.rps)) / baseline_best,
                rps: pick(|s| s.wrk.rps),
                p50: pick(|s| s.wrk.p50_us),
                p99: pick(|s| s.wrk.p99_us),
                cpu_us: pick(|s| s.cpu_us),
                canary: results.canary.get(&(m, f)).copied().unwrap_or(f64::NAN),
                errors: samples.iter().map(|s| s.wrk.errors).sum(),
            })
        })
        .collect()
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| config | rps ÷ (a) (median, min–max) | best ÷ best (a) | rps | p50 | p99 | front CPU per request | canary share |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let errors = if r.errors > 0 {
            format!(" ({} errors)", r.errors)
        } else {
            String::new()
        };
        t.push_str(&format!(
            "| ({}) {} | **{:.3}** ({:.3}–{:.3}) | {:.3} | {:.0}{errors} | {} | {} | {:.1} µs | {:.1}% |\n",
            r.filter.letter(),
            r.filter.label(),
            r.ratio,
            r.ratio_min,
            r.ratio_max,
            r.best,
            r.rps,
            ms(r.p50),
            ms(r.p99),
            r.cpu_us,
            r.canary * 100.0,
        ));
    }
    t
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// The worker counts whose resident memory is compared, and how many times each is read.
const MEMORY_WORKERS: [u32; 2] = [1, 9];
const MEMORY_READINGS: usize = 3;

/// RSS of the front Envoy in KiB after a short load, for one config and worker count.
fn rss_after_load(ctx: &Ctx, filter: Filter, workers: u32, ports: Ports) -> Result<u64, String> {
    let config = bench::config(&ctx.setup, filter, Mode::Direct, ports).expect("direct config");
    let front = bench::start_pinned(
        &ctx.envoy,
        &config,
        ports.admin,
        &ctx.root,
        workers,
        FRONT_CORE,
    )?;
    // Enough connections that every worker gets some (the kernel spreads them over the
    // workers' reuse_port sockets).
    let connections = (8 * workers).max(16);
    bench::wrk(
        &ctx.wrk,
        &ctx.script,
        ports.listener,
        2,
        connections,
        OTHER_CORE,
    )?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    Ok(front.rss_kib())
}

struct Memory {
    /// Per config, per reading: RSS with each of [`MEMORY_WORKERS`] (KiB).
    rss: Vec<(Filter, Vec<[u64; 2]>)>,
}

impl Memory {
    fn get(&self, f: Filter) -> Option<&[[u64; 2]]> {
        self.rss.iter().find(|r| r.0 == f).map(|r| r.1.as_slice())
    }

    /// The median over readings of `figure(config's reading, (a)'s reading)`, in KiB.
    fn median(&self, f: Filter, figure: impl Fn([u64; 2], [u64; 2]) -> i64) -> Option<i64> {
        let (a, c) = (self.get(Filter::None)?, self.get(f)?);
        let mut v: Vec<i64> = c.iter().zip(a).map(|(c, a)| figure(*c, *a)).collect();
        v.sort_unstable();
        v.get(v.len().checked_sub(1)? / 2).copied()
    }

    /// The cost of one more worker with filter `f`, beyond one more worker without a filter.
    fn per_worker_kib(&self, f: Filter) -> Option<i64> {
        let extra = i64::from(MEMORY_WORKERS[1] - MEMORY_WORKERS[0]);
        self.median(f, |c, a| {
            ((c[1] as i64 - c[0] as i64) - (a[1] as i64 - a[0] as i64)) / extra
        })
    }

    /// RSS with one worker, beyond the no-filter config's.
    fn total_kib(&self, f: Filter) -> Option<i64> {
        self.median(f, |c, a| c[0] as i64 - a[0] as i64)
    }
}

struct Ctx {
    root: PathBuf,
    envoy: PathBuf,
    wrk: PathBuf,
    script: PathBuf,
    setup: Setup<'static>,
}

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let envoy = tools::ensure_envoy(root)?;
    let wrk = match std::env::var_os("SERIN_WRK") {
        Some(p) => PathBuf::from(p),
        None => tools::ensure_debian_program("wrk", "wrk")?,
    };
    if output(Command::new("taskset").arg("-V")).is_none() {
        return Err("taskset (util-linux) is needed to pin Envoy and wrk to cores".into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return Err(format!(
            "the bench pins Envoy and wrk to two different cores; this machine has {cores}"
        ));
    }
    let serin_wasm = wasm::build_filter(root)?;
    let serin_native = native::build(root)?;
    let empty_wasm = wasm::build_wasm(root, "serin-bench-empty-filter")?;
    let plan = Box::leak(Box::new(envoy_config::compile_example(root, POLICY)?));
    let split_plan = Box::leak(Box::new(envoy_config::compile_example(root, SPLIT_POLICY)?));
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script = dir.join("user-per-request.lua");
    std::fs::write(&script, bench::WRK_SCRIPT).map_err(|e| e.to_string())?;
    let ctx = Ctx {
        root: root.to_path_buf(),
        envoy,
        wrk,
        script,
        setup: Setup {
            plan,
            split_plan,
            serin_wasm,
            serin_native,
            empty_wasm,
        },
    };

    let upstream_ports = Ports::free();
    let template = std::fs::read_to_string(root.join("envoy-config/upstreams.yaml"))
        .map_err(|e| format!("envoy-config/upstreams.yaml: {e}"))?;
    let _upstreams = if args.modes.contains(&Mode::Proxied) {
        Some(bench::start_pinned(
            &ctx.envoy,
            &upstream_config(&template, upstream_ports)?,
            upstream_ports.upstream_admin,
            root,
            1,
            OTHER_CORE,
        )?)
    } else {
        None
    };

    let configs: Vec<(Mode, Filter)> = args
        .modes
        .iter()
        .flat_map(|&m| Filter::ALL.map(|f| (m, f)))
        .filter(|&(m, f)| !(m == Mode::Direct && f == Filter::WeightedClusters))
        .collect();
    let per_run = args.seconds + args.warmup;
    eprintln!(
        "bench: {} rounds × {} configs × ({} s warm-up + {} s): about {} min",
        args.rounds,
        configs.len(),
        args.warmup,
        args.seconds,
        (u64::from(args.rounds) * configs.len() as u64 * (per_run + 1)).div_ceil(60)
    );

    let mut results = Results::default();
    for round in 0..args.rounds {
        for &mode in &args.modes {
            let in_mode: Vec<Filter> = configs
                .iter()
                .filter(|c| c.0 == mode)
                .map(|c| c.1)
                .collect();
            // Rotate the order each round so that no config always runs first or last.
            let n = in_mode.len();
            for k in 0..n {
                let filter = in_mode[(k + round as usize) % n];
                let ports = Ports {
                    listener: free_port(),
                    admin: free_port(),
                    ..upstream_ports
                };
                let config = bench::config(&ctx.setup, filter, mode, ports)
                    .expect("configs were filtered to those that exist");
                let front =
                    bench::start_pinned(&ctx.envoy, &config, ports.admin, root, 1, FRONT_CORE)?;
                if round == 0 {
                    check_split(&front, &ctx, &mut results, mode, filter, ports)?;
                }
                bench::wrk(
                    &ctx.wrk,
                    &ctx.script,
                    ports.listener,
                    args.warmup,
                    args.connections,
                    OTHER_CORE,
                )?;
                let cpu = front.cpu_seconds();
                let wrk = bench::wrk(
                    &ctx.wrk,
                    &ctx.script,
                    ports.listener,
                    args.seconds,
                    args.connections,
                    OTHER_CORE,
                )?;
                let cpu_us = (front.cpu_seconds() - cpu) * 1e6 / wrk.requests.max(1) as f64;
                eprintln!(
                    "bench: round {}/{} {:<8} ({}) {:<36} {:>8.0} rps  p50 {:>9}  p99 {:>9}  {:>5.1} µs CPU/req",
                    round + 1,
                    args.rounds,
                    format!("{mode:?}").to_lowercase(),
                    filter.letter(),
                    filter.label(),
                    wrk.rps,
                    ms(wrk.p50_us),
                    ms(wrk.p99_us),
                    cpu_us
                );
                results
                    .samples
                    .entry((mode_key(mode), filter))
                    .or_default()
                    .push(Sample { round, wrk, cpu_us });
            }
        }
    }

    eprintln!(
        "bench: memory (RSS after load, {MEMORY_WORKERS:?} workers, {MEMORY_READINGS} readings)"
    );
    let mut memory = Memory {
        rss: MEMORY_CONFIGS.iter().map(|&f| (f, Vec::new())).collect(),
    };
    // Readings interleaved over the configs, so a drift in the machine touches them alike.
    for _ in 0..MEMORY_READINGS {
        for (f, readings) in &mut memory.rss {
            let mut rss = [0u64; 2];
            for (r, workers) in rss.iter_mut().zip(MEMORY_WORKERS) {
                let ports = Ports {
                    listener: free_port(),
                    admin: free_port(),
                    ..upstream_ports
                };
                *r = rss_after_load(&ctx, *f, workers, ports)?;
            }
            readings.push(rss);
        }
    }

    let report = report(&ctx, &args, &results, &memory);
    println!("{report}");
    if args.write {
        write_section(&root.join(REPORT), SECTION, &report)?;
        eprintln!("bench: wrote the \"Load bench in real Envoy\" section of {REPORT}");
    } else if args.quick {
        eprintln!("bench: --quick leaves {REPORT} alone");
    }
    Ok(())
}

/// Round 0: 1,000 requests from new users; the share the canary answered shows that the split
/// really happens (about 5% for Serin, Lua and `weighted_clusters`; 0 for the others).
fn check_split(
    front: &Pinned,
    ctx: &Ctx,
    results: &mut Results,
    mode: Mode,
    filter: Filter,
    ports: Ports,
) -> Result<(), String> {
    let plan = ctx.setup.plan;
    let canary = plan
        .arms
        .iter()
        .enumerate()
        .find(|&(i, _)| i != usize::from(plan.stable))
        .map(|(_, a)| a.name.clone())
        .unwrap_or_default();
    let (hits, failed) = bench::served_by(ports.listener, 1000, &canary)?;
    if failed > 0 {
        return Err(format!(
            "({}) {}: {failed} of 1000 check requests failed\n{}",
            filter.letter(),
            filter.label(),
            front.envoy.problems()
        ));
    }
    results
        .canary
        .insert((mode_key(mode), filter), f64::from(hits) / 1000.0);
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                Some(
                    l.strip_prefix("model name")?
                        .trim_start_matches([' ', '\t', ':'])
                        .to_string(),
                )
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu})")
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

/// What the report says about the run besides its results.
struct Meta {
    date: String,
    envoy_version: String,
    machine: String,
    serin_size: u64,
    empty_size: u64,
    /// `libserin.so`, the native backend.
    native_size: u64,
}

fn report(ctx: &Ctx, args: &Args, results: &Results, memory: &Memory) -> String {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let meta = Meta {
        date: output(Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default(),
        envoy_version: output(Command::new(&ctx.envoy).arg("--version"))
            .and_then(|v| {
                v.split('/')
                    .find(|p| {
                        p.split('.').count() == 3 && p.split('.').all(|n| n.parse::<u32>().is_ok())
                    })
                    .map(str::to_string)
            })
            .unwrap_or_else(|| tools::ENVOY_VERSION.into()),
        machine: machine(),
        serin_size: size(&ctx.setup.serin_wasm),
        empty_size: size(&ctx.setup.empty_wasm),
        native_size: size(&ctx.setup.serin_native),
    };
    render(&meta, args, results, memory)
}

/// The section `write_section` puts under [`SECTION`]: short, one sentence a line, and no
/// `## ` heading of its own after the first line (it would end the section for the next run).
fn render(meta: &Meta, args: &Args, results: &Results, memory: &Memory) -> String {
    let (serin_size, empty_size, native_size) =
        (meta.serin_size, meta.empty_size, meta.native_size);
    let mut r = format!(
        "{SECTION}\n\n\
         Measured {} with `cargo xtask bench`: Envoy {}, {} rounds × {} s per config after {} s \
         of warm-up, wrk with 1 thread and {} connections, {}. Every full run of the command \
         rewrites this section; `--quick` and `--no-write` only print.\n\n",
        meta.date,
        meta.envoy_version,
        args.rounds,
        args.seconds,
        args.warmup,
        args.connections,
        meta.machine
    );
    r.push_str(
        "**Method.** The front Envoy runs one worker, pinned to core 0; wrk (one thread, a new \
         `x-user-id` per request, one in ten in the `65+` age band) runs on core 1, beside the \
         upstream Envoy when proxied.\n\
         The configs run in interleaved rounds whose order rotates; each is divided by (a) of the \
         same round, and the tables give the median (min–max) over rounds, because absolute rps \
         move by 10% or more between runs on a shared machine; \"best ÷ best (a)\" is the \
         config's fastest round over (a)'s, the reading least slowed by other tenants (shown, \
         not judged).\n\
         (a) the router alone; (b) what `serin emit envoy examples/fraud-model.toml` writes \
         (header_mutation, Serin, router); (b′) the same for `examples/percent-canary.toml`, the \
         same 5% split and nothing else; (c) a Lua filter, 5% by an FNV-1a hash of `x-user-id`; \
         (d) `bench/empty-filter`, a proxy-wasm filter that only returns `Continue` (Serin's SDK \
         and build profile: the ABI's floor); (e) no filter, `weighted_clusters` 95/5 with \
         `use_hash_policy` on `x-user-id`; (f) and (f′) (b) and (b′) with `--backend native`: \
         `libserin.so`, an Envoy dynamic module, in place of `filter.wasm`, without the \
         header_mutation filter that only a fail-open wasm filter needs.\n\
         Direct-response routes answer in the front Envoy, so the filter's cost dominates ((e) \
         needs clusters: proxied only); proxied routes go to the stand-in models of \
         `envoy-config/upstreams.yaml`. Front CPU is the front Envoy's user + system time per \
         measured request; the canary share is that of 1,000 new users in the first round. In \
         full: `xtask/src/bench.rs`, `e2e/src/bench.rs`.\n\n",
    );
    let direct = rows(results, Mode::Direct);
    let proxied = rows(results, Mode::Proxied);
    if !direct.is_empty() {
        r.push_str("### Direct-response routes\n\n");
        r.push_str(&table(&direct));
        r.push('\n');
    }
    if !proxied.is_empty() {
        r.push_str("### Proxied to upstreams\n\n");
        r.push_str(&table(&proxied));
        r.push('\n');
    }

    let kib = |v: Option<i64>| v.map_or("—".into(), |k| format!("{:.2} MiB", k as f64 / 1024.0));
    let size = |bytes: u64| format!("{bytes} bytes ({:.0} KiB)", bytes as f64 / 1024.0);
    r.push_str("### Size and memory\n\n");
    r.push_str(&format!(
        "- `filter.wasm`: **{}**; `libserin.so`: {}; the empty proxy-wasm filter: {}.\n",
        size(serin_size),
        size(native_size),
        size(empty_size),
    ));
    for f in MEMORY_CONFIGS.into_iter().filter(|&f| f != Filter::None) {
        r.push_str(&format!(
            "- ({}) {}: **{}** per additional worker; {} with one worker, beyond (a).\n",
            f.letter(),
            f.label(),
            kib(memory.per_worker_kib(f)),
            kib(memory.total_kib(f)),
        ));
    }
    r.push_str(
        "\nMemory is the process's `VmRSS` after 2 s of load with one worker and with nine \
         (Envoy's `/memory` does not count V8's heap): per additional worker = (the config's \
         difference − (a)'s) / 8, one more VM instance with the compiled code shared (for (f), \
         one more engine, no VM); the median of three readings.\n\n",
    );

    let find = |rows: &[Row], f: Filter| {
        rows.iter()
            .find(|r| r.filter == f)
            .map(|r| (r.ratio, r.p99))
    };
    r.push_str("### Against the targets of issue 8\n\n");
    if let (Some((b, b99)), Some((c, _)), Some((d, _)), Some((_, a99))) = (
        find(&direct, Filter::Serin),
        find(&direct, Filter::Lua),
        find(&direct, Filter::EmptyWasm),
        find(&direct, Filter::None),
    ) {
        r.push_str(&format!(
            "- Direct: (b) ≥ 0.85 × (a) in rps: {:.3} — {}.\n",
            b,
            verdict(b >= 0.85)
        ));
        r.push_str(&format!(
            "- Direct: (b) above (c): {:.3} vs {:.3} — {}.\n",
            b,
            c,
            verdict(b > c)
        ));
        r.push_str(&format!(
            "- Direct: (b) within 5% of (d): {:.3} vs {:.3}, (b) ÷ (d) = {:.3} — {}.\n",
            b,
            d,
            b / d,
            verdict(b / d >= 0.95)
        ));
        r.push_str(&format!(
            "- Direct: p99 of (b) ≤ 1.2 × (a): {} vs {} ({:.2}×) — {}.\n",
            ms(b99),
            ms(a99),
            b99 / a99,
            verdict(b99 <= 1.2 * a99)
        ));
    }
    if let Some((b, _)) = find(&proxied, Filter::Serin) {
        r.push_str(&format!(
            "- Proxied: (b) ≥ 0.95 × (a) in rps: {:.3} — {}.\n",
            b,
            verdict(b >= 0.95)
        ));
    }
    r.push_str(&format!(
        "- `filter.wasm` ≤ 150 KB (150,000 bytes): {serin_size} bytes — {}.\n",
        verdict(serin_size <= 150_000)
    ));
    if let Some(k) = memory.per_worker_kib(Filter::Serin) {
        r.push_str(&format!(
            "- VM memory ≤ 2 MB per worker: {} — {}.\n",
            kib(Some(k)),
            memory_verdict(k, 2048)
        ));
    }
    r.push_str(
        "- Restated against the empty filter (d), in instructions per request: (b′) ≤ (d) + \
         40 k and (b) ≤ (d) + 65 k: see [Instructions per \
         request](#instructions-per-request-callgrind).\n",
    );

    r.push_str("\n### Against the native backend's targets\n\n");
    if let (Some((f, _)), Some((f_split, _)), Some((c, _))) = (
        find(&direct, Filter::NativeSerin),
        find(&direct, Filter::NativeSerinSplit),
        find(&direct, Filter::Lua),
    ) {
        r.push_str(&format!(
            "- Direct: (f′) ≥ 0.90 × (a) in rps: {:.3} — {}.\n",
            f_split,
            verdict(f_split >= 0.90)
        ));
        r.push_str(&format!(
            "- Direct: (f) ≥ 0.85 × (a) in rps: {:.3} — {}.\n",
            f,
            verdict(f >= 0.85)
        ));
        r.push_str(&format!(
            "- Direct: (f) and (f′) above (c): {:.3} and {:.3} vs {:.3} — {}.\n",
            f,
            f_split,
            c,
            verdict(f > c && f_split > c)
        ));
    }
    if let (Some((f, f99)), Some((_, a99))) = (
        find(&proxied, Filter::NativeSerin),
        find(&proxied, Filter::None),
    ) {
        r.push_str(&format!(
            "- Proxied: (f) ≥ 0.95 × (a) in rps: {:.3} — {}.\n",
            f,
            verdict(f >= 0.95)
        ));
        r.push_str(&format!(
            "- Proxied: p99 of (f) ≤ 1.15 × (a): {} vs {} ({:.2}×) — {}.\n",
            ms(f99),
            ms(a99),
            f99 / a99,
            verdict(f99 <= 1.15 * a99)
        ));
    }
    if let Some(k) = memory.per_worker_kib(Filter::NativeSerin) {
        r.push_str(&format!(
            "- Memory ≤ 0.5 MiB per additional worker beyond (a): {} — {}.\n",
            kib(Some(k)),
            memory_verdict(k, 512)
        ));
    }
    r.push_str(
        "- (f′) ≤ (a) + 10 k instructions per request: see [Instructions per \
         request](#instructions-per-request-callgrind).\n",
    );
    r
}

/// A per-worker memory figure against its limit, in KiB. It is a difference of RSS
/// differences: a negative result is noise, not a pass.
fn memory_verdict(per_worker_kib: i64, limit_kib: i64) -> &'static str {
    if per_worker_kib < 0 {
        "**no reading** (negative: noise; rerun)"
    } else {
        verdict(per_worker_kib <= limit_kib)
    }
}

/// Replace the section under `heading` up to the next `## ` heading (or the end), or append it.
pub fn write_section(path: &Path, heading: &str, section: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = replace_section(&text, heading, section);
    std::fs::write(path, new).map_err(|e| format!("{}: {e}", path.display()))
}

/// `text` with the section that starts at the line `heading` (exactly, after the first line)
/// replaced by `section`, up to the next line that starts with `## ` (its `###` subsections go
/// with it); the rest is kept byte for byte. Without such a line, `section` is appended.
fn replace_section(text: &str, heading: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end());
    match text.find(&format!("\n{heading}\n")) {
        Some(at) => {
            let start = at + 1;
            let rest = &text[start + heading.len()..];
            let end = rest
                .find("\n## ")
                .map_or(text.len(), |i| start + heading.len() + i + 1);
            let sep = if end < text.len() { "\n" } else { "" };
            format!("{}{section}{sep}{}", &text[..start], &text[end..])
        }
        None => format!(
            "{}\n{section}",
            text.trim_end_matches('\n').to_string() + "\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    const FILE: &str = "# Benchmarks\n\n| summary |\n|---|\n\n\
                        ## Load bench in real Envoy\n\nold text\n\n### Direct-response routes\n\nold table\n\n\
                        ## Instructions per request (callgrind)\n\nold counts\n\n\
                        ## Detection quality\n\nhand-written\n";

    #[test]
    fn replaces_exactly_its_section() {
        let new = replace_section(
            FILE,
            "## Load bench in real Envoy",
            "## Load bench in real Envoy\n\nnew text\n\n### Proxied to upstreams\n\nnew table\n\n",
        );
        assert_eq!(
            new,
            "# Benchmarks\n\n| summary |\n|---|\n\n\
             ## Load bench in real Envoy\n\nnew text\n\n### Proxied to upstreams\n\nnew table\n\n\
             ## Instructions per request (callgrind)\n\nold counts\n\n\
             ## Detection quality\n\nhand-written\n"
        );
        // Rewriting again with the same text changes nothing.
        let again = replace_section(
            &new,
            "## Load bench in real Envoy",
            "## Load bench in real Envoy\n\nnew text\n\n### Proxied to upstreams\n\nnew table\n",
        );
        assert_eq!(again, new);
    }

    #[test]
    fn a_section_in_the_middle_or_at_the_end() {
        let heading = "## Instructions per request (callgrind)";
        let new = replace_section(FILE, heading, &format!("{heading}\n\nnew counts\n"));
        assert_eq!(new, FILE.replace("old counts", "new counts"));
        let heading = "## Detection quality";
        let new = replace_section(FILE, heading, &format!("{heading}\n\nnew\n"));
        assert_eq!(new, FILE.replace("hand-written", "new"));
    }

    #[test]
    fn only_a_whole_heading_line_matches_and_a_missing_section_is_appended() {
        let new = replace_section(FILE, "## Load bench", "## Load bench\n\nappended\n");
        assert_eq!(new, format!("{FILE}\n## Load bench\n\nappended\n"));
    }

    /// One round per config, with the figures of the 2026-11-27 run where one round can give
    /// them; the native backend's rows are made up, to exercise its targets both ways.
    fn one_round() -> (super::Args, super::Results, super::Memory) {
        use super::{Args, Filter, Memory, Mode, Results, Sample, WrkResult, mode_key};
        let args = Args {
            rounds: 5,
            seconds: 10,
            warmup: 2,
            connections: 32,
            modes: vec![Mode::Direct, Mode::Proxied],
            write: true,
            quick: false,
        };
        let mut results = Results::default();
        let direct = [
            (Filter::None, 79860.0, 400.0, 540.0, 12.5, 0.0),
            (Filter::Serin, 40084.0, 800.0, 1150.0, 24.6, 0.054),
            (Filter::SerinSplit, 46405.0, 710.0, 960.0, 21.4, 0.054),
            (Filter::Lua, 61600.0, 520.0, 700.0, 16.2, 0.059),
            (Filter::EmptyWasm, 66490.0, 490.0, 670.0, 15.0, 0.0),
            (Filter::NativeSerin, 70277.0, 450.0, 600.0, 14.1, 0.054),
            (Filter::NativeSerinSplit, 73471.0, 430.0, 580.0, 13.5, 0.054),
        ];
        let proxied = [
            (Filter::None, 30283.0, 1020.0, 1620.0, 30.6, 0.0),
            (Filter::Serin, 20888.0, 1480.0, 2440.0, 46.5, 0.054),
            (
                Filter::WeightedClusters,
                30546.0,
                1020.0,
                1650.0,
                30.7,
                0.057,
            ),
            (Filter::NativeSerin, 29072.0, 1060.0, 1900.0, 31.9, 0.054),
        ];
        for (mode, rows) in [(Mode::Direct, &direct[..]), (Mode::Proxied, &proxied[..])] {
            for &(f, rps, p50_us, p99_us, cpu_us, canary) in rows {
                let wrk = WrkResult {
                    rps,
                    p50_us,
                    p99_us,
                    requests: (rps * 10.0) as u64,
                    errors: 0,
                };
                let key = (mode_key(mode), f);
                results.samples.entry(key).or_default().push(Sample {
                    round: 0,
                    wrk,
                    cpu_us,
                });
                results.canary.insert(key, canary);
            }
        }
        let memory = Memory {
            rss: vec![
                (Filter::None, vec![[100_000, 180_000]]),
                (Filter::Serin, vec![[141_482, 239_178]]),
                (Filter::EmptyWasm, vec![[128_836, 215_308]]),
                (Filter::NativeSerin, vec![[101_200, 182_800]]),
            ],
        };
        (args, results, memory)
    }

    fn meta() -> super::Meta {
        super::Meta {
            date: "2026-11-27".into(),
            envoy_version: "1.40.0".into(),
            machine: "2 cores (Intel(R) Xeon(R) Processor)".into(),
            serin_size: 386_037,
            empty_size: 71_935,
            native_size: 2_412_304,
        }
    }

    #[test]
    fn the_load_section_is_one_short_section() {
        let (args, results, memory) = one_round();
        let s = super::render(&meta(), &args, &results, &memory);
        assert!(s.starts_with(&format!("{}\n\n", super::SECTION)));
        assert_eq!(s.matches("\n## ").count(), 0);
        assert!(s.lines().count() < 60, "{} lines", s.lines().count());
        assert!(s.contains(
            "| (b) Serin (fraud-model.toml) | **0.502** (0.502–0.502) | 0.502 | 40084 |"
        ));
        assert!(s.contains("- VM memory ≤ 2 MB per worker: 2.16 MiB — **not met**.\n"));
        assert!(s.contains("- Direct: p99 of (b) ≤ 1.2 × (a): 1.15 ms vs 0.54 ms (2.13×)"));
        assert!(s.contains(
            "| (f′) Serin native, split only (percent-canary.toml) | **0.920** (0.920–0.920) |"
        ));
        for line in [
            "- Direct: (f′) ≥ 0.90 × (a) in rps: 0.920 — **met**.\n",
            "- Direct: (f) ≥ 0.85 × (a) in rps: 0.880 — **met**.\n",
            "- Direct: (f) and (f′) above (c): 0.880 and 0.920 vs 0.771 — **met**.\n",
            "- Proxied: (f) ≥ 0.95 × (a) in rps: 0.960 — **met**.\n",
            "- Proxied: p99 of (f) ≤ 1.15 × (a): 1.90 ms vs 1.62 ms (1.17×) — **not met**.\n",
            "- Memory ≤ 0.5 MiB per additional worker beyond (a): 0.20 MiB — **met**.\n",
        ] {
            assert!(s.contains(line), "{line}");
        }
        // The native rows sit after (e) in the proxied table, as the letters go.
        let proxied = &s[s.find("### Proxied").unwrap()..];
        assert!(proxied.find("| (e) ").unwrap() < proxied.find("| (f) ").unwrap());
    }

    /// "Best" is the config's fastest round over (a)'s fastest, whichever rounds they were; the
    /// judged median stays the median of same-round ratios.
    #[test]
    fn best_is_the_fastest_round_over_the_fastest_baseline() {
        use super::{Filter, Mode, Sample, mode_key};
        let (_, mut results, _) = one_round();
        let slowed = |s: &Sample, by: f64| {
            let mut s = *s;
            s.round = 1;
            s.wrk.rps /= by;
            s
        };
        for (f, by) in [(Filter::None, 3.0), (Filter::Serin, 1.5)] {
            let v = results
                .samples
                .get_mut(&(mode_key(Mode::Direct), f))
                .unwrap();
            let later = slowed(&v[0], by);
            v.push(later);
        }
        let rows = super::rows(&results, Mode::Direct);
        let b = rows.iter().find(|r| r.filter == Filter::Serin).unwrap();
        assert!((b.best - 40084.0 / 79860.0).abs() < 1e-9);
        // Round 1: (b) at 40084 / 1.5 over (a) at 79860 / 3, twice the ratio of round 0.
        assert!((b.ratio_max - 2.0 * 40084.0 / 79860.0).abs() < 1e-9);
    }

    /// A negative per-worker figure (two one-off RSS differences) is noise, not a pass.
    /// Per additional worker: the eight extra workers' difference over (a)'s, divided by eight;
    /// over readings, the median, so one disturbed start does not move it.
    #[test]
    fn the_memory_figure_is_the_median_of_its_readings_per_extra_worker() {
        let (_, _, mut memory) = one_round();
        memory.rss[0].1 = vec![[100_000, 180_000]; 3];
        // 1 MiB, 0.5 MiB, then a disturbed reading of 6 MiB per extra worker.
        memory.rss[3].1 = vec![
            [101_000, 101_000 + 80_000 + 8 * 1024],
            [101_000, 101_000 + 80_000 + 8 * 512],
            [101_000, 101_000 + 80_000 + 8 * 6 * 1024],
        ];
        assert_eq!(
            memory.per_worker_kib(super::Filter::NativeSerin),
            Some(1024)
        );
        assert_eq!(memory.total_kib(super::Filter::NativeSerin), Some(1_000));
    }

    #[test]
    fn a_negative_memory_reading_is_no_reading() {
        let (args, results, mut memory) = one_round();
        memory.rss[1] = (super::Filter::Serin, vec![[141_482, 209_626]]);
        let s = super::render(&meta(), &args, &results, &memory);
        assert!(s.contains("- VM memory ≤ 2 MB per worker: -1.45 MiB — **no reading**"));
        memory.rss[3] = (super::Filter::NativeSerin, vec![[101_200, 171_600]]);
        let s = super::render(&meta(), &args, &results, &memory);
        assert!(s.contains("beyond (a): -1.17 MiB — **no reading**"));
    }

    /// The generators' headings are in their report, once each, so that a rerun replaces its
    /// section rather than appending a second one, and every other section survives it.
    #[test]
    fn benchmarks_md_has_the_generated_sections() {
        let text = include_str!("../../docs/benchmarks/envoy.md");
        let headings = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with("## "))
                .map(str::to_string)
                .collect()
        };
        for heading in [super::SECTION, crate::instructions::SECTION] {
            let line = format!("\n{heading}\n");
            assert_eq!(text.matches(&line).count(), 1, "{heading}");
            let new = replace_section(text, heading, &format!("{heading}\n\nrewritten\n"));
            assert_eq!(headings(&new), headings(text), "{heading}");
            assert_eq!(new.matches("rewritten").count(), 1);
            assert!(
                new.len() + 200 < text.len(),
                "{heading}: too little replaced"
            );
        }
    }
}
