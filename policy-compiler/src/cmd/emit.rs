//! `serin emit TARGET POLICY`: the artefacts a policy needs in the systems around it, all from
//! its compiled plan (see `serin_compiler::emit`).

use std::path::{Path, PathBuf};

use serin_compiler::emit::{self, envoy::Upstream};
use serin_compiler::{Diagnostics, compile_str};
use serin_policy::Plan;

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, file_name, read, report};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub target: Target,
}

#[derive(clap::Subcommand)]
pub enum Target {
    /// A complete standalone Envoy config: listener, Serin's filter, routes, clusters, stats tags.
    Envoy(EnvoyArgs),
    /// Istio resources: WasmPlugin (caller side), VirtualService and DestinationRule.
    Istio(IstioArgs),
    /// Prometheus alerting rules from the policy's guards.
    PrometheusRules(Common),
    /// A Grafana dashboard (JSON): share, errors, latency, outcomes, state.
    Grafana(Common),
    /// An Argo Rollouts AnalysisTemplate with the policy's guard thresholds.
    Argo(ArgoArgs),
    /// Flagger MetricTemplates and a Canary with the policy's guard thresholds.
    Flagger(FlaggerArgs),
}

#[derive(clap::Args)]
pub struct Common {
    /// The policy file (TOML).
    pub policy: PathBuf,
    /// Where to write; standard output when absent or `-`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct EnvoyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Which filter runs the plan: `wasm` (filter.wasm, proxy-wasm in V8) or `native`
    /// (libserin.so, an Envoy dynamic module).
    #[arg(long, default_value = "wasm")]
    pub backend: emit::envoy::Backend,
    /// The backend's module, as Envoy will open it (relative to Envoy's working directory).
    /// Default: target/filter.wasm, or target/native/libserin.so for the native backend.
    #[arg(long, alias = "wasm", value_name = "PATH")]
    pub module: Option<String>,
    /// The listener's port.
    #[arg(long, default_value_t = 10000)]
    pub listen: u16,
    /// The admin interface's port (on 127.0.0.1).
    #[arg(long, default_value_t = 9901)]
    pub admin: u16,
    /// An arm's upstream, `ARM=HOST:PORT` (repeatable). Default: 127.0.0.1:10001 for the
    /// stable arm, 10002, 10003, ... for the others.
    #[arg(long = "upstream", value_name = "ARM=HOST:PORT")]
    pub upstreams: Vec<String>,
    /// Send the stats to a DogStatsD agent at `HOST:PORT` (labels become DogStatsD tags).
    #[arg(long, value_name = "HOST:PORT")]
    pub dogstatsd: Option<String>,
}

#[derive(clap::Args)]
pub struct IstioArgs {
    #[command(flatten)]
    pub common: Common,
    /// Which filter the sidecars run: `wasm` (a WasmPlugin) or `native` (an EnvoyFilter that
    /// loads libserin.so; needs an istio-proxy with Envoy's dynamic modules).
    #[arg(long, default_value = "wasm")]
    pub backend: emit::envoy::Backend,
    /// The native backend: libserin.so's path inside the sidecar (default
    /// /etc/serin/libserin.so).
    #[arg(long, value_name = "PATH")]
    pub module: Option<String>,
    /// The filter's image, `oci://REGISTRY/REPO:TAG`.
    #[arg(long)]
    pub image: Option<String>,
    /// The image's manifest digest, as `serin package` prints it.
    #[arg(long)]
    pub sha256: Option<String>,
    #[arg(long)]
    pub namespace: Option<String>,
    /// The callers whose sidecars run Serin, `KEY=VALUE` (repeatable). Default: every workload
    /// in the namespace.
    #[arg(long = "workload-selector", value_name = "KEY=VALUE")]
    pub selector: Vec<String>,
    /// The model service's host, as callers address it. Default: the policy's name.
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(clap::Args)]
pub struct ArgoArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub namespace: Option<String>,
    /// The Prometheus that scrapes the proxies (the template's default for its argument).
    #[arg(long, default_value = emit::argo::DEFAULT_PROMETHEUS)]
    pub prometheus: String,
}

#[derive(clap::Args)]
pub struct FlaggerArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long, default_value = emit::argo::DEFAULT_PROMETHEUS)]
    pub prometheus: String,
    /// The Deployment the Canary targets. Default: the policy's name.
    #[arg(long)]
    pub target: Option<String>,
    /// The service port of the Canary.
    #[arg(long, default_value_t = 80)]
    pub port: u16,
}

