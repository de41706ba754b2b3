//! A core [`wasmtime::Instance`] in its own store: linking JS imports, `callSync`, `call`,
//! metrics, dispose.

use std::sync::Arc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, Result};
use napi_derive::napi;
use smallvec::SmallVec;
use wasmtime::{Caller, ExternType, Func, Instance as InstanceImpl, InstancePre, Linker, Module, Val, ValRaw, ValType};

use crate::call::{self, Export};
use crate::convert;
use crate::engine::EngineShared;
use crate::errors::{Failure, HostCallFailed};
use crate::external::ExternalMemory;
use crate::host;
use crate::js::{Js, Kind, Raw, Value};
use crate::module::{CoreExport, ModuleShared, func_signature};
use crate::store::{self, Budget, HostState, InstanceMetrics, Live, NativeAbortHandle, Slot};
use crate::wasi::{Output, TakenOutput};

/// Arguments or results of one call: core signatures are short, so they stay on the stack.
type Vals = SmallVec<[Val; 4]>;

/// Module names of WASI preview 1 imports.
pub const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// How a module's imports are served: which imports (by position in `Module::imports`) JS
/// functions provide, in host-function index order, and whether WASI preview 1 serves the rest.
/// Equal plans link equally, so the linked [`InstancePre`] is reused (see [`crate::pre_cache`]).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkPlan {
    wasi: bool,
    provided: Vec<usize>,
}

/// Finds the JS function for every import of `module` in `imports[module][name]` (on the JS
/// thread): the link plan, and those functions in host-function index order.
pub fn resolve(
    js: Js,
    module: &Module,
    imports: Option<Value>,
    wasi: bool,
) -> std::result::Result<(LinkPlan, Vec<Value>), Failure> {
    let internal = |error: napi::Error| Failure::Internal(error.reason);
    let mut functions = Vec::new();
    let mut provided = Vec::new();
    let mut missing = Vec::new();
    for (position, import) in module.imports().enumerate() {
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
        match function {
            Some(value) if js.kind(value).map_err(internal)? == Kind::Function => {
                functions.push(value);
                provided.push(position);
            }
            Some(value) if js.kind(value).map_err(internal)? != Kind::Undefined => {
                return Err(Failure::Type(format!(
                    "imports: {label} must be a function, got {}",
                    js.describe(value)
                )));
            }
            _ if wasi && WASI_MODULES.contains(&import.module()) => {}
            _ => missing.push(format!("{label}: {}", func_signature(&func_type))),
        }
    }
    if !missing.is_empty() {
        return Err(Failure::Link(format!("missing import(s): {}", missing.join("; "))));
    }
    Ok((LinkPlan { wasi, provided }, functions))
}

/// Links `module` by `plan` and type-checks it: the recipe every instance with this plan uses.
pub fn link(module: &Module, plan: &LinkPlan) -> std::result::Result<InstancePre<HostState>, Failure> {
    let failed = |error: wasmtime::Error| Failure::Link(format!("{error:#}"));
    let mut linker = Linker::new(module.engine());
    if plan.wasi {
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut HostState| state.wasi.p1()).map_err(failed)?;
        // JS functions may replace single WASI functions.
        linker.allow_shadowing(true);
    }
    let imports: Vec<_> = module.imports().collect();
    for (index, &position) in plan.provided.iter().enumerate() {
        let import = &imports[position];
        let ExternType::Func(func_type) = import.ty() else {
            return Err(Failure::Internal("a link plan names a non-function import".into()));
        };
        let label = format!("\"{}.{}\"", import.module(), import.name());
        let results: Arc<[ValType]> = func_type.results().collect();
        linker
            .func_new(
                import.module(),
                import.name(),
                func_type,
                move |mut caller, params, out| host_call(&mut caller, index, &label, &results, params, out),
            )
            .map_err(failed)?;
    }
    linker.instantiate_pre(module).map_err(failed)
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

impl Export for CoreExport {
    type Instance = InstanceImpl;
    type Func = Func;
    type Params = Vals;
    type Output = Vals;

    fn name(&self) -> &str {
        &self.name
    }

    fn lower_args(&self, js: Js, args: &[Value]) -> std::result::Result<Vals, Failure> {
        let fail = |message: String| Failure::Type(format!("{}: {message}", self.name));
        if args.len() != self.params.len() {
            return Err(fail(format!(
                "expected {} argument(s), got {}",
                self.params.len(),
                args.len()
            )));
        }
        let mut values = Vals::with_capacity(args.len());
        for (index, (ty, &arg)) in self.params.iter().zip(args).enumerate() {
            values.push(convert::from_js(js, arg, ty).map_err(|message| fail(format!("param {index}: {message}")))?);
        }
        Ok(values)
    }

