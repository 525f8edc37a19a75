//! Filter behaviour through the real `filter.wasm`, run by the proxy-wasm host as Envoy runs it.
//! The module comes from `SERIN_FILTER_WASM`, else `target/filter.wasm` (`cargo xtask wasm`).
//! And the host's own conformance to the ABI (`abi_conformance`, with small test modules), in
//! this binary too, since each test binary links wasmtime anew.

mod abi_conformance;
mod differential;
mod filter;
mod rollout;
mod split;
mod support;
