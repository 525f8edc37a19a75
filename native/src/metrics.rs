//! The plan's metric catalogue as Envoy metrics with real labels: one metric per family, defined
//! in `config_new` (Envoy freezes metric creation afterwards), and each catalogue series as that
//! metric with its label values.

use serin_policy::Update;
use serin_policy::catalogue::{Catalogue, Family, Kind, PANICS};

use crate::abi::{self, EnvoyPtr, METRICS_SUCCESS, ModuleBuffer, log};

pub struct Metrics {
    /// Per catalogue series: its family's metric id (`None` when Envoy refused to define it),
    /// kind and label values.
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
