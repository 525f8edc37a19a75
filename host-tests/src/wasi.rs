//! The WASI preview 1 functions Envoy gives a module, under both `wasi_snapshot_preview1` and
//! `wasi_unstable`: stdout and stderr go to the log, the clocks are the host's virtual clock,
//! `random_get` is seeded, and the file system does not exist.

use wasmtime::Linker;

use crate::abi::{LogLevel, errno};
use crate::hostcalls::{read, write, write_u32, write_u64};
use crate::imports::{Call, Ctx, Imports};
use crate::state::HostState;

type WResult<T> = wasmtime::Result<T>;

/// Envoy's `writevImpl`: gather the iovecs, drop one trailing newline, log the rest.
fn writev(c: &mut Ctx<'_>, fd: i32, iovs: i32, iovs_len: i32) -> Result<usize, i32> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Err(errno::BADF),
    };
    let mut text = Vec::new();
    for i in 0..iovs_len as u32 {
        let iov = read(c, iovs.wrapping_add((i * 8) as i32), 8).map_err(|_| errno::FAULT)?;
        let ptr = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        if len != 0 {
            text.extend(read(c, ptr as i32, len as i32).map_err(|_| errno::FAULT)?);
        }
    }
    let written = text.len();
    if text.last() == Some(&b'\n') {
        text.pop();
    }
    if written != 0 {
        c.data_mut()
            .log(level, String::from_utf8_lossy(&text).into_owned());
    }
    Ok(written)
}

/// `fd_write` and `fd_pwrite` (whose offset is ignored): the iovecs go to the log, and the
/// number of bytes written to `written_ptr`.
fn write_iovs(mut c: Call<'_>, fd: i32, iovs: i32, n: i32, written_ptr: i32) -> WResult<i32> {
    let e = match writev(&mut c, fd, iovs, n) {
        Err(e) => e,
        Ok(w) => write_u32(&mut c, written_ptr, w as u32).map_or(errno::FAULT, |_| errno::SUCCESS),
    };
    c.errno(|| format!("{fd}"), e)
}

