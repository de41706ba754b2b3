//! A core [`wasmtime::Instance`] in its own store: linking JS imports, `callSync`, `call`,
//! metrics, dispose.

use std::sync::Arc;

use napi::bindgen_prelude::{Object, Unknown};
use napi::{Env, JsValue, Result};
use napi_derive::napi;
use wasmtime::{Caller, ExternType, Instance as InstanceImpl, Linker, Module, Val, ValType};

use crate::convert;
use crate::errors::{Failure, HostCallFailed, exit_zero_is_success, throw};
use crate::host;
use crate::js::{Js, Kind, Raw, Value};
use crate::module::{CoreExport, ModuleShared, func_signature};
use crate::store::{self, Budget, HostState, InstanceMetrics, Live, NativeAbortHandle, Slot};
use crate::tasks;
use crate::wasi::{Output, TakenOutput};

/// Module names of WASI preview 1 imports.
pub const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// A linker with every function import of `module` bound to `imports[module][name]`, and those
/// functions in host-function index order.
pub fn link(
    js: Js,
    module: &Module,
    imports: Option<Value>,
    wasi: bool,
) -> std::result::Result<(Linker<HostState>, Vec<Value>), Failure> {
    let internal = |error: napi::Error| Failure::Internal(error.reason);
    let mut linker = Linker::new(module.engine());
    if wasi {
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut HostState| state.wasi.p1())
            .map_err(|error| Failure::Link(format!("{error:#}")))?;
        // JS functions may replace single WASI functions.
        linker.allow_shadowing(true);
    }
    let mut functions = Vec::new();
    let mut missing = Vec::new();
    for import in module.imports() {
        let label = format!("\"{}.{}\"", import.module(), import.name());
        let ExternType::Func(func_type) = import.ty() else {
            return Err(Failure::Link(format!(
                "import {label}: only function imports can be provided from JS in this version"
            )));
        };
        let namespace = match imports {
            Some(object) => Some(js.get(object, import.module()).map_err(internal)?),
            None => None,
        };
        let function = match namespace {
            Some(namespace) if js.kind(namespace).map_err(internal)? == Kind::Object => {
                Some(js.get(namespace, import.name()).map_err(internal)?)
            }
            _ => None,
        };
        let function = match function {
            Some(value) if js.kind(value).map_err(internal)? == Kind::Function => value,
            Some(value) if js.kind(value).map_err(internal)? != Kind::Undefined => {
                return Err(Failure::Type(format!(
                    "imports: {label} must be a function, got {}",
                    js.describe(value)
                )));
            }
            _ if wasi && WASI_MODULES.contains(&import.module()) => continue,
            _ => {
                missing.push(format!("{label}: {}", func_signature(&func_type)));
                continue;
            }
        };
        let index = functions.len();
        functions.push(function);
        let results: Arc<[ValType]> = func_type.results().collect();
        linker
            .func_new(
                import.module(),
                import.name(),
                func_type,
                move |mut caller, params, out| host_call(&mut caller, index, &label, &results, params, out),
            )
            .map_err(|error| Failure::Link(format!("{error:#}")))?;
    }
    if !missing.is_empty() {
        return Err(Failure::Link(format!("missing import(s): {}", missing.join("; "))));
    }
    Ok((linker, functions))
}

fn host_call(
    caller: &mut Caller<'_, HostState>,
    index: usize,
    label: &str,
    results: &Arc<[ValType]>,
    params: &[Val],
    out: &mut [Val],
) -> wasmtime::Result<()> {
    let args = params.to_vec();
    let result_types = results.clone();
    let label_owned = label.to_string();
    let limits = caller.data().wait_limits();
    let outcome = caller.data().host.invoke(
        index,
        label,
        limits,
        move |js, function| {
            let mut js_args = Vec::with_capacity(args.len());
            for value in &args {
                js_args.push(convert::to_js(js, value).map_err(|error| Failure::Internal(error.reason))?);
            }
            js.call(function, &js_args)
                .map_err(|error| Failure::Internal(error.reason))
        },
        move |js, outcome| {
            let returned = match outcome {
                Ok(value) => value,
                Err(thrown) => return Err(host::thrown(js, &label_owned, thrown)),
            };
            let bad_return = |message: String| Failure::Host {
                message: format!("host function {label_owned} returned a bad value: {message}"),
                cause: None,
            };
            match result_types.len() {
                0 => Ok(Vec::new()),
                1 => Ok(vec![
                    convert::from_js(js, returned, &result_types[0]).map_err(bad_return)?,
                ]),
                count => {
                    if !js.is_array(returned).unwrap_or(false)
                        || js.array_length(returned).unwrap_or(0) as usize != count
                    {
                        return Err(bad_return(format!("expected an array of {count} results")));
                    }
                    let mut values = Vec::with_capacity(count);
                    for (position, ty) in result_types.iter().enumerate() {
                        let item = js
                            .get_index(returned, position as u32)
                            .map_err(|error| Failure::Internal(error.reason))?;
                        values.push(
                            convert::from_js(js, item, ty)
                                .map_err(|message| bad_return(format!("result {position}: {message}")))?,
                        );
                    }
                    Ok(values)
                }
            }
        },
    );
    match outcome {
        Ok(values) => {
            for (slot, value) in out.iter_mut().zip(values) {
                *slot = value;
            }
            Ok(())
        }
        Err(failure) => {
            caller.data_mut().host_failure = Some(failure);
            Err(wasmtime::Error::new(HostCallFailed))
        }
    }
}

