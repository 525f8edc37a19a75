//! `serin emit envoy`: a complete standalone Envoy bootstrap that runs the plan.
//!
//! listener → `header_mutation` (drops client-sent routing and shadow headers) → Serin's wasm
//! filter (plan inline, `failure_policy: FAIL_OPEN`) → router. Routes match the routing header
//! to one cluster per arm; anything else, a skipped filter included, takes the default route to
//! the stable arm. `stats_tags` turn the filter's tagged metric names into labels.

use serin_policy::catalogue::{self, NATIVE_NAMESPACE};
use serin_policy::{Plan, SERIN_SCALE};

use super::metrics;
use super::yaml::{Value, b, f, list, map, n, s};

/// Where an arm's cluster sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

/// Which of Serin's two filters runs the plan: the same engine either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `filter.wasm`, a proxy-wasm filter in Envoy's V8 (what Istio's WasmPlugin loads too).
    #[default]
    Wasm,
    /// `libserin.so`, an Envoy dynamic module: native code, headers read in place.
    Native,
}

impl Backend {
    pub const ALL: [Backend; 2] = [Backend::Wasm, Backend::Native];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Wasm => "wasm",
            Backend::Native => "native",
        }
    }

    /// Where `cargo xtask` builds the backend's module, relative to the workspace.
    pub fn default_module(self) -> &'static str {
        match self {
            Backend::Wasm => "target/filter.wasm",
            Backend::Native => "target/native/libserin.so",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "wasm" => Ok(Backend::Wasm),
            "native" => Ok(Backend::Native),
            other => Err(format!("unknown backend `{other}` (wasm or native)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    /// The backend's module (filter.wasm or libserin.so), as Envoy will open it (relative to
    /// Envoy's working directory).
    pub module: String,
    pub listen: u16,
    pub admin: u16,
    /// Per arm name; arms not listed get `127.0.0.1:10001` (stable), `10002`, ... in plan order.
    pub upstreams: Vec<(String, Upstream)>,
    /// `HOST:PORT` of a DogStatsD agent: adds an `envoy.stat_sinks.dog_statsd` sink.
    pub dogstatsd: Option<Upstream>,
    /// What produced the config, for the header comment (e.g. the policy file).
    pub source: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: Backend::Wasm,
            module: Backend::Wasm.default_module().into(),
            listen: 10000,
            admin: 9901,
            upstreams: Vec::new(),
            dogstatsd: None,
            source: String::new(),
        }
    }
}

/// The arm shadow traffic is mirrored to: the ramped arm, else the first arm that is not stable.
pub fn shadow_target(plan: &Plan) -> Option<u8> {
    plan.shadow.as_ref()?;
    plan.ramp
        .as_ref()
        .map(|r| r.arm)
        .or_else(|| (0..plan.arms.len() as u8).find(|&a| a != plan.stable))
}

/// Each arm's upstream, defaults filled in.
pub fn upstreams(plan: &Plan, opts: &Options) -> Vec<Upstream> {
    let mut next = 10002u16;
    plan.arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            if let Some((_, u)) = opts.upstreams.iter().find(|(name, _)| *name == arm.name) {
                return u.clone();
            }
            let port = if i == usize::from(plan.stable) {
                10001
            } else {
                next += 1;
                next - 1
            };
            Upstream {
                host: "127.0.0.1".into(),
                port,
            }
        })
        .collect()
}

fn socket(host: &str, port: u16) -> Value {
    map([(
        "socket_address",
        map([("address", s(host)), ("port_value", n(port.into()))]),
    )])
}

fn header_exact(name: &str, value: &str) -> Value {
    map([
        ("name", s(name)),
        ("string_match", map([("exact", s(value))])),
    ])
}