fn stdio(fd: i32) -> bool {
    fd == 1 || fd == 2
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> WResult<()> {
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        let mut wasi = Imports::during_start(linker, module);
        wasi.func(
            "fd_write",
            |c: Call<'_>, fd: i32, iovs: i32, n: i32, wp: i32| write_iovs(c, fd, iovs, n, wp),
        )?;
        wasi.func(
            "fd_pwrite",
            |c: Call<'_>, fd: i32, iovs: i32, n: i32, _off: i64, wp: i32| {
                write_iovs(c, fd, iovs, n, wp)
            },
        )?;
        wasi.func(
            "fd_read",
            |_c: Call<'_>, _fd: i32, _i: i32, _n: i32, _r: i32| Ok(errno::NOSYS),
        )?;
        wasi.func(
            "fd_pread",
            |_c: Call<'_>, _fd: i32, _i: i32, _n: i32, _o: i64, _r: i32| Ok(errno::NOSYS),
        )?;
        wasi.func(
            "fd_seek",
            |mut c: Call<'_>, _fd: i32, _off: i64, _wh: i32, _r: i32| {
                c.data_mut()
                    .log(LogLevel::Trace, "wasi_unstable fd_seek".into());
                Ok(errno::SUCCESS)
            },
        )?;
        wasi.func("fd_close", |mut c: Call<'_>, _fd: i32| {
            c.data_mut()
                .log(LogLevel::Trace, "wasi_unstable fd_close".into());
            Ok(errno::SUCCESS)
        })?;
        wasi.func("fd_fdstat_get", |mut c: Call<'_>, fd: i32, out: i32| {
            if !stdio(fd) {
                return Ok(errno::BADF);
            }
            // filetype 0, flags 0, rights_base FD_WRITE (64), rights_inheriting 0.
            let mut stat = [0u8; 24];
            stat[8..16].copy_from_slice(&64u64.to_le_bytes());
            let _ = write(&mut c, out, &stat);
            Ok(errno::SUCCESS)
        })?;
        wasi.func("fd_fdstat_set_flags", |_c: Call<'_>, _fd: i32, _f: i32| {
            Ok(errno::NOSYS)
        })?;
        wasi.func("fd_prestat_get", |_c: Call<'_>, _fd: i32, _p: i32| {
            Ok(errno::BADF)
        })?;
        wasi.func(
            "fd_prestat_dir_name",
            |_c: Call<'_>, _fd: i32, _p: i32, _l: i32| Ok(errno::NOSYS),
        )?;
        wasi.func("fd_filestat_get", |_c: Call<'_>, _fd: i32, _p: i32| {
            Ok(errno::BADF)
        })?;
        let sync = |_c: Call<'_>, fd: i32| Ok(if stdio(fd) { 0 } else { errno::BADF });
        wasi.func("fd_datasync", sync)?;
        wasi.func("fd_sync", sync)?;
        wasi.func(
            "fd_advise",
            |_c: Call<'_>, _fd: i32, _o: i64, _l: i64, _a: i32| Ok(errno::SUCCESS),
        )?;
        wasi.func("fd_allocate", |_c: Call<'_>, fd: i32, _o: i64, _l: i64| {
            Ok(if stdio(fd) { 0 } else { errno::BADF })
        })?;
        wasi.func("fd_tell", |mut c: Call<'_>, fd: i32, out: i32| {
            if !stdio(fd) {
                return Ok(errno::BADF);
            }
            Ok(write_u64(&mut c, out, 0).map_or(errno::FAULT, |_| errno::SUCCESS))
        })?;
        wasi.func(
            "fd_readdir",
            |mut c: Call<'_>, _fd: i32, _b: i32, _l: i32, _k: i64, out: i32| {
                Ok(write_u32(&mut c, out, 0).map_or(errno::FAULT, |_| errno::NOTDIR))
            },
        )?;
        wasi.func(
            "path_open",
            |_c: Call<'_>,
             _fd: i32,
             _df: i32,
             _p: i32,
             _pl: i32,
             _of: i32,
             _rb: i64,
             _ri: i64,
             _ff: i32,
             _o: i32| Ok(errno::NOENT),
        )?;
        wasi.func(
            "path_filestat_get",
            |_c: Call<'_>, _fd: i32, _f: i32, _p: i32, _l: i32, _b: i32| Ok(errno::NOTSUP),
        )?;
        let unsupported = |_c: Call<'_>, _fd: i32, _p: i32, _l: i32| Ok(errno::NOTSUP);
        wasi.func("path_create_directory", unsupported)?;
        wasi.func("path_remove_directory", unsupported)?;
        wasi.func("path_unlink_file", unsupported)?;

        wasi.func("environ_sizes_get", |mut c: Call<'_>, np: i32, sp: i32| {
            let env = c.data().config.env.clone();
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            let ok = write_u32(&mut c, np, env.len() as u32)
                .and_then(|_| write_u32(&mut c, sp, size as u32));
            c.errno(String::new, ok.map_or(errno::FAULT, |_| errno::SUCCESS))
        })?;
        wasi.func(
            "environ_get",
            |mut c: Call<'_>, mut array: i32, mut buf: i32| {
                let env = c.data().config.env.clone();
                for (k, v) in env {
                    let entry = format!("{k}={v}\0");
                    if write_u32(&mut c, array, buf as u32).is_err()
                        || write(&mut c, buf, entry.as_bytes()).is_err()
                    {
                        return c.errno(String::new, errno::FAULT);
                    }
                    array = array.wrapping_add(4);
                    buf = buf.wrapping_add(entry.len() as i32);
                }
                c.errno(String::new, errno::SUCCESS)
            },
        )?;
        wasi.func("args_sizes_get", |mut c: Call<'_>, np: i32, sp: i32| {
            let ok = write_u32(&mut c, np, 0).and_then(|_| write_u32(&mut c, sp, 0));
            Ok(ok.map_or(errno::FAULT, |_| errno::SUCCESS))
        })?;
        wasi.func("args_get", |_c: Call<'_>, _a: i32, _b: i32| {
            Ok(errno::SUCCESS)
        })?;
        wasi.func(
            "clock_time_get",
            |mut c: Call<'_>, id: i32, _precision: i64, out: i32| {
                let (wall, mono) = c.data().now();
                let t = match id {
                    0 => wall,
                    1 => mono,
                    _ => return c.errno(|| format!("{id}"), errno::NOTSUP),
                };
                let e = write_u64(&mut c, out, t).map_or(errno::FAULT, |_| errno::SUCCESS);
                c.errno(|| format!("{id} -> {t}"), e)
            },
        )?;
        wasi.func("clock_res_get", |mut c: Call<'_>, id: i32, out: i32| {
            if id != 0 && id != 1 {
                return Ok(errno::NOTSUP);
            }
            Ok(write_u64(&mut c, out, 1).map_or(errno::FAULT, |_| errno::SUCCESS))
        })?;
        wasi.func("random_get", |mut c: Call<'_>, buf: i32, len: i32| {
            let len = len as u32 as usize;
            if len > 64 * 1024 {
                return c.errno(|| format!("{len}"), errno::INVAL);
            }
            let mut bytes = Vec::with_capacity(len + 8);
            while bytes.len() < len {
                let r = c.data_mut().next_random();
                bytes.extend_from_slice(&r.to_le_bytes());
            }
            bytes.truncate(len);
            let e = write(&mut c, buf, &bytes).map_or(errno::FAULT, |_| errno::SUCCESS);
            c.errno(|| format!("{len}"), e)
        })?;
        wasi.func("sched_yield", |_c: Call<'_>| Ok(errno::SUCCESS))?;
        wasi.func(
            "poll_oneoff",
            |mut c: Call<'_>, _i: i32, _o: i32, _n: i32, np: i32| {
                Ok(write_u32(&mut c, np, 0).map_or(errno::FAULT, |_| errno::SUCCESS))
            },
        )?;
        wasi.func("proc_exit", |mut c: Call<'_>, code: i32| -> WResult<()> {
            c.data_mut()
                .log(LogLevel::Trace, "wasi_unstable proc_exit".into());
            wasmtime::bail!("the module called proc_exit({code})")
        })?;
    }
    Ok(())
}
