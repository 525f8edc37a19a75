//! The WASI preview 1 functions Envoy gives a module, under both `wasi_snapshot_preview1` and
//! `wasi_unstable`: stdout and stderr go to the log, the clocks are the host's virtual clock,
//! `random_get` is seeded, and the file system does not exist.

use wasmtime::Linker;

use crate::abi::{LogLevel, errno};
use crate::hostcalls::{Ctx, read, write, write_u32, write_u64};
use crate::state::HostState;

type WResult<T> = wasmtime::Result<T>;

fn trace(c: &Ctx<'_>, name: &str, args: impl FnOnce() -> String, errno: i32) -> WResult<i32> {
    if c.data().trace {
        eprintln!(
            "[w{}] vm->host {name}({}) = errno {errno}",
            c.data().worker,
            args()
        );
    }
    Ok(errno)
}

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

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> WResult<()> {
    for m in ["wasi_snapshot_preview1", "wasi_unstable"] {
        linker.func_wrap(
            m,
            "fd_write",
            |mut c: Ctx<'_>, fd: i32, iovs: i32, n: i32, wp: i32| {
                let e = match writev(&mut c, fd, iovs, n) {
                    Err(e) => e,
                    Ok(w) => {
                        write_u32(&mut c, wp, w as u32).map_or(errno::FAULT, |_| errno::SUCCESS)
                    }
                };
                trace(&c, "fd_write", || format!("{fd}"), e)
            },
        )?;
        linker.func_wrap(
            m,
            "fd_pwrite",
            |mut c: Ctx<'_>, fd: i32, iovs: i32, n: i32, _off: i64, wp: i32| {
                let e = match writev(&mut c, fd, iovs, n) {
                    Err(e) => e,
                    Ok(w) => {
                        write_u32(&mut c, wp, w as u32).map_or(errno::FAULT, |_| errno::SUCCESS)
                    }
                };
                trace(&c, "fd_pwrite", || format!("{fd}"), e)
            },
        )?;
        linker.func_wrap(
            m,
            "fd_read",
            |_: Ctx<'_>, _fd: i32, _i: i32, _n: i32, _r: i32| errno::NOSYS,
        )?;
        linker.func_wrap(
            m,
            "fd_pread",
            |_: Ctx<'_>, _fd: i32, _i: i32, _n: i32, _o: i64, _r: i32| errno::NOSYS,
        )?;
        linker.func_wrap(
            m,
            "fd_seek",
            |mut c: Ctx<'_>, _fd: i32, _off: i64, _wh: i32, _r: i32| {
                c.data_mut()
                    .log(LogLevel::Trace, "wasi_unstable fd_seek".into());
                errno::SUCCESS
            },
        )?;
        linker.func_wrap(m, "fd_close", |mut c: Ctx<'_>, _fd: i32| {
            c.data_mut()
                .log(LogLevel::Trace, "wasi_unstable fd_close".into());
            errno::SUCCESS
        })?;
        linker.func_wrap(m, "fd_fdstat_get", |mut c: Ctx<'_>, fd: i32, out: i32| {
            if fd != 1 && fd != 2 {
                return errno::BADF;
            }
            // filetype 0, flags 0, rights_base FD_WRITE (64), rights_inheriting 0.
            let mut stat = [0u8; 24];
            stat[8..16].copy_from_slice(&64u64.to_le_bytes());
            let _ = write(&mut c, out, &stat);
            errno::SUCCESS
        })?;
        linker.func_wrap(m, "fd_fdstat_set_flags", |_: Ctx<'_>, _fd: i32, _f: i32| {
            errno::NOSYS
        })?;
        linker.func_wrap(m, "fd_prestat_get", |_: Ctx<'_>, _fd: i32, _p: i32| {
            errno::BADF
        })?;
        linker.func_wrap(
            m,
            "fd_prestat_dir_name",
            |_: Ctx<'_>, _fd: i32, _p: i32, _l: i32| errno::NOSYS,
        )?;
        linker.func_wrap(m, "fd_filestat_get", |_: Ctx<'_>, _fd: i32, _p: i32| {
            errno::BADF
        })?;
        for name in ["fd_datasync", "fd_sync"] {
            linker.func_wrap(
                m,
                name,
                |_: Ctx<'_>, fd: i32| if fd == 1 || fd == 2 { 0 } else { errno::BADF },
            )?;
        }
        linker.func_wrap(
            m,
            "fd_advise",
            |_: Ctx<'_>, _fd: i32, _o: i64, _l: i64, _a: i32| errno::SUCCESS,
        )?;
        linker.func_wrap(m, "fd_allocate", |_: Ctx<'_>, fd: i32, _o: i64, _l: i64| {
            if fd == 1 || fd == 2 { 0 } else { errno::BADF }
        })?;
        linker.func_wrap(m, "fd_tell", |mut c: Ctx<'_>, fd: i32, out: i32| {
            if fd != 1 && fd != 2 {
                return errno::BADF;
            }
            write_u64(&mut c, out, 0).map_or(errno::FAULT, |_| errno::SUCCESS)
        })?;
        linker.func_wrap(
            m,
            "fd_readdir",
            |mut c: Ctx<'_>, _fd: i32, _b: i32, _l: i32, _k: i64, out: i32| {
                write_u32(&mut c, out, 0).map_or(errno::FAULT, |_| errno::NOTDIR)
            },
        )?;
        linker.func_wrap(
            m,
            "path_open",
            |_: Ctx<'_>,
             _fd: i32,
             _df: i32,
             _p: i32,
             _pl: i32,
             _of: i32,
             _rb: i64,
             _ri: i64,
             _ff: i32,
             _o: i32| { errno::NOENT },
        )?;
        linker.func_wrap(
            m,
            "path_filestat_get",
            |_: Ctx<'_>, _fd: i32, _f: i32, _p: i32, _l: i32, _b: i32| errno::NOTSUP,
        )?;
        linker.func_wrap(
            m,
            "path_create_directory",
            |_: Ctx<'_>, _fd: i32, _p: i32, _l: i32| errno::NOTSUP,
        )?;
        linker.func_wrap(
            m,
            "path_remove_directory",
            |_: Ctx<'_>, _fd: i32, _p: i32, _l: i32| errno::NOTSUP,
        )?;
        linker.func_wrap(
            m,
            "path_unlink_file",
            |_: Ctx<'_>, _fd: i32, _p: i32, _l: i32| errno::NOTSUP,
        )?;

        linker.func_wrap(
            m,
            "environ_sizes_get",
            |mut c: Ctx<'_>, np: i32, sp: i32| {
                let env = c.data().config.env.clone();
                let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
                let ok = write_u32(&mut c, np, env.len() as u32)
                    .and_then(|_| write_u32(&mut c, sp, size as u32));
                trace(
                    &c,
                    "environ_sizes_get",
                    String::new,
                    ok.map_or(errno::FAULT, |_| errno::SUCCESS),
                )
            },
        )?;
        linker.func_wrap(
            m,
            "environ_get",
            |mut c: Ctx<'_>, mut array: i32, mut buf: i32| {
                let env = c.data().config.env.clone();
                for (k, v) in env {
                    let entry = format!("{k}={v}\0");
                    if write_u32(&mut c, array, buf as u32).is_err()
                        || write(&mut c, buf, entry.as_bytes()).is_err()
                    {
                        return trace(&c, "environ_get", String::new, errno::FAULT);
                    }
                    array = array.wrapping_add(4);
                    buf = buf.wrapping_add(entry.len() as i32);
                }
                trace(&c, "environ_get", String::new, errno::SUCCESS)
            },
        )?;
        linker.func_wrap(m, "args_sizes_get", |mut c: Ctx<'_>, np: i32, sp: i32| {
            let ok = write_u32(&mut c, np, 0).and_then(|_| write_u32(&mut c, sp, 0));
            ok.map_or(errno::FAULT, |_| errno::SUCCESS)
        })?;
        linker.func_wrap(m, "args_get", |_: Ctx<'_>, _a: i32, _b: i32| errno::SUCCESS)?;
        linker.func_wrap(
            m,
            "clock_time_get",
            |mut c: Ctx<'_>, id: i32, _precision: i64, out: i32| {
                let (wall, mono) = c.data().now();
                let t = match id {
                    0 => wall,
                    1 => mono,
                    _ => return trace(&c, "clock_time_get", || format!("{id}"), errno::NOTSUP),
                };
                let e = write_u64(&mut c, out, t).map_or(errno::FAULT, |_| errno::SUCCESS);
                trace(&c, "clock_time_get", || format!("{id} -> {t}"), e)
            },
        )?;
        linker.func_wrap(m, "clock_res_get", |mut c: Ctx<'_>, id: i32, out: i32| {
            if id != 0 && id != 1 {
                return errno::NOTSUP;
            }
            write_u64(&mut c, out, 1).map_or(errno::FAULT, |_| errno::SUCCESS)
        })?;
        linker.func_wrap(m, "random_get", |mut c: Ctx<'_>, buf: i32, len: i32| {
            let len = len as u32 as usize;
            if len > 64 * 1024 {
                return trace(&c, "random_get", || format!("{len}"), errno::INVAL);
            }
            let mut bytes = Vec::with_capacity(len + 8);
            while bytes.len() < len {
                let r = c.data_mut().next_random();
                bytes.extend_from_slice(&r.to_le_bytes());
            }
            bytes.truncate(len);
            let e = write(&mut c, buf, &bytes).map_or(errno::FAULT, |_| errno::SUCCESS);
            trace(&c, "random_get", || format!("{len}"), e)
        })?;
        linker.func_wrap(m, "sched_yield", |_: Ctx<'_>| errno::SUCCESS)?;
        linker.func_wrap(
            m,
            "poll_oneoff",
            |mut c: Ctx<'_>, _i: i32, _o: i32, _n: i32, np: i32| {
                write_u32(&mut c, np, 0).map_or(errno::FAULT, |_| errno::SUCCESS)
            },
        )?;
        linker.func_wrap(m, "proc_exit", |mut c: Ctx<'_>, code: i32| -> WResult<()> {
            c.data_mut()
                .log(LogLevel::Trace, "wasi_unstable proc_exit".into());
            wasmtime::bail!("the module called proc_exit({code})")
        })?;
    }
    Ok(())
}
