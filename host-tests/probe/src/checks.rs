//! The host calls the probe makes in each phase of a stream, chosen for the edge cases where a
//! host could plausibly differ from Envoy: absent keys, repeated headers, letter case, maps and
//! buffers asked for in the wrong phase, offsets past the end, stale CAS tokens, metric types.

use crate::abi::{self, Out};
use crate::transcript::Transcript;

const REQUEST_HEADERS: u32 = 0;
const REQUEST_TRAILERS: u32 = 1;
const RESPONSE_HEADERS: u32 = 2;
const RESPONSE_TRAILERS: u32 = 3;
/// No such map type in the ABI.
const BAD_MAP: u32 = 9;

const REQUEST_BODY: u32 = 0;
const RESPONSE_BODY: u32 = 1;
const VM_CONFIGURATION: u32 = 6;
const PLUGIN_CONFIGURATION: u32 = 7;
const BAD_BUFFER: u32 = 9;

fn map_name(map: u32) -> &'static str {
    match map {
        REQUEST_HEADERS => "request_headers",
        REQUEST_TRAILERS => "request_trailers",
        RESPONSE_HEADERS => "response_headers",
        RESPONSE_TRAILERS => "response_trailers",
        _ => "map9",
    }
}

fn get(t: &mut Transcript, map: u32, key: &str) {
    t.out(
        format!("get {}[{key}]", map_name(map)),
        abi::header(map, key),
    );
}

fn add(t: &mut Transcript, map: u32, key: &str, value: &str) {
    let status = abi::add_header(map, key, value);
    t.status(format!("add {}[{key}]={value:?}", map_name(map)), status);
}

fn replace(t: &mut Transcript, map: u32, key: &str, value: &str) {
    let status = abi::replace_header(map, key, value);
    t.status(
        format!("replace {}[{key}]={value:?}", map_name(map)),
        status,
    );
}

fn remove(t: &mut Transcript, map: u32, key: &str) {
    let status = abi::remove_header(map, key);
    t.status(format!("remove {}[{key}]", map_name(map)), status);
}

fn pairs(t: &mut Transcript, map: u32, values: bool) {
    t.pairs(
        format!("pairs {}", map_name(map)),
        abi::header_pairs(map),
        values,
    );
}

fn size(t: &mut Transcript, map: u32) {
    let (status, size) = abi::header_map_size(map);
    t.value(format!("size {}", map_name(map)), status, size.to_string());
}

fn property(t: &mut Transcript, path: &[&str]) {
    t.out(format!("property {}", path.join(".")), abi::property(path));
}

fn buffer(t: &mut Transcript, ty: u32, start: usize, max: usize) {
    t.out(
        format!("buffer {ty} [{start}, +{max}]"),
        abi::buffer_bytes(ty, start, max),
    );
}

fn buffer_status(t: &mut Transcript, ty: u32) {
    let (status, len, flags) = abi::buffer_status(ty);
    t.value(
        format!("buffer_status {ty}"),
        status,
        format!("len={len} flags={flags}"),
    );
}

/// Properties the probe reads in the request phase. Addresses, ports and the connection id
/// differ from run to run; the test normalises them.
const REQUEST_PROPERTIES: &[&[&str]] = &[
    &["request", "path"],
    &["request", "url_path"],
    &["request", "host"],
    &["request", "scheme"],
    &["request", "method"],
    &["request", "protocol"],
    &["request", "query"],
    &["request", "id"],
    &["request", "useragent"],
    &["request", "referer"],
    &["request", "headers", "x-case"],
    &["source", "address"],
    &["source", "port"],
    &["destination", "address"],
    &["destination", "port"],
    &["connection_id"],
    &["connection", "mtls"],
    &["plugin_name"],
    &["plugin_root_id"],
    &["plugin_vm_id"],
    &["node", "id"],
    &["route_name"],
    &["cluster_name"],
    &["response", "code"],
    &["response", "code_details"],
    &["response", "flags"],
    &["nothing", "here"],
    &["nothing"],
];

