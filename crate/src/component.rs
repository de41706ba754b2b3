//! Components ([`wasmtime::component::Component`]): compiling and loading them (constructors
//! taking the engine), their imports and exports with WIT types, and instantiating them.

pub mod convert;
pub mod footprint;
pub mod func;
pub mod imported_resources;
pub mod instance;
pub mod linker;
pub mod resources;
pub mod types;
pub mod wasi_served;
pub mod wire;

use napi_derive::napi;
use wasmtime::Store;
use wasmtime::component::{Component, Instance, InstancePre, ResourceTable};

use self::func::ExportFunc;
use self::instance::NativeComponentInstance;
use self::linker::LinkPlan;
use self::types::ComponentItemInfo;
use self::wasi_served::WasiImports;
use crate::binary::{Binary, transcodes_strings};
use crate::call::Exports;
use crate::compiled::{InstanceParts, Kind};
use crate::errors::Failure;
use crate::js::{Js, Value};
use crate::limits::TRANSCODING_RATIO;
use crate::store::{HostState, StoreFuture};
use crate::wasi::NativeWasiOptions;
use crate::wasi::{self, Output, WasiState};
use wasmtime_wasi_http::WasiHttpCtx;

/// The component kind of compiled code.
pub struct ComponentKind;

impl Kind for ComponentKind {
    type Code = Component;
    type Instance = Instance;
    type Export = ExportFunc;
    type Plan = LinkPlan;
    type Pre = InstancePre<HostState>;
    type Native = NativeComponentInstance;

    const BINARY: Binary = Binary::Component;
    const NOUN: &'static str = "component";
    const WRONG_KIND: &'static str =
        "expected a component but got a core wasm module: use compileModule for core modules";
    const POISON_ON_TRAP: bool = true;

    fn exports(code: &Component) -> Exports<ExportFunc> {
        func::exports(code)
    }

    fn lift_ratio(code: &Component, engine: &wasmtime::Engine, binary: Option<&[u8]>) -> usize {
        let ratio = convert::component_lift_ratio(code, engine);
        // Without the bytes (deserialized, or text compiled in a child), it may transcode.
        if binary.is_none_or(transcodes_strings) {
            ratio.max(TRANSCODING_RATIO)
        } else {
            ratio
        }
    }

    fn wasi_imports(code: &Component) -> WasiImports {
        WasiImports::of(code)
    }

    fn wasi(options: &NativeWasiOptions, memory_bytes: usize) -> Result<(WasiState, Output), Failure> {
        let (mut builder, output) = wasi::build(options, memory_bytes)?;
        let mut table = ResourceTable::new();
        table.set_max_capacity(wasi::max_wasi_handles(memory_bytes));
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(crate::limits::HTTP_FIELDS_BYTES);
        let context = wasi::ComponentWasi {
            ctx: builder.build(),
            table,
            http,
        };
        Ok((WasiState::Component(Box::new(context)), output))
    }

    fn resolve(
        js: Js,
        code: &Component,
        imports: Option<Value>,
        wasi: &WasiImports,
        with_wasi: bool,
    ) -> Result<(LinkPlan, Vec<Value>), Failure> {
        linker::resolve(js, code, imports, wasi, with_wasi)
    }

    fn host_resources(plan: &LinkPlan) -> Option<u32> {
        Some(plan.host_resources())
    }

    fn link(code: &Component, plan: &LinkPlan) -> Result<Self::Pre, Failure> {
        linker::link(code, plan)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        pre.instantiate(store)
    }

    fn instantiate_async(pre: Self::Pre, store: &mut Store<HostState>) -> StoreFuture<'_, Instance> {
        Box::pin(async move { pre.instantiate_async(store).await })
    }

    fn native(parts: InstanceParts<ExportFunc>) -> NativeComponentInstance {
        NativeComponentInstance::new(parts)
    }

    fn check(code: &Component) -> Result<(), Failure> {
        types::check_listing_size(code)
    }
}

crate::compiled_class!(
    "A compiled component ([`Component`](https://docs.rs/wasmtime/48.0.8/wasmtime/component/struct.Component.html)).",
    NativeComponent,
    ComponentKind,
    NativeComponentInstance,
    "NativeComponent",
    "NativeComponentInstance",
    "Promise<NativeComponent>",
    "Promise<NativeComponentInstance>",
    "NativeComponent | null",
    "Promise<NativeComponent | null>"
);

#[napi]
impl NativeComponent {
    /// Top-level exports with WIT-like types; interfaces list their functions.
    #[napi(getter)]
    pub fn exports(&self, env: napi::Env) -> napi::Result<Vec<ComponentItemInfo>> {
        crate::errors::guard(Js(env.raw()), || Ok(types::exports(&self.compiled.code)))
    }

    /// Imports with WIT-like types; interfaces list their functions.
    #[napi(getter)]
    pub fn imports(&self, env: napi::Env) -> napi::Result<Vec<ComponentItemInfo>> {
        crate::errors::guard(Js(env.raw()), || {
            let wasi = &self.compiled.wasi_imports;
            Ok(types::imports(&self.compiled.code, |name| wasi.serves(name)))
        })
    }
}