    fn lookup(&self, live: &mut Live<InstanceImpl>) -> std::result::Result<Func, Failure> {
        match live.instance.get_module_export(&mut live.store, &self.index) {
            Some(wasmtime::Extern::Func(func)) => Ok(func),
            _ => Err(Failure::Internal(format!("export {} vanished", self.name))),
        }
    }

    fn invoke(
        &self,
        live: &mut Live<InstanceImpl>,
        func: Func,
        engine: &EngineShared,
        budget: &Budget,
        params: &Vals,
    ) -> std::result::Result<Vals, Failure> {
        if self.numeric {
            return self.invoke_numeric(live, func, budget, engine, params);
        }
        let mut results: Vals = self.results.iter().map(convert::placeholder).collect();
        store::run(&mut live.store, engine, budget, &mut live.metrics, |store| {
            func.call(store, params, &mut results)
        })?;
        Ok(results)
    }

    fn no_output() -> Vals {
        Vals::new()
    }

    fn lift(&self, js: Js, results: Vals) -> std::result::Result<Value, Failure> {
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

impl CoreExport {
    /// The typed fast path: raw values in one buffer, no per-call type lookup or checks.
    fn invoke_numeric(
        &self,
        live: &mut Live<InstanceImpl>,
        func: Func,
        budget: &Budget,
        engine: &EngineShared,
        params: &[Val],
    ) -> std::result::Result<Vals, Failure> {
        let mut raw = [ValRaw::i32(0); 16];
        let mut buffer: Vec<ValRaw>;
        let slots = params.len().max(self.results.len());
        let raw: &mut [ValRaw] = if slots <= raw.len() {
            &mut raw[..slots]
        } else {
            buffer = vec![ValRaw::i32(0); slots];
            &mut buffer
        };
        for (slot, value) in raw.iter_mut().zip(params) {
            *slot = match *value {
                Val::I32(n) => ValRaw::i32(n),
                Val::I64(n) => ValRaw::i64(n),
                Val::F32(bits) => ValRaw::f32(bits),
                Val::F64(bits) => ValRaw::f64(bits),
                _ => return Err(Failure::Internal("a non-numeric value on the numeric path".into())),
            };
        }
        store::run(&mut live.store, engine, budget, &mut live.metrics, |store| {
            // SAFETY: `numeric` guarantees the signature is all numbers, `lower_args` produced one
            // value of the declared type per parameter, and the buffer has room for the results.
            unsafe { func.call_unchecked(store, raw as *mut [ValRaw]) }
        })?;
        Ok(self
            .results
            .iter()
            .zip(raw.iter())
            .map(|(ty, value)| match ty {
                ValType::I64 => Val::I64(value.get_i64()),
                ValType::F32 => Val::F32(value.get_f32()),
                ValType::F64 => Val::F64(value.get_f64()),
                _ => Val::I32(value.get_i32()),
            })
            .collect())
    }
}

/// An instantiated core module.
#[napi(custom_finalize)]
pub struct NativeInstance {
    slot: Arc<Slot<InstanceImpl>>,
    module: Arc<ModuleShared>,
    output: Output,
    external: ExternalMemory,
}

crate::holds_external!(NativeInstance, |this| this.slot.native_bytes());

impl NativeInstance {
    pub fn new(slot: Slot<InstanceImpl>, module: Arc<ModuleShared>, output: Output) -> Self {
        NativeInstance {
            slot: Arc::new(slot),
            module,
            output,
            external: ExternalMemory::default(),
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
    /// The export as a plain JS function `(...args) => result`, called on the JS thread with the
    /// instance's default budget: the lowest-overhead way to call (no name lookup, no array).
    /// With `budgeted`, the function takes `(fuel, timeoutMs, ...args)` for a per-call budget.
    #[napi(ts_return_type = "(...args: unknown[]) => unknown")]
    pub fn function(&self, env: Env, name: String, budgeted: Option<bool>) -> Result<Raw> {
        call::function(Js(env.raw()), &self.slot, self.export(&name), &name, budgeted)
    }

    /// Calls an exported function on a pool thread.
    #[napi(ts_return_type = "Promise<unknown>")]
    pub fn call(
        &self,
        env: &Env,
        name: String,
        args: Unknown,
        fuel: Option<f64>,
        timeout_ms: Option<f64>,
        abort: Option<&NativeAbortHandle>,
    ) -> Result<Raw> {
        call::call(env, &self.slot, self.export(&name), args, fuel, timeout_ms, abort)
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

    /// Frees the store; later calls throw ERR_WASM_DISPOSED. Its memory stops counting for V8
    /// now, not when the object is collected.
    #[napi]
    pub fn dispose(&self, env: Env) {
        self.slot.dispose();
        self.external.release(&env);
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
