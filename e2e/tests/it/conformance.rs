//! The wasmtime host of `serin-host-tests` held to real Envoy: the conformance probe
//! (`host-tests/probe`) runs the same requests in Envoy 1.40 and in the host, and reports every
//! status code and value its host calls got back; the two reports must be the same.

use std::net::SocketAddr;

use serin_e2e::ProbePaths;
use serin_e2e::probe::{ProbeEnvoy, identity};
use serin_host_tests::{Host, HostConfig, Worker};

/// Who answers a request, in the probe's Envoy config.
#[derive(Clone, Copy)]
enum Answer {
    /// The probe itself, with a local reply.
    Probe,
    /// The upstream listener: `201 hello`, `x-up` twice.
    Upstream,
    /// Envoy, from a `direct_response` route: `503 local`.
    DirectResponse,
}

/// One request of the script, as the client writes it.
struct Request {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    answer: Answer,
}

const HOST: (&str, &str) = ("Host", "probe.test");

/// The probe's scenarios (see host-tests/probe/src/lib.rs), in order: `/probe/log` reports what
/// the access-log phases of the others saw.
const SCRIPT: &[Request] = &[
    Request {
        method: "POST",
        path: "/probe/request",
        headers: &[
            HOST,
            ("X-Dup", "one"),
            ("x-dup", "two"),
            ("X-Case", "MiXeD"),
            ("Content-Length", "10"),
        ],
        body: b"0123456789",
        answer: Answer::Probe,
    },
    Request {
        method: "GET",
        path: "/probe/upstream",
        headers: &[HOST],
        body: b"",
        answer: Answer::Upstream,
    },
    Request {
        method: "GET",
        path: "/probe/local",
        headers: &[HOST],
        body: b"",
        answer: Answer::DirectResponse,
    },
    Request {
        method: "GET",
        path: "/probe/empty",
        headers: &[HOST],
        body: b"",
        answer: Answer::Probe,
    },
    Request {
        method: "GET",
        path: "/probe/log",
        headers: &[HOST],
        body: b"",
        answer: Answer::Probe,
    },
];

impl Request {
    fn wire(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path);
        for (k, v) in self.headers {
            out += &format!("{k}: {v}\r\n");
        }
        out += "\r\n";
        let mut out = out.into_bytes();
        out.extend_from_slice(self.body);
        out
    }

    /// The request headers as Envoy's HTTP/1 codec and connection manager hand them to
    /// filters: `:authority` (from `Host`), `:path`, `:method`, `:scheme`, then the client's
    /// other headers in order, names lower-cased, then the `x-forwarded-proto` the connection
    /// manager appends.
    fn as_envoy_hands_it(&self) -> Vec<(String, String)> {
        let host = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or("", |(_, v)| v);
        let mut map = vec![
            (":authority".to_owned(), host.to_owned()),
            (":path".to_owned(), self.path.to_owned()),
            (":method".to_owned(), self.method.to_owned()),
            (":scheme".to_owned(), "http".to_owned()),
        ];
        map.extend(
            self.headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())),
        );
        map.push(("x-forwarded-proto".to_owned(), "http".to_owned()));
        map
    }
}

/// The upstream's answer as the front Envoy hands it to filters (Envoy adds `location` to a
/// 201 direct response, and `date` and `server`; the probe reads `date`'s key only).
const UPSTREAM_RESPONSE: &[(&str, &str)] = &[
    (":status", "201"),
    ("location", "http://probe.test/probe/upstream"),
    ("x-up", "1"),
    ("x-up", "2"),
    ("content-length", "5"),
    ("content-type", "text/plain"),
    ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
    ("server", "envoy"),
];

/// What the client got, as compared: the status and the body (the probe's transcript).
fn report(status: impl std::fmt::Display, body: &[u8]) -> String {
    normalise(&format!(
        "status {status}\n{}",
        String::from_utf8_lossy(body)
    ))
}

