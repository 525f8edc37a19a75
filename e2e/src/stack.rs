//! The shipped standalone setup (envoy-config/envoy.yaml in front of envoy-config/upstreams.yaml)
//! on free ports, with the plan and backend of the caller's choice.

use std::path::Path;
use std::time::Duration;

use serin_compiler::emit::envoy::{Backend, Options, Upstream};
use serin_policy::Plan;

use crate::{Envoy, Paths, free_port};

/// The ports the shipped configs use, and what a run uses instead.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub listener: u16,
    pub admin: u16,
    pub upstream_admin: u16,
    pub stable: u16,
    pub canary: u16,
}

impl Ports {
    /// The ports written in envoy-config/ (what a user running the files directly gets).
    pub const SHIPPED: Ports = Ports {
        listener: 10000,
        admin: 9901,
        upstream_admin: 9902,
        stable: 10001,
        canary: 10002,
    };

    pub fn free() -> Ports {
        Ports {
            listener: free_port(),
            admin: free_port(),
            upstream_admin: free_port(),
            stable: free_port(),
            canary: free_port(),
        }
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> Result<String, String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => Err(format!(
            "expected `{from}` once in the shipped config, found it {n} times"
        )),
    }
}

fn port(p: u16) -> String {
    format!("port_value: {p} ")
}

/// The front Envoy for `plan`, as `serin emit envoy --backend B` writes it, on these ports;
/// the arms named `stable` and `canary` go to the stand-in upstreams.
pub fn front_config(plan: &Plan, ports: Ports, backend: Backend, module: &Path) -> String {
    let upstream = |port| Upstream {
        host: "127.0.0.1".into(),
        port,
    };
    let options = Options {
        backend,
        module: module.display().to_string(),
        listen: ports.listener,
        admin: ports.admin,
        upstreams: vec![
            ("stable".into(), upstream(ports.stable)),
            ("canary".into(), upstream(ports.canary)),
        ],
        ..Options::default()
    };
    serin_compiler::emit::envoy::config(plan, &options)
}

/// envoy-config/upstreams.yaml with its ports replaced.
pub fn upstream_config(template: &str, ports: Ports) -> Result<String, String> {
    let s = Ports::SHIPPED;
    let mut c = template.to_string();
    for (from, to) in [
        (s.upstream_admin, ports.upstream_admin),
        (s.stable, ports.stable),
        (s.canary, ports.canary),
    ] {
        c = replace_once(&c, &port(from), &port(to))?;
    }
    Ok(c)
}

/// A front Envoy running Serin, and the two upstream arms.
pub struct Stack {
    pub front: Envoy,
    pub upstreams: Envoy,
    pub ports: Ports,
    agent: ureq::Agent,
    /// The front's config and how to start it again ([`Stack::restart_front`]).
    front_yaml: String,
    envoy: std::path::PathBuf,
    root: std::path::PathBuf,
    workers: u32,
    backend: Backend,
}

/// What a request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The arm that served the request (`x-served-by`), if an upstream answered.
    pub served_by: Option<String>,
    pub set_cookie: Option<String>,
}

impl Stack {
    pub fn start(paths: &Paths, plan: &Plan) -> Result<Stack, String> {
        Stack::start_with(paths, plan, 1)
    }

    pub fn start_with(paths: &Paths, plan: &Plan, workers: u32) -> Result<Stack, String> {
        Stack::start_edited(paths, plan, workers, |yaml, _| yaml)
    }