/// `proxy_on_request_headers` of the request probe: `POST /probe/request` with `x-dup` twice,
/// `X-Case`, and a 10-byte body.
pub fn request_headers(t: &mut Transcript, context_id: u32) {
    t.phase("request_headers");
    for key in [
        "x-missing",
        "X-Dup",
        "x-case",
        ":path",
        ":method",
        ":authority",
        ":scheme",
        "content-length",
    ] {
        get(t, REQUEST_HEADERS, key);
    }
    pairs(t, REQUEST_HEADERS, true);
    size(t, REQUEST_HEADERS);
    property(t, &["request", "headers", "x-dup"]);
    get(t, RESPONSE_HEADERS, ":status");
    get(t, REQUEST_TRAILERS, "x");
    get(t, BAD_MAP, "x");
    pairs(t, RESPONSE_HEADERS, true);
    size(t, RESPONSE_HEADERS);

    add(t, REQUEST_HEADERS, "X-Added", "a1");
    add(t, REQUEST_HEADERS, "x-added", "a2");
    get(t, REQUEST_HEADERS, "x-added");
    add(t, REQUEST_HEADERS, "x-empty", "");
    get(t, REQUEST_HEADERS, "x-empty");
    replace(t, REQUEST_HEADERS, "x-dup", "three");
    replace(t, REQUEST_HEADERS, "x-fresh", "f");
    replace(t, REQUEST_HEADERS, "X-Case", "lower");
    remove(t, REQUEST_HEADERS, "x-added");
    remove(t, REQUEST_HEADERS, "x-never");
    pairs(t, REQUEST_HEADERS, true);
    add(t, RESPONSE_HEADERS, "x", "y");
    replace(t, RESPONSE_HEADERS, "x", "y");
    remove(t, RESPONSE_HEADERS, "x");
    remove(t, BAD_MAP, "x");

    for path in REQUEST_PROPERTIES {
        property(t, path);
    }
    replace(t, REQUEST_HEADERS, ":path", "/probe/request?rewritten=1");
    property(t, &["request", "path"]);
    property(t, &["request", "url_path"]);
    property(t, &["request", "query"]);
    t.status(
        "set_property probe_key",
        abi::set_property(&["probe_key"], "v1"),
    );
    property(t, &["probe_key"]);
    t.status(
        "set_property probe.nested",
        abi::set_property(&["probe", "nested"], "v2"),
    );
    property(t, &["probe", "nested"]);

    shared_data(t);
    metrics(t);
    logging(t);
    stream_calls(t, context_id);
}

fn shared(t: &mut Transcript, key: &str) -> u32 {
    let (status, out, cas) = abi::shared_data(key);
    t.value(
        format!("shared_data {key}"),
        status,
        format!("{} cas={cas}", crate::transcript::show_out(&out)),
    );
    cas
}

fn set_shared(t: &mut Transcript, key: &str, value: &str, cas: u32) {
    let status = abi::set_shared_data(key, value, cas);
    t.status(format!("set_shared_data {key}={value:?} cas={cas}"), status);
}

fn shared_data(t: &mut Transcript) {
    shared(t, "probe/missing");
    set_shared(t, "probe/k", "v1", 0);
    let cas = shared(t, "probe/k");
    set_shared(t, "probe/k", "v2", cas.wrapping_add(1));
    set_shared(t, "probe/k", "v2", cas);
    set_shared(t, "probe/k", "v3", cas);
    shared(t, "probe/k");
    set_shared(t, "probe/new", "n", 12345);
    shared(t, "probe/new");
    set_shared(t, "probe/k", "", 0);
    shared(t, "probe/k");
}

