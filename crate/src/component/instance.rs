//! A component [`Instance`](wasmtime::component::Instance) in its own store, as a JS class (the
//! same class shape as a core instance: see `instance.rs`).

crate::instance_class!(
    "An instantiated component.",
    NativeComponentInstance,
    super::func::ExportFunc
);

#[napi_derive::napi]
impl NativeComponentInstance {
    /// Drops the guest resource handle `token` stands for: the guest's destructor runs now, on
    /// the JS thread, under the instance's default budget (it counts as a call in the metrics).
    /// While a call runs, when destructors may need the pool, or when `later` says a call of
    /// the instance is queued or on its way to the pool (which a drop here would race for the
    /// instance), it is dropped at the start of the next call instead. A token dropped or moved
    /// already, or of another instance, is left alone, as is every handle of a disposed or
    /// poisoned instance (its store is gone or cannot be entered).
    #[napi(ts_return_type = "void")]
    pub fn drop_resource(
        &self,
        env: napi::Env,
        token: napi::bindgen_prelude::Unknown,
        later: Option<bool>,
    ) -> napi::Result<crate::js::Raw> {
        use crate::errors::Failure;
        use napi::JsValue;
        let js = crate::js::Js(env.raw());
        crate::errors::answer(js, || {
            let Some(resources) = &self.slot.resources else {
                return Ok(());
            };
            if self.slot.waits_on_pool || later == Some(true) {
                return resources.drop_later(js, token.raw());
            }
            let dropped = self.slot.with_on_js_thread(js, |live| {
                let Some(handle) = resources.take_token(js, token.raw())? else {
                    return Ok(());
                };
                let waits = live.store.data().waits();
                crate::store::run(
                    &mut live.store,
                    &self.slot.engine,
                    &self.slot.defaults,
                    &mut live.metrics,
                    |store| {
                        if waits {
                            crate::store::wait(store, |store| Box::pin(handle.resource_drop_async(store)))
                        } else {
                            handle.resource_drop(store)
                        }
                    },
                )
            });
            match dropped {
                Err(Failure::Busy(_)) => resources.drop_later(js, token.raw()),
                // A destructor declares no value: `exit(0)` ends it, as it ends such a call.
                Err(Failure::Disposed(_) | Failure::Poisoned(_) | Failure::Exit(0)) => Ok(()),
                other => other,
            }
        })
    }

    /// Whether the guest resource handle `token` stands for is still JS's: not dropped, not moved
    /// into the guest (a call refused before the guest ran leaves it JS's), not of a disposed
    /// instance.
    #[napi]
    pub fn holds_resource(&self, env: napi::Env, token: napi::bindgen_prelude::Unknown) -> napi::Result<bool> {
        use napi::JsValue;
        let js = crate::js::Js(env.raw());
        crate::errors::guard(js, || {
            let Some(resources) = &self.slot.resources else {
                return Ok(false);
            };
            resources.holds_token(js, token.raw())
        })
    }

    /// The `TimeoutError` of the call that ended last once its deadline has passed, returned
    /// in the failure box (see `errors::fail`; nothing before then): decoding its result from
    /// the flat form in JS asks now and then, and stops there.
    #[napi(ts_return_type = "void")]
    pub fn result_stopped(&self, env: napi::Env) -> napi::Result<crate::js::Raw> {
        let js = crate::js::Js(env.raw());
        crate::errors::answer(js, || self.slot.returned_stopped().map_or(Ok(()), Err))
    }

    /// Resource handles the instance holds for JS and for the guest (guest resources JS has
    /// not dropped, host objects the guest has not dropped).
    #[napi(getter)]
    pub fn live_resources(&self) -> u32 {
        self.slot
            .resources
            .as_ref()
            .map_or(0, |resources| resources.live() as u32)
    }
}
