//! The `env.proxy_*` functions, with the status codes Envoy 1.40 returns (its
//! `source/extensions/common/wasm/context.cc` on top of proxy-wasm-cpp-host's `exports.cc`).

use std::borrow::Cow;

use wasmtime::Linker;

use crate::abi::{BufferType, LogLevel, MapType, MetricType, Status, StreamType};
use crate::headers::HeaderMap;
use crate::imports::{Call, Ctx, Imports};
use crate::pairs;
use crate::properties;
use crate::shared::MetricValue;
use crate::state::{ContextKind, ForeignCallRecord, HostState, HttpCall, LocalResponse};

type WResult<T> = wasmtime::Result<T>;

// ---------------------------------------------------------------------------------------------
// Guest memory.

/// `len` bytes at `ptr` in `memory`, or `InvalidMemoryAccess`.
fn slice(memory: &[u8], ptr: i32, len: i32) -> Result<&[u8], Status> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len == 0 {
        return Ok(&[]);
    }
    let end = ptr.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    memory.get(ptr..end).ok_or(Status::InvalidMemoryAccess)
}

/// Guest memory beside the host state, so that a host function works on its arguments where
/// they are instead of copying them out of the guest first.
fn memory_and_state<'a>(caller: &'a mut Ctx<'_>) -> (&'a [u8], &'a mut HostState) {
    match caller.data().memory {
        Some(memory) => {
            let (bytes, state) = memory.data_and_store_mut(caller);
            (bytes, state)
        }
        None => (&[], caller.data_mut()),
    }
}

/// Read `len` bytes at `ptr`, or `InvalidMemoryAccess`.
pub(crate) fn read(caller: &Ctx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let memory = caller.data().memory.map_or(&[][..], |m| m.data(caller));
    slice(memory, ptr, len).map(<[u8]>::to_vec)
}

pub(crate) fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let ptr = ptr as u32 as usize;
    let mem = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let end = ptr
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data_mut(caller)
        .get_mut(ptr..end)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn write_u32(caller: &mut Ctx<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write(caller, ptr, &v.to_le_bytes())
}

pub(crate) fn write_u64(caller: &mut Ctx<'_>, ptr: i32, v: u64) -> Result<(), Status> {
    write(caller, ptr, &v.to_le_bytes())
}

/// Copy `bytes` into memory the guest allocates, and write its address and size, as Envoy's
/// `copyToPointerSize` does (nothing is allocated for an empty value: address 0, size 0).
/// A trap in the guest's allocator comes back as `Err`.
pub(crate) fn copy_out(
    caller: &mut Ctx<'_>,
    bytes: &[u8],
    ptr_ptr: i32,
    size_ptr: i32,
) -> WResult<Status> {
    let mut addr = 0u32;
    if !bytes.is_empty() {
        let Some(alloc) = caller.data().alloc.clone() else {
            return Ok(Status::InvalidMemoryAccess);
        };
        addr = alloc.call(&mut *caller, bytes.len() as i32)? as u32;
        if addr == 0 {
            return Ok(Status::InvalidMemoryAccess);
        }
    }
    let Some(memory) = caller.data().memory else {
        return Ok(Status::InvalidMemoryAccess);
    };
    // One borrow of guest memory for the value and both out-parameters.
    let memory = memory.data_mut(caller);
    let mut put = |at: u32, what: &[u8]| {
        let at = at as usize;
        match memory.get_mut(at..at.saturating_add(what.len())) {
            Some(to) => {
                to.copy_from_slice(what);
                true
            }
            None => false,
        }
    };
    let written = put(addr, bytes)
        && put(ptr_ptr as u32, &addr.to_le_bytes())
        && put(size_ptr as u32, &(bytes.len() as u32).to_le_bytes());
    Ok(if written {
        Status::Ok
    } else {
        Status::InvalidMemoryAccess
    })
}

/// [`copy_out`] of bytes the host assembles first (a header's value, a serialized map, part of
/// a body), from guest memory (the arguments) and the host state, through a buffer the VM's host state keeps for this, so that handing a value to
/// the guest costs no allocation on the host side. The bytes stay in `scratch` afterwards, for
/// the trace line.
fn copy_out_assembled(
    caller: &mut Ctx<'_>,
    ptr_ptr: i32,
    size_ptr: i32,
    assemble: impl FnOnce(&[u8], &HostState, &mut Vec<u8>) -> Result<(), Status>,
) -> WResult<Status> {
    let mut bytes = std::mem::take(&mut caller.data_mut().scratch);
    bytes.clear();
    let (memory, state) = memory_and_state(caller);
    let st = match assemble(memory, state, &mut bytes) {
        Ok(()) => copy_out(caller, &bytes, ptr_ptr, size_ptr),
        Err(st) => Ok(st),
    };
    caller.data_mut().scratch = bytes;
    st
}

