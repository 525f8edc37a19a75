//! A proxy-wasm module that probes its host: on each request it calls host functions on their
//! edge cases and reports every status code and value it got back, as text. The same requests
//! through real Envoy and through the wasmtime host in `serin-host-tests` must give the same
//! text (the e2e test `conformance` checks it), which is how the host is held to Envoy.
//!
//! The scenario comes from the request's path:
//! - `POST /probe/request` with a 10-byte body: the request-side checks (headers, properties,
//!   shared data, metrics, logging, body buffers), answered with a local reply whose body is
//!   the transcript.
//! - `GET /probe/upstream`: the response-side checks on an upstream's answer; the probe replaces
//!   the response body with the transcript.
//! - `GET /probe/local`: the same on a response Envoy made itself (a direct response).
//! - `GET /probe/empty`: a local reply without a body.
//! - `GET /probe/log`: a local reply with what the access-log phase of every earlier stream saw,
//!   and how the local replies of the earlier streams passed back through the probe: those
//!   happen after a stream's answer has left, too late to report in it.
//!
//! The module exists only for wasm32: built for the host machine (`cargo test --workspace`) the
//! crate is empty, since its `malloc` export would replace the C library's.
#![cfg(target_arch = "wasm32")]

mod abi;
mod checks;
mod transcript;

use std::cell::RefCell;
use std::collections::HashMap;

use transcript::Transcript;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Request,
    Upstream,
    Local,
    Empty,
    Log,
    Other,
}

impl Scenario {
    fn of_path(path: &str) -> Scenario {
        match path.split('?').next().unwrap_or_default() {
            "/probe/request" => Scenario::Request,
            "/probe/upstream" => Scenario::Upstream,
            "/probe/local" => Scenario::Local,
            "/probe/empty" => Scenario::Empty,
            "/probe/log" => Scenario::Log,
            _ => Scenario::Other,
        }
    }

    /// Whether the probe answers this request itself, with a local reply.
    fn replies_locally(self) -> bool {
        matches!(self, Scenario::Request | Scenario::Empty | Scenario::Log)
    }
}

struct Stream {
    scenario: Scenario,
    /// What goes into this stream's answer.
    now: Transcript,
    /// What can only be reported later, by `/probe/log`.
    later: Transcript,
}

thread_local! {
    static STREAMS: RefCell<HashMap<u32, Stream>> = RefCell::new(HashMap::new());
    /// The `later` lines of finished streams, in the order they finished.
    static LATER: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn with_stream<R>(id: u32, f: impl FnOnce(&mut Stream) -> R) -> Option<R> {
    STREAMS.with(|s| s.borrow_mut().get_mut(&id).map(f))
}

const CONTINUE: u32 = 0;
/// `StopIteration` for headers, `StopIterationAndBuffer` for bodies.
const PAUSE: u32 = 1;

#[unsafe(no_mangle)]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_vm_start(_root_id: u32, _vm_config_size: u32) -> u32 {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_configure(_root_id: u32, _config_size: u32) -> u32 {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_context_create(id: u32, root_id: u32) {
    if root_id != 0 {
        let stream = Stream {
            scenario: Scenario::Other,
            now: Transcript::default(),
            later: Transcript::default(),
        };
        STREAMS.with(|s| s.borrow_mut().insert(id, stream));
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_request_headers(id: u32, _headers: u32, _end_of_stream: u32) -> u32 {
    let scenario = Scenario::of_path(&checks::path_of_request());
    with_stream(id, |s| {
        s.scenario = scenario;
        match scenario {
            // Continue: Envoy turns a paused headers callback into StopAllIteration, and then
            // holds the body back from the filter too until the stream is resumed.
            Scenario::Request => {
                checks::request_headers(&mut s.now, id);
                CONTINUE
            }
            Scenario::Log => {
                let text = LATER.with(|l| l.borrow().join("\n")) + "\n";
                let status = abi::send_local_response(200, "probe log", text.as_bytes(), &[]);
                s.later.phase("request_headers");
                s.later.status("send_local_response", status);
                PAUSE
            }
            Scenario::Empty => {
                let status = abi::send_local_response(204, "empty reply", b"", &[]);
                s.later.phase("request_headers");
                s.later.status("send_local_response", status);
                PAUSE
            }
            Scenario::Upstream | Scenario::Local | Scenario::Other => CONTINUE,
        }
    })
    .unwrap_or(CONTINUE)
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_request_body(id: u32, body_size: usize, end_of_stream: u32) -> u32 {
    with_stream(id, |s| {
        if s.scenario != Scenario::Request {
            return CONTINUE;
        }
        if end_of_stream == 0 {
            return PAUSE;
        }
        checks::request_body(&mut s.now, body_size, true);
        let headers = abi::serialize_pairs(&[("x-probe", "request")]);
        let text = s.now.text();
        let status = abi::send_local_response(200, "probe transcript", text.as_bytes(), &headers);
        let again = abi::send_local_response(500, "second reply", b"", &[]);
        s.later.phase("request_body");
        s.later.status("send_local_response", status);
        s.later.status("send_local_response again", again);
        PAUSE
    })
    .unwrap_or(CONTINUE)
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_response_headers(id: u32, headers: usize, end_of_stream: u32) -> u32 {
    with_stream(id, |s| {
        if s.scenario.replies_locally() {
            // The probe's own local reply, passing back through it.
            checks::local_reply_headers(&mut s.later, headers, end_of_stream != 0);
        } else {
            checks::response_headers(&mut s.now, headers, end_of_stream != 0);
        }
        CONTINUE
    })
    .unwrap_or(CONTINUE)
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_response_body(id: u32, body_size: usize, end_of_stream: u32) -> u32 {
    with_stream(id, |s| {
        if s.scenario.replies_locally() {
            checks::local_reply_body(&mut s.later, body_size, end_of_stream != 0);
            return CONTINUE;
        }
        if end_of_stream == 0 {
            s.now.phase("response_body");
            s.now
                .status(format!("body_size={body_size} eos=false: buffered"), 0);
            return PAUSE;
        }
        checks::response_body(&mut s.now, body_size, true);
        let text = s.now.text();
        let status = checks::replace_response_body(body_size, &text);
        s.later.phase("response_body");
        s.later.status("replace body with the transcript", status);
        CONTINUE
    })
    .unwrap_or(CONTINUE)
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_log(id: u32) {
    with_stream(id, |s| {
        checks::access_log(&mut s.later);
        let name = format!("{:?}", s.scenario).to_lowercase();
        LATER.with(|l| {
            let mut later = l.borrow_mut();
            later.extend(s.later.lines().iter().map(|line| format!("{name} {line}")));
        });
    });
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_done(_id: u32) -> u32 {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_delete(id: u32) {
    STREAMS.with(|s| s.borrow_mut().remove(&id));
}