/// Values that legitimately differ between the runs. Addresses and ports need no entry: the
/// host is given the ones Envoy saw.
fn normalise(report: &str) -> String {
    report
        .lines()
        .map(|line| {
            // Envoy numbers connections process-wide (its own readiness checks count too); the
            // host numbers the streams it runs. Only that the id is there is compared.
            match line.split_once("property connection_id -> Ok ") {
                Some((head, _)) => format!("{head}property connection_id -> Ok <id>"),
                None => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn in_envoy(paths: &ProbePaths) -> (Vec<String>, Vec<SocketAddr>, SocketAddr) {
    let envoy = ProbeEnvoy::start(&paths.envoy, &paths.probe, &paths.root).expect("envoy starts");
    let mut reports = Vec::new();
    let mut clients = Vec::new();
    for request in SCRIPT {
        if request.path == "/probe/log" {
            // The access-log phase of the previous stream runs as it ends, just after its
            // response went out: give it a moment.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let exchange = envoy.exchange(&request.wire()).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\nEnvoy's log:\n{}",
                request.path,
                envoy.envoy.problems()
            )
        });
        reports.push(report(exchange.response.status, &exchange.response.body));
        clients.push(exchange.client);
    }
    (reports, clients, envoy.listener)
}

fn probe_host(paths: &ProbePaths) -> Worker {
    let wasm = std::fs::read(&paths.probe).expect("the probe module");
    let config = HostConfig::default()
        .plugin_name(identity::PLUGIN_NAME)
        .root_id(identity::ROOT_ID)
        .vm_id(identity::VM_ID)
        .vm_config(identity::VM_CONFIG)
        .cluster(identity::CLUSTER);
    let host = Host::with_config(&wasm, config).expect("the probe compiles");
    host.configured_worker(identity::PLUGIN_CONFIG)
        .expect("the probe accepts its configuration")
}

/// The same script in the host, each request from the client address Envoy saw it come from.
fn in_host(w: &mut Worker, clients: &[SocketAddr], listener: SocketAddr) -> Vec<String> {
    SCRIPT
        .iter()
        .zip(clients)
        .map(|(request, client)| {
            let headers = request.as_envoy_hands_it();
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut s = w
                .request_with_headers(&headers)
                .end_of_stream(request.body.is_empty())
                .source_address(&client.to_string())
                .destination_address(&listener.to_string());
            s.send_headers().unwrap();
            if !request.body.is_empty() {
                s.send_body(request.body, true).unwrap();
            }
            if s.response_headers().is_none() {
                match request.answer {
                    Answer::Probe => panic!("{}: the probe did not answer", request.path),
                    Answer::Upstream => {
                        s.deliver_response_headers(UPSTREAM_RESPONSE, false)
                            .unwrap();
                        // Envoy's HTTP/1 codec hands over the body, then its end on its own.
                        s.deliver_response_body(b"hello", false).unwrap();
                        s.deliver_response_body(b"", true).unwrap();
                    }
                    Answer::DirectResponse => {
                        s.local_reply(503, b"local", "direct_response").unwrap()
                    }
                }
            }
            let status = s.response_header(":status").unwrap_or_default();
            let body = s.forwarded_response_body();
            s.done().unwrap();
            report(status, &body)
        })
        .collect()
}

/// The lines of `envoy` and `host` that differ, side by side.
fn differences(envoy: &str, host: &str) -> String {
    let (e, h): (Vec<&str>, Vec<&str>) = (envoy.lines().collect(), host.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(h.len()) {
        let (el, hl) = (e.get(i).copied(), h.get(i).copied());
        if el != hl {
            out += &format!(
                "line {}:\n  envoy: {}\n  host:  {}\n",
                i + 1,
                el.unwrap_or("(none)"),
                hl.unwrap_or("(none)")
            );
        }
    }
    out
}

#[test]
fn the_host_answers_the_probe_as_envoy_does() {
    let Some(paths) = ProbePaths::for_test("the_host_answers_the_probe_as_envoy_does") else {
        return;
    };
    let (envoy, clients, listener) = in_envoy(&paths);
    let host = in_host(&mut probe_host(&paths), &clients, listener);
    let mut failures = String::new();
    for ((request, envoy), host) in SCRIPT.iter().zip(&envoy).zip(&host) {
        assert!(
            envoy.lines().count() > 1 || request.path == "/probe/empty",
            "{}: Envoy's answer holds no transcript:\n{envoy}",
            request.path
        );
        if envoy != host {
            failures += &format!(
                "{} {}:\n{}",
                request.method,
                request.path,
                differences(envoy, host)
            );
        }
    }
    assert!(
        failures.is_empty(),
        "the host differs from Envoy:\n{failures}"
    );
}