fn cluster(name: &str, u: &Upstream) -> Value {
    let is_ip = u.host.parse::<std::net::IpAddr>().is_ok();
    map([
        ("name", s(name)),
        ("type", s(if is_ip { "STATIC" } else { "STRICT_DNS" })),
        ("connect_timeout", s("2s")),
        (
            "load_assignment",
            map([
                ("cluster_name", s(name)),
                (
                    "endpoints",
                    list([map([(
                        "lb_endpoints",
                        list([map([(
                            "endpoint",
                            map([("address", socket(&u.host, u.port))]),
                        )])]),
                    )])]),
                ),
            ]),
        ),
    ])
}

/// The routes: shadow (if any), one per non-stable arm, then the default to stable.
pub fn routes(plan: &Plan) -> Value {
    let stable = plan.arm(plan.stable);
    let mut routes = Vec::new();
    if let (Some(shadow), Some(target)) = (&plan.shadow, shadow_target(plan)) {
        routes.push(map([
            ("name", s("shadow")),
            (
                "match",
                map([
                    ("prefix", s("/")),
                    (
                        "headers",
                        list([
                            header_exact(&plan.routing_header, &stable.value),
                            header_exact(&shadow.header, "1"),
                        ]),
                    ),
                ]),
            ),
            (
                "route",
                map([
                    ("cluster", s(&stable.name)),
                    (
                        "request_mirror_policies",
                        list([map([("cluster", s(&plan.arm(target).name))])]),
                    ),
                ]),
            ),
        ]));
    }
    for (i, arm) in plan.arms.iter().enumerate() {
        if i == usize::from(plan.stable) {
            continue;
        }
        routes.push(map([
            ("name", s(&arm.name)),
            (
                "match",
                map([
                    ("prefix", s("/")),
                    (
                        "headers",
                        list([header_exact(&plan.routing_header, &arm.value)]),
                    ),
                ]),
            ),
            ("route", map([("cluster", s(&arm.name))])),
        ]));
    }
    routes.push(map([
        ("name", s("default")),
        ("match", map([("prefix", s("/"))])),
        ("route", map([("cluster", s(&stable.name))])),
    ]));
    list(routes)
}

/// The `stats_config` block: one `stats_tags` entry per label, and the plan's latency buckets.
pub fn stats_config(plan: &Plan) -> Value {
    let tags = metrics::stats_tags()
        .into_iter()
        .map(|(name, regex)| map([("tag_name", s(name)), ("regex", s(regex))]));
    let mut pairs = vec![("stats_tags", list(tags))];
    if let Some(m) = &plan.metrics {
        let buckets: Vec<Value> = m
            .latency_buckets_us
            .iter()
            .filter(|&&us| us > 0)
            .map(|&us| f(f64::from(us) / 1000.0))
            .collect();
        if !buckets.is_empty() {
            pairs.push((
                "histogram_bucket_settings",
                // The backends' stat names differ (`serin_request_duration_milliseconds_…`
                // from proxy-wasm, `serin.request_duration_milliseconds_…` from the native
                // module's namespace); both contain the native name.
                list([map([
                    (
                        "match",
                        map([("contains", s(catalogue::DURATION.native_name()))]),
                    ),
                    ("buckets", list(buckets)),
                ])]),
            ));
        }
    }
    map(pairs)
}

/// A DogStatsD sink: Envoy sends every stat, tags (the labels) included, to the agent.
pub fn dogstatsd_sink(agent: &Upstream) -> Value {
    map([
        ("name", s("envoy.stat_sinks.dog_statsd")),
        (
            "typed_config",
            map([
                (
                    "@type",
                    s("type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink"),
                ),
                ("address", socket(&agent.host, agent.port)),
                ("prefix", s("envoy")),
            ]),
        ),
    ])
}

