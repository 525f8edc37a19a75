//! `decide()` allocates nothing, neither `Plan::decide` nor `Router::decide` (the filter's).
//! A counting global allocator must own its test binary, which is why this file is not a
//! module of `tests/it`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use serin_policy::{HeaderList, PLAN_FORMAT, Plan, Router};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only a
// thread-local integer.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn decide_does_not_allocate() {
    let json = format!(
        r#"{{"format":{PLAN_FORMAT},"policy":"p","digest":"","routing_header":"x-serin-arm",
        "arms":[{{"name":"stable","value":"stable"}},{{"name":"canary","value":"canary"}}],"stable":0,
        "rules":[
          {{"name":"testers","all":[{{"header":{{"name":"x-tester","test":{{"exact":"yes"}}}}}}],"action":{{"pin":{{"arm":1}}}}}},
          {{"name":"beta","all":[{{"cookie":{{"name":"beta","test":"present"}}}},{{"query":{{"name":"m","test":{{"any_of":["v1","v2"]}}}}}}],"action":{{"pin":{{"arm":1}}}}}},
          {{"name":"office","all":[{{"source_ip":{{"any_of":["10.0.0.0/8"]}}}},{{"path_prefix":{{"any_of":["/admin"]}}}},{{"method":{{"any_of":["POST"]}}}}],"action":{{"pin":{{"arm":1}}}}}}
        ],
        "default":{{"split":{{"split":0}}}},
        "splits":[{{"key":[{{"header":"x-user-id"}},{{"cookie":"uid"}},{{"query":"u"}}],"hash":{{"prefix":"fraud:","seed":42,"reduce":{{"mul_shift":{{"scale":10000}}}}}},
          "lanes":[{{"arm":1,"start":0,"end":500}}],"rest":0,"fallback":{{"random_sticky":{{"cookie":"serin-id","max_age_seconds":60}}}}}}],
        "override":{{"header":"x-serin-force","token":{{"header":"x-serin-token","value":"t"}}}},
        "shadow":{{"header":"x-serin-shadow","share":1000,"seed":9}}}}"#
    );
    let plan = Plan::from_json(json.as_bytes()).expect("valid plan");
    let router = Router::new(plan.clone());
    let requests: [&[(&str, &str)]; 4] = [
        &[
            (":path", "/predict?u=9&m=v3"),
            (":method", "POST"),
            ("cookie", "a=1; uid=77"),
            ("x-user-id", "u-1"),
        ],
        &[(":path", "/predict"), ("cookie", "uid=abc")],
        &[("x-serin-force", "canary"), ("x-serin-token", "wrong")],
        &[],
    ];
    for headers in requests {
        let mut request = HeaderList::new(headers);
        request.source_ip = Some("192.0.2.1".parse().unwrap());
        let mut decision = None;
        let n = allocations_during(|| decision = Some(plan.decide(&request)));
        assert_eq!(
            n, 0,
            "decide allocated {n} times for {headers:?} → {decision:?}"
        );
        let n = allocations_during(|| decision = Some(router.decide(&request)));
        assert_eq!(
            n, 0,
            "the router allocated {n} times for {headers:?} → {decision:?}"
        );
    }
}
