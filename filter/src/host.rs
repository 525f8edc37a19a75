//! What the engine needs of the proxy-wasm host: shared data, metrics, the clock.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::Context;
use proxy_wasm::types::{MetricType, Status};
use serin_policy::catalogue::{Catalogue, Kind};
use serin_policy::{Rewrite, Update};

pub fn now_ms(ctx: &dyn Context) -> u64 {
    ctx.get_current_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Attempts at a compare-and-swap before giving up until the next tick.
const CAS_ATTEMPTS: usize = 8;

/// Proxy-wasm shared data: process-wide, shared by every worker's VM, updated with CAS.
pub struct SharedData;

impl serin_policy::SharedData for SharedData {
    fn update(&mut self, key: &str, f: &mut Rewrite<'_>) -> bool {
        for _ in 0..CAS_ATTEMPTS {
            let Ok((current, cas)) = hostcalls::get_shared_data(key) else {
                return false;
            };
            let Some(bytes) = f(current.as_deref()) else {
                return false;
            };
            match hostcalls::set_shared_data(key, Some(&bytes), cas) {
                Ok(()) => return true,
                Err(Status::CasMismatch) => continue,
                Err(e) => {
                    log::warn!("serin: cannot write shared data `{key}`: {e:?}");
                    return false;
                }
            }
        }
        log::warn!("serin: shared data `{key}` kept changing; trying again next tick");
        false
    }

    fn read(&mut self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_shared_data(key).ok()?.0
    }
}

/// Envoy's ids for the catalogue's series, in its order.
pub struct Metrics(Vec<u32>);

impl Metrics {
    pub fn define(catalogue: &Catalogue) -> Metrics {
        let ids = catalogue.series.iter().map(|s| {
            let kind = match s.family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let name = s.tagged_name();
            hostcalls::define_metric(kind, &name).unwrap_or_else(|e| {
                log::warn!("serin: cannot define metric `{name}`: {e:?}");
                u32::MAX
            })
        });
        Metrics(ids.collect())
    }

    pub fn update(&self, series: usize, update: Update) {
        let Some(&id) = self.0.get(series) else {
            return;
        };
        let _ = match update {
            Update::Add(n) => hostcalls::increment_metric(id, n as i64),
            Update::Record(v) => hostcalls::record_metric(id, v),
        };
    }
}
