//! Core [`wasmtime::Module`]: compile, validate, serialize, imports/exports with types, and
//! instantiate.

use std::collections::HashMap;
use std::sync::Arc;

use napi::bindgen_prelude::{Uint8Array, Unknown};
use napi::{Env, JsValue, Result};
use napi_derive::napi;
use wasmtime::{ExternType, FuncType, InstancePre, Module as ModuleImpl, ModuleExport, ValType};

use crate::convert::{ref_type_name, type_name};
use crate::disk_cache;
use crate::engine::{EngineShared, is_component};
use crate::errors::{Failure, throw};
use crate::external::{ExternalMemory, reported};
use crate::host::{HostBridge, HostFunctions};
use crate::instance::{self, LinkPlan, NativeInstance};
use crate::js::{Js, Raw};
use crate::pre_cache::PreCache;
use crate::store::{self, HostState, NativeInstanceOptions, Slot};
use crate::tasks;
use crate::wasi::{self, Output, WasiState};

/// One import or export of a core module.
#[napi(object)]
pub struct ModuleItemInfo {
    /// The import's module name (imports only).
    pub module: Option<String>,
    pub name: String,
    /// `func`, `memory`, `table`, `global` or `tag`.
    pub kind: String,
    #[napi(js_name = "type")]
    pub type_: String,
}

/// An exported function, resolved once per module.
pub struct CoreExport {
    pub name: String,
    pub index: ModuleExport,
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
    /// Every parameter and result is a number (i32, i64, f32, f64): calls may skip wasmtime's
    /// dynamic type checks because our conversion already produced exactly these types.
    pub numeric: bool,
}

/// A compiled module and its exported functions, shared by all its instances.
pub struct ModuleShared {
    pub module: ModuleImpl,
    pub engine: Arc<EngineShared>,
    pub exports: HashMap<String, Arc<CoreExport>>,
    /// Whether the module imports WASI preview 1 (WASI is linked only then).
    pub imports_wasi: bool,
    /// Linked instantiation recipes per link plan.
    pub linked: PreCache<LinkPlan, InstancePre<HostState>>,
}

impl ModuleShared {
    fn new(module: ModuleImpl, engine: Arc<EngineShared>) -> Self {
        let exports = module
            .exports()
            .filter_map(|export| {
                let ExternType::Func(func) = export.ty() else {
                    return None;
                };
                let index = module.get_export_index(export.name())?;
                Some((
                    export.name().to_string(),
                    Arc::new(CoreExport {
                        name: export.name().to_string(),
                        index,
                        params: func.params().collect(),
                        results: func.results().collect(),
                        numeric: func.params().chain(func.results()).all(|ty| ty.is_num()),
                    }),
                ))
            })
            .collect();
        let imports_wasi = module
            .imports()
            .any(|import| crate::instance::WASI_MODULES.contains(&import.module()));
        ModuleShared {
            module,
            engine,
            exports,
            imports_wasi,
            linked: PreCache::new(),
        }
    }
}

pub fn func_signature(func: &FuncType) -> String {
    let params: Vec<String> = func.params().map(|ty| type_name(&ty)).collect();
    let results: Vec<String> = func.results().map(|ty| type_name(&ty)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        [single] => format!("func({}) -> {single}", params.join(", ")),
        many => format!("func({}) -> ({})", params.join(", "), many.join(", ")),
    }
}

fn describe(ty: &ExternType) -> (&'static str, String) {
    match ty {
        ExternType::Func(func) => ("func", func_signature(func)),
        ExternType::Memory(memory) => (
            "memory",
            match memory.maximum() {
                Some(max) => format!("memory(min {} pages, max {max} pages)", memory.minimum()),
                None => format!("memory(min {} pages)", memory.minimum()),
            },
        ),
        ExternType::Table(table) => (
            "table",
            format!("table({}, min {})", ref_type_name(table.element()), table.minimum()),
        ),
        ExternType::Global(global) => (
            "global",
            format!(
                "global({}{})",
                if global.mutability() == wasmtime::Mutability::Var {
                    "mut "
                } else {
                    ""
                },
                type_name(global.content())
            ),
        ),
        ExternType::Tag(_) => ("tag", "tag".into()),
    }
}

/// A compiled core module ([`Module`](https://docs.rs/wasmtime/48.0.8/wasmtime/struct.Module.html)).
#[napi(custom_finalize)]
pub struct NativeModule {
    shared: Arc<ModuleShared>,
    external: ExternalMemory,
}

crate::holds_external!(NativeModule, |this| {
    let code = this.shared.module.image_range();
    code.end as usize - code.start as usize
});