fn metrics(t: &mut Transcript) {
    let define = |t: &mut Transcript, ty: u32, name: &str| {
        let (status, id) = abi::define_metric(ty, name);
        t.value(format!("define_metric {ty} {name}"), status, id.to_string());
        id
    };
    let counter = define(t, 0, "probe_requests");
    let again = define(t, 0, "probe_requests");
    let gauge = define(t, 1, "probe_inflight");
    let histogram = define(t, 2, "probe_latency");
    define(t, 3, "probe_bad");
    let unknown = 4 * 12345;

    let increment = |t: &mut Transcript, what: &str, id: u32, by: i64| {
        t.status(
            format!("increment_metric {what} {by}"),
            abi::increment_metric(id, by),
        );
    };
    increment(t, "counter", counter, 0);
    increment(t, "counter", counter, -1);
    increment(t, "counter", counter, 5);
    increment(t, "counter_again", again, 1);
    increment(t, "gauge", gauge, -3);
    increment(t, "gauge", gauge, 0);
    increment(t, "histogram", histogram, 1);
    increment(t, "unknown_counter", unknown, 1);
    increment(t, "unknown_histogram", unknown + 2, 1);

    let record = |t: &mut Transcript, what: &str, id: u32, value: u64| {
        t.status(
            format!("record_metric {what} {value}"),
            abi::record_metric(id, value),
        );
    };
    record(t, "counter", counter, 3);
    record(t, "gauge", gauge, 10);
    record(t, "histogram", histogram, 12);
    record(t, "unknown_histogram", unknown + 2, 1);

    for (what, id) in [
        ("counter", counter),
        ("counter_again", again),
        ("gauge", gauge),
        ("histogram", histogram),
        ("unknown_counter", unknown),
    ] {
        let (status, value) = abi::metric(id);
        t.value(format!("get_metric {what}"), status, value.to_string());
    }
}

fn logging(t: &mut Transcript) {
    let (status, level) = abi::log_level();
    t.value("get_log_level", status, level.to_string());
    for level in 0..=6 {
        t.status(
            format!("log level {level}"),
            abi::log(level, &format!("probe log at level {level}")),
        );
    }
    // The time itself differs from run to run: only the status is compared.
    t.status("get_current_time", abi::current_time().0);
}

fn stream_calls(t: &mut Transcript, context_id: u32) {
    t.out(
        "foreign clear_route_cache",
        abi::foreign_function("clear_route_cache", b""),
    );
    t.out(
        "foreign no_such_function",
        abi::foreign_function("no_such_function", b""),
    );
    for ty in [2, 3, 9] {
        t.status(format!("continue_stream {ty}"), abi::continue_stream(ty));
    }
    t.status("close_stream 9", abi::close_stream(9));
    t.status(
        "set_effective_context 9999",
        abi::set_effective_context(9999),
    );
    t.status(
        "set_effective_context self",
        abi::set_effective_context(context_id),
    );
    let good = [(":method", "GET"), (":path", "/"), (":authority", "probe")];
    let (status, _) = abi::http_call("no_such_cluster", &abi::serialize_pairs(&good));
    t.status("http_call no_such_cluster", status);
    let (status, _) = abi::http_call("probe_upstream", &abi::serialize_pairs(&good[..2]));
    t.status("http_call without :authority", status);
}

/// `proxy_on_request_body` of the request probe, at the end of its 10-byte body.
pub fn request_body(t: &mut Transcript, body_size: usize, end_of_stream: bool) {
    t.phase("request_body");
    t.status(format!("body_size={body_size} eos={end_of_stream}"), 0);
    buffer_status(t, REQUEST_BODY);
    buffer(t, REQUEST_BODY, 0, 4);
    buffer(t, REQUEST_BODY, 4, 100);
    buffer(t, REQUEST_BODY, 10, 5);
    buffer(t, REQUEST_BODY, 20, 5);
    buffer(t, REQUEST_BODY, 0, u32::MAX as usize);
    buffer(t, RESPONSE_BODY, 0, 10);
    buffer(t, VM_CONFIGURATION, 0, 100);
    buffer(t, PLUGIN_CONFIGURATION, 0, 100);
    buffer(t, BAD_BUFFER, 0, 1);

    let set = |t: &mut Transcript, start: usize, size: usize, data: &str| {
        t.status(
            format!("set_buffer {REQUEST_BODY} [{start}, +{size}]={data:?}"),
            abi::set_buffer_bytes(REQUEST_BODY, start, size, data.as_bytes()),
        );
    };
    set(t, 0, 0, "<");
    set(t, 11, 0, ">");
    set(t, 3, 2, "x");
    buffer(t, REQUEST_BODY, 0, 100);
    set(t, 0, 100, "new");
    buffer(t, REQUEST_BODY, 0, 100);
    t.status(
        "set_buffer 7 [0, +0]",
        abi::set_buffer_bytes(PLUGIN_CONFIGURATION, 0, 0, b"x"),
    );

    // The headers callback returned Continue: the map is gone.
    get(t, REQUEST_HEADERS, "x-fresh");
    // Trailers can be added while the last chunk is in hand.
    add(t, REQUEST_TRAILERS, "x-trailer", "t");
    get(t, REQUEST_TRAILERS, "x-trailer");
}

