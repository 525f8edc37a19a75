//! Conformance of the host to ABI v0.2.1 and to Envoy's status codes, through the real ABI:
//! a small module imports the host functions and re-exports them, so each test calls a host
//! function exactly as a filter would, with pointers into guest memory.
//!
//! To reach each case without a filter that steers there, the tests put a stream in a given
//! phase (which maps are live, the access log) and make a context current through the host's
//! `conformance` surface, which exists for them.

use std::time::Duration;

use serin_host_tests::conformance::{self, StreamMut};
use serin_host_tests::{HeaderMap, Host, HostConfig, LogLevel, MetricValue, Status, Worker, pairs};
use wasmtime::Val;

/// (name, params, results) of every host function a module may import. `j` is an i64.
const IMPORTS: &[(&str, &str, &str)] = &[
    ("proxy_log", "iii", "i"),
    ("proxy_get_log_level", "i", "i"),
    ("proxy_get_current_time_nanoseconds", "i", "i"),
    ("proxy_set_tick_period_milliseconds", "i", "i"),
    ("proxy_get_configuration", "ii", "i"),
    ("proxy_get_buffer_bytes", "iiiii", "i"),
    ("proxy_get_buffer_status", "iii", "i"),
    ("proxy_set_buffer_bytes", "iiiii", "i"),
    ("proxy_get_header_map_pairs", "iii", "i"),
    ("proxy_set_header_map_pairs", "iii", "i"),
    ("proxy_get_header_map_value", "iiiii", "i"),
    ("proxy_replace_header_map_value", "iiiii", "i"),
    ("proxy_add_header_map_value", "iiiii", "i"),
    ("proxy_remove_header_map_value", "iii", "i"),
    ("proxy_get_header_map_size", "ii", "i"),
    ("proxy_get_property", "iiii", "i"),
    ("proxy_set_property", "iiii", "i"),
    ("proxy_get_shared_data", "iiiii", "i"),
    ("proxy_set_shared_data", "iiiii", "i"),
    ("proxy_register_shared_queue", "iii", "i"),
    ("proxy_resolve_shared_queue", "iiiii", "i"),
    ("proxy_dequeue_shared_queue", "iii", "i"),
    ("proxy_enqueue_shared_queue", "iii", "i"),
    ("proxy_continue_stream", "i", "i"),
    ("proxy_close_stream", "i", "i"),
    ("proxy_clear_route_cache", "", "i"),
    ("proxy_send_local_response", "iiiiiiii", "i"),
    ("proxy_http_call", "iiiiiiiiii", "i"),
    ("proxy_grpc_call", "iiiiiiiiiiii", "i"),
    ("proxy_grpc_cancel", "i", "i"),
    ("proxy_get_status", "iii", "i"),
    ("proxy_set_effective_context", "i", "i"),
    ("proxy_call_foreign_function", "iiiiii", "i"),
    ("proxy_done", "", "i"),
    ("proxy_define_metric", "iiii", "i"),
    ("proxy_increment_metric", "ij", "i"),
    ("proxy_record_metric", "ij", "i"),
    ("proxy_get_metric", "ii", "i"),
];

fn ty(s: &str) -> String {
    s.chars()
        .map(|c| if c == 'j' { " i64" } else { " i32" })
        .collect()
}

