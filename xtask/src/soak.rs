//! `cargo xtask soak [--seconds N] [--no-write]`: the fraud example in real Envoy with two
//! workers, under full load from wrk for N seconds (default 600), then an audit:
//!
//! - every request Envoy counted was counted by Serin on exactly one arm, and ended as exactly
//!   one response or reset (`serin_requests_total` = Envoy's `downstream_rq_total`, and
//!   = `serin_responses_total` + `serin_resets_total`);
//! - what wrk received matches Serin's responses, up to the requests in flight when wrk stopped;
//! - the stable arm answered no 5xx;
//! - Envoy's resident memory stayed flat (sampled every 10 s; the last minute against the first
//!   minute after warm-up) and Envoy did not crash, trap or log a critical error.
//!
//! A full run rewrites docs/soak.md with the samples and the verdict. CI runs a short one.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serin_e2e::bench::{self, WRK_SCRIPT};
use serin_e2e::{Paths, Stack};

use crate::{tools, wasm};

const POLICY: &str = "examples/fraud-model.toml";
const CONNECTIONS: u32 = 64;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How much the resident memory may grow from the first minute to the last.
const MAX_GROWTH: f64 = 0.10;

struct Args {
    seconds: u64,
    write: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        seconds: 600,
        write: true,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => {
                a.seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&s| s >= 20)
                    .ok_or("--seconds takes a whole number of at least 20")?;
            }
            "--no-write" => a.write = false,
            other => return Err(format!("unknown soak argument `{other}`")),
        }
    }
    Ok(a)
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    requests: u64,
}

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    let tools = tools::ensure_all(root)?;
    let wasm = wasm::build_filter(root)?;
    let source =
        std::fs::read_to_string(root.join(POLICY)).map_err(|e| format!("{POLICY}: {e}"))?;
    let plan = serin_compiler::compile_str(&source, POLICY)
        .map_err(|d| format!("{POLICY} does not compile:\n{d}"))?
        .plan;
    let paths = Paths {
        root: root.to_path_buf(),
        envoy: tools.envoy.clone(),
        backend: serin_e2e::Backend::Wasm,
        module: wasm,
    };
    let mut stack = Stack::start_with(&paths, &plan, 2)?;
    let pid = stack.front.pid();
    let dir = tempfile_dir()?;
    let script = dir.join("user-per-request.lua");
    std::fs::write(&script, WRK_SCRIPT).map_err(|e| e.to_string())?;

    eprintln!(
        "soak: {POLICY}, 2 Envoy workers, wrk with {CONNECTIONS} connections for {} s",
        args.seconds
    );
    let mut wrk = Command::new(&tools.wrk)
        .args(["-t2", "-c", &CONNECTIONS.to_string()])
        .args(["-d", &format!("{}s", args.seconds), "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}/", stack.ports.listener))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start wrk: {e}"))?;
    let start = Instant::now();
    let mut samples = Vec::new();
    loop {
        std::thread::sleep(SAMPLE_EVERY.min(Duration::from_secs(args.seconds) / 4));
        if let Some(status) = stack.front.exited() {
            let _ = wrk.kill();
            return Err(format!(
                "Envoy exited ({status}) during the soak:\n{}",
                stack.front.problems()
            ));
        }
        let sample = Sample {
            at: start.elapsed(),
            rss_kib: bench::rss_kib(pid),
            requests: arm_sum(&stack, "serin_requests_total"),
        };
        eprintln!(
            "soak: {:>4} s  rss {:>7} KiB  requests {:>10}",
            sample.at.as_secs(),
            sample.rss_kib,
            sample.requests
        );
        samples.push(sample);
        if wrk.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
    }
    let out = wrk.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let load =
        bench::parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))?;
    // Serin flushes its counters on its 1 s tick: wait for two.
    std::thread::sleep(Duration::from_millis(2_500));
    let audit = Audit::take(&stack, &load, &samples, &plan)?;
    let report = audit.report(&args, &samples, &load);
    print!("{report}");
    if args.write {
        let path = root.join("docs/soak.md");
        std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("soak: wrote {}", path.display());
    }
    match audit.failures.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "the soak failed:\n- {}",
            audit.failures.join("\n- ")
        )),
    }
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("serin-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Σ over arms of a per-arm Serin series (every class, for responses).
fn arm_sum(stack: &Stack, series: &str) -> u64 {
    let Ok(text) = stack.front.admin("/stats/prometheus") else {
        return 0;
    };
    text.lines()
        .filter(|l| l.starts_with(&format!("{series}{{")))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One of Envoy's own counters from `/stats`.
fn envoy_counter(stack: &Stack, name: &str) -> u64 {
    stack
        .front
        .admin(&format!("/stats?filter=^{name}$"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: "))?.trim().parse().ok())
        })
        .unwrap_or(0)
}

struct Audit {
    envoy_requests: u64,
    serin_requests: u64,
    responses: u64,
    resets: u64,
    stable_5xx: u64,
    state: Option<f64>,
    growth: f64,
    failures: Vec<String>,
}

impl Audit {
    fn take(
        stack: &Stack,
        load: &bench::WrkResult,
        samples: &[Sample],
        plan: &serin_policy::Plan,
    ) -> Result<Audit, String> {
        let stable = &plan.arm(plan.stable).name;
        let mut a = Audit {
            envoy_requests: envoy_counter(stack, "http.ingress.downstream_rq_total"),
            serin_requests: arm_sum(stack, "serin_requests_total"),
            responses: arm_sum(stack, "serin_responses_total"),
            resets: arm_sum(stack, "serin_resets_total"),
            stable_5xx: stack
                .prometheus(&format!(
                    r#"serin_responses_total{{arm="{stable}",class="5xx"}}"#
                ))
                .unwrap_or(0.0) as u64,
            state: stack.prometheus("serin_rollout_state"),
            growth: memory_growth(samples),
            failures: Vec::new(),
        };
        let mut fail = |ok: bool, what: String| {
            if !ok {
                a.failures.push(what);
            }
        };
        fail(
            a.serin_requests == a.envoy_requests,
            format!(
                "Serin counted {} requests, Envoy {}",
                a.serin_requests, a.envoy_requests
            ),
        );
        fail(
            a.responses + a.resets == a.serin_requests,
            format!(
                "{} requests ended as {} responses and {} resets",
                a.serin_requests, a.responses, a.resets
            ),
        );
        fail(
            a.responses >= load.requests && a.responses - load.requests <= u64::from(CONNECTIONS),
            format!(
                "wrk received {} responses, Serin counted {} (at most {CONNECTIONS} in flight)",
                load.requests, a.responses
            ),
        );
        fail(
            a.stable_5xx == 0,
            format!("the stable arm answered {} 5xx", a.stable_5xx),
        );
        fail(
            a.growth <= MAX_GROWTH,
            format!(
                "resident memory grew {:.1}% (limit {:.0}%)",
                a.growth * 100.0,
                MAX_GROWTH * 100.0
            ),
        );
        // A wasm trap is logged as a RuntimeError by V8, a Rust panic as `panicked`, and a VM
        // that Envoy gave up on as `Wasm VM failed`.
        let log = stack.front.log();
        for bad in ["][critical]", "panicked", "RuntimeError", "Wasm VM failed"] {
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(bad)).take(5).collect();
            fail(
                lines.is_empty(),
                format!("Envoy's log has `{bad}`:\n{}", lines.join("\n")),
            );
        }
        Ok(a)
    }

    fn report(&self, args: &Args, samples: &[Sample], load: &bench::WrkResult) -> String {
        let mut r = String::new();
        let date = crate::shell::output(Command::new("date").arg("-u").arg("+%Y-%m-%d"))
            .unwrap_or_default();
        let verdict = if self.failures.is_empty() {
            "passed"
        } else {
            "FAILED"
        };
        let _ = writeln!(r, "# Soak in real Envoy\n");
        let _ = writeln!(
            r,
            "Written by `cargo xtask soak --seconds {}` on {date}: {POLICY} in Envoy 1.40 with 2 \
             workers, behind it the stand-in upstreams of envoy-config/upstreams.yaml, under \
             full load from wrk (2 threads, {CONNECTIONS} connections, a new user per request) \
             on the same 2-core machine. Verdict: **{verdict}**.\n",
            args.seconds
        );
        let _ = writeln!(r, "## Accounting\n");
        let _ = writeln!(r, "| what | count |\n|---|---|");
        let rows = [
            (
                "requests Envoy counted (`downstream_rq_total`)",
                self.envoy_requests,
            ),
            (
                "requests Serin counted, summed over arms",
                self.serin_requests,
            ),
            (
                "responses Serin counted, every arm and class",
                self.responses,
            ),
            ("resets Serin counted", self.resets),
            ("responses wrk received", load.requests),
            ("5xx from the stable arm", self.stable_5xx),
        ];
        for (what, n) in rows {
            let _ = writeln!(r, "| {what} | {n} |");
        }
        let _ = writeln!(
            r,
            "\nwrk: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {} errors. Rollout state at the \
             end: {} (1 ramping, 2 holding, 3 promoted, 4 rolled back).\n",
            load.rps,
            load.p50_us / 1e3,
            load.p99_us / 1e3,
            load.errors,
            self.state.map_or("absent".to_string(), |s| s.to_string())
        );
        let _ = writeln!(r, "## Resident memory of the Envoy process\n");
        let _ = writeln!(
            r,
            "Growth from the first minute to the last: {:+.1}% (limit {:.0}%).\n",
            self.growth * 100.0,
            MAX_GROWTH * 100.0
        );
        let _ = writeln!(r, "| s | VmRSS KiB | requests so far |\n|---|---|---|");
        for s in samples {
            let _ = writeln!(r, "| {} | {} | {} |", s.at.as_secs(), s.rss_kib, s.requests);
        }
        if !self.failures.is_empty() {
            let _ = writeln!(r, "\n## Failures\n");
            for f in &self.failures {
                let _ = writeln!(r, "- {f}");
            }
        }
        r
    }
}

/// Relative growth of the mean RSS over the last minute against the first minute (or, for a
/// short run, the last quarter of samples against the first quarter).
fn memory_growth(samples: &[Sample]) -> f64 {
    let n = samples.len();
    if n < 2 {
        return 0.0;
    }
    let window = (n / 4).clamp(1, 6);
    let mean = |s: &[Sample]| s.iter().map(|s| s.rss_kib as f64).sum::<f64>() / s.len() as f64;
    let first = mean(&samples[..window]);
    let last = mean(&samples[n - window..]);
    if first == 0.0 {
        return 0.0;
    }
    (last - first) / first
}
