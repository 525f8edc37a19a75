//! Real Envoy running the conformance probe (`host-tests/probe`): its config, and HTTP/1.1
//! exchanges written byte for byte, so that the request Envoy hands the probe is exactly the one
//! a test describes.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::{Envoy, free_port};

/// What the probe's Envoy is told, and what a host running the probe must be told too.
pub mod identity {
    pub const PLUGIN_NAME: &str = "probe";
    pub const ROOT_ID: &str = "probe_root";
    pub const VM_ID: &str = "probe_vm";
    pub const VM_CONFIG: &str = "probe-vm-config";
    pub const PLUGIN_CONFIG: &str = "probe-plugin-config";
    /// The cluster the probe's upstream requests go to.
    pub const CLUSTER: &str = "probe_upstream";
}

/// The probe's Envoy: one listener with the probe in front of the router (a `direct_response`
/// route for `/probe/local`, everything else to the upstream), and a second listener as that
/// upstream, answering `201 hello` with `x-up` twice. `generate_request_id: false` and
/// `suppress_envoy_headers` keep out what would differ from run to run.
pub fn config(wasm: &Path, listener: u16, upstream: u16, admin: u16) -> String {
    use identity::*;
    let wasm = wasm.display();
    format!(
        r#"
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: probe
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: probe
          generate_request_id: false
          route_config:
            virtual_hosts:
            - name: probe
              domains: ['*']
              routes:
              - match: {{ path: /probe/local }}
                direct_response: {{ status: 503, body: {{ inline_string: local }} }}
              - match: {{ prefix: / }}
                route: {{ cluster: {CLUSTER} }}
          http_filters:
          - name: probe
            typed_config:
              '@type': type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {PLUGIN_NAME}
                root_id: {ROOT_ID}
                vm_config:
                  vm_id: {VM_ID}
                  runtime: envoy.wasm.runtime.v8
                  configuration: {{ '@type': type.googleapis.com/google.protobuf.StringValue, value: {VM_CONFIG} }}
                  code: {{ local: {{ filename: {wasm} }} }}
                configuration: {{ '@type': type.googleapis.com/google.protobuf.StringValue, value: {PLUGIN_CONFIG} }}
          - name: envoy.filters.http.router
            typed_config:
              '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
  - name: upstream
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: upstream
          route_config:
            virtual_hosts:
            - name: upstream
              domains: ['*']
              routes:
              - match: {{ prefix: / }}
                direct_response: {{ status: 201, body: {{ inline_string: hello }} }}
                response_headers_to_add:
                - {{ header: {{ key: x-up, value: "1" }}, append_action: APPEND_IF_EXISTS_OR_ADD }}
                - {{ header: {{ key: x-up, value: "2" }}, append_action: APPEND_IF_EXISTS_OR_ADD }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: {CLUSTER}
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: {CLUSTER}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream} }} }} }}
"#
    )
}

/// Envoy with the probe, on free ports, one worker (so every request meets the same VM).
pub struct ProbeEnvoy {
    pub envoy: Envoy,
    pub listener: SocketAddr,
}

impl ProbeEnvoy {
    pub fn start(envoy: &Path, wasm: &Path, cwd: &Path) -> Result<ProbeEnvoy, String> {
        let (listener, upstream, admin) = (free_port(), free_port(), free_port());
        let config = config(wasm, listener, upstream, admin);
        let envoy = Envoy::start(envoy, &config, admin, cwd, 1)?;
        Ok(ProbeEnvoy {
            envoy,
            listener: SocketAddr::from(([127, 0, 0, 1], listener)),
        })
    }

    /// Send `request` (complete HTTP/1.1 bytes) on a new connection and read the response.
    pub fn exchange(&self, request: &[u8]) -> Result<Exchange, String> {
        let mut conn = TcpStream::connect(self.listener).map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let client = conn.local_addr().map_err(|e| e.to_string())?;
        conn.write_all(request).map_err(|e| e.to_string())?;
        let response = read_response(&mut BufReader::new(conn)).map_err(|e| e.to_string())?;
        Ok(Exchange { client, response })
    }
}

/// One request on its own connection: the client's address (the probe reads it as
/// `source.address`) and what came back.
pub struct Exchange {
    pub client: SocketAddr,
    pub response: Response,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn read_response(r: &mut impl BufRead) -> std::io::Result<Response> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| invalid("header line"))?;
        headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let mut body = Vec::new();
    if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("content-length"))?;
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|v| v == "chunked") {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|_| invalid("chunk"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}
