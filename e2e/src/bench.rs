//! The load bench's harness (`cargo xtask bench`): the front-Envoy configs it compares,
//! Envoy processes pinned to a core, wrk runs with a new user id per request, and what the
//! kernel says about a process (CPU time, resident memory).
//!
//! Every config has the same skeleton, listener → HTTP connection manager → [filter] → router,
//! and the same routes: one per non-stable arm matching the routing header, then the default to
//! the stable arm. In [`Mode::Direct`] the routes answer with a direct response naming the arm
//! (in TF Serving's shape, so Serin's response observation has a body to read); in
//! [`Mode::Proxied`] they go to the stand-in upstreams of envoy-config/upstreams.yaml.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serin_compiler::emit::envoy::{http_filters, ingress_listener, stats_config};
use serin_compiler::emit::yaml::{Value, list, map, n, s, to_string};
use serin_policy::Plan;

use crate::{Backend, Envoy, Ports, front_config};

/// The configs of issue 8, and Serin's native backend beside them, in the order the report
/// lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Filter {
    /// (a) no filter: the router alone.
    None,
    /// (b) Serin with the plan: rules, hash split, metrics, response observation.
    Serin,
    /// (b′) Serin with [`Setup::split_plan`], a hash split and nothing else: what routing
    /// alone costs, apart from measuring.
    SerinSplit,
    /// (c) a Lua filter doing an equivalent hash split (FNV-1a, see [`lua_split`]).
    Lua,
    /// (d) a proxy-wasm filter that only returns `Continue`: the ABI's floor.
    EmptyWasm,
    /// (e) Envoy's own `weighted_clusters` with `use_hash_policy` on `x-user-id`.
    WeightedClusters,
    /// (f) (b) with the native backend, `libserin.so`, in place of `filter.wasm`.
    NativeSerin,
    /// (f′) (b′) with the native backend.
    NativeSerinSplit,
}

impl Filter {
    pub const ALL: [Filter; 8] = [
        Filter::None,
        Filter::Serin,
        Filter::SerinSplit,
        Filter::Lua,
        Filter::EmptyWasm,
        Filter::WeightedClusters,
        Filter::NativeSerin,
        Filter::NativeSerinSplit,
    ];

    pub fn letter(self) -> &'static str {
        match self {
            Filter::None => "a",
            Filter::Serin => "b",
            Filter::SerinSplit => "b′",
            Filter::Lua => "c",
            Filter::EmptyWasm => "d",
            Filter::WeightedClusters => "e",
            Filter::NativeSerin => "f",
            Filter::NativeSerinSplit => "f′",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Filter::None => "no filter",
            Filter::Serin => "Serin (fraud-model.toml)",
            Filter::SerinSplit => "Serin, split only (percent-canary.toml)",
            Filter::Lua => "Lua hash split",
            Filter::EmptyWasm => "empty proxy-wasm filter",
            Filter::WeightedClusters => "weighted_clusters + use_hash_policy",
            Filter::NativeSerin => "Serin native (fraud-model.toml)",
            Filter::NativeSerinSplit => "Serin native, split only (percent-canary.toml)",
        }
    }

    /// The backend that runs Serin in this config; `None` for the configs without Serin. The
    /// (b) and (f) rows differ in this alone, so that the two backends are compared on the
    /// same plan, filters, routes and stats config.
    pub fn serin_backend(self) -> Option<Backend> {
        match self {
            Filter::Serin | Filter::SerinSplit => Some(Backend::Wasm),
            Filter::NativeSerin | Filter::NativeSerinSplit => Some(Backend::Native),
            Filter::None | Filter::Lua | Filter::EmptyWasm | Filter::WeightedClusters => None,
        }
    }

    /// Whether the config runs [`Setup::split_plan`] rather than [`Setup::plan`].
    pub fn runs_split_plan(self) -> bool {
        matches!(self, Filter::SerinSplit | Filter::NativeSerinSplit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Routes answer directly after the routing decision: the filter's cost dominates.
    Direct,
    /// Routes proxy to the stand-in upstreams (a second Envoy).
    Proxied,
}

/// The canary's share in the Lua and `weighted_clusters` configs, in percent: what
/// examples/fraud-model.toml gives it (`weights = { canary = 5 }`).
pub const CANARY_PERCENT: u64 = 5;

/// What the front configs are built from.
pub struct Setup<'a> {
    pub plan: &'a Plan,
    /// A plan with the same arms, routing header and split, and no rules, metrics, outcomes
    /// or guards (examples/percent-canary.toml), for [`Filter::SerinSplit`] and
    /// [`Filter::NativeSerinSplit`].
    pub split_plan: &'a Plan,
    /// `filter.wasm`, Serin's proxy-wasm backend.
    pub serin_wasm: PathBuf,
    /// `libserin.so`, Serin's native backend (an Envoy dynamic module).
    pub serin_native: PathBuf,
    pub empty_wasm: PathBuf,
}

