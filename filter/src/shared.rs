//! Proxy-wasm shared data: process-wide, shared by every worker's VM, updated with CAS.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::Context;
use proxy_wasm::types::Status;

/// Attempts at a compare-and-swap before giving up until the next tick.
const CAS_ATTEMPTS: usize = 8;

pub fn now_ms(ctx: &dyn Context) -> u64 {
    ctx.get_current_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Read-modify-write `key`: `update` gets the current bytes (if any) and returns the new ones,
/// or `None` to leave the value as it is. Retries when another worker wrote in between.
/// Returns what `update` returned on the write that stuck.
pub fn update<T>(
    key: &str,
    mut update: impl FnMut(Option<&[u8]>) -> Option<(Vec<u8>, T)>,
) -> Option<T> {
    for _ in 0..CAS_ATTEMPTS {
        let (current, cas) = hostcalls::get_shared_data(key).ok()?;
        let (bytes, result) = update(current.as_deref())?;
        match hostcalls::set_shared_data(key, Some(&bytes), cas) {
            Ok(()) => return Some(result),
            Err(Status::CasMismatch) => continue,
            Err(e) => {
                log::warn!("serin: cannot write shared data `{key}`: {e:?}");
                return None;
            }
        }
    }
    log::warn!("serin: shared data `{key}` kept changing; trying again next tick");
    None
}

pub fn read(key: &str) -> Option<Vec<u8>> {
    hostcalls::get_shared_data(key).ok()?.0
}
