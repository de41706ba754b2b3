//! [`wasmtime::component::Component`]: compile, validate, serialize, list imports/exports, and
//! instantiate.

pub mod convert;
pub mod func;
pub mod instance;
pub mod linker;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;

use napi::bindgen_prelude::{Uint8Array, Unknown};
use napi::{Env, JsValue, Result};
use napi_derive::napi;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component as ComponentImpl, InstancePre};

use self::convert::camel_case;
use self::func::ExportFunc;
use self::instance::NativeComponentInstance;
use self::linker::LinkPlan;
use self::types::ComponentItemInfo;
use crate::disk_cache;
use crate::engine::{EngineShared, is_core_module};
use crate::errors::{Failure, throw};
use crate::external::{ExternalMemory, reported};
use crate::host::{HostBridge, HostFunctions};
use crate::js::{Js, Raw};
use crate::pre_cache::PreCache;
use crate::store::{self, HostState, NativeInstanceOptions, Slot};
use crate::tasks;
use crate::wasi::{self, Output, WasiState};
use wasmtime::component::ResourceTable;

/// A compiled component and its export table, shared by all its instances.
pub struct ComponentShared {
    pub component: ComponentImpl,
    pub engine: Arc<EngineShared>,
    /// Every spelling of every exported function: `name`, `camelName`, `iface#name`,
    /// `iface#camelName`, and the same with the interface's `@version` left out.
    pub exports: HashMap<String, Arc<ExportFunc>>,
    /// Whether the component imports any `wasi:*` interface (WASI is linked only then).
    pub imports_wasi: bool,
    /// Linked instantiation recipes per link plan.
    pub linked: PreCache<LinkPlan, InstancePre<HostState>>,
}

impl ComponentShared {
    fn new(component: ComponentImpl, engine: Arc<EngineShared>) -> Self {
        let mut exports = HashMap::new();
        let wasm_engine = component.engine().clone();
        let component_type = component.component_type();
        let mut add = |interface: Option<&str>, name: &str, func: &wasmtime::component::types::ComponentFunc| {
            let interface_index = interface.and_then(|iface| component.get_export_index(None, iface));
            let Some(index) = component.get_export_index(interface_index.as_ref(), name) else {
                return;
            };
            let path = match interface {
                Some(iface) => format!("{iface}#{name}"),
                None => name.to_string(),
            };
            let export = Arc::new(ExportFunc {
                path,
                index,
                params: func.params().map(|(name, ty)| (name.to_string(), ty)).collect(),
                result: func.results().next(),
            });
            let mut prefixes = vec![String::new()];
            if let Some(iface) = interface {
                prefixes = vec![format!("{iface}#")];
                if let Some((unversioned, _)) = iface.split_once('@') {
                    prefixes.push(format!("{unversioned}#"));
                }
            }
            for prefix in prefixes {
                exports.insert(format!("{prefix}{name}"), export.clone());
                exports.insert(format!("{prefix}{}", camel_case(name)), export.clone());
            }
        };
        for (name, export) in component_type.exports(&wasm_engine) {
            match &export.ty {
                ComponentItem::ComponentFunc(func) => add(None, name, func),
                ComponentItem::ComponentInstance(instance) => {
                    for (function_name, item) in instance.exports(&wasm_engine) {
                        if let ComponentItem::ComponentFunc(func) = &item.ty {
                            add(Some(name), function_name, func);
                        }
                    }
                }
                _ => {}
            }
        }
        let imports_wasi = component_type
            .imports(&wasm_engine)
            .any(|(name, _)| name.starts_with("wasi:"));
        ComponentShared {
            component,
            engine,
            exports,
            imports_wasi,
            linked: PreCache::new(),
        }
    }
}

/// A compiled component ([`Component`](https://docs.rs/wasmtime/48.0.8/wasmtime/component/struct.Component.html)).
#[napi(custom_finalize)]
pub struct NativeComponent {
    shared: Arc<ComponentShared>,
    external: ExternalMemory,
}

crate::holds_external!(NativeComponent, |this| {
    let code = this.shared.component.image_range();
    code.end as usize - code.start as usize
});

impl NativeComponent {
    /// Compiles `bytes` (through the engine's on-disk cache, which `digest`, the bytes' SHA-256 in
    /// hex, saves hashing again).
    pub fn compile(
        engine: &Arc<EngineShared>,
        bytes: &[u8],
        digest: Option<&str>,
    ) -> std::result::Result<Self, Failure> {
        engine.check_open()?;
        if is_core_module(bytes) {
            return Err(Failure::Compile(
                "expected a component but got a core wasm module: use compileModule for core modules".into(),
            ));
        }
        let component = disk_cache::compile::<ComponentImpl>(&engine.engine, engine.cache.as_ref(), bytes, digest)?;
        Ok(NativeComponent {
            shared: Arc::new(ComponentShared::new(component, engine.clone())),
            external: ExternalMemory::default(),
        })
    }