/// `proxy_on_response_headers` of a response from upstream (`x-up` twice) or from Envoy itself.
pub fn response_headers(t: &mut Transcript, headers: usize, end_of_stream: bool) {
    t.phase("response_headers");
    t.status(format!("headers={headers} eos={end_of_stream}"), 0);
    for key in [
        ":status",
        "x-up",
        "x-missing",
        "content-length",
        "content-type",
    ] {
        get(t, RESPONSE_HEADERS, key);
    }
    // Keys only: `date` differs from run to run.
    pairs(t, RESPONSE_HEADERS, false);
    get(t, REQUEST_HEADERS, ":path");
    pairs(t, REQUEST_HEADERS, false);
    get(t, RESPONSE_TRAILERS, "x");
    for path in [
        &["response", "code"][..],
        &["response", "code_details"],
        &["response", "flags"],
        &["response", "headers", "x-up"],
        &["request", "path"],
        &["request", "method"],
    ] {
        property(t, path);
    }
    add(t, RESPONSE_HEADERS, "x-added", "1");
    replace(t, RESPONSE_HEADERS, "x-up", "replaced");
    // The probe rewrites the body with its transcript: the length changes.
    remove(t, RESPONSE_HEADERS, "content-length");
    pairs(t, RESPONSE_HEADERS, false);
}

/// `proxy_on_response_body` at the end of the response.
pub fn response_body(t: &mut Transcript, body_size: usize, end_of_stream: bool) {
    t.phase("response_body");
    t.status(format!("body_size={body_size} eos={end_of_stream}"), 0);
    buffer_status(t, RESPONSE_BODY);
    buffer(t, RESPONSE_BODY, 0, 100);
    buffer(t, RESPONSE_BODY, 2, 2);
    buffer(t, REQUEST_BODY, 0, 100);
    get(t, RESPONSE_HEADERS, ":status");
    get(t, REQUEST_HEADERS, ":path");
    property(t, &["response", "code"]);
    property(t, &["response", "code_details"]);
    property(t, &["response", "headers", "x-added"]);
}

/// `proxy_on_response_headers` of the probe's own local reply.
pub fn local_reply_headers(t: &mut Transcript, headers: usize, end_of_stream: bool) {
    t.phase("local_reply_headers");
    t.status(format!("headers={headers} eos={end_of_stream}"), 0);
    // Keys and values: a local reply has no `date` yet when it passes the filters.
    pairs(t, RESPONSE_HEADERS, true);
    property(t, &["response", "code"]);
    property(t, &["response", "code_details"]);
}

/// `proxy_on_response_body` of the probe's own local reply.
pub fn local_reply_body(t: &mut Transcript, body_size: usize, end_of_stream: bool) {
    t.phase("local_reply_body");
    t.status(format!("body_size={body_size} eos={end_of_stream}"), 0);
    buffer_status(t, RESPONSE_BODY);
}

/// `proxy_on_log`: what the access log phase can still read.
pub fn access_log(t: &mut Transcript) {
    t.phase("log");
    get(t, REQUEST_HEADERS, ":path");
    get(t, RESPONSE_HEADERS, ":status");
    get(t, RESPONSE_HEADERS, "x-added");
    get(t, REQUEST_TRAILERS, "x");
    get(t, RESPONSE_TRAILERS, "x");
    add(t, REQUEST_HEADERS, "x-late", "1");
    for path in [
        &["response", "code"][..],
        &["response", "code_details"],
        &["request", "path"],
    ] {
        property(t, path);
    }
    buffer(t, RESPONSE_BODY, 0, 100);
}

/// Replace the whole response body (`size` bytes) with `text`.
pub fn replace_response_body(size: usize, text: &str) -> u32 {
    abi::set_buffer_bytes(RESPONSE_BODY, 0, size, text.as_bytes())
}

/// The request's `:path`, which picks the probe's scenario.
pub fn path_of_request() -> String {
    match abi::header(REQUEST_HEADERS, ":path") {
        (0, Out::Bytes(path)) => String::from_utf8_lossy(&path).into_owned(),
        _ => String::new(),
    }
}