impl Setup<'_> {
    /// The plan `which` runs (the fraud model's for the configs without Serin, whose routes
    /// and Lua split are built from its arms).
    pub fn plan_for(&self, which: Filter) -> &Plan {
        if which.runs_split_plan() {
            self.split_plan
        } else {
            self.plan
        }
    }

    /// The module that runs Serin with `backend`.
    pub fn serin_module(&self, backend: Backend) -> &Path {
        match backend {
            Backend::Wasm => &self.serin_wasm,
            Backend::Native => &self.serin_native,
        }
    }
}

fn socket(port: u16) -> Value {
    map([(
        "socket_address",
        map([("address", s("127.0.0.1")), ("port_value", n(port.into()))]),
    )])
}

fn typed(type_url: &str, rest: Vec<(&str, Value)>) -> Value {
    let mut pairs = vec![("@type", s(format!("type.googleapis.com/{type_url}")))];
    pairs.extend(rest);
    map(pairs)
}

fn filter(name: &str, typed_config: Value) -> Value {
    map([("name", s(name)), ("typed_config", typed_config)])
}

fn router() -> Value {
    filter(
        "envoy.filters.http.router",
        typed("envoy.extensions.filters.http.router.v3.Router", vec![]),
    )
}

fn cluster(name: &str, port: u16) -> Value {
    map([
        ("name", s(name)),
        ("type", s("STATIC")),
        ("connect_timeout", s("2s")),
        (
            "load_assignment",
            map([
                ("cluster_name", s(name)),
                (
                    "endpoints",
                    list([map([(
                        "lb_endpoints",
                        list([map([("endpoint", map([("address", socket(port))]))])]),
                    )])]),
                ),
            ]),
        ),
    ])
}

/// The route's action for `arm`: a direct response naming it, or its cluster.
fn action(mode: Mode, arm: &str) -> Vec<(&'static str, Value)> {
    match mode {
        Mode::Direct => vec![
            (
                "direct_response",
                map([
                    ("status", n(200)),
                    (
                        "body",
                        map([(
                            "inline_string",
                            s(format!(
                                r#"{{"predictions": [0.02], "model_version": "{arm}"}}"#
                            )),
                        )]),
                    ),
                ]),
            ),
            (
                "response_headers_to_add",
                list([map([(
                    "header",
                    map([("key", s("x-served-by")), ("value", s(arm))]),
                )])]),
            ),
        ],
        Mode::Proxied => vec![("route", map([("cluster", s(arm))]))],
    }
}

/// One route per non-stable arm on the routing header, then the default to stable.
fn header_routes(plan: &Plan, mode: Mode) -> Value {
    let mut routes = Vec::new();
    for (i, arm) in plan.arms.iter().enumerate() {
        if i == usize::from(plan.stable) {
            continue;
        }
        let header = map([
            ("name", s(&plan.routing_header)),
            ("string_match", map([("exact", s(&arm.value))])),
        ]);
        let mut pairs = vec![
            ("name", s(&arm.name)),
            (
                "match",
                map([("prefix", s("/")), ("headers", list([header]))]),
            ),
        ];
        pairs.extend(action(mode, &arm.name));
        routes.push(map(pairs));
    }
    let mut pairs = vec![("name", s("default")), ("match", map([("prefix", s("/"))]))];
    pairs.extend(action(mode, &plan.arm(plan.stable).name));
    routes.push(map(pairs));
    list(routes)
}