/// A module that re-exports the host functions, with a bump allocator named `alloc_export`.
fn abi_module(alloc_export: &str, extra: &str) -> Vec<u8> {
    let mut wat = String::from("(module\n");
    for (name, params, results) in IMPORTS {
        wat += &format!(
            "(import \"env\" \"{name}\" (func ${name} (param{}) (result{})))\n",
            ty(params),
            ty(results)
        );
    }
    wat += &format!(
        r#"
        (memory (export "memory") 4)
        (global $bump (mut i32) (i32.const 65536))
        (func (export "{alloc_export}") (param $n i32) (result i32)
          (local $p i32)
          (local.set $p (global.get $bump))
          (global.set $bump (i32.add (global.get $bump) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
          (local.get $p))
        (func (export "proxy_abi_version_0_2_1"))
        {extra}
        "#
    );
    for (name, _, _) in IMPORTS {
        wat += &format!("(export \"{name}\" (func ${name}))\n");
    }
    wat += ")";
    wat::parse_str(&wat).expect("valid test module")
}

/// Scratch addresses for `return_*` out-parameters.
const OUT_PTR: i32 = 16;
const OUT_SIZE: i32 = 20;
const OUT_WORD: i32 = 24;

struct T {
    w: Worker,
    /// Where `put` writes next (below the module's own heap).
    next: i32,
}

impl T {
    fn new() -> T {
        T::with(
            HostConfig::default()
                .cluster("auth")
                .property(&["node", "id"], "sidecar~1"),
        )
    }

    fn with(config: HostConfig) -> T {
        T::on(&Host::with_config(&abi_module("malloc", ""), config).unwrap())
    }

    fn on(host: &Host) -> T {
        let mut w = host.worker().unwrap();
        assert!(w.configure(b"{}").unwrap());
        T { w, next: 1024 }
    }

    /// A stream with request headers, made current, its request headers live.
    fn stream(&mut self) -> u32 {
        conformance::open_stream(
            &mut self.w,
            &[
                (":path", "/a?b=c"),
                (":method", "GET"),
                ("x-dup", "1"),
                ("x-dup", "2"),
                ("x-one", "v"),
            ],
            &[(&["source", "address"], "10.0.0.1:1234")],
        )
    }

    fn enter(&mut self, ctx: u32) {
        conformance::enter(&mut self.w, ctx);
    }

    fn s(&mut self, id: u32) -> StreamMut<'_> {
        conformance::stream(&mut self.w, id)
    }

    fn put(&mut self, bytes: &[u8]) -> (i32, i32) {
        let p = self.next;
        conformance::write_memory(&mut self.w, p as usize, bytes).unwrap();
        self.next += bytes.len() as i32 + 8;
        (p, bytes.len() as i32)
    }

    fn mem(&mut self, ptr: i32, len: usize) -> Vec<u8> {
        conformance::read_memory(&self.w, ptr as usize, len).unwrap()
    }

    fn word(&mut self, at: i32) -> u32 {
        u32::from_le_bytes(self.mem(at, 4).try_into().unwrap())
    }

    fn u64(&mut self, at: i32) -> u64 {
        u64::from_le_bytes(self.mem(at, 8).try_into().unwrap())
    }

    /// What the host returned through (OUT_PTR, OUT_SIZE).
    fn out(&mut self) -> Vec<u8> {
        let (p, n) = (self.word(OUT_PTR), self.word(OUT_SIZE));
        if p == 0 {
            assert_eq!(n, 0);
            return Vec::new();
        }
        self.mem(p as i32, n as usize)
    }

    fn call(&mut self, name: &str, args: &[Val]) -> Status {
        conformance::call_export(&mut self.w, name, args).unwrap()
    }

    fn c(&mut self, name: &str, args: &[i32]) -> Status {
        let args: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        self.call(name, &args)
    }

    fn get_value(&mut self, map: i32, key: &str) -> (Status, Vec<u8>) {
        let (k, n) = self.put(key.as_bytes());
        let st = self.c(
            "proxy_get_header_map_value",
            &[map, k, n, OUT_PTR, OUT_SIZE],
        );
        (
            st,
            if st == Status::Ok {
                self.out()
            } else {
                Vec::new()
            },
        )
    }

    fn kv(&mut self, name: &str, map: i32, key: &str, value: &str) -> Status {
        let (k, kn) = self.put(key.as_bytes());
        let (v, vn) = self.put(value.as_bytes());
        self.c(name, &[map, k, kn, v, vn])
    }
}

#[test]
fn header_map_pairs_round_trip() {
    let mut t = T::new();
    let id = t.stream();
    assert_eq!(
        t.c("proxy_get_header_map_pairs", &[0, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    let got = t.out();
    assert_eq!(got, t.s(id).request_headers().serialize());
    assert_eq!(pairs::deserialize(&got).len(), 5);

    let new = pairs::serialize(&[(":path", "/new"), ("X-Mixed-Case", "v1"), ("x-b", "")]);
    let (p, n) = t.put(&new);
    assert_eq!(t.c("proxy_set_header_map_pairs", &[0, p, n]), Status::Ok);
    assert_eq!(
        t.s(id).request_headers().to_vec(),
        vec![
            (":path".into(), "/new".into()),
            ("x-mixed-case".into(), "v1".into()),
            ("x-b".into(), "".into())
        ]
    );
    assert_eq!(
        t.c("proxy_get_header_map_pairs", &[0, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!(pairs::deserialize(&t.out()).len(), 3);
    // Envoy reads a malformed map as an empty one.
    let (p, n) = t.put(&[9, 9, 9]);
    assert_eq!(t.c("proxy_set_header_map_pairs", &[0, p, n]), Status::Ok);
    assert!(t.s(id).request_headers().is_empty());
    // An empty map comes back as address 0, size 0.
    assert_eq!(
        t.c("proxy_get_header_map_pairs", &[0, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!((t.word(OUT_PTR), t.word(OUT_SIZE)), (0, 0));
}

#[test]
fn header_values_and_status_codes() {
    let mut t = T::new();
    let id = t.stream();
    assert_eq!(
        t.get_value(0, "X-DUP"),
        (Status::Ok, b"1".to_vec()),
        "first value, any case"
    );
    assert_eq!(t.get_value(0, "absent").0, Status::NotFound);
    assert_eq!(
        t.get_value(8, "x-one").0,
        Status::BadArgument,
        "unknown map type"
    );
    // Maps the stream does not have right now.
    assert_eq!(
        t.get_value(2, "x").0,
        Status::BadArgument,
        "no response headers yet"
    );
    assert_eq!(
        t.get_value(6, "x").0,
        Status::BadArgument,
        "no HTTP call response"
    );

    assert_eq!(
        t.kv("proxy_replace_header_map_value", 0, "X-Dup", "3"),
        Status::Ok
    );
    assert_eq!(t.s(id).request_headers().get_all("x-dup"), vec![&b"3"[..]]);
    assert_eq!(
        t.kv("proxy_add_header_map_value", 0, "x-dup", "4"),
        Status::Ok
    );
    assert_eq!(
        t.s(id).request_headers().get_all("x-dup"),
        vec![&b"3"[..], &b"4"[..]]
    );
    let (k, n) = t.put(b"never-there");
    assert_eq!(t.c("proxy_remove_header_map_value", &[0, k, n]), Status::Ok);
    let (k, n) = t.put(b"x-dup");
    assert_eq!(t.c("proxy_remove_header_map_value", &[0, k, n]), Status::Ok);
    assert_eq!(t.get_value(0, "x-dup").0, Status::NotFound);

    let size = t.s(id).request_headers().byte_size() as u32;
    assert_eq!(t.c("proxy_get_header_map_size", &[0, OUT_WORD]), Status::Ok);
    assert_eq!(t.word(OUT_WORD), size);

    // After the callback returned Continue, Envoy has let go of the map.
    t.s(id).live().request_headers = false;
    assert_eq!(t.get_value(0, "x-one").0, Status::BadArgument);
    assert_eq!(
        t.kv("proxy_replace_header_map_value", 0, "a", "b"),
        Status::BadArgument
    );
    assert_eq!(
        t.kv("proxy_add_header_map_value", 0, "a", "b"),
        Status::BadArgument
    );
    assert_eq!(
        t.c("proxy_get_header_map_size", &[0, OUT_WORD]),
        Status::BadArgument
    );
    assert_eq!(
        t.c("proxy_get_header_map_pairs", &[0, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!(t.out(), b"", "a missing map reads as empty");
    // In the access log phase the maps are readable, and a missing one is NotFound.
    t.s(id).set_access_log(true);
    assert_eq!(t.get_value(0, "x-one"), (Status::Ok, b"v".to_vec()));
    assert_eq!(t.get_value(1, "x").0, Status::NotFound);
    // From the root context there are no HTTP maps.
    let root = t.w.root_context_id();
    t.enter(root);
    assert_eq!(t.get_value(0, "x-one").0, Status::BadArgument);
}

#[test]
fn trailers_can_be_added_in_the_last_body_chunk() {
    let mut t = T::new();
    let id = t.stream();
    t.s(id).live().request_headers = false;
    assert_eq!(
        t.kv("proxy_add_header_map_value", 1, "x-t", "1"),
        Status::BadArgument
    );
    t.s(id).live().request_body = true;
    t.s(id).set_end_of_stream(true);
    assert_eq!(
        t.kv("proxy_add_header_map_value", 1, "x-t", "1"),
        Status::Ok
    );
    assert_eq!(
        t.s(id).request_trailers().unwrap().get("x-t"),
        Some(&b"1"[..])
    );
}

#[test]
fn buffers() {
    let mut t = T::with(HostConfig::default().vm_config("vm-conf"));
    let root = t.w.root_context_id();
    t.enter(root);
    // The plugin configuration exists only during proxy_on_configure.
    assert_eq!(
        t.c("proxy_get_buffer_bytes", &[7, 0, 100, OUT_PTR, OUT_SIZE]),
        Status::NotFound
    );
    assert_eq!(
        t.c("proxy_get_buffer_bytes", &[6, 0, 100, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!(t.out(), b"vm-conf");
    assert_eq!(
        t.c("proxy_get_buffer_bytes", &[6, 3, 2, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!(t.out(), b"co");
    assert_eq!(
        t.c("proxy_get_buffer_bytes", &[6, 99, 2, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!(
        (t.word(OUT_PTR), t.word(OUT_SIZE)),
        (0, 0),
        "past the end: nothing"
    );
    assert_eq!(
        t.c("proxy_get_buffer_bytes", &[9, 0, 1, OUT_PTR, OUT_SIZE]),
        Status::BadArgument
    );
    assert_eq!(
        t.c("proxy_get_buffer_bytes", &[4, 0, 1, OUT_PTR, OUT_SIZE]),
        Status::NotFound
    );
    let (p, n) = t.put(b"x");
    assert_eq!(
        t.c("proxy_set_buffer_bytes", &[6, 0, 0, p, n]),
        Status::BadArgument,
        "read-only"
    );
    assert_eq!(
        t.c("proxy_get_buffer_status", &[6, OUT_WORD, OUT_WORD + 4]),
        Status::Ok
    );
    assert_eq!(t.word(OUT_WORD), 7);
    assert_eq!(
        t.c("proxy_get_configuration", &[OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!(t.out(), b"vm-conf");

    // A live request body: Envoy's prepend / replace / append, nothing in between.
    let id = t.stream();
    t.s(id).live().request_body = true;
    t.s(id).set_request_body(b"body");
    let (p, n) = t.put(b"<");
    assert_eq!(t.c("proxy_set_buffer_bytes", &[0, 0, 0, p, n]), Status::Ok);
    let (p, n) = t.put(b">");
    assert_eq!(t.c("proxy_set_buffer_bytes", &[0, 5, 0, p, n]), Status::Ok);
    assert_eq!(t.s(id).request_body(), b"<body>");
    assert_eq!(
        t.c("proxy_set_buffer_bytes", &[0, 2, 1, p, n]),
        Status::BadArgument
    );
    let (p, n) = t.put(b"new");
    assert_eq!(t.c("proxy_set_buffer_bytes", &[0, 0, 6, p, n]), Status::Ok);
    assert_eq!(
        t.c(
            "proxy_get_buffer_bytes",
            &[0, 0, u32::MAX as i32, OUT_PTR, OUT_SIZE]
        ),
        Status::Ok
    );
    assert_eq!(t.out(), b"new");
    // No body in flight: it reads as empty and refuses writes.
    t.s(id).live().request_body = false;
    assert_eq!(
        t.c("proxy_get_buffer_bytes", &[0, 0, 10, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!(t.out(), b"");
    assert_eq!(
        t.c("proxy_set_buffer_bytes", &[0, 0, 0, p, n]),
        Status::BadArgument
    );
}

#[test]
fn shared_data_cas_across_workers() {
    let host =
        Host::with_config(&abi_module("malloc", ""), HostConfig::default().vm_id("v")).unwrap();
    let (mut a, mut b) = (T::on(&host), T::on(&host));
    let (k, kn) = a.put(b"key");
    assert_eq!(
        a.c(
            "proxy_get_shared_data",
            &[k, kn, OUT_PTR, OUT_SIZE, OUT_WORD]
        ),
        Status::NotFound
    );
    let (v, vn) = a.put(b"one");
    assert_eq!(a.c("proxy_set_shared_data", &[k, kn, v, vn, 0]), Status::Ok);

    let (k2, kn2) = b.put(b"key");
    assert_eq!(
        b.c(
            "proxy_get_shared_data",
            &[k2, kn2, OUT_PTR, OUT_SIZE, OUT_WORD]
        ),
        Status::Ok
    );
    assert_eq!(b.out(), b"one", "another worker sees it");
    let cas = b.word(OUT_WORD);
    assert_ne!(cas, 0);
    let (v2, vn2) = b.put(b"two");
    assert_eq!(
        b.c("proxy_set_shared_data", &[k2, kn2, v2, vn2, cas as i32]),
        Status::Ok
    );
    // Worker a's write with the now stale CAS loses.
    assert_eq!(
        a.c("proxy_set_shared_data", &[k, kn, v, vn, cas as i32]),
        Status::CasMismatch
    );
    assert_eq!(
        a.c("proxy_set_shared_data", &[k, kn, v, vn, (cas + 100) as i32]),
        Status::CasMismatch
    );
    assert_eq!(host.shared_data("key").unwrap().0, b"two");
    // Another vm_id is another namespace.
    let other = host.fresh_with_config(HostConfig::default().vm_id("w"));
    assert_eq!(other.shared_data("key"), None);
}

#[test]
fn metrics_follow_envoy() {
    let host = Host::new(&abi_module("malloc", "")).unwrap();
    let (mut a, mut b) = (T::on(&host), T::on(&host));
    let define = |t: &mut T, ty: i32, name: &str| {
        let (p, n) = t.put(name.as_bytes());
        assert_eq!(
            t.c("proxy_define_metric", &[ty, p, n, OUT_WORD]),
            Status::Ok
        );
        t.word(OUT_WORD) as i32
    };
    let inc = |t: &mut T, id: i32, by: i64| {
        t.call("proxy_increment_metric", &[Val::I32(id), Val::I64(by)])
    };
    let rec =
        |t: &mut T, id: i32, v: i64| t.call("proxy_record_metric", &[Val::I32(id), Val::I64(v)]);

    let c = define(&mut a, 0, "requests");
    assert_eq!(c & 3, 0, "the low bits name the type");
    assert_eq!(
        inc(&mut a, c, 0),
        Status::BadArgument,
        "a counter increment must be > 0"
    );
    assert_eq!(inc(&mut a, c, -1), Status::BadArgument);
    assert_eq!(inc(&mut a, c, 5), Status::Ok);
    assert_eq!(rec(&mut a, c, 3), Status::Ok, "record on a counter adds");
    let cb = define(&mut b, 0, "requests");
    assert_eq!(inc(&mut b, cb, 2), Status::Ok);
    assert_eq!(a.c("proxy_get_metric", &[c, OUT_WORD]), Status::Ok);
    assert_eq!(a.u64(OUT_WORD), 10, "workers share the stat");

    let g = define(&mut a, 1, "inflight");
    assert_eq!(rec(&mut a, g, 10), Status::Ok);
    assert_eq!(inc(&mut a, g, -3), Status::Ok);
    assert_eq!(inc(&mut a, g, 0), Status::Ok);
    assert_eq!(a.c("proxy_get_metric", &[g, OUT_WORD]), Status::Ok);
    assert_eq!(a.u64(OUT_WORD), 7);

    let h = define(&mut a, 2, "latency_ms");
    assert_eq!(rec(&mut a, h, 12), Status::Ok);
    assert_eq!(rec(&mut a, h, 40), Status::Ok);
    assert_eq!(
        a.c("proxy_get_metric", &[h, OUT_WORD]),
        Status::BadArgument,
        "no get on a histogram"
    );
    assert_eq!(inc(&mut a, h, 1), Status::BadArgument);

    let unknown = 4 * 1000;
    assert_eq!(
        a.c("proxy_get_metric", &[unknown, OUT_WORD]),
        Status::NotFound
    );
    assert_eq!(inc(&mut a, unknown + 1, 1), Status::NotFound);
    assert_eq!(rec(&mut a, unknown + 2, 1), Status::NotFound);
    let (p, n) = a.put(b"bad");
    assert_eq!(
        a.c("proxy_define_metric", &[3, p, n, OUT_WORD]),
        Status::BadArgument
    );

    let m = host.metrics();
    assert_eq!(m["requests"], MetricValue::Counter(10));
    assert_eq!(m["inflight"], MetricValue::Gauge(7));
    assert_eq!(m["latency_ms"].samples(), &[12, 40]);
}

#[test]
fn properties() {
    let mut t = T::new();
    let get = |t: &mut T, path: &[&str]| {
        let (p, n) = t.put(path.join("\0").as_bytes());
        let st = t.c("proxy_get_property", &[p, n, OUT_PTR, OUT_SIZE]);
        (
            st,
            if st == Status::Ok {
                t.out()
            } else {
                Vec::new()
            },
        )
    };
    let root = t.w.root_context_id();
    t.enter(root);
    assert_eq!(
        get(&mut t, &["plugin_name"]),
        (Status::Ok, b"serin".to_vec())
    );
    assert_eq!(
        get(&mut t, &["node", "id"]),
        (Status::Ok, b"sidecar~1".to_vec())
    );
    assert_eq!(
        get(&mut t, &["source", "address"]).0,
        Status::NotFound,
        "no stream"
    );
    let (p, n) = t.put(b"mine");
    assert_eq!(
        t.c("proxy_set_property", &[p, n, p, n]),
        Status::NotFound,
        "no filter state here"
    );

    let id = t.stream();
    assert_eq!(
        get(&mut t, &["source", "address"]),
        (Status::Ok, b"10.0.0.1:1234".to_vec())
    );
    assert_eq!(
        get(&mut t, &["request", "url_path"]),
        (Status::Ok, b"/a".to_vec())
    );
    assert_eq!(
        get(&mut t, &["request", "method"]),
        (Status::Ok, b"GET".to_vec())
    );
    assert_eq!(get(&mut t, &["nothing", "here"]).0, Status::NotFound);
    let (p, n) = t.put(b"mine");
    let (v, vn) = t.put(b"value");
    assert_eq!(t.c("proxy_set_property", &[p, n, v, vn]), Status::Ok);
    assert_eq!(get(&mut t, &["mine"]), (Status::Ok, b"value".to_vec()));

    // As the probe saw them in Envoy 1.40 (e2e test `conformance`): repeated headers joined
    // with commas, a query (empty when there is none), the protocol, no response details
    // before a response, a response code that outlives the callback of its headers.
    assert_eq!(
        get(&mut t, &["request", "headers", "x-dup"]),
        (Status::Ok, b"1,2".to_vec())
    );
    assert_eq!(
        get(&mut t, &["request", "query"]),
        (Status::Ok, b"b=c".to_vec())
    );
    assert_eq!(
        get(&mut t, &["request", "protocol"]),
        (Status::Ok, b"HTTP/1.1".to_vec())
    );
    assert_eq!(
        get(&mut t, &["response", "code_details"]).0,
        Status::NotFound
    );
    assert_eq!(
        get(&mut t, &["response", "flags"]),
        (Status::Ok, 0u64.to_le_bytes().to_vec())
    );
    assert_eq!(get(&mut t, &["connection", "mtls"]), (Status::Ok, vec![0]));
    t.s(id)
        .set_response_headers(HeaderMap::from_pairs(&[(":status", "201")]));
    assert_eq!(
        get(&mut t, &["response", "code"]),
        (Status::Ok, 201i64.to_le_bytes().to_vec()),
        "from the stream's info, not the map it lent"
    );
}

#[test]
fn logging_time_and_ticks() {
    let host = Host::with_config(
        &abi_module("malloc", ""),
        HostConfig::default().log_level(LogLevel::Warn),
    )
    .unwrap();
    let mut t = T::on(&host);
    let (p, n) = t.put(b"kept");
    assert_eq!(t.c("proxy_log", &[4, p, n]), Status::Ok);
    let (p2, n2) = t.put(b"dropped");
    assert_eq!(t.c("proxy_log", &[2, p2, n2]), Status::Ok);
    assert_eq!(
        t.c("proxy_log", &[6, p, n]),
        Status::BadArgument,
        "unknown level"
    );
    assert_eq!(
        t.c("proxy_log", &[4, 1 << 30, 4]),
        Status::InvalidMemoryAccess
    );
    assert_eq!(
        t.w.logs()
            .iter()
            .map(|l| l.message.as_str())
            .collect::<Vec<_>>(),
        ["kept"]
    );
    assert_eq!(t.c("proxy_get_log_level", &[OUT_WORD]), Status::Ok);
    assert_eq!(t.word(OUT_WORD), 3);

    assert_eq!(
        t.c("proxy_get_current_time_nanoseconds", &[OUT_WORD]),
        Status::Ok
    );
    let t0 = t.u64(OUT_WORD);
    assert_eq!(
        t0,
        1_767_225_600 * 1_000_000_000,
        "the virtual clock's start"
    );
    host.advance_clock(Duration::from_millis(1500));
    assert_eq!(
        t.c("proxy_get_current_time_nanoseconds", &[OUT_WORD]),
        Status::Ok
    );
    assert_eq!(t.u64(OUT_WORD) - t0, 1_500_000_000);

    assert!(t.w.tick().is_err(), "no tick period yet");
    assert_eq!(
        t.c("proxy_set_tick_period_milliseconds", &[1000]),
        Status::Ok
    );
    assert_eq!(t.w.tick_period(), Some(Duration::from_secs(1)));
    assert_eq!(t.w.run_due_ticks().unwrap(), 0);
    host.advance_clock(Duration::from_millis(3500));
    assert_eq!(t.w.run_due_ticks().unwrap(), 3);
    assert_eq!(t.w.run_due_ticks().unwrap(), 0);
    t.w.tick().unwrap();
}

#[test]
fn foreign_functions_local_responses_and_contexts() {
    let mut t = T::new();
    let id = t.stream();
    let (p, n) = t.put(b"clear_route_cache");
    assert_eq!(
        t.c(
            "proxy_call_foreign_function",
            &[p, n, 0, 0, OUT_PTR, OUT_SIZE]
        ),
        Status::Ok
    );
    assert_eq!(t.out(), b"");
    let (p, n) = t.put(b"no_such_function");
    assert_eq!(
        t.c(
            "proxy_call_foreign_function",
            &[p, n, 0, 0, OUT_PTR, OUT_SIZE]
        ),
        Status::NotFound
    );
    let calls = t.w.foreign_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].context_id, calls[1].status),
        (id, Status::NotFound)
    );
    assert_eq!(t.s(id).route_cache_clears(), 1);
    assert_eq!(t.c("proxy_clear_route_cache", &[]), Status::Ok);
    assert_eq!(t.s(id).route_cache_clears(), 2);

    let (d, dn) = t.put(b"denied by policy");
    let (b, bn) = t.put(b"nope");
    let (h, hn) = t.put(&pairs::serialize(&[("X-Why", "test")]));
    assert_eq!(
        t.c("proxy_send_local_response", &[403, d, dn, b, bn, h, hn, -1]),
        Status::Ok
    );
    let r = t.s(id).local_response().cloned().unwrap();
    assert_eq!(
        (r.status, r.details.as_str(), r.body.as_slice()),
        (403, "denied_by_policy", &b"nope"[..])
    );
    assert_eq!(
        (r.headers, r.grpc_status),
        (vec![("x-why".into(), "test".into())], None)
    );

    assert_eq!(t.c("proxy_continue_stream", &[0]), Status::Ok);
    assert_eq!(t.c("proxy_continue_stream", &[3]), Status::Unimplemented);
    assert_eq!(t.c("proxy_continue_stream", &[4]), Status::BadArgument);
    assert_eq!(t.c("proxy_close_stream", &[1]), Status::Ok);
    assert_eq!(t.c("proxy_close_stream", &[7]), Status::BadArgument);
    assert_eq!(
        t.c("proxy_set_effective_context", &[999]),
        Status::BadArgument
    );
    let root = t.w.root_context_id() as i32;
    assert_eq!(t.c("proxy_set_effective_context", &[root]), Status::Ok);
    assert_eq!(t.c("proxy_done", &[]), Status::NotFound, "nothing pending");
    assert_eq!(
        t.c("proxy_get_status", &[OUT_WORD, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
}

#[test]
fn shared_queues_between_workers() {
    let host = Host::new(&abi_module("malloc", "")).unwrap();
    let (mut a, mut b) = (T::on(&host), T::on(&host));
    let (q, qn) = a.put(b"events");
    assert_eq!(
        a.c("proxy_register_shared_queue", &[q, qn, OUT_WORD]),
        Status::Ok
    );
    let token = a.word(OUT_WORD) as i32;
    let (q2, qn2) = b.put(b"events");
    assert_eq!(
        b.c("proxy_resolve_shared_queue", &[0, 0, q2, qn2, OUT_WORD]),
        Status::Ok
    );
    assert_eq!(b.word(OUT_WORD) as i32, token);
    let (x, xn) = b.put(b"nope");
    assert_eq!(
        b.c("proxy_resolve_shared_queue", &[0, 0, x, xn, OUT_WORD]),
        Status::NotFound
    );
    let (v, vn) = b.put(b"item");
    assert_eq!(
        b.c("proxy_enqueue_shared_queue", &[token, v, vn]),
        Status::Ok
    );
    assert_eq!(
        b.c("proxy_enqueue_shared_queue", &[token + 9, v, vn]),
        Status::NotFound
    );
    assert_eq!(
        b.w.pump().unwrap(),
        0,
        "the registrant is told, not the sender"
    );
    assert_eq!(a.w.pump().unwrap(), 1);
    assert_eq!(
        a.c("proxy_dequeue_shared_queue", &[token, OUT_PTR, OUT_SIZE]),
        Status::Ok
    );
    assert_eq!(a.out(), b"item");
    assert_eq!(
        a.c("proxy_dequeue_shared_queue", &[token, OUT_PTR, OUT_SIZE]),
        Status::Empty
    );
    assert_eq!(
        a.c(
            "proxy_dequeue_shared_queue",
            &[token + 9, OUT_PTR, OUT_SIZE]
        ),
        Status::NotFound
    );
}

#[test]
fn http_calls() {
    let mut t = T::new();
    let call = |t: &mut T, cluster: &str, headers: &[(&str, &str)]| {
        let (u, un) = t.put(cluster.as_bytes());
        let (h, hn) = t.put(&pairs::serialize(headers));
        t.c(
            "proxy_http_call",
            &[u, un, h, hn, 0, 0, 0, 0, 1000, OUT_WORD],
        )
    };
    let good = [
        (":method", "GET"),
        (":path", "/check"),
        (":authority", "auth"),
    ];
    assert_eq!(
        call(&mut t, "nowhere", &good),
        Status::BadArgument,
        "unknown cluster"
    );
    assert_eq!(
        call(&mut t, "auth", &good[..2]),
        Status::BadArgument,
        "no :authority"
    );
    assert_eq!(call(&mut t, "auth", &good), Status::Ok);
    let token = t.word(OUT_WORD);
    let calls = t.w.http_calls();
    assert_eq!(
        (calls.len(), calls[0].token, calls[0].upstream.as_str()),
        (1, token, "auth")
    );
    t.w.respond_http_call(token, &[(":status", "200")], b"ok", &[])
        .unwrap();
    assert!(t.w.http_calls().is_empty());
    let (u, un) = t.put(b"nowhere");
    assert_eq!(
        t.c(
            "proxy_grpc_call",
            &[u, un, 0, 0, 0, 0, 0, 0, 0, 0, 100, OUT_WORD]
        ),
        Status::ParseFailure
    );
    assert_eq!(t.c("proxy_grpc_cancel", &[1]), Status::NotFound);
}

const WASI_IMPORTS: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
"#;

fn wasi_module(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {WASI_IMPORTS}
          (memory (export "memory") 1)
          (data (i32.const 100) "hello from wasi\n")
          (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
          (func (export "proxy_abi_version_0_2_1"))
          (func (export "_initialize") {body}))"#
    ))
    .unwrap()
}

#[test]
fn a_wasip1_module_starts_like_in_envoy() {
    // stdout goes to the log at info, clocks and randomness work, allocation uses
    // proxy_on_memory_allocate.
    let wasm = wasi_module(
        r#"
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 16))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 16)))
        (drop (call $random (i32.const 32) (i32.const 8)))
        (drop (call $env_sizes (i32.const 40) (i32.const 44)))"#,
    );
    let host = Host::with_config(&wasm, HostConfig::default().env("A", "1")).unwrap();
    assert!(
        host.imports()
            .iter()
            .any(|i| i == "wasi_snapshot_preview1.fd_write")
    );
    let mut w = host.worker().unwrap();
    let logs = w.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (logs[0].level, logs[0].message.as_str()),
        (LogLevel::Info, "hello from wasi")
    );
    assert!(w.configure(b"").unwrap());
    let word = |at: usize| {
        u32::from_le_bytes(
            conformance::read_memory(&w, at, 4)
                .unwrap()
                .try_into()
                .unwrap(),
        )
    };
    assert_eq!(word(8), 16, "bytes written");
    assert_eq!((word(40), word(44)), (1, 4), "one variable, `A=1\\0`");

    // proc_exit ends the VM.
    let host = Host::new(&wasi_module("(call $exit (i32.const 3))")).unwrap();
    let err = host.worker().err().unwrap();
    assert!(format!("{err:#}").contains("proc_exit(3)"), "{err:#}");
}

#[test]
fn modules_envoy_would_refuse() {
    let no_abi = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) (i32.const 0)))"#).unwrap();
    assert!(Host::new(&no_abi).is_err());
    let no_malloc = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#,
    )
    .unwrap();
    let err = Host::new(&no_malloc).unwrap().worker().err().unwrap();
    assert!(format!("{err:#}").contains("malloc"), "{err:#}");
    let unknown_import = wat::parse_str(
        r#"(module (import "env" "proxy_teleport" (func (param i32) (result i32)))
            (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1"))
            (func (export "malloc") (param i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let err = Host::new(&unknown_import).unwrap().worker().err().unwrap();
    assert!(format!("{err:#}").contains("proxy_teleport"), "{err:#}");
    // Envoy lets `_initialize` log but not, say, set a tick period.
    let restricted = abi_module(
        "malloc",
        r#"(func (export "_initialize") (drop (call $proxy_set_tick_period_milliseconds (i32.const 5))))"#,
    );
    let err = Host::new(&restricted).unwrap().worker().err().unwrap();
    assert!(
        format!("{err:#}").contains("not allowed while the VM starts"),
        "{err:#}"
    );
}

#[test]
fn a_trap_fails_the_vm_and_later_calls_report_it() {
    let wasm = abi_module(
        "malloc",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)
           (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))"#,
    );
    let host = Host::new(&wasm).unwrap();
    let mut w = host.worker().unwrap();
    assert!(w.configure(b"").unwrap());
    let err = w.request().send_headers().unwrap_err();
    assert!(
        format!("{err:#}").contains("proxy_on_request_headers trapped"),
        "{err:#}"
    );
    assert!(w.failure().is_some());
    assert!(w.request().send_headers().is_err());
}
