//! A component [`Instance`](wasmtime::component::Instance) in its own store: `callSync`, `call`,
//! metrics, dispose.

use std::sync::Arc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, Result};
use napi_derive::napi;
use wasmtime::component::Instance;

use super::ComponentShared;
use super::func::ExportFunc;
use crate::call;
use crate::errors::Failure;
use crate::external::ExternalMemory;
use crate::js::{Js, Raw};
use crate::store::{InstanceMetrics, NativeAbortHandle, Slot};
use crate::wasi::{Output, TakenOutput};

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
        call::function(Js(env.raw()), &self.slot, self.export(&name), &name, budgeted)
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
        call::call(env, &self.slot, self.export(&name), args, fuel, timeout_ms, abort)
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