/// Envoy's own sticky split: one route, weighted clusters picked by the hash of `x-user-id`.
fn weighted_cluster_routes(plan: &Plan) -> Value {
    let canary = plan
        .arms
        .iter()
        .enumerate()
        .find(|&(i, _)| i != usize::from(plan.stable))
        .map(|(_, a)| a.name.as_str())
        .unwrap_or("canary");
    let weighted = map([
        ("use_hash_policy", Value::Bool(true)),
        (
            "clusters",
            list([
                map([
                    ("name", s(&plan.arm(plan.stable).name)),
                    ("weight", n(100 - CANARY_PERCENT)),
                ]),
                map([("name", s(canary)), ("weight", n(CANARY_PERCENT))]),
            ]),
        ),
    ]);
    list([map([
        ("name", s("split")),
        ("match", map([("prefix", s("/"))])),
        (
            "route",
            map([
                ("weighted_clusters", weighted),
                (
                    "hash_policy",
                    list([map([("header", map([("header_name", s("x-user-id"))]))])]),
                ),
            ]),
        ),
    ])])
}

/// A Lua filter doing what Serin's split does, in the cheapest form Lua allows: set the routing
/// header from a hash of `x-user-id` (overwriting what a client sent), `CANARY_PERCENT`% of
/// users to the canary, no header → stable. Envoy's Lua (LuaJIT) has no MurmurHash3, so it
/// hashes with 32-bit FNV-1a, written with LuaJIT's `bit` library; the multiplication by the
/// FNV prime 2^24 + 403 is split so that no intermediate leaves a double's exact range.
pub fn lua_split(plan: &Plan) -> String {
    let stable = &plan.arm(plan.stable).value;
    let canary = plan
        .arms
        .iter()
        .enumerate()
        .find(|&(i, _)| i != usize::from(plan.stable))
        .map(|(_, a)| a.value.as_str())
        .unwrap_or(stable);
    let header = &plan.routing_header;
    let threshold = CANARY_PERCENT * 100;
    format!(
        r#"local bit = require("bit")
local bxor, lshift, tobit = bit.bxor, bit.lshift, bit.tobit
local byte = string.byte

function envoy_on_request(handle)
  local headers = handle:headers()
  local key = headers:get("x-user-id")
  local arm = "{stable}"
  if key ~= nil then
    local h = tobit(2166136261)
    for i = 1, #key do
      h = bxor(h, byte(key, i))
      h = tobit(h * 403 + lshift(h, 24))
    end
    if h < 0 then h = h + 4294967296 end
    if h % 10000 < {threshold} then arm = "{canary}" end
  end
  headers:replace("{header}", arm)
end
"#
    )
}

fn lua_filter(plan: &Plan) -> Value {
    filter(
        "envoy.filters.http.lua",
        typed(
            "envoy.extensions.filters.http.lua.v3.Lua",
            vec![(
                "default_source_code",
                map([("inline_string", s(lua_split(plan)))]),
            )],
        ),
    )
}

fn empty_wasm_filter(wasm: &Path) -> Value {
    filter(
        "empty",
        typed(
            "envoy.extensions.filters.http.wasm.v3.Wasm",
            vec![(
                "config",
                map([
                    ("name", s("empty")),
                    ("failure_policy", s("FAIL_OPEN")),
                    (
                        "vm_config",
                        map([
                            ("vm_id", s("empty")),
                            ("runtime", s("envoy.wasm.runtime.v8")),
                            (
                                "code",
                                map([(
                                    "local",
                                    map([("filename", s(wasm.display().to_string()))]),
                                )]),
                            ),
                        ]),
                    ),
                ]),
            )],
        ),
    )
}

/// The front Envoy's bootstrap for one config, listening on `ports.listener`, its admin on
/// `ports.admin`, upstream arms (proxied mode) on `ports.stable` and `ports.canary`.
///
/// Serin proxied, with either backend, is exactly what `serin emit envoy --backend B` writes
/// ([`front_config`]); Serin direct is the same filters ([`http_filters`]) and stats config
/// with direct routes. `None` for the `weighted_clusters` split in direct mode:
/// weighted clusters need clusters to pick from.
pub fn config(setup: &Setup, which: Filter, mode: Mode, ports: Ports) -> Option<String> {
    let plan = setup.plan_for(which);
    let serin = which
        .serin_backend()
        .map(|backend| (backend, setup.serin_module(backend)));
    if let (Some((backend, module)), Mode::Proxied) = (serin, mode) {
        return Some(front_config(plan, ports, backend, module));
    }
    if which == Filter::WeightedClusters && mode == Mode::Direct {
        return None;
    }
    let filters = match (which, serin) {
        // What `serin emit envoy --backend B` puts in the chain.
        (_, Some((backend, module))) => http_filters(plan, backend, &module.display().to_string()),
        (Filter::Lua, None) => vec![lua_filter(plan), router()],
        (Filter::EmptyWasm, None) => vec![empty_wasm_filter(&setup.empty_wasm), router()],
        // (a), and (e), whose split is in its routes.
        (_, None) => vec![router()],
    };
    let routes = match which {
        Filter::WeightedClusters => weighted_cluster_routes(plan),
        _ => header_routes(plan, mode),
    };
    let listener = ingress_listener(socket(ports.listener), "bench", routes, filters);
    let mut static_resources = vec![("listeners", list([listener]))];
    if mode == Mode::Proxied {
        let port = |i: usize| {
            if i == usize::from(plan.stable) {
                ports.stable
            } else {
                ports.canary
            }
        };
        let clusters = plan
            .arms
            .iter()
            .enumerate()
            .map(|(i, arm)| cluster(&arm.name, port(i)));
        static_resources.push(("clusters", list(clusters)));
    }
    let mut root = vec![("admin", map([("address", socket(ports.admin))]))];
    if serin.is_some() {
        root.push(("stats_config", stats_config(plan)));
    }
    root.push(("static_resources", map(static_resources)));
    Some(to_string(&map(root)))
}