/// The wasm HTTP filter running Serin with this plan.
pub fn wasm_filter(plan: &Plan, wasm_path: &str) -> Value {
    map([
        ("name", s("serin")),
        (
            "typed_config",
            map([
                (
                    "@type",
                    s("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"),
                ),
                (
                    "config",
                    map([
                        ("name", s("serin")),
                        ("root_id", s("serin")),
                        ("failure_policy", s("FAIL_OPEN")),
                        (
                            "vm_config",
                            map([
                                ("vm_id", s("serin")),
                                ("runtime", s("envoy.wasm.runtime.v8")),
                                ("code", map([("local", map([("filename", s(wasm_path))]))])),
                            ]),
                        ),
                        (
                            "configuration",
                            map([
                                (
                                    "@type",
                                    s("type.googleapis.com/google.protobuf.StringValue"),
                                ),
                                ("value", s(plan.to_json())),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
    ])
}

/// The dynamic-module HTTP filter running Serin with this plan (`libserin.so` at `module`).
/// `do_not_close` keeps the library loaded across config reloads, so the rollout state it holds
/// for a policy survives a reload, as proxy-wasm's shared data does.
pub fn native_filter(plan: &Plan, module: &str) -> Value {
    map([
        ("name", s("serin")),
        (
            "typed_config",
            map([
                (
                    "@type",
                    s(
                        "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                    ),
                ),
                (
                    "dynamic_module_config",
                    map([
                        ("name", s("serin")),
                        ("do_not_close", b(true)),
                        ("metrics_namespace", s(NATIVE_NAMESPACE)),
                        ("module", map([("local", map([("filename", s(module))]))])),
                    ]),
                ),
                ("filter_name", s("serin")),
                (
                    "filter_config",
                    map([
                        (
                            "@type",
                            s("type.googleapis.com/google.protobuf.StringValue"),
                        ),
                        ("value", s(plan.to_json())),
                    ]),
                ),
            ]),
        ),
    ])
}

/// Serin's filter for `backend`, loading `module`.
pub fn serin_filter(plan: &Plan, backend: Backend, module: &str) -> Value {
    match backend {
        Backend::Wasm => wasm_filter(plan, module),
        Backend::Native => native_filter(plan, module),
    }
}

/// The listener every Serin front Envoy has: one HTTP connection manager, one virtual host for
/// every domain, these routes and HTTP filters (the load bench builds its configs from it too).
pub fn ingress_listener(
    address: Value,
    route_config: &str,
    routes: Value,
    http_filters: Vec<Value>,
) -> Value {
    let hcm = map([
        (
            "@type",
            s(
                "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            ),
        ),
        ("stat_prefix", s("ingress")),
        (
            "route_config",
            map([
                ("name", s(route_config)),
                (
                    "virtual_hosts",
                    list([map([
                        ("name", s("model")),
                        ("domains", list([s("*")])),
                        ("routes", routes),
                    ])]),
                ),
            ]),
        ),
        ("http_filters", list(http_filters)),
    ]);
    map([
        ("name", s("ingress")),
        ("address", address),
        (
            "filter_chains",
            list([map([(
                "filters",
                list([map([
                    ("name", s("envoy.filters.network.http_connection_manager")),
                    ("typed_config", hcm),
                ])]),
            )])]),
        ),
    ])
}

/// The headers a client must not send (Serin's own): the routing header and the shadow mark.
fn client_headers_removed(plan: &Plan) -> Vec<String> {
    let mut removed = vec![plan.routing_header.clone()];
    if let Some(sh) = &plan.shadow {
        removed.push(sh.header.clone());
    }
    removed
}

/// The HTTP filters of a Serin front Envoy, in order. With the wasm backend a
/// `header_mutation` filter first removes the client's routing and shadow headers: the wasm
/// filter fails open, and a skipped filter removes nothing. The native backend has no
/// fail-open path (a module that does not load fails the config; a hook that panics still sets
/// the stable arm's header), and Serin itself replaces the routing header on every request, so
/// it needs no filter in front.
pub fn http_filters(plan: &Plan, backend: Backend, module: &str) -> Vec<Value> {
    let mut filters = Vec::new();
    if backend == Backend::Wasm {
        let removed = client_headers_removed(plan);
        filters.push(map([
            ("name", s("envoy.filters.http.header_mutation")),
            (
                "typed_config",
                map([
                    (
                        "@type",
                        s(
                            "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                        ),
                    ),
                    (
                        "mutations",
                        map([(
                            "request_mutations",
                            list(removed.iter().map(|h| map([("remove", s(h))]))),
                        )]),
                    ),
                ]),
            ),
        ]));
    }
    filters.push(serin_filter(plan, backend, module));
    filters.push(map([
        ("name", s("envoy.filters.http.router")),
        (
            "typed_config",
            map([(
                "@type",
                s("type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"),
            )]),
        ),
    ]));
    filters
}

/// The whole bootstrap as YAML, with a header comment explaining it.
pub fn config(plan: &Plan, opts: &Options) -> String {
    let ups = upstreams(plan, opts);
    let removed = client_headers_removed(plan);
    let http_filters = http_filters(plan, opts.backend, &opts.module);
    let listener = ingress_listener(
        socket("0.0.0.0", opts.listen),
        "serin",
        routes(plan),
        http_filters,
    );
    let mut clusters: Vec<Value> = plan
        .arms
        .iter()
        .zip(&ups)
        .map(|(arm, u)| cluster(&arm.name, u))
        .collect();
    // Fleet mode: the cluster the filter queries Prometheus through, at the authority's address.
    if let Some(fleet) = &plan.fleet {
        let (host, port) = match fleet.authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_owned(), p.parse().unwrap_or(9090)),
            _ => (fleet.authority.clone(), 9090),
        };
        clusters.push(cluster(&fleet.cluster, &Upstream { host, port }));
    }
    let mut root = vec![
        ("admin", map([("address", socket("127.0.0.1", opts.admin))])),
        ("stats_config", stats_config(plan)),
    ];
    if let Some(agent) = &opts.dogstatsd {
        root.push(("stats_sinks", list([dogstatsd_sink(agent)])));
    }
    root.push((
        "static_resources",
        map([
            ("listeners", list([listener])),
            ("clusters", list(clusters)),
        ]),
    ));
    let stable = plan.arm(plan.stable);
    let mut head: Vec<String> = vec![
        format!(
            "Standalone Envoy running Serin policy `{}`, generated by {} from {}.",
            plan.policy,
            super::GENERATOR,
            if opts.source.is_empty() {
                "a policy"
            } else {
                &opts.source
            }
        ),
        "Do not edit: regenerate with `serin emit envoy`.".into(),
        String::new(),
    ];
    match opts.backend {
        Backend::Wasm => head.extend([
            format!(
                "Requests pass header_mutation (drops client-sent `{}`), then Serin (sets the first to the",
                removed.join("`, `")
            ),
            "chosen arm's value), then the router: one route per arm's value, the default to the"
                .into(),
            format!(
                "stable arm `{}`. A filter that fails is skipped (FAIL_OPEN): no routing header, so",
                stable.name
            ),
            "every request takes the default route, the stable arm.".into(),
        ]),
        Backend::Native => head.extend([
            format!(
                "Requests pass Serin (sets `{}` to the chosen arm's value, replacing what a client sent),",
                plan.routing_header
            ),
            "then the router: one route per arm's value, the default to the stable arm".into(),
            format!(
                "`{}`. A plan the module refuses fails the config; a hook that panics sends its request",
                stable.name
            ),
            "to the stable arm.".into(),
        ]),
    }
    if let (Some(sh), Some(t)) = (&plan.shadow, shadow_target(plan)) {
        head.push(format!(
            "Shadow: {}% of stable requests carry `{}: 1` and are mirrored to `{}`.",
            metrics::trim(f64::from(sh.share) * 100.0 / f64::from(SERIN_SCALE)),
            sh.header,
            plan.arm(t).name
        ));
    }
    head.push(format!(
        "Backend: {}; the module path `{}` is relative to Envoy's working directory.",
        opts.backend.name(),
        opts.module
    ));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    format!(
        "{}{}",
        super::header(&head),
        super::yaml::to_string(&map(root))
    )
}
