//! `serin emit istio`: a WasmPlugin that runs Serin in the *caller's* sidecar, a VirtualService
//! that routes on the header Serin sets, and a DestinationRule with one subset per arm.
//!
//! With `--backend native` an EnvoyFilter takes the WasmPlugin's place: WasmPlugin cannot load
//! a shared library, and Istio has no resource of its own for dynamic modules yet. The
//! EnvoyFilter inserts the dynamic-module filter before the router of the callers' outbound HTTP
//! listeners (the place the WasmPlugin's CLIENT mode picks), loading `libserin.so` from a path
//! in the sidecar (a volume mounted there, or a proxy image that carries it). Only istio-proxy
//! builds with Envoy's dynamic modules compiled in (since April 2026) and of the Envoy version
//! the module was built for (1.40) can load it.
//!
//! Choices, each explained where a reader of the YAML sees it:
//! - `match: [{mode: CLIENT}]`: the routing decision is made on the way out of the caller, where
//!   the VirtualService's routes apply; a server-side filter would run after the choice of pod.
//! - `pluginConfig` *is* the plan: Istio hands it to the module as a JSON string, which the
//!   filter reads exactly as it reads Envoy's `configuration`.
//! - `failStrategy: FAIL_OPEN`: a module that cannot load or traps is skipped, requests carry no
//!   routing header and the VirtualService's default route takes them to the stable subset.
//! - `phase: UNSPECIFIED_PHASE` (just before the router) and `priority: -100` (after other
//!   plugins of that phase): Serin reads the bucketing key last, after authentication filters
//!   and other plugins that may set it (a `RequestAuthentication`'s `outputClaimToHeaders`
//!   writing `x-user-id`, say), and its header change is the last before the route is chosen.

use serin_policy::Plan;

use super::envoy::{Backend, native_filter, shadow_target};
use super::metrics::slug;
use super::yaml::{self, Value, i, list, map, map_owned, s};

/// Priority among plugins of the same phase (higher runs first).
pub const PRIORITY: i64 = -100;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Which filter the sidecars run: the WasmPlugin (`Wasm`) or an EnvoyFilter loading
    /// `libserin.so` (`Native`).
    pub backend: Backend,
    /// The native module's path inside the sidecar; default [`NATIVE_MODULE_IN_SIDECAR`].
    pub module: Option<String>,
    /// The image, `oci://registry/repo:tag` (Istio reads no scheme as `oci://`).
    pub image: Option<String>,
    /// The manifest digest (64 hex digits, `sha256:` prefix allowed) that `serin package` prints.
    pub sha256: Option<String>,
    pub namespace: Option<String>,
    /// The caller workloads whose sidecars run Serin (`app=checkout`); none: every workload in
    /// the namespace.
    pub selector: Vec<(String, String)>,
    /// The model service's host, as callers address it.
    pub host: Option<String>,
    /// What produced the manifests, for the header comment.
    pub source: String,
}

/// Where the EnvoyFilter expects `libserin.so` in the sidecar by default: a volume mounted at
/// `/etc/serin` (`sidecar.istio.io/userVolume` and `userVolumeMount` annotations).
pub const NATIVE_MODULE_IN_SIDECAR: &str = "/etc/serin/libserin.so";