/// The wrk script: a new user id per request (a random prefix per run, then a counter), one
/// user in ten in the `65+` age band as in the e2e load.
pub const WRK_SCRIPT: &str = r#"local counter = 0
local prefix = ""

function init(args)
  math.randomseed(os.time())
  prefix = "u" .. math.random(1, 1000000000) .. "-"
end

function request()
  counter = counter + 1
  local band = "35-64"
  if counter % 10 == 0 then band = "65+" end
  return wrk.format("GET", "/v1/models/fraud:predict",
    { ["x-user-id"] = prefix .. counter, ["x-age-band"] = band })
end
"#;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrkResult {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub requests: u64,
    /// Non-2xx/3xx answers plus socket errors.
    pub errors: u64,
}

/// Run wrk (one thread, `connections` connections, `--latency`) pinned to `core` against
/// `http://127.0.0.1:port/`, with [`WRK_SCRIPT`] at `script`.
pub fn wrk(
    wrk: &Path,
    script: &Path,
    port: u16,
    seconds: u64,
    connections: u32,
    core: u32,
) -> Result<WrkResult, String> {
    let out = Command::new("taskset")
        .args(["-c", &core.to_string()])
        .arg(wrk)
        .args(["-t1", "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .map_err(|e| format!("cannot run taskset/wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))
}

/// A wrk duration (`812.00us`, `1.21ms`, `2.00s`) in microseconds.
fn duration_us(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = text.strip_suffix("m") {
        (v, 60e6)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|v| v * scale)
}

pub fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen = 0;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => {
                r.rps = v.parse().ok()?;
                seen += 1;
            }
            ["50%", v] => {
                r.p50_us = duration_us(v)?;
                seen += 1;
            }
            ["99%", v] => {
                r.p99_us = duration_us(v)?;
                seen += 1;
            }
            [count, "requests", "in", ..] => r.requests = count.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", v] => r.errors += v.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                r.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    (seen == 3).then_some(r)
}

/// This process's children, by pid.
fn children() -> BTreeSet<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(me))
        .collect()
}

/// `/proc/<pid>/stat` from the state field on (field 3 is index 0).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// An Envoy started by [`start_pinned`], with its pid for the kernel's accounts.
pub struct Pinned {
    pub envoy: Envoy,
    pub pid: u32,
}

/// Start Envoy and pin every one of its threads to `core` (threads it starts later inherit it).
pub fn start_pinned(
    envoy: &Path,
    config: &str,
    admin_port: u16,
    cwd: &Path,
    concurrency: u32,
    core: u32,
) -> Result<Pinned, String> {
    let before = children();
    let started = Envoy::start(envoy, config, admin_port, cwd, concurrency)?;
    let new: Vec<u32> = children().difference(&before).copied().collect();
    let [pid] = new[..] else {
        return Err(format!("expected one new child process, found {new:?}"));
    };
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .output()
        .map_err(|e| format!("cannot run taskset: {e}"))?;
    if !pinned.status.success() {
        return Err(format!(
            "taskset -a -p -c {core} {pid}: {}",
            String::from_utf8_lossy(&pinned.stderr)
        ));
    }
    Ok(Pinned {
        envoy: started,
        pid,
    })
}