/// Compile the policy, reporting warnings (or errors) on stderr.
pub fn plan_of(path: &Path) -> Result<Plan, u8> {
    let source = read(path)?;
    let name = file_name(path);
    match compile_str(&source, &name) {
        Ok(c) => {
            report(&Diagnostics::new(&name, &source, c.warnings));
            Ok(c.plan)
        }
        Err(d) => {
            report(&d);
            Err(EXIT_ERRORS)
        }
    }
}

/// Write to a file, or standard output for none or `-`.
pub fn write(output: Option<&Path>, text: &str) -> u8 {
    match output {
        None => print!("{text}"),
        Some(p) if p.as_os_str() == "-" => print!("{text}"),
        Some(p) => {
            if let Err(e) = std::fs::write(p, text) {
                eprintln!("error: cannot write `{}`: {e}", p.display());
                return EXIT_ERRORS;
            }
        }
    }
    EXIT_OK
}

fn host_port(s: &str) -> Option<Upstream> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some(Upstream {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

fn pair(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
}

fn usage(msg: String) -> u8 {
    eprintln!("error: {msg}");
    EXIT_USAGE
}

pub fn run(args: Args) -> u8 {
    match args.target {
        Target::Envoy(a) => envoy(a),
        Target::Istio(a) => istio(a),
        Target::PrometheusRules(c) => simple(&c, emit::prometheus::file),
        Target::Grafana(c) => simple(&c, |p, _| {
            format!(
                "{}\n",
                serde_json::to_string_pretty(&emit::grafana::dashboard(p)).unwrap_or_default()
            )
        }),
        Target::Argo(a) => simple(&a.common, |p, src| {
            emit::argo::file(p, a.namespace.as_deref(), &a.prometheus, src)
        }),
        Target::Flagger(a) => {
            let opts = emit::flagger::Options {
                namespace: a.namespace.clone(),
                prometheus: a.prometheus.clone(),
                target: a.target.clone(),
                port: a.port,
            };
            simple(&a.common, |p, src| emit::flagger::file(p, &opts, src))
        }
    }
}

fn simple(c: &Common, f: impl FnOnce(&Plan, &str) -> String) -> u8 {
    let plan = match plan_of(&c.policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let text = f(&plan, &file_name(&c.policy));
    write(c.output.as_deref(), &text)
}

fn envoy(a: EnvoyArgs) -> u8 {
    let mut upstreams = Vec::new();
    for u in &a.upstreams {
        match u
            .split_once('=')
            .and_then(|(arm, hp)| Some((arm.to_owned(), host_port(hp)?)))
        {
            Some(x) => upstreams.push(x),
            None => return usage(format!("`--upstream {u}` must be `ARM=HOST:PORT`")),
        }
    }
    let dogstatsd = match a.dogstatsd.as_deref().map(host_port) {
        Some(None) => return usage("`--dogstatsd` must be `HOST:PORT`".into()),
        Some(Some(d)) => Some(d),
        None => None,
    };
    let plan = match plan_of(&a.common.policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    for (arm, _) in &upstreams {
        if plan.arm_id(arm).is_none() {
            let arms: Vec<&str> = plan.arms.iter().map(|a| a.name.as_str()).collect();
            return usage(format!(
                "`--upstream {arm}=...` names no arm of the policy (arms: {})",
                arms.join(", ")
            ));
        }
    }
    let opts = emit::envoy::Options {
        module: a
            .module
            .unwrap_or_else(|| a.backend.default_module().to_owned()),
        backend: a.backend,
        listen: a.listen,
        admin: a.admin,
        upstreams,
        dogstatsd,
        source: file_name(&a.common.policy),
    };
    write(
        a.common.output.as_deref(),
        &emit::envoy::config(&plan, &opts),
    )
}

fn istio(a: IstioArgs) -> u8 {
    let mut selector = Vec::new();
    for s in &a.selector {
        match pair(s) {
            Some(p) => selector.push(p),
            None => return usage(format!("`--workload-selector {s}` must be `KEY=VALUE`")),
        }
    }
    if let Some(d) = &a.sha256 {
        let hex = emit::istio::digest_hex(d);
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return usage(format!(
                "`--sha256 {d}` must be 64 lower-case hex digits, optionally after `sha256:`"
            ));
        }
    }
    let plan = match plan_of(&a.common.policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if a.sha256.is_none() && a.backend == emit::envoy::Backend::Wasm {
        eprintln!(
            "warning: no `--sha256`: sidecars will not verify the image (`serin package` prints its digest)"
        );
    }
    let opts = emit::istio::Options {
        backend: a.backend,
        module: a.module,
        image: a.image,
        sha256: a.sha256,
        namespace: a.namespace,
        selector,
        host: a.host,
        source: file_name(&a.common.policy),
    };
    write(
        a.common.output.as_deref(),
        &emit::istio::manifests(&plan, &opts),
    )
}
