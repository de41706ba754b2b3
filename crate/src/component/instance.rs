//! A component [`Instance`](wasmtime::component::Instance) in its own store: `callSync`, `call`,
//! metrics, dispose.

use std::cell::Cell;
use std::sync::Arc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, JsValue, Result};
use napi_derive::napi;
use wasmtime::component::{Func, Instance, Val};

use super::ComponentShared;
use super::func::ExportFunc;
use crate::errors::{Failure, exit_zero_is_success, return_or_throw, throw};
use crate::external::ExternalMemory;
use crate::js::{Js, Raw, Value, callback_args};
use crate::store::{Budget, InstanceMetrics, NativeAbortHandle, Slot};
use crate::tasks;
use crate::wasi::{Output, TakenOutput};

/// Runs one call on the JS thread, with host functions called directly.
fn call_on_js_thread(
    js: Js,
    slot: &Slot<Instance>,
    export: &ExportFunc,
    known: Option<&Cell<Option<Func>>>,
    budget: &Budget,
    params: &[Val],
) -> std::result::Result<Value, Failure> {
    let value = exit_zero_is_success(
        slot.with_on_js_thread(js, |live| {
            let func = export.func(live, known)?;
            export.invoke(live, func, &slot.engine, budget, params)
        }),
        || None,
    )?;
    export.lift_result(js, value)
}

/// What a function made by `NativeComponentInstance::function` calls.
struct ComponentFunction {
    slot: Arc<Slot<Instance>>,
    export: Arc<ExportFunc>,
    budget: Budget,
    /// The function takes `(fuel, timeoutMs, ...args)`: a per-call budget without the name lookup.
    budgeted: bool,
    /// The export's `Func` in the slot's store, found at the first call (the data of a JS
    /// function is only touched on its JS thread).
    func: Cell<Option<Func>>,
}

unsafe extern "C" fn call_component_function(env: napi::sys::napi_env, info: napi::sys::napi_callback_info) -> Value {
    // SAFETY: this callback is only installed by `NativeComponentInstance::function`.
    let (js, target, args) = unsafe { callback_args::<ComponentFunction>(env, info) };
    let outcome = (|| {
        let (budget, args) = target.slot.handle_budget(js, target.budgeted, &target.budget, &args)?;
        let params = target.export.lower_args(js, args)?;
        call_on_js_thread(js, &target.slot, &target.export, Some(&target.func), &budget, &params)
    })();
    return_or_throw(js, outcome)
}

/// An instantiated component.
#[napi(custom_finalize)]
pub struct NativeComponentInstance {
    slot: Arc<Slot<Instance>>,
    component: Arc<ComponentShared>,
    output: Output,
    external: ExternalMemory,
}

crate::holds_external!(NativeComponentInstance, |this| this.slot.native_bytes());

impl NativeComponentInstance {
    pub fn new(slot: Slot<Instance>, component: Arc<ComponentShared>, output: Output) -> Self {
        NativeComponentInstance {
            slot: Arc::new(slot),
            component,
            output,
            external: ExternalMemory::default(),
        }
    }

    fn export(&self, name: &str) -> std::result::Result<Arc<ExportFunc>, Failure> {
        if let Some(export) = self.component.exports.get(name) {
            return Ok(export.clone());
        }
        let mut known: Vec<&str> = self
            .component
            .exports
            .values()
            .map(|export| export.path.as_str())
            .collect();
        known.sort_unstable();
        known.dedup();
        Err(Failure::Type(format!(
            "the component has no exported function \"{name}\"; it exports: {}",
            known.join(", ")
        )))
    }
}

#[napi]
impl NativeComponentInstance {
    /// The export as a plain JS function `(...args) => result`, called on the JS thread with the
    /// instance's default budget: the lowest-overhead way to call (no name lookup, no array).
    /// With `budgeted`, the function takes `(fuel, timeoutMs, ...args)` for a per-call budget.
    #[napi(ts_return_type = "(...args: unknown[]) => unknown")]
    pub fn function(&self, env: Env, name: String, budgeted: Option<bool>) -> Result<Raw> {
        let js = Js(env.raw());
        let target = throw(
            js,
            (|| {
                Ok(ComponentFunction {
                    export: self.export(&name)?,
                    budget: self.slot.budget(None, None, None)?,
                    slot: self.slot.clone(),
                    budgeted: budgeted.unwrap_or(false),
                    func: Cell::new(None),
                })
            })(),
        )?;
        js.function(&name, target, Some(call_component_function)).map(Raw)
    }

    /// Calls an export on a pool thread; arguments are converted first, on the JS thread.
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
        let js = Js(env.raw());
        let (export, params, budget) = throw(
            js,
            (|| {
                let export = self.export(&name)?;
                let params = export.lower_array(js, args.raw())?;
                let budget = self.slot.budget(fuel, timeout_ms, abort.map(NativeAbortHandle::flag))?;
                Ok((export, params, budget))
            })(),
        )?;
        let slot = self.slot.clone();
        let lift = export.clone();
        tasks::promise(
            env,
            move || {
                slot.with(|live| {
                    let func = export.func(live, None)?;
                    export.invoke(live, func, &slot.engine, &budget, &params)
                })
            },
            move |js, result| lift.lift_result(js, exit_zero_is_success(result, || None)?).map(Raw),
        )
    }

    /// Memory, fuel and call counters ([`ResourceLimiter`](https://docs.rs/wasmtime/48.0.8/wasmtime/trait.ResourceLimiter.html) figures).
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