impl Pinned {
    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let ticks = stat_fields(self.pid)
            .map(|f| {
                // utime and stime are fields 14 and 15 of /proc/<pid>/stat.
                [11, 12]
                    .iter()
                    .filter_map(|&i| f.get(i)?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .unwrap_or(0);
        ticks as f64 / clock_ticks_per_second()
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }
}

/// A process's resident memory now, in KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Send `count` requests, each from a new user, to the listener on `port`; how many were
/// answered by the arm named `arm` (`x-served-by`), and how many failed or were not 2xx.
pub fn served_by(port: u16, count: u32, arm: &str) -> Result<(u32, u32), String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(5))
        .build();
    let (mut hits, mut failed) = (0, 0);
    for i in 0..count {
        let reply = agent
            .get(&format!("http://127.0.0.1:{port}/v1/models/fraud:predict"))
            .set("x-user-id", &format!("check-{i}"))
            .set("x-age-band", "35-64")
            .call();
        match reply {
            Ok(r) => {
                hits += u32::from(r.header("x-served-by") == Some(arm));
                let _ = r.into_string();
            }
            Err(ureq::Error::Status(..)) => failed += 1,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok((hits, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(file: &str) -> Plan {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(file);
        let source = std::fs::read_to_string(&path).expect("the example policy");
        serin_compiler::compile_str(&source, file)
            .expect("the example compiles")
            .plan
    }

    /// (f) and (f′) are (b) and (b′) with the native backend's filter chain in place of the
    /// wasm one's (the native filter alone, the wasm filter behind `header_mutation`), and
    /// nothing else changed, in both modes.
    #[test]
    fn the_native_rows_differ_from_the_wasm_rows_in_the_filter_chain_alone() {
        let (plan, split_plan) = (example("fraud-model.toml"), example("percent-canary.toml"));
        let setup = Setup {
            plan: &plan,
            split_plan: &split_plan,
            serin_wasm: PathBuf::from("/m/filter.wasm"),
            serin_native: PathBuf::from("/m/libserin.so"),
            empty_wasm: PathBuf::from("/m/empty.wasm"),
        };
        let ports = Ports::SHIPPED;
        for (wasm, native, plan) in [
            (Filter::Serin, Filter::NativeSerin, &plan),
            (Filter::SerinSplit, Filter::NativeSerinSplit, &split_plan),
        ] {
            for mode in [Mode::Direct, Mode::Proxied] {
                // Each config parsed back, its filter chain replaced by a marker: what is left
                // must be the same document.
                let without_filter = |which: Filter, backend, module| {
                    let yaml = config(&setup, which, mode, ports).expect("a config");
                    let mut doc: Value = serde_norway::from_str(&yaml).expect("YAML");
                    let filter = list(http_filters(plan, backend, module));
                    let replaced = replace(&mut doc, &filter, &s("SERIN"));
                    assert_eq!(
                        replaced,
                        1,
                        "({}) {mode:?}: its filter chain",
                        which.letter()
                    );
                    doc
                };
                assert_eq!(
                    without_filter(native, Backend::Native, "/m/libserin.so"),
                    without_filter(wasm, Backend::Wasm, "/m/filter.wasm"),
                    "({}) against ({}), {mode:?}",
                    native.letter(),
                    wasm.letter()
                );
            }
        }
    }

    /// Replace every value equal to `from` in `doc` by `to`; how many there were.
    fn replace(doc: &mut Value, from: &Value, to: &Value) -> usize {
        if doc == from {
            *doc = to.clone();
            return 1;
        }
        match doc {
            Value::Sequence(items) => items.iter_mut().map(|v| replace(v, from, to)).sum(),
            Value::Mapping(m) => m.values_mut().map(|v| replace(v, from, to)).sum(),
            _ => 0,
        }
    }

    #[test]
    fn reads_wrk_output() {
        let text = "Running 1s test @ http://127.0.0.1:1/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  100.00us   5.00ms   90.00%
  Latency Distribution
     50%  790.00us
     75%  850.00us
     90%  900.00us
     99%    1.21ms
  20000 requests in 1.00s, 3.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  19990.12
Transfer/sec:      3.00MB
";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.requests, 20000);
        assert_eq!(r.errors, 3);
        assert!((r.p50_us - 790.0).abs() < 1e-9);
        assert!((r.p99_us - 1210.0).abs() < 1e-9);
        assert!((r.rps - 19990.12).abs() < 1e-9);
    }
}
