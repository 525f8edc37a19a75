//! The plan's metric catalogue as Envoy metrics, defined in `config_new` (Envoy freezes metric
//! creation afterwards). Counters and gauges, added once a tick, are one metric per family with
//! real labels, each catalogue series that metric with its label values. The latency histogram,
//! recorded on every response, is one unlabelled histogram per series, its labels in the name
//! (Istio's convention, as the proxy-wasm filter writes them) for the bootstrap's `stats_tags` to
//! cut out: Envoy 1.40 builds a labelled metric's tag set on every call, which cost 3.2 k
//! instructions a request for the split (`docs/perf-log.md`, 2026-12-08), and an unlabelled one
//! is recorded by its id.

use serin_policy::Update;
use serin_policy::catalogue::{Catalogue, Family, Kind, PANICS};

use crate::abi::{self, EnvoyPtr, METRICS_SUCCESS, ModuleBuffer, log};

pub struct Metrics {
    /// Per catalogue series: its metric id (`None` when Envoy refused to define it), kind and
    /// label values (none for a histogram, whose labels are in its name).
    series: Vec<(Option<usize>, Kind, Vec<String>)>,
    panics: Option<usize>,
}

impl Metrics {
    /// Define every family the catalogue uses, and `serin_panics_total`. Main thread, in
    /// `config_new`.
    pub fn define(config: EnvoyPtr, catalogue: &Catalogue) -> Metrics {
        let mut families: Vec<(Family, Option<usize>)> = Vec::new();
        let mut series = Vec::with_capacity(catalogue.series.len());
        for s in &catalogue.series {
            if s.family.kind == Kind::Histogram {
                // Recorded on every response: a histogram of its own per series, without labels.
                let id = define_unlabelled(config, &s.native_tagged_name());
                series.push((id, Kind::Histogram, Vec::new()));
                continue;
            }
            let id = match families.iter().find(|(f, _)| *f == s.family) {
                Some((_, id)) => *id,
                None => {
                    let id = define(config, s.family);
                    families.push((s.family, id));
                    id
                }
            };
            let values = s.labels.iter().map(|(_, v)| v.clone()).collect();
            series.push((id, s.family.kind, values));
        }
        Metrics {
            series,
            panics: define(config, PANICS),
        }
    }

    /// A tally or gauge from [`serin_policy::Engine::flush`], on the main thread.
    pub fn flush(&self, config: EnvoyPtr, series: usize, update: Update) {
        let Some((Some(id), kind, values)) = self.series.get(series) else {
            return;
        };
        with_labels(values, |labels, n| {
            // SAFETY: main thread; the config and the label buffers are valid for the call.
            unsafe {
                match (kind, update) {
                    (Kind::Counter, Update::Add(v)) => {
                        abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                            config, *id, labels, n, v,
                        )
                    }
                    (Kind::Gauge, Update::Record(v)) => {
                        abi::envoy_dynamic_module_callback_http_filter_config_set_gauge(
                            config, *id, labels, n, v,
                        )
                    }
                    _ => METRICS_SUCCESS,
                }
            }
        });
    }

    /// A latency sample, recorded on the stream's worker.
    pub fn record(&self, filter: EnvoyPtr, series: usize, value: u64) {
        let Some((Some(id), Kind::Histogram, values)) = self.series.get(series) else {
            return;
        };
        with_labels(values, |labels, n| {
            // SAFETY: the stream's own hook; the label buffers are valid for the call.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_record_histogram_value(
                    filter, *id, labels, n, value,
                )
            }
        });
    }

    pub fn count_panics(&self, config: EnvoyPtr, n: u64) {
        if let (Some(id), true) = (self.panics, n > 0) {
            // SAFETY: main thread; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    config,
                    id,
                    std::ptr::null(),
                    0,
                    n,
                )
            };
        }
    }
}

/// Label values as the ABI's buffer array; a series has at most four labels.
fn with_labels(values: &[String], f: impl FnOnce(*const ModuleBuffer, usize) -> u32) {
    let mut buffers = [ModuleBuffer::NULL; 4];
    let n = values.len().min(buffers.len());
    for (b, v) in buffers.iter_mut().zip(values) {
        *b = ModuleBuffer::of(v.as_bytes());
    }
    f(buffers.as_ptr(), n);
}

/// A histogram without labels, `name` carrying its labels in Istio's convention.
fn define_unlabelled(config: EnvoyPtr, name: &str) -> Option<usize> {
    let mut id = 0usize;
    // SAFETY: main thread in config_new; the name outlives the call.
    let result = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_define_histogram(
            config,
            ModuleBuffer::of(name.as_bytes()),
            std::ptr::null(),
            0,
            &mut id,
        )
    };
    if result != METRICS_SUCCESS {
        log(
            abi::LOG_WARN,
            &format!("serin: cannot define metric `{name}`: {result}"),
        );
        return None;
    }
    Some(id)
}

fn define(config: EnvoyPtr, family: Family) -> Option<usize> {
    let labels: Vec<ModuleBuffer> = family
        .labels
        .iter()
        .map(|l| ModuleBuffer::of(l.as_bytes()))
        .collect();
    let name = ModuleBuffer::of(family.native_name().as_bytes());
    let mut id = 0usize;
    let define = match family.kind {
        Kind::Counter => abi::envoy_dynamic_module_callback_http_filter_config_define_counter,
        Kind::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
        Kind::Histogram => abi::envoy_dynamic_module_callback_http_filter_config_define_histogram,
    };
    // SAFETY: main thread in config_new; the buffers outlive the call.
    let result = unsafe { define(config, name, labels.as_ptr(), labels.len(), &mut id) };
    if result != METRICS_SUCCESS {
        log(
            abi::LOG_WARN,
            &format!("serin: cannot define metric `{}`: {result}", family.name),
        );
        return None;
    }
    Some(id)
}
