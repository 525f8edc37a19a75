//! Filter behaviour through the real `filter.wasm` in the proxy-wasm host.

mod support;
mod smoke {
    use super::support::*;
    #[test]
    fn smoke() {
        let host = host();
        println!("{:?}", host.imports());
        let mut w = host.worker().unwrap();
        w.set_trace(true);
        let ok = w.configure(split_plan(5000).to_json()).unwrap();
        println!("{}", w.log_text());
        assert!(ok);
        let mut s = w.request().header("x-user-id", "42");
        let a = s.send_headers().unwrap();
        println!("{a:?} {:?}", s.request_headers());
        s.done().unwrap();
    }
}