impl NativeModule {
    /// Compiles `bytes` (through the engine's on-disk cache, which `digest`, the bytes' SHA-256 in
    /// hex, saves hashing again).
    pub fn compile(
        engine: &Arc<EngineShared>,
        bytes: &[u8],
        digest: Option<&str>,
    ) -> std::result::Result<Self, Failure> {
        engine.check_open()?;
        if is_component(bytes) {
            return Err(Failure::Compile(
                "expected a core wasm module but got a component: use compileComponent for components".into(),
            ));
        }
        let module = disk_cache::compile::<ModuleImpl>(&engine.engine, engine.cache.as_ref(), bytes, digest)?;
        Ok(NativeModule {
            shared: Arc::new(ModuleShared::new(module, engine.clone())),
            external: ExternalMemory::default(),
        })
    }

    pub fn deserialize(engine: &Arc<EngineShared>, bytes: &[u8]) -> std::result::Result<Self, Failure> {
        engine.check_open()?;
        // SAFETY: wasmtime checks the header (version, engine configuration) and rejects
        // incompatible bytes; the bytes themselves must come from `serialize` (documented: never
        // deserialize untrusted input).
        let module = unsafe { ModuleImpl::deserialize(&engine.engine, bytes) }
            .map_err(|error| Failure::Compile(format!("cannot deserialize module: {error:#}")))?;
        Ok(NativeModule {
            shared: Arc::new(ModuleShared::new(module, engine.clone())),
            external: ExternalMemory::default(),
        })
    }

    pub fn validate(engine: &EngineShared, bytes: &[u8]) -> std::result::Result<(), Failure> {
        ModuleImpl::validate(&engine.engine, bytes).map_err(|error| Failure::compile(&error))
    }

    fn prepare(
        &self,
        js: Js,
        options: &NativeInstanceOptions,
        imports: Option<Unknown>,
    ) -> std::result::Result<impl FnOnce() -> std::result::Result<NativeInstance, Failure> + Send + 'static, Failure>
    {
        self.shared.engine.check_open()?;
        let limits = options.limits()?;
        let imports = imports.and_then(|value| js.defined(value.raw()));
        let (wasi, output) = match &options.wasi {
            Some(wasi_options) if self.shared.imports_wasi => {
                let (mut builder, output) = wasi::build(wasi_options)?;
                (WasiState::Module(Box::new(builder.build_p1())), output)
            }
            _ => (WasiState::None, Output::default()),
        };
        let with_wasi = !matches!(wasi, WasiState::None);
        let (plan, functions) = instance::resolve(js, &self.shared.module, imports, with_wasi)?;
        let functions = Arc::new(HostFunctions::new(js, functions).map_err(|error| Failure::Internal(error.reason))?);
        let shared = self.shared.clone();
        let defaults = options.defaults();
        Ok(move || {
            let engine = &shared.engine;
            let pre = shared
                .linked
                .get_or_build(plan, |plan| instance::link(&shared.module, plan))?;
            let store = store::new_store(engine, limits, HostBridge::new(functions), wasi);
            let live = store::instantiate(store, engine, &defaults, |store| pre.instantiate(store))?;
            Ok(NativeInstance::new(
                Slot::new(live, shared.engine.clone(), defaults, false),
                shared,
                output,
            ))
        })
    }
}

#[napi]
impl NativeModule {
    /// Exports with core types (`func(i32, i32) -> i32`, `memory(min 1 pages)`, ...).
    #[napi(getter)]
    pub fn exports(&self) -> Vec<ModuleItemInfo> {
        self.shared
            .module
            .exports()
            .map(|export| {
                let (kind, type_) = describe(&export.ty());
                ModuleItemInfo {
                    module: None,
                    name: export.name().to_string(),
                    kind: kind.into(),
                    type_,
                }
            })
            .collect()
    }

    /// Imports with their module name and core types.
    #[napi(getter)]
    pub fn imports(&self) -> Vec<ModuleItemInfo> {
        self.shared
            .module
            .imports()
            .map(|import| {
                let (kind, type_) = describe(&import.ty());
                ModuleItemInfo {
                    module: Some(import.module().to_string()),
                    name: import.name().to_string(),
                    kind: kind.into(),
                    type_,
                }
            })
            .collect()
    }

    /// Precompiled code for `Engine.deserializeModule` on a compatible engine.
    #[napi]
    pub fn serialize(&self, env: Env) -> Result<Uint8Array> {
        let bytes = throw(
            Js(env.raw()),
            self.shared
                .module
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
    ) -> Result<NativeInstance> {
        let js = Js(env.raw());
        throw(js, self.prepare(js, &options, imports).and_then(|create| create()))
            .map(|instance| reported(js, instance))
    }

    /// Instantiates on a pool thread (imports are linked on the JS thread first).
    #[napi(ts_return_type = "Promise<NativeInstance>")]
    pub fn instantiate(&self, env: &Env, options: NativeInstanceOptions, imports: Option<Unknown>) -> Result<Raw> {
        let js = Js(env.raw());
        let create = throw(js, self.prepare(js, &options, imports))?;
        tasks::promise(env, create, |js, result| result.map(|instance| reported(js, instance)))
    }
}