    pub fn deserialize(engine: &Arc<EngineShared>, bytes: &[u8]) -> std::result::Result<Self, Failure> {
        engine.check_open()?;
        // SAFETY: wasmtime checks the header (version, engine configuration) and rejects
        // incompatible bytes; the bytes themselves must come from `serialize` (documented: never
        // deserialize untrusted input).
        let component = unsafe { ComponentImpl::deserialize(&engine.engine, bytes) }
            .map_err(|error| Failure::Compile(format!("cannot deserialize component: {error:#}")))?;
        Ok(NativeComponent {
            shared: Arc::new(ComponentShared::new(component, engine.clone())),
            external: ExternalMemory::default(),
        })
    }

    /// Links `imports` (on the JS thread) and returns the work that creates the instance.
    fn prepare(
        &self,
        js: Js,
        options: &NativeInstanceOptions,
        imports: Option<Unknown>,
    ) -> std::result::Result<
        impl FnOnce() -> std::result::Result<NativeComponentInstance, Failure> + Send + 'static,
        Failure,
    > {
        self.shared.engine.check_open()?;
        let limits = options.limits()?;
        let imports = imports.and_then(|value| js.defined(value.raw()));
        let (wasi, output) = match &options.wasi {
            Some(wasi_options) if self.shared.imports_wasi => {
                let (mut builder, output) = wasi::build(wasi_options)?;
                let context = (builder.build(), ResourceTable::new());
                (WasiState::Component(Box::new(context)), output)
            }
            _ => (WasiState::None, Output::default()),
        };
        let with_wasi = !matches!(wasi, WasiState::None);
        let (plan, functions) = linker::resolve(js, &self.shared.component, imports, with_wasi)?;
        let functions = Arc::new(HostFunctions::new(js, functions).map_err(|error| Failure::Internal(error.reason))?);
        let shared = self.shared.clone();
        let defaults = options.defaults();
        Ok(move || {
            let engine = &shared.engine;
            let pre = shared
                .linked
                .get_or_build(plan, |plan| linker::link(&shared.component, plan))?;
            let store = store::new_store(engine, limits, HostBridge::new(functions), wasi);
            let live = store::instantiate(store, engine, &defaults, |store| pre.instantiate(store))?;
            Ok(NativeComponentInstance::new(
                Slot::new(live, shared.engine.clone(), defaults, true),
                shared,
                output,
            ))
        })
    }
}

#[napi]
impl NativeComponent {
    /// Top-level exports with WIT-like types; interfaces list their functions.
    #[napi(getter)]
    pub fn exports(&self) -> Vec<ComponentItemInfo> {
        types::exports(&self.shared.component)
    }

    /// Imports with WIT-like types; interfaces list their functions.
    #[napi(getter)]
    pub fn imports(&self) -> Vec<ComponentItemInfo> {
        types::imports(&self.shared.component)
    }

    /// Precompiled code for `Engine.deserializeComponent` on a compatible engine.
    #[napi]
    pub fn serialize(&self, env: Env) -> Result<Uint8Array> {
        let bytes = throw(
            Js(env.raw()),
            self.shared
                .component
                .serialize()
                .map_err(|error| Failure::Internal(format!("{error:#}"))),
        )?;
        Ok(Uint8Array::new(bytes))
    }

    /// Instantiates on the JS thread.
    #[napi]
    pub fn instantiate_sync(
        &self,
        env: Env,
        options: NativeInstanceOptions,
        imports: Option<Unknown>,
    ) -> Result<NativeComponentInstance> {
        let js = Js(env.raw());
        throw(js, self.prepare(js, &options, imports).and_then(|create| create()))
            .map(|instance| reported(js, instance))
    }

    /// Instantiates on a pool thread (imports are linked on the JS thread first).
    #[napi(ts_return_type = "Promise<NativeComponentInstance>")]
    pub fn instantiate(&self, env: &Env, options: NativeInstanceOptions, imports: Option<Unknown>) -> Result<Raw> {
        let js = Js(env.raw());
        let create = throw(js, self.prepare(js, &options, imports))?;
        tasks::promise(env, create, |js, result| result.map(|instance| reported(js, instance)))
    }
}