impl CoreExport {
    fn lower_args(&self, js: Js, args: Value) -> std::result::Result<Vec<Val>, Failure> {
        let internal = |error: napi::Error| Failure::Internal(error.reason);
        let fail = |message: String| Failure::Type(format!("{}: {message}", self.name));
        if !js.is_array(args).map_err(internal)? {
            return Err(fail("arguments must be an array".into()));
        }
        let count = js.array_length(args).map_err(internal)? as usize;
        if count != self.params.len() {
            return Err(fail(format!("expected {} argument(s), got {count}", self.params.len())));
        }
        let mut values = Vec::with_capacity(count);
        for (index, ty) in self.params.iter().enumerate() {
            let arg = js.get_index(args, index as u32).map_err(internal)?;
            values.push(convert::from_js(js, arg, ty).map_err(|message| fail(format!("param {index}: {message}")))?);
        }
        Ok(values)
    }

    fn invoke(
        &self,
        live: &mut Live<InstanceImpl>,
        budget: &Budget,
        engine: &crate::engine::EngineShared,
        params: &[Val],
    ) -> std::result::Result<Vec<Val>, Failure> {
        let Some(wasmtime::Extern::Func(func)) = live.instance.get_module_export(&mut live.store, &self.index) else {
            return Err(Failure::Internal(format!("export {} vanished", self.name)));
        };
        let mut results: Vec<Val> = self.results.iter().map(convert::placeholder).collect();
        store::run(&mut live.store, engine, budget, &mut live.metrics, |store| {
            func.call(store, params, &mut results)
        })?;
        Ok(results)
    }

    fn lift(js: Js, results: Vec<Val>) -> std::result::Result<Value, Failure> {
        let internal = |error: napi::Error| Failure::Internal(error.reason);
        match results.as_slice() {
            [] => js.undefined().map_err(internal),
            [single] => convert::to_js(js, single).map_err(internal),
            many => {
                let array = js.array(many.len()).map_err(internal)?;
                for (index, value) in many.iter().enumerate() {
                    js.set_index(array, index as u32, convert::to_js(js, value).map_err(internal)?)
                        .map_err(internal)?;
                }
                Ok(array)
            }
        }
    }
}

/// An instantiated core module.
#[napi]
pub struct NativeInstance {
    slot: Arc<Slot<InstanceImpl>>,
    module: Arc<ModuleShared>,
    output: Output,
}

impl NativeInstance {
    pub fn new(slot: Slot<InstanceImpl>, module: Arc<ModuleShared>, output: Output) -> Self {
        NativeInstance {
            slot: Arc::new(slot),
            module,
            output,
        }
    }

    fn export(&self, name: &str) -> std::result::Result<Arc<CoreExport>, Failure> {
        self.module.exports.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.module.exports.keys().map(String::as_str).collect();
            known.sort_unstable();
            Failure::Type(format!(
                "the module has no exported function \"{name}\"; it exports: {}",
                known.join(", ")
            ))
        })
    }
}

#[napi]
impl NativeInstance {
    /// Calls an exported function on the JS thread ([`Func::call`](https://docs.rs/wasmtime/48.0.8/wasmtime/struct.Func.html#method.call)).
    #[napi(ts_return_type = "unknown")]
    pub fn call_sync(
        &self,
        env: Env,
        name: String,
        args: Unknown,
        fuel: Option<f64>,
        timeout_ms: Option<f64>,
    ) -> Result<Raw> {
        let js = Js(env.raw());
        let outcome = (|| {
            let export = self.export(&name)?;
            let params = export.lower_args(js, args.raw())?;
            let budget = self.slot.budget(fuel, timeout_ms, None)?;
            let results = exit_zero_is_success(
                self.slot.with(|live| {
                    live.store.data_mut().host.set_sync_env(Some(js));
                    let result = export.invoke(live, &budget, &self.slot.engine, &params);
                    live.store.data_mut().host.set_sync_env(None);
                    result
                }),
                Vec::new,
            )?;
            CoreExport::lift(js, results)
        })();
        throw(js, outcome).map(Raw)
    }

    /// Calls an exported function on a pool thread.
    #[napi(ts_return_type = "Promise<unknown>")]
    pub fn call<'env>(
        &self,
        env: &'env Env,
        name: String,
        args: Unknown,
        fuel: Option<f64>,
        timeout_ms: Option<f64>,
        abort: Option<&NativeAbortHandle>,
    ) -> Result<Object<'env>> {
        let js = Js(env.raw());
        let (export, params, budget) = throw(
            js,
            (|| {
                let export = self.export(&name)?;
                let params = export.lower_args(js, args.raw())?;
                let budget = self.slot.budget(fuel, timeout_ms, abort.map(NativeAbortHandle::flag))?;
                Ok((export, params, budget))
            })(),
        )?;
        let slot = self.slot.clone();
        tasks::promise(
            env,
            move || slot.with(|live| export.invoke(live, &budget, &slot.engine, &params)),
            |js, results| CoreExport::lift(js, exit_zero_is_success(results, Vec::new)?).map(Raw),
        )
    }

    /// Memory, fuel and call counters.
    #[napi]
    pub fn metrics(&self) -> InstanceMetrics {
        self.slot.metrics().into()
    }

    /// WASI output piped since the last take (`wasi.stdout` / `wasi.stderr` set to `pipe`).
    #[napi]
    pub fn take_output(&self) -> TakenOutput {
        self.output.take()
    }

    /// Frees the store; later calls throw ERR_WASM_DISPOSED.
    #[napi]
    pub fn dispose(&self) {
        self.slot.dispose();
    }

    /// Whether `dispose()` was called.
    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.slot.is_disposed()
    }

    /// Whether a trap left the instance unusable (component instances only).
    #[napi(getter)]
    pub fn poisoned(&self) -> bool {
        self.slot.is_poisoned()
    }
}
