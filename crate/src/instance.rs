//! The JS classes of live instances. A core instance and a component instance behave the same
//! from JS (function handles, `call`, metrics, output, dispose), so one macro declares both; what
//! differs lives in their [`Export`](crate::call::Export) types.

/// Declares an instance class over exports of type `$export`.
#[macro_export]
macro_rules! instance_class {
    ($doc:literal, $class:ident, $export:ty) => {
        #[doc = $doc]
        #[napi_derive::napi(custom_finalize)]
        pub struct $class {
            slot: std::sync::Arc<$crate::store::Slot<<$export as $crate::call::Export>::Instance>>,
            exports: std::sync::Arc<$crate::call::Exports<$export>>,
            output: $crate::wasi::Output,
            external: $crate::runtime::external::ExternalMemory,
        }

        $crate::holds_external!($class, |this| this.slot.native_bytes());

        impl $class {
            pub fn new(parts: $crate::compiled::InstanceParts<$export>) -> Self {
                $class {
                    slot: std::sync::Arc::new(parts.slot),
                    exports: parts.exports,
                    output: parts.output,
                    external: Default::default(),
                }
            }
        }

        #[napi_derive::napi]
        impl $class {
            /// The export as a plain JS function `(...args) => result`, called on the JS thread with
            /// the instance's default budget: the lowest-overhead way to call (no name lookup, no
            /// array). With `budgeted`, the function takes `(fuel, timeoutMs, ...args)`. With
            /// `flat` (component exports whose result has a flat form), it returns the result in
            /// the flat form lib/wire.ts decodes: its length in the `Uint8Array` given as `this`,
            /// or an `ArrayBuffer` when it does not fit. With `flatArgs` (component exports
            /// whose parameters have a flat form), it takes one argument: the length of the
            /// arguments lib/wire.ts wrote in that `Uint8Array`.
            #[napi(ts_return_type = "(...args: unknown[]) => unknown")]
            pub fn function(
                &self,
                env: napi::Env,
                name: napi::bindgen_prelude::Unknown,
                budgeted: Option<bool>,
                flat: Option<bool>,
                flat_args: Option<bool>,
            ) -> napi::Result<$crate::js::Raw> {
                let js = $crate::js::Js(env.raw());
                $crate::call::function(
                    js,
                    &self.slot,
                    self.exports.get(js, napi::JsValue::raw(&name)),
                    budgeted,
                    flat,
                    flat_args,
                )
            }

            /// Calls an export on a pool thread; arguments are converted first, on the JS thread.
            /// With `flatArgs` (the `Uint8Array` lib/wire.ts wrote them in), `args` is the length of
            /// the arguments' flat form; with `flatResult` the Promise resolves to the result's flat
            /// form in a new `ArrayBuffer`.
            #[napi(ts_return_type = "Promise<unknown>")]
            #[allow(clippy::too_many_arguments)]
            pub fn call(
                &self,
                env: &napi::Env,
                name: napi::bindgen_prelude::Unknown,
                args: napi::bindgen_prelude::Unknown,
                fuel: Option<f64>,
                timeout_ms: Option<f64>,
                abort: Option<&$crate::options::NativeAbortHandle>,
                flat_args: Option<napi::bindgen_prelude::Unknown>,
                flat_result: Option<bool>,
            ) -> napi::Result<$crate::js::Raw> {
                $crate::call::call(
                    env,
                    &self.slot,
                    self.exports
                        .get($crate::js::Js(env.raw()), napi::JsValue::raw(&name))
                        .map(|(export, _)| export),
                    args,
                    fuel,
                    timeout_ms,
                    abort,
                    $crate::call::Flat {
                        args: flat_args,
                        result: flat_result.unwrap_or(false),
                    },
                )
            }

            /// Memory, fuel and call counters.
            #[napi]
            pub fn metrics(&self) -> $crate::options::InstanceMetrics {
                self.slot.metrics().into()
            }

            /// WASI output piped since the last take (`wasi.stdout` / `wasi.stderr` set to `pipe`).
            #[napi]
            pub fn take_output(&self) -> $crate::wasi::TakenOutput {
                self.output.take()
            }

            /// Frees the store; later calls throw ERR_WASM_DISPOSED. Its memory stops counting for V8
            /// now, not when the object is collected.
            #[napi]
            pub fn dispose(&self, env: napi::Env) {
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
    };
}

crate::instance_class!("An instantiated core module.", NativeInstance, crate::func::CoreExport);