// ---------------------------------------------------------------------------------------------
// Tracing.

fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() > 120 {
        // Cut at a character boundary: lossy text of binary values has multi-byte characters.
        let head: String = s.chars().take(120).collect();
        format!("{head:?}…({} bytes)", bytes.len())
    } else {
        format!("{s:?}")
    }
}

macro_rules! try_status {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(status) => return Ok(Err(status)),
        }
    };
}

/// Run a host function body that returns `Result<Status-ish>`; statuses pass through.
fn finish(r: WResult<Result<Status, Status>>) -> WResult<Status> {
    r.map(|r| r.unwrap_or_else(|s| s))
}

// ---------------------------------------------------------------------------------------------
// Buffers.

/// Envoy's buffer `ty` as the current callback sees it, to read; `None` when Envoy has none.
fn buffer(state: &HostState, ty: BufferType) -> Option<&[u8]> {
    let stream = state.stream();
    let live = stream.map(|s| s.live).unwrap_or_default();
    Some(match (ty, stream) {
        (BufferType::CallData, _) => &state.call_data,
        (BufferType::VmConfiguration, _) => &state.config.vm_config,
        (BufferType::PluginConfiguration, _) => state.plugin_config.as_deref()?,
        (BufferType::HttpRequestBody, Some(s)) if live.request_body => &s.request_body,
        (BufferType::HttpResponseBody, Some(s)) if live.response_body => &s.response_body,
        // Envoy hands out an empty buffer here, which reads as empty and refuses writes.
        (
            BufferType::HttpRequestBody
            | BufferType::HttpResponseBody
            | BufferType::DownstreamData
            | BufferType::UpstreamData
            | BufferType::GrpcReceiveBuffer,
            _,
        ) => &[],
        (BufferType::HttpCallResponseBody, _) => &state.http_call_response.as_ref()?.body,
    })
}

/// The buffer `ty`, to change: only a body while its callback runs. `NotFound` where Envoy has
/// no buffer, `BadArgument` where it has a read-only one.
fn buffer_mut(state: &mut HostState, ty: BufferType) -> Result<&mut Vec<u8>, Status> {
    if buffer(state, ty).is_none() {
        return Err(Status::NotFound);
    }
    let s = state.stream_mut().ok_or(Status::BadArgument)?;
    match ty {
        BufferType::HttpRequestBody if s.live.request_body => Ok(&mut s.request_body),
        BufferType::HttpResponseBody if s.live.response_body => Ok(&mut s.response_body),
        _ => Err(Status::BadArgument),
    }
}