    /// Like [`Stack::start_with`], with the front config passed through `edit` first (a test
    /// points an arm at a broken upstream, say).
    pub fn start_edited(
        paths: &Paths,
        plan: &Plan,
        workers: u32,
        edit: impl FnOnce(String, Ports) -> String,
    ) -> Result<Stack, String> {
        let read = |name: &str| {
            std::fs::read_to_string(paths.root.join("envoy-config").join(name))
                .map_err(|e| format!("{name}: {e}"))
        };
        let ports = Ports::free();
        let upstreams = Envoy::start(
            &paths.envoy,
            &upstream_config(&read("upstreams.yaml")?, ports)?,
            ports.upstream_admin,
            &paths.root,
            1,
        )?;
        let front_yaml = edit(
            front_config(plan, ports, paths.backend, &paths.module),
            ports,
        );
        let front = Envoy::start(&paths.envoy, &front_yaml, ports.admin, &paths.root, workers)?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .max_idle_connections_per_host(8)
            .build();
        Ok(Stack {
            front,
            upstreams,
            ports,
            agent,
            front_yaml,
            envoy: paths.envoy.clone(),
            root: paths.root.clone(),
            workers,
            backend: paths.backend,
        })
    }

    /// Stop the front Envoy and start it again on the same config and ports, as a pod that
    /// restarts: its workers' shared data and counters start afresh.
    pub fn restart_front(&mut self) -> Result<(), String> {
        self.front.terminate()?;
        self.front = Envoy::start(
            &self.envoy,
            &self.front_yaml,
            self.ports.admin,
            &self.root,
            self.workers,
        )?;
        Ok(())
    }

    /// Change the upstreams' runtime (fault injection, flag rates; see envoy-config/upstreams.yaml).
    pub fn set_upstream_runtime(&self, key: &str, value: u32) -> Result<(), String> {
        self.upstreams
            .admin_post(&format!("/runtime_modify?{key}={value}"))
            .map(|_| ())
    }

    /// The value of one series in the front Envoy's `/stats/prometheus`, e.g.
    /// `serin_requests_total{arm="canary"}`; `None` when absent.
    pub fn prometheus(&self, series: &str) -> Option<f64> {
        let text = self.metrics_text().ok()?;
        // Envoy writes a series without labels as `name{} value`.
        let unlabelled = format!("{series}{{}}");
        let series = if series.contains('{') {
            series
        } else {
            unlabelled.as_str()
        };
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .and_then(|v| v.trim().parse().ok())
    }

    /// The front Envoy's `/stats/prometheus`, with the native backend's names as a Prometheus
    /// scrape relabels them ([`serin_policy::catalogue::NATIVE_RELABEL`]): the same names for
    /// both backends.
    pub fn metrics_text(&self) -> Result<String, String> {
        let text = self.front.admin("/stats/prometheus")?;
        if self.backend == Backend::Wasm {
            return Ok(text);
        }
        let native = format!("envoy_{}_", serin_policy::catalogue::NATIVE_NAMESPACE);
        let renamed = text.lines().map(|l| {
            let (head, rest) = match l.strip_prefix("# TYPE ") {
                Some(rest) => ("# TYPE ", rest),
                None => ("", l),
            };
            match rest.strip_prefix(&native) {
                Some(name) => format!("{head}serin_{name}\n"),
                None => format!("{l}\n"),
            }
        });
        Ok(renamed.collect())
    }

    /// GET `path` through the front Envoy with these request headers.
    pub fn send(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
        self.send_with(&self.agent, path, headers)
    }

    /// [`Stack::send`] on a new connection: after a listener update, a pooled connection stays
    /// with the old listener until Envoy's gradual drain closes it; a new one reaches the new.
    pub fn send_on_new_connection(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let fresh = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .max_idle_connections(0)
            .build();
        self.send_with(&fresh, path, headers)
    }

    fn send_with(
        &self,
        agent: &ureq::Agent,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut req = agent.get(&format!("http://127.0.0.1:{}{path}", self.ports.listener));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let reply = Reply {
            status: resp.status(),
            served_by: resp.header("x-served-by").map(str::to_string),
            set_cookie: resp.header("set-cookie").map(str::to_string),
        };
        // Drain the body so the connection goes back to the pool.
        let _ = resp.into_string();
        Ok(reply)
    }
}
