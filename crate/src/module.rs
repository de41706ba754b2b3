//! Core wasm modules ([`wasmtime::Module`]): compiling and loading them (constructors taking the
//! engine), their imports and exports with types, and instantiating them.

use napi_derive::napi;
use wasmtime::{ExternType, Instance, Module, Store};

use crate::binary::Binary;
use crate::call::Exports;
use crate::compiled::{InstanceParts, Kind};
use crate::component::wasi_served::WasiImports;
use crate::convert::{self, CoreFuncInfo, ref_type_name, type_name};
use crate::errors::Failure;
use crate::func::{self, CoreExport};
use crate::instance::NativeInstance;
use crate::js::{Js, Value};
use crate::linker::{self, LinkPlan, WASI_MODULES};
use crate::store::{HostState, StoreFuture};
use crate::wasi::NativeWasiOptions;
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
    /// A function's parameter and result types (kind `func`).
    pub func: Option<CoreFuncInfo>,
}

/// The core-module kind of compiled code.
pub struct CoreModule;

impl Kind for CoreModule {
    type Code = Module;
    type Instance = Instance;
    type Export = CoreExport;
    type Plan = LinkPlan;
    type Pre = wasmtime::InstancePre<HostState>;
    type Native = NativeInstance;

    const BINARY: Binary = Binary::Module;
    const NOUN: &'static str = "module";
    const WRONG_KIND: &'static str =
        "expected a core wasm module but got a component: use compileComponent for components";
    const POISON_ON_TRAP: bool = false;

    /// A core function's values are numbers, counted as they are.
    fn lift_ratio(_code: &Module, _engine: &wasmtime::Engine, _binary: Option<&[u8]>) -> usize {
        1
    }

    fn exports(code: &Module) -> Exports<CoreExport> {
        func::exports(code)
    }

    fn wasi_imports(code: &Module) -> WasiImports {
        WasiImports::module(code.imports().any(|import| WASI_MODULES.contains(&import.module())))
    }

    fn wasi(options: &NativeWasiOptions, memory_bytes: usize) -> Result<(WasiState, Output), Failure> {
        let (mut builder, output) = wasi::build(options, memory_bytes)?;
        let mut context = builder.build_p1();
        wasmtime_wasi::WasiView::ctx(&mut context)
            .table
            .set_max_capacity(wasi::max_wasi_handles(memory_bytes));
        Ok((WasiState::Module(Box::new(context)), output))
    }

    fn resolve(
        js: Js,
        code: &Module,
        imports: Option<Value>,
        _wasi: &WasiImports,
        with_wasi: bool,
    ) -> Result<(LinkPlan, Vec<Value>), Failure> {
        linker::resolve(js, code, imports, with_wasi)
    }

    fn link(code: &Module, plan: &LinkPlan) -> Result<Self::Pre, Failure> {
        linker::link(code, plan)
    }

    fn host_resources(_plan: &LinkPlan) -> Option<u32> {
        None
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        let instance = pre.instantiate(&mut *store)?;
        if let Some(initialize) = reactor_initializer(&instance, store)? {
            initialize.call(&mut *store, ())?;
        }
        Ok(instance)
    }

    fn instantiate_async(pre: Self::Pre, store: &mut Store<HostState>) -> StoreFuture<'_, Instance> {
        Box::pin(async move {
            let instance = pre.instantiate_async(&mut *store).await?;
            if let Some(initialize) = reactor_initializer(&instance, store)? {
                initialize.call_async(&mut *store, ()).await?;
            }
            Ok(instance)
        })
    }

    fn native(parts: InstanceParts<CoreExport>) -> NativeInstance {
        NativeInstance::new(parts)
    }

    /// Core types are flat: a module's listing grows only with its bytes.
    fn check(_code: &Module) -> Result<(), Failure> {
        Ok(())
    }
}

crate::compiled_class!(
    "A compiled core module ([`Module`](https://docs.rs/wasmtime/48.0.8/wasmtime/struct.Module.html)).",
    NativeModule,
    CoreModule,
    NativeInstance,
    "NativeModule",
    "NativeInstance",
    "Promise<NativeModule>",
    "Promise<NativeInstance>",
    "NativeModule | null",
    "Promise<NativeModule | null>"
);

#[napi]
impl NativeModule {
    /// Exports with core types (`func(i32, i32) -> i32`, `memory(min 1 pages)`, ...).
    #[napi(getter)]
    pub fn exports(&self) -> Vec<ModuleItemInfo> {
        // Plain listings of wasmtime's own types: nothing here can panic or fail.
        self.compiled
            .code
            .exports()
            .map(|export| {
                let (kind, type_, func) = describe(&export.ty());
                ModuleItemInfo {
                    module: None,
                    name: export.name().to_string(),
                    kind: kind.into(),
                    type_,
                    func,
                }
            })
            .collect()
    }

    /// Imports with their module name and core types.
    #[napi(getter)]
    pub fn imports(&self) -> Vec<ModuleItemInfo> {
        self.compiled
            .code
            .imports()
            .map(|import| {
                let (kind, type_, func) = describe(&import.ty());
                ModuleItemInfo {
                    module: Some(import.module().to_string()),
                    name: import.name().to_string(),
                    kind: kind.into(),
                    type_,
                    func,
                }
            })
            .collect()
    }
}

/// An item's kind, its spelling, and a function's descriptor (the spelling is rendered from it).
fn describe(ty: &ExternType) -> (&'static str, String, Option<CoreFuncInfo>) {
    let (kind, type_) = match ty {
        ExternType::Func(func) => {
            let func = convert::describe_func(func);
            return ("func", convert::render_func(&func), Some(func));
        }
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
    };
    (kind, type_, None)
}

/// A WASI reactor's `_initialize`, which the WASI application ABI says runs once, before any other
/// export (its language runtime starts there: Go's `-buildmode=c-shared` traps without it), as
/// `wasmtime run` and node:wasi's `initialize()` do. A command (`_start`) sets itself up, and a
/// module without WASI is not bound by that ABI.
/// One of another type is refused, as `wasmtime run` refuses it: skipping it left the guest's
/// exports running on a runtime never set up.
fn reactor_initializer(
    instance: &Instance,
    store: &mut Store<HostState>,
) -> wasmtime::Result<Option<wasmtime::TypedFunc<(), ()>>> {
    if !store.data().waits() || instance.get_func(&mut *store, "_start").is_some() {
        return Ok(None);
    }
    let Some(initialize) = instance.get_func(&mut *store, "_initialize") else {
        return Ok(None);
    };
    initialize.typed::<(), ()>(&*store).map(Some).map_err(|_| {
        let found = crate::convert::func_signature(&initialize.ty(&*store));
        wasmtime::Error::msg(format!(
            "the WASI reactor's _initialize must be a func() with no results, not {found}"
        ))
    })
}