// ---------------------------------------------------------------------------------------------

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> WResult<()> {
    // Envoy lets the module log while it starts, and its Emscripten and pthread shims work
    // then too.
    let mut anytime = Imports::during_start(linker, "env");
    anytime.func(
        "proxy_log",
        |mut c: Call<'_>, level: i32, ptr: i32, len: i32| {
            let Some(level) = LogLevel::from_code(level) else {
                return c.ret(|| format!("{level}"), Status::BadArgument);
            };
            let msg = match read(&c, ptr, len) {
                Ok(m) => m,
                Err(s) => return c.ret(String::new, s),
            };
            c.data_mut()
                .log(level, String::from_utf8_lossy(&msg).into_owned());
            Ok(Status::Ok.code())
        },
    )?;
    anytime.func(
        "emscripten_notify_memory_growth",
        |_c: Call<'_>, _idx: i32| Ok(()),
    )?;
    anytime.func("pthread_equal", |_c: Call<'_>, a: i32, b: i32| {
        Ok(i32::from(a == b))
    })?;

    let mut env = Imports::new(linker, "env");

    env.func("proxy_get_log_level", |mut c: Call<'_>, ptr: i32| {
        let level = c.data().config.log_level as u32;
        let st = write_u32(&mut c, ptr, level).err().unwrap_or(Status::Ok);
        c.ret(|| format!("-> {level}"), st)
    })?;

    env.func(
        "proxy_get_current_time_nanoseconds",
        |mut c: Call<'_>, ptr: i32| {
            let (wall, _) = c.data().now();
            let st = write_u64(&mut c, ptr, wall).err().unwrap_or(Status::Ok);
            c.ret(|| format!("-> {wall}"), st)
        },
    )?;

    env.func(
        "proxy_set_tick_period_milliseconds",
        |mut c: Call<'_>, period: i32| {
            let period = period as u32;
            let (_, mono) = c.data().now();
            let d = c.data_mut();
            d.tick_period_ms = period;
            d.next_tick_ns = (period > 0).then(|| mono + u64::from(period) * 1_000_000);
            c.ret(|| format!("{period}"), Status::Ok)
        },
    )?;

    env.func(
        "proxy_get_configuration",
        |mut c: Call<'_>, pp: i32, sp: i32| {
            let d = c.data();
            let bytes = d
                .plugin_config
                .clone()
                .unwrap_or_else(|| d.config.vm_config.clone());
            let st = copy_out(&mut c, &bytes, pp, sp)?;
            c.ret(|| show(&bytes), st)
        },
    )?;

    env.func(
        "proxy_get_buffer_bytes",
        |mut c: Call<'_>, ty: i32, start: i32, max: i32, pp: i32, sp: i32| {
            let args = || format!("{ty}, {start}, {max}");
            let Some(ty) = BufferType::from_code(ty) else {
                return c.ret(args, Status::BadArgument);
            };
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            let st = copy_out_assembled(&mut c, pp, sp, |_, d, out| {
                let bytes = buffer(d, ty).ok_or(Status::NotFound)?;
                if start < bytes.len() {
                    out.extend_from_slice(
                        &bytes[start..bytes.len().min(start.saturating_add(max))],
                    );
                }
                Ok(())
            })?;
            c.ret(
                || format!("{ty:?}, {start}, {max} -> {}", show(&c.data().scratch)),
                st,
            )
        },
    )?;

    env.func(
        "proxy_get_buffer_status",
        |mut c: Call<'_>, ty: i32, lp: i32, fp: i32| {
            let Some(ty) = BufferType::from_code(ty) else {
                return c.ret(|| format!("{ty}"), Status::BadArgument);
            };
            let Some(len) = buffer(c.data(), ty).map(<[u8]>::len) else {
                return c.ret(|| format!("{ty:?}"), Status::NotFound);
            };
            let st = write_u32(&mut c, lp, len as u32)
                .and_then(|_| write_u32(&mut c, fp, 0))
                .err()
                .unwrap_or(Status::Ok);
            c.ret(|| format!("{ty:?} -> {len}"), st)
        },
    )?;

    env.func(
        "proxy_set_buffer_bytes",
        |mut c: Call<'_>, ty: i32, start: i32, size: i32, dp: i32, ds: i32| {
            let args = || format!("{ty}, {start}, {size}");
            let Some(ty) = BufferType::from_code(ty) else {
                return c.ret(args, Status::BadArgument);
            };
            // Envoy looks for the buffer before it reads the data.
            if buffer(c.data(), ty).is_none() {
                return c.ret(args, Status::NotFound);
            }
            let data = match read(&c, dp, ds) {
                Ok(d) => d,
                Err(s) => return c.ret(args, s),
            };
            let (start, size) = (start as u32 as usize, size as u32 as usize);
            let st = match buffer_mut(c.data_mut(), ty) {
                Err(st) => st,
                // Envoy's Buffer::copyFrom: prepend, replace all, or append; nothing else.
                Ok(b) if start == 0 && size == 0 => {
                    b.splice(0..0, data.iter().copied());
                    Status::Ok
                }
                Ok(b) if start == 0 && size >= b.len() => {
                    b.clone_from(&data);
                    Status::Ok
                }
                Ok(b) if start != 0 && start >= b.len() => {
                    b.extend_from_slice(&data);
                    Status::Ok
                }
                Ok(_) => Status::BadArgument,
            };
            c.ret(|| format!("{ty:?}, {start}, {size}, {}", show(&data)), st)
        },
    )?;

    env.func(
        "proxy_get_header_map_pairs",
        |mut c: Call<'_>, ty: i32, pp: i32, sp: i32| {
            let Some(ty) = MapType::from_code(ty) else {
                return c.ret(|| format!("{ty}"), Status::BadArgument);
            };
            let st = copy_out_assembled(&mut c, pp, sp, |_, d, out| {
                // A missing map reads as an empty one, and an empty one as nothing at all.
                if let Some(map) = d.const_map(ty).filter(|m| !m.is_empty()) {
                    map.serialize_into(out);
                }
                Ok(())
            })?;
            c.ret(|| format!("{ty:?} -> {} bytes", c.data().scratch.len()), st)
        },
    )?;

    env.func(
        "proxy_set_header_map_pairs",
        |mut c: Call<'_>, ty: i32, p: i32, s: i32| {
            let Some(ty) = MapType::from_code(ty) else {
                return c.ret(|| format!("{ty}"), Status::BadArgument);
            };
            let data = match read(&c, p, s) {
                Ok(d) => d,
                Err(st) => return c.ret(|| format!("{ty:?}"), st),
            };
            let pairs = pairs::deserialize(&data);
            let st = match c.data_mut().map_mut(ty) {
                None => Status::BadArgument,
                Some(map) => {
                    map.clear();
                    for (k, v) in &pairs {
                        map.add(k, v);
                    }
                    Status::Ok
                }
            };
            c.ret(|| format!("{ty:?}, {} pairs", pairs.len()), st)
        },
    )?;

    env.func(
        "proxy_get_header_map_value",
        |mut c: Call<'_>, ty: i32, kp: i32, ks: i32, vpp: i32, vsp: i32| {
            let Some(ty) = MapType::from_code(ty) else {
                return c.ret(|| format!("{ty}"), Status::BadArgument);
            };
            let st = copy_out_assembled(&mut c, vpp, vsp, |memory, d, out| {
                let key = slice(memory, kp, ks)?;
                let value = match d.const_map(ty) {
                    // In the access log a map the stream never had (no response yet) has no
                    // such header.
                    None if d.stream().is_some_and(|s| s.access_log) => Err(Status::NotFound),
                    None => Err(Status::BadArgument),
                    Some(map) => map.get(key).ok_or(Status::NotFound),
                };
                out.extend_from_slice(value?);
                Ok(())
            })?;
            c.ret(
                || {
                    let key = read(&c, kp, ks).unwrap_or_default();
                    let value = &c.data().scratch;
                    format!("{ty:?}, {} -> {}", show(&key), show(value))
                },
                st,
            )
        },
    )?;

    env.func(
        "proxy_replace_header_map_value",
        |c: Call<'_>, ty: i32, kp: i32, ks: i32, vp: i32, vs: i32| {
            set_header_map_value(c, ty, (kp, ks), (vp, vs), |m, k, v| m.replace(k, v))
        },
    )?;
    env.func(
        "proxy_add_header_map_value",
        |c: Call<'_>, ty: i32, kp: i32, ks: i32, vp: i32, vs: i32| {
            set_header_map_value(c, ty, (kp, ks), (vp, vs), |m, k, v| m.add(k, v))
        },
    )?;

    env.func(
        "proxy_remove_header_map_value",
        |mut c: Call<'_>, ty: i32, kp: i32, ks: i32| {
            let Some(ty) = MapType::from_code(ty) else {
                return c.ret(|| format!("{ty}"), Status::BadArgument);
            };
            let (memory, d) = memory_and_state(&mut c);
            let st = match slice(memory, kp, ks) {
                Err(st) => st,
                Ok(key) => match d.map_mut(ty) {
                    None => Status::BadArgument,
                    // Removing a key that is not there is fine.
                    Some(map) => {
                        map.remove(key);
                        Status::Ok
                    }
                },
            };
            c.ret(
                || format!("{ty:?}, {}", show(&read(&c, kp, ks).unwrap_or_default())),
                st,
            )
        },
    )?;

    env.func(
        "proxy_get_header_map_size",
        |mut c: Call<'_>, ty: i32, rp: i32| {
            let Some(ty) = MapType::from_code(ty) else {
                return c.ret(|| format!("{ty}"), Status::BadArgument);
            };
            let st = match c.data_mut().map_mut(ty).map(|m| m.byte_size()) {
                None => Status::BadArgument,
                Some(size) => write_u32(&mut c, rp, size as u32)
                    .err()
                    .unwrap_or(Status::Ok),
            };
            c.ret(|| format!("{ty:?}"), st)
        },
    )?;

    env.func(
        "proxy_get_property",
        |mut c: Call<'_>, pp: i32, ps: i32, vpp: i32, vsp: i32| {
            let st = copy_out_assembled(&mut c, vpp, vsp, |memory, d, out| {
                properties::property(d, slice(memory, pp, ps)?, out)
            })?;
            c.ret(
                || {
                    let path = show(&read(&c, pp, ps).unwrap_or_default());
                    let path = path.replace("\\0", ".").replace("\\u{0}", ".");
                    format!("{path} -> {}", show(&c.data().scratch))
                },
                st,
            )
        },
    )?;

    env.func(
        "proxy_set_property",
        |mut c: Call<'_>, pp: i32, ps: i32, vp: i32, vs: i32| {
            let (path, value) = match (read(&c, pp, ps), read(&c, vp, vs)) {
                (Ok(p), Ok(v)) => (p, v),
                _ => {
                    return c.ret(String::new, Status::InvalidMemoryAccess);
                }
            };
            // Only a stream has filter state to write into.
            let st = match c.data_mut().stream_mut() {
                None => Status::NotFound,
                Some(s) => {
                    s.filter_state.insert(path.clone(), value.clone());
                    Status::Ok
                }
            };
            c.ret(|| format!("{}, {}", show(&path), show(&value)), st)
        },
    )?;

    env.func(
        "proxy_get_shared_data",
        |mut c: Call<'_>, kp: i32, ks: i32, vpp: i32, vsp: i32, casp: i32| {
            let key = match read(&c, kp, ks) {
                Ok(k) => k,
                Err(st) => return c.ret(String::new, st),
            };
            let got = {
                let d = c.data();
                d.shared().get_data(&d.config.vm_id, &key)
            };
            let st = finish((|| {
                let (value, cas) = try_status!(got);
                let st = copy_out(&mut c, &value, vpp, vsp)?;
                if st != Status::Ok {
                    return Ok(Err(st));
                }
                Ok(write_u32(&mut c, casp, cas).map(|_| Status::Ok))
            })())?;
            c.ret(|| show(&key), st)
        },
    )?;

    env.func(
        "proxy_set_shared_data",
        |mut c: Call<'_>, kp: i32, ks: i32, vp: i32, vs: i32, cas: i32| {
            let (key, value) = match (read(&c, kp, ks), read(&c, vp, vs)) {
                (Ok(k), Ok(v)) => (k, v),
                _ => {
                    return c.ret(String::new, Status::InvalidMemoryAccess);
                }
            };
            let st = {
                let d = c.data_mut();
                let vm_id = d.config.vm_id.clone();
                d.shared()
                    .set_data(&vm_id, &key, &value, cas as u32)
                    .err()
                    .unwrap_or(Status::Ok)
            };
            c.ret(
                || format!("{}, {}, cas={cas}", show(&key), show(&value)),
                st,
            )
        },
    )?;

    env.func(
        "proxy_register_shared_queue",
        |mut c: Call<'_>, np: i32, ns: i32, tp: i32| {
            let name = match read(&c, np, ns) {
                Ok(n) => n,
                Err(st) => return c.ret(String::new, st),
            };
            let token = {
                let d = c.data();
                // `proxy_on_queue_ready` goes to the root context.
                let owner = (d.worker, d.root_context);
                d.shared().register_queue(&d.config.vm_id, &name, owner)
            };
            let st = write_u32(&mut c, tp, token).err().unwrap_or(Status::Ok);
            c.ret(|| format!("{} -> {token}", show(&name)), st)
        },
    )?;

    env.func(
        "proxy_resolve_shared_queue",
        |mut c: Call<'_>, vp: i32, vs: i32, np: i32, ns: i32, tp: i32| {
            let (vm_id, name) = match (read(&c, vp, vs), read(&c, np, ns)) {
                (Ok(v), Ok(n)) => (v, n),
                _ => {
                    return c.ret(String::new, Status::InvalidMemoryAccess);
                }
            };
            let token = {
                let d = c.data();
                let vm_id = if vm_id.is_empty() {
                    d.config.vm_id.clone()
                } else {
                    String::from_utf8_lossy(&vm_id).into_owned()
                };
                d.shared().resolve_queue(&vm_id, &name)
            };
            let st = match token {
                None => Status::NotFound,
                Some(t) => write_u32(&mut c, tp, t).err().unwrap_or(Status::Ok),
            };
            c.ret(|| format!("{}, {}", show(&vm_id), show(&name)), st)
        },
    )?;

    env.func(
        "proxy_dequeue_shared_queue",
        |mut c: Call<'_>, token: i32, vpp: i32, vsp: i32| {
            let got = c.data().shared().dequeue(token as u32);
            let st = match got {
                Err(st) => st,
                Ok(v) => copy_out(&mut c, &v, vpp, vsp)?,
            };
            c.ret(|| format!("{token}"), st)
        },
    )?;

    env.func(
        "proxy_enqueue_shared_queue",
        |c: Call<'_>, token: i32, vp: i32, vs: i32| {
            let st = match read(&c, vp, vs) {
                Err(st) => st,
                Ok(v) => c
                    .data()
                    .shared()
                    .enqueue(token as u32, &v)
                    .err()
                    .unwrap_or(Status::Ok),
            };
            c.ret(|| format!("{token}"), st)
        },
    )?;

    env.func("proxy_continue_stream", |mut c: Call<'_>, ty: i32| {
        let st = continue_stream(c.data_mut(), ty);
        c.ret(|| format!("{ty}"), st)
    })?;
    env.func("proxy_continue_request", |mut c: Call<'_>| {
        let st = continue_stream(c.data_mut(), StreamType::HttpRequest as i32);
        c.ret(String::new, st)
    })?;
    env.func("proxy_continue_response", |mut c: Call<'_>| {
        let st = continue_stream(c.data_mut(), StreamType::HttpResponse as i32);
        c.ret(String::new, st)
    })?;

    env.func("proxy_close_stream", |mut c: Call<'_>, ty: i32| {
        let st = match StreamType::from_code(ty) {
            None => Status::BadArgument,
            Some(t) => {
                if let Some(s) = c.data_mut().stream_mut() {
                    s.closed.push(t);
                }
                Status::Ok
            }
        };
        c.ret(|| format!("{ty}"), st)
    })?;

    env.func("proxy_clear_route_cache", |mut c: Call<'_>| {
        if let Some(s) = c.data_mut().stream_mut() {
            s.route_cache_clears += 1;
        }
        c.ret(String::new, Status::Ok)
    })?;

    env.func(
        "proxy_send_local_response",
        |mut c: Call<'_>,
         code: i32,
         dp: i32,
         ds: i32,
         bp: i32,
         bs: i32,
         hp: i32,
         hs: i32,
         grpc: i32| {
            let (details, body, headers) =
                match (read(&c, dp, ds), read(&c, bp, bs), read(&c, hp, hs)) {
                    (Ok(d), Ok(b), Ok(h)) => (d, b, h),
                    _ => {
                        return c.ret(String::new, Status::InvalidMemoryAccess);
                    }
                };
            let response = LocalResponse {
                status: code as u32,
                details: String::from_utf8_lossy(&details)
                    .chars()
                    .map(|ch| if ch.is_whitespace() { '_' } else { ch })
                    .collect(),
                body,
                headers: pairs::deserialize(&headers)
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(&k).to_ascii_lowercase(),
                            String::from_utf8_lossy(&v).into_owned(),
                        )
                    })
                    .collect(),
                grpc_status: (0..=16).contains(&grpc).then_some(grpc as u32),
            };
            let shown = format!("{code}, {:?}", response.details);
            // Outside a stream there is nobody to answer; Envoy still says Ok. A second reply
            // is Ok too: Envoy keeps sending the first, but the stream's details are the last
            // ones given (as the probe saw in Envoy 1.40).
            if let Some(s) = c.data_mut().stream_mut() {
                s.response_code_details = Some(response.details.clone());
                s.local_response.get_or_insert(response);
            }
            c.ret(|| shown, Status::Ok)
        },
    )?;

    env.func(
        "proxy_http_call",
        |mut c: Call<'_>,
         up: i32,
         us: i32,
         hp: i32,
         hs: i32,
         bp: i32,
         bs: i32,
         tp: i32,
         ts: i32,
         timeout: i32,
         tokp: i32| {
            let read_all = (
                read(&c, up, us),
                read(&c, hp, hs),
                read(&c, bp, bs),
                read(&c, tp, ts),
            );
            let (Ok(upstream), Ok(headers), Ok(body), Ok(trailers)) = read_all else {
                return c.ret(String::new, Status::InvalidMemoryAccess);
            };
            let upstream = String::from_utf8_lossy(&upstream).into_owned();
            let headers = HeaderMap::from_pairs(&pairs::deserialize(&headers));
            let trailers = HeaderMap::from_pairs(&pairs::deserialize(&trailers));
            // Verify the token's memory before anything happens, as Envoy does.
            if write_u32(&mut c, tokp, 0).is_err() {
                return c.ret(String::new, Status::InvalidMemoryAccess);
            }
            let d = c.data_mut();
            let st = if timeout < 0
                || !d.config.clusters.contains(&upstream)
                || [":path", ":method", ":authority"]
                    .iter()
                    .any(|h| headers.get(h).is_none())
            {
                Status::BadArgument
            } else {
                Status::Ok
            };
            let mut token = 0;
            if st == Status::Ok {
                token = d.next_http_call;
                d.next_http_call = d.next_http_call.wrapping_add(1);
                let context_id = d.root_context;
                d.http_calls.insert(
                    token,
                    HttpCall {
                        token,
                        upstream: upstream.clone(),
                        headers: headers.to_vec(),
                        body,
                        trailers: trailers.to_vec(),
                        timeout_ms: timeout as u32,
                        context_id,
                    },
                );
                let _ = write_u32(&mut c, tokp, token);
            }
            c.ret(|| format!("{upstream:?} -> {token}"), st)
        },
    )?;

    env.func(
        "proxy_grpc_call",
        |c: Call<'_>,
         sp: i32,
         ss: i32,
         _a: i32,
         _b: i32,
         _d: i32,
         _e: i32,
         _f: i32,
         _g: i32,
         _h: i32,
         _i: i32,
         _timeout: i32,
         _tokp: i32| {
            let st = grpc_target(&c, sp, ss);
            c.ret(String::new, st)
        },
    )?;
    env.func(
        "proxy_grpc_stream",
        |c: Call<'_>,
         sp: i32,
         ss: i32,
         _a: i32,
         _b: i32,
         _d: i32,
         _e: i32,
         _f: i32,
         _g: i32,
         _tokp: i32| {
            let st = grpc_target(&c, sp, ss);
            c.ret(String::new, st)
        },
    )?;
    env.func(
        "proxy_grpc_send",
        |c: Call<'_>, token: i32, _p: i32, _s: i32, _e: i32| {
            c.ret(|| format!("{token}"), Status::NotFound)
        },
    )?;
    env.func("proxy_grpc_cancel", |c: Call<'_>, token: i32| {
        c.ret(|| format!("{token}"), Status::NotFound)
    })?;
    env.func("proxy_grpc_close", |c: Call<'_>, token: i32| {
        c.ret(|| format!("{token}"), Status::NotFound)
    })?;

    env.func(
        "proxy_get_status",
        |mut c: Call<'_>, codep: i32, mpp: i32, msp: i32| {
            let (code, msg) = c.data().status.clone();
            let st = match write_u32(&mut c, codep, code) {
                Err(st) => st,
                Ok(()) => copy_out(&mut c, &msg, mpp, msp)?,
            };
            c.ret(|| format!("-> {code}, {}", show(&msg)), st)
        },
    )?;

    env.func("proxy_set_effective_context", |mut c: Call<'_>, id: i32| {
        let id = id as u32;
        let d = c.data_mut();
        let st = if d.contexts.contains_key(&id) {
            d.effective_context = id;
            Status::Ok
        } else {
            Status::BadArgument
        };
        c.ret(|| format!("{id}"), st)
    })?;

    env.func("proxy_done", |mut c: Call<'_>| {
        let d = c.data_mut();
        let st = if d.root_pending_done {
            d.root_pending_done = false;
            d.root_done = true;
            Status::Ok
        } else {
            Status::NotFound
        };
        c.ret(String::new, st)
    })?;

    env.func(
        "proxy_call_foreign_function",
        |mut c: Call<'_>, np: i32, ns: i32, ap: i32, asz: i32, rpp: i32, rsp: i32| {
            let (memory, d) = memory_and_state(&mut c);
            let (name, args) = match (slice(memory, np, ns), slice(memory, ap, asz)) {
                (Ok(name), Ok(args)) => (name, args),
                _ => {
                    return c.ret(String::new, Status::InvalidMemoryAccess);
                }
            };
            // The log keeps a known function's name without allocating: the filter clears
            // the route cache on every request it routes.
            let (name, known): (Cow<'static, str>, bool) = match name {
                b"clear_route_cache" => (Cow::Borrowed("clear_route_cache"), true),
                other => (String::from_utf8_lossy(other).into_owned().into(), false),
            };
            let (args, context_id) = (args.to_vec(), d.context());
            let mut status = Status::NotFound;
            if known {
                // Envoy >= 1.33: clears the stream's route cache; no results.
                if let Some(s) = d.stream_mut() {
                    s.route_cache_clears += 1;
                }
                status = Status::Ok;
                for at in [rpp, rsp] {
                    if at != 0 && write_u32(&mut c, at, 0).is_err() {
                        status = Status::InvalidMemoryAccess;
                    }
                }
            }
            c.data_mut().foreign_calls.push(ForeignCallRecord {
                context_id,
                name,
                args,
                status,
            });
            let shown = |c: &Call<'_>| {
                let last = c.data().foreign_calls.last();
                format!("{:?}", last.map_or("", |call| &call.name))
            };
            c.ret(|| shown(&c), status)
        },
    )?;

    env.func(
        "proxy_define_metric",
        |mut c: Call<'_>, ty: i32, np: i32, ns: i32, idp: i32| {
            let name = match read(&c, np, ns) {
                Ok(n) => String::from_utf8_lossy(&n).into_owned(),
                Err(st) => return c.ret(String::new, st),
            };
            let Some(ty) = MetricType::from_code(ty as u32) else {
                return c.ret(|| format!("{ty}, {name:?}"), Status::BadArgument);
            };
            let d = c.data_mut();
            let slot = &mut d.next_metric_id[ty as usize];
            *slot += 4;
            let id = *slot;
            let stat = d.shared().define_metric(ty, &name);
            d.metric_ids.insert(id, (ty, stat));
            let st = write_u32(&mut c, idp, id).err().unwrap_or(Status::Ok);
            c.ret(|| format!("{ty:?}, {name:?} -> {id}"), st)
        },
    )?;

    env.func(
        "proxy_increment_metric",
        |mut c: Call<'_>, id: i32, offset: i64| {
            if id as u32 & 3 >= 2 {
                return c.ret(|| format!("{id}, {offset}"), Status::BadArgument);
            }
            let st = metric_update(c.data_mut(), id as u32, |ty, v| match (ty, v) {
                (MetricType::Counter, MetricValue::Counter(n)) if offset > 0 => {
                    *n = n.wrapping_add(offset as u64);
                    Status::Ok
                }
                (MetricType::Gauge, MetricValue::Gauge(n)) => {
                    *n = if offset >= 0 {
                        n.wrapping_add(offset as u64)
                    } else {
                        n.wrapping_sub(offset.unsigned_abs())
                    };
                    Status::Ok
                }
                _ => Status::BadArgument,
            });
            c.ret(|| format!("{id}, {offset}"), st)
        },
    )?;

    env.func(
        "proxy_record_metric",
        |mut c: Call<'_>, id: i32, value: i64| {
            let value = value as u64;
            let st = metric_update(c.data_mut(), id as u32, |_, v| {
                match v {
                    MetricValue::Counter(n) => *n = n.wrapping_add(value),
                    MetricValue::Gauge(n) => *n = value,
                    MetricValue::Histogram(s) => s.push(value),
                }
                Status::Ok
            });
            c.ret(|| format!("{id}, {value}"), st)
        },
    )?;

    env.func("proxy_get_metric", |mut c: Call<'_>, id: i32, rp: i32| {
        let id = id as u32;
        let got = {
            let d = c.data();
            match (id & 3, d.metric_ids.get(&id)) {
                (0 | 1, None) => Err(Status::NotFound),
                (0 | 1, Some(&(_, stat))) => Ok(d.shared().stat_mut(stat).value().unwrap_or(0)),
                _ => Err(Status::BadArgument),
            }
        };
        let st = match got {
            Err(st) => st,
            Ok(v) => write_u64(&mut c, rp, v).err().unwrap_or(Status::Ok),
        };
        c.ret(|| format!("{id}"), st)
    })?;

    Ok(())
}