/// The default image: the project's published filter at this version.
pub fn default_image() -> String {
    format!(
        "oci://ghcr.io/serin-canary/serin-filter:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// A subset name for an arm: a DNS label.
pub fn subset(arm_name: &str) -> String {
    slug(arm_name)
}

fn metadata(name: &str, opts: &Options) -> Value {
    let mut pairs = vec![("name", s(name))];
    if let Some(ns) = &opts.namespace {
        pairs.push(("namespace", s(ns)));
    }
    pairs.push((
        "labels",
        map([("app.kubernetes.io/managed-by", s("serin"))]),
    ));
    map(pairs)
}

/// The hex digest, without `sha256:`.
pub fn digest_hex(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

/// The callers' workload labels as a resource's selector: `{key: {label: value, ...}}`
/// (WasmPlugin's `selector.matchLabels`, EnvoyFilter's `workloadSelector.labels`).
fn selector(key: &str, opts: &Options) -> Value {
    map([(
        key,
        map_owned(opts.selector.iter().map(|(k, v)| (k.clone(), s(v)))),
    )])
}

pub fn wasm_plugin(plan: &Plan, opts: &Options) -> Value {
    let mut spec = Vec::new();
    if !opts.selector.is_empty() {
        spec.push(("selector", selector("matchLabels", opts)));
    }
    spec.push(("url", s(opts.image.clone().unwrap_or_else(default_image))));
    if let Some(d) = &opts.sha256 {
        spec.push(("sha256", s(digest_hex(d))));
    }
    spec.extend([
        ("imagePullPolicy", s("IfNotPresent")),
        ("pluginName", s("serin")),
        ("type", s("HTTP")),
        ("phase", s("UNSPECIFIED_PHASE")),
        ("priority", i(PRIORITY)),
        ("failStrategy", s("FAIL_OPEN")),
        ("match", list([map([("mode", s("CLIENT"))])])),
        ("pluginConfig", yaml::from(plan)),
    ]);
    map([
        ("apiVersion", s("extensions.istio.io/v1alpha1")),
        ("kind", s("WasmPlugin")),
        (
            "metadata",
            metadata(&format!("serin-{}", slug(&plan.policy)), opts),
        ),
        ("spec", map(spec)),
    ])
}

/// The native backend for the callers' sidecars: Serin's dynamic-module filter inserted just
/// before the router of every outbound HTTP listener.
pub fn envoy_filter(plan: &Plan, opts: &Options) -> Value {
    let mut spec = Vec::new();
    if !opts.selector.is_empty() {
        spec.push(("workloadSelector", selector("labels", opts)));
    }
    let module = opts.module.as_deref().unwrap_or(NATIVE_MODULE_IN_SIDECAR);
    let router = map([
        ("name", s("envoy.filters.network.http_connection_manager")),
        ("subFilter", map([("name", s("envoy.filters.http.router"))])),
    ]);
    let patch = map([
        ("applyTo", s("HTTP_FILTER")),
        (
            "match",
            map([
                ("context", s("SIDECAR_OUTBOUND")),
                (
                    "listener",
                    map([("filterChain", map([("filter", router)]))]),
                ),
            ]),
        ),
        (
            "patch",
            map([
                ("operation", s("INSERT_BEFORE")),
                ("value", native_filter(plan, module)),
            ]),
        ),
    ]);
    spec.push(("configPatches", list([patch])));
    map([
        ("apiVersion", s("networking.istio.io/v1alpha3")),
        ("kind", s("EnvoyFilter")),
        (
            "metadata",
            metadata(&format!("serin-{}", slug(&plan.policy)), opts),
        ),
        ("spec", map(spec)),
    ])
}

fn host(plan: &Plan, opts: &Options) -> String {
    opts.host.clone().unwrap_or_else(|| slug(&plan.policy))
}

fn destination(host: &str, arm: &str) -> Value {
    map([("host", s(host)), ("subset", s(subset(arm)))])
}

pub fn virtual_service(plan: &Plan, opts: &Options) -> Value {
    let host = host(plan, opts);
    let stable = plan.arm(plan.stable);
    let header = |value: &str| map([("exact", s(value))]);
    let mut http = Vec::new();
    if let (Some(sh), Some(target)) = (&plan.shadow, shadow_target(plan)) {
        http.push(map([
            ("name", s("shadow")),
            (
                "match",
                list([map([(
                    "headers",
                    map_owned([
                        (plan.routing_header.clone(), header(&stable.value)),
                        (sh.header.clone(), header("1")),
                    ]),
                )])]),
            ),
            (
                "route",
                list([map([("destination", destination(&host, &stable.name))])]),
            ),
            ("mirror", destination(&host, &plan.arm(target).name)),
            ("mirrorPercentage", map([("value", yaml::f(100.0))])),
        ]));
    }
    for (idx, arm) in plan.arms.iter().enumerate() {
        if idx == usize::from(plan.stable) {
            continue;
        }
        http.push(map([
            ("name", s(subset(&arm.name))),
            (
                "match",
                list([map([(
                    "headers",
                    map_owned([(plan.routing_header.clone(), header(&arm.value))]),
                )])]),
            ),
            (
                "route",
                list([map([("destination", destination(&host, &arm.name))])]),
            ),
        ]));
    }
    http.push(map([
        ("name", s("default")),
        (
            "route",
            list([map([("destination", destination(&host, &stable.name))])]),
        ),
    ]));
    map([
        ("apiVersion", s("networking.istio.io/v1")),
        ("kind", s("VirtualService")),
        (
            "metadata",
            metadata(&format!("{}-serin", slug(&host)), opts),
        ),
        (
            "spec",
            map([("hosts", list([s(&host)])), ("http", list(http))]),
        ),
    ])
}

pub fn destination_rule(plan: &Plan, opts: &Options) -> Value {
    let host = host(plan, opts);
    let subsets = plan.arms.iter().map(|arm| {
        map([
            ("name", s(subset(&arm.name))),
            ("labels", map([("version", s(&arm.value))])),
        ])
    });
    map([
        ("apiVersion", s("networking.istio.io/v1")),
        ("kind", s("DestinationRule")),
        (
            "metadata",
            metadata(&format!("{}-serin", slug(&host)), opts),
        ),
        (
            "spec",
            map([("host", s(&host)), ("subsets", list(subsets))]),
        ),
    ])
}

/// The three documents, in the order to apply them.
pub fn documents(plan: &Plan, opts: &Options) -> Vec<Value> {
    let filter = match opts.backend {
        Backend::Wasm => wasm_plugin(plan, opts),
        Backend::Native => envoy_filter(plan, opts),
    };
    vec![
        destination_rule(plan, opts),
        virtual_service(plan, opts),
        filter,
    ]
}

/// The manifests as one multi-document YAML file with a header comment.
pub fn manifests(plan: &Plan, opts: &Options) -> String {
    let host = host(plan, opts);
    let stable = plan.arm(plan.stable);
    let mut head = vec![
        format!(
            "Istio resources for Serin policy `{}`, generated by {} from {}.",
            plan.policy,
            super::GENERATOR,
            if opts.source.is_empty() {
                "a policy"
            } else {
                &opts.source
            }
        ),
        "Do not edit: regenerate with `serin emit istio`.".into(),
        String::new(),
        format!(
            "The {} runs Serin in the callers' sidecars (outbound); it sets `{}`,",
            match opts.backend {
                Backend::Wasm => "WasmPlugin",
                Backend::Native => "EnvoyFilter (the native backend, libserin.so)",
            },
            plan.routing_header
        ),
        format!(
            "the VirtualService routes on it to the DestinationRule's subsets of `{host}` (pods labelled"
        ),
        format!(
            "`version: <arm value>`). Without the header requests go to `{}`.",
            stable.name
        ),
    ];
    match opts.backend {
        Backend::Wasm => {
            head.extend([
                "pluginConfig is the plan; Istio hands it to the module as a JSON string. A plugin that"
                    .to_owned(),
                "cannot load or traps is skipped (FAIL_OPEN). phase UNSPECIFIED_PHASE and priority -100:"
                    .to_owned(),
                "Serin runs last before the router, after filters and plugins that may set its key."
                    .to_owned(),
            ]);
            if opts.sha256.is_none() {
                head.push(
                    "No sha256: add `--sha256 <digest>` (printed by `serin package`) so sidecars verify the image."
                        .into(),
                );
            }
        }
        Backend::Native => head.extend([
            format!(
                "The sidecar loads `{}`: mount it (sidecar.istio.io/userVolume and userVolumeMount",
                opts.module.as_deref().unwrap_or(NATIVE_MODULE_IN_SIDECAR)
            ),
            "annotations) or ship a proxy image with it. It needs an istio-proxy with Envoy's dynamic"
                .to_owned(),
            "modules (built since April 2026) on Envoy 1.40, the version libserin.so was built for."
                .to_owned(),
            "filter_config is the plan; a plan the module refuses fails the listener's update.".to_owned(),
        ]),
    }
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    format!(
        "{}{}",
        super::header(&head),
        yaml::documents(&documents(plan, opts))
    )
}
