//! Filter behaviour through the real `filter.wasm`, run by the proxy-wasm host as Envoy runs it.
//! The module comes from `SERIN_FILTER_WASM`, else `target/filter.wasm` (`cargo xtask wasm`).

mod differential;
mod filter;
mod rollout;
mod split;
mod support;
