//! Registering host functions: each is named once, where it is registered, and that name is
//! what the start-up check and the trace line print.

use std::ops::{Deref, DerefMut};

use wasmtime::{Caller, Linker, WasmRet, WasmTy};

use crate::abi::Status;
use crate::state::HostState;

pub(crate) type Ctx<'a> = Caller<'a, HostState>;

/// A host function's caller, with the name the module imported it by.
pub(crate) struct Call<'a> {
    caller: Ctx<'a>,
    name: &'static str,
}

impl<'a> Deref for Call<'a> {
    type Target = Ctx<'a>;

    fn deref(&self) -> &Ctx<'a> {
        &self.caller
    }
}

impl DerefMut for Call<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.caller
    }
}

impl Call<'_> {
    /// Answer `status`, with a trace line of the call when tracing is on.
    pub(crate) fn ret(
        &self,
        args: impl FnOnce() -> String,
        status: Status,
    ) -> wasmtime::Result<i32> {
        self.trace(|d| format!("({}) ctx={} = {status:?}", args(), d.context()));
        Ok(status.code())
    }

    /// Answer a WASI `errno`, with a trace line of the call when tracing is on.
    pub(crate) fn errno(&self, args: impl FnOnce() -> String, errno: i32) -> wasmtime::Result<i32> {
        self.trace(|_| format!("({}) = errno {errno}", args()));
        Ok(errno)
    }

    fn trace(&self, call: impl FnOnce(&HostState) -> String) {
        let d = self.data();
        if d.trace {
            eprintln!("[w{}] vm->host {}{}", d.worker, self.name, call(d));
        }
    }

    /// Envoy runs `_initialize` and `main` with only logging, WASI and a few others allowed.
    fn allowed(&self) -> wasmtime::Result<()> {
        if self.data().restricted {
            wasmtime::bail!(
                "`{}` is not allowed while the VM starts (Envoy restricts `_initialize` and `main`)",
                self.name
            );
        }
        Ok(())
    }
}

/// The functions of one import module, as they are added to the linker.
pub(crate) struct Imports<'l> {
    linker: &'l mut Linker<HostState>,
    module: &'static str,
    /// Whether the functions fail while the VM starts (`_initialize` and `main`), as most of
    /// the ABI's do in Envoy.
    restricted: bool,
}

impl<'l> Imports<'l> {
    /// Functions Envoy refuses while the VM starts.
    pub(crate) fn new(linker: &'l mut Linker<HostState>, module: &'static str) -> Self {
        Imports {
            linker,
            module,
            restricted: true,
        }
    }

    /// Functions the module may call from `_initialize` and `main` too.
    pub(crate) fn during_start(linker: &'l mut Linker<HostState>, module: &'static str) -> Self {
        Imports {
            restricted: false,
            ..Imports::new(linker, module)
        }
    }

    pub(crate) fn func<Args>(
        &mut self,
        name: &'static str,
        f: impl HostFn<Args>,
    ) -> wasmtime::Result<()> {
        f.register(self, name)
    }
}

/// A closure taking a [`Call`] and the function's wasm arguments, whatever their number:
/// wasmtime wants a closure taking its own `Caller`, so each arity needs its own adapter.
pub(crate) trait HostFn<Args>: Send + Sync + 'static {
    fn register(self, to: &mut Imports<'_>, name: &'static str) -> wasmtime::Result<()>;
}

macro_rules! host_fn {
    ($($arg:ident),*) => {
        impl<F, R, $($arg),*> HostFn<($($arg,)*)> for F
        where
            F: for<'a> Fn(Call<'a>, $($arg),*) -> wasmtime::Result<R> + Send + Sync + 'static,
            wasmtime::Result<R>: WasmRet,
            $($arg: WasmTy,)*
        {
            #[allow(non_snake_case)]
            fn register(self, to: &mut Imports<'_>, name: &'static str) -> wasmtime::Result<()> {
                let restricted = to.restricted;
                to.linker.func_wrap(to.module, name, move |caller: Ctx<'_>, $($arg: $arg),*| {
                    let call = Call { caller, name };
                    if restricted {
                        call.allowed()?;
                    }
                    self(call, $($arg),*)
                })?;
                Ok(())
            }
        }
    };
}

host_fn!();
host_fn!(A1);
host_fn!(A1, A2);
host_fn!(A1, A2, A3);
host_fn!(A1, A2, A3, A4);
host_fn!(A1, A2, A3, A4, A5);
host_fn!(A1, A2, A3, A4, A5, A6);
host_fn!(A1, A2, A3, A4, A5, A6, A7);
host_fn!(A1, A2, A3, A4, A5, A6, A7, A8);
host_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
host_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
host_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
host_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);
