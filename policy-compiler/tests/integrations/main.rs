//! `serin emit`, `serin package` and `serin import`, each artefact checked by its consumer: the
//! real Envoy (`--mode validate`, which also loads filter.wasm and runs its `on_configure` on the
//! plan), the Istio / Argo Rollouts / Flagger CRD schemas in `../shared/schemas/` (with a JSON
//! Schema validator, strict about unknown fields as `kubectl apply` is), `promtool` when it is
//! installed, Grafana's dashboard model (`@grafana/schema`'s types, with `tsc --strict`), and the
//! compiler itself for imported policies.

mod common;
mod envoy;
mod grafana;
mod import;
mod istio;
mod observability;
mod package;