/// `proxy_add_header_map_value` and `proxy_replace_header_map_value`, which differ only in
/// what they do to the map.
fn set_header_map_value(
    mut c: Call<'_>,
    ty: i32,
    (kp, ks): (i32, i32),
    (vp, vs): (i32, i32),
    set: fn(&mut HeaderMap, &[u8], &[u8]),
) -> WResult<i32> {
    let Some(ty) = MapType::from_code(ty) else {
        return c.ret(|| format!("{ty}"), Status::BadArgument);
    };
    let (memory, d) = memory_and_state(&mut c);
    let st = match (slice(memory, kp, ks), slice(memory, vp, vs)) {
        (Ok(key), Ok(value)) => match d.map_mut(ty) {
            None => Status::BadArgument,
            Some(map) => {
                set(map, key, value);
                Status::Ok
            }
        },
        _ => Status::InvalidMemoryAccess,
    };
    c.ret(
        || {
            let (key, value) = (read(&c, kp, ks), read(&c, vp, vs));
            let (key, value) = (key.unwrap_or_default(), value.unwrap_or_default());
            format!("{ty:?}, {}, {}", show(&key), show(&value))
        },
        st,
    )
}

fn continue_stream(d: &mut HostState, ty: i32) -> Status {
    match StreamType::from_code(ty) {
        None => Status::BadArgument,
        Some(StreamType::Upstream) => Status::Unimplemented,
        Some(StreamType::Downstream) => Status::Ok,
        Some(t) => {
            if let Some(s) = d.stream_mut() {
                s.continued.push(t);
                // Envoy forgets the request's maps and body once a stream resumes.
                s.live.request_headers = false;
                s.live.request_body = false;
                s.live.request_trailers = false;
            }
            Status::Ok
        }
    }
}

fn grpc_target(c: &Ctx<'_>, sp: i32, ss: i32) -> Status {
    match read(c, sp, ss) {
        Err(st) => st,
        // An unknown cluster is a ParseFailure in Envoy; gRPC itself is not modelled here.
        Ok(s)
            if !c
                .data()
                .config
                .clusters
                .contains(&String::from_utf8_lossy(&s).into_owned()) =>
        {
            Status::ParseFailure
        }
        Ok(_) => Status::InternalFailure,
    }
}

/// Apply `f` to metric `id`, by Envoy's rules: unknown ids are `NotFound`, except that an
/// increment of a histogram (or of the unused type 3) is a `BadArgument` whatever the id.
fn metric_update(
    d: &mut HostState,
    id: u32,
    f: impl FnOnce(MetricType, &mut MetricValue) -> Status,
) -> Status {
    match d.metric_ids.get(&id) {
        None => Status::NotFound,
        Some(&(ty, stat)) => f(ty, d.shared().stat_mut(stat)),
    }
}

/// Whether a context id names a root context.
#[allow(dead_code)]
pub(crate) fn is_root(d: &HostState, id: u32) -> bool {
    d.contexts.get(&id) == Some(&ContextKind::Root)
}
