//! Links JS functions to a core module's imports: `imports[module][name]`, own properties only,
//! with WASI preview 1 serving the `wasi_snapshot_preview1` imports JS leaves alone.

use std::sync::Arc;

use wasmtime::{Caller, ExternType, InstancePre, Linker, Module, Val, ValType};

use crate::convert::{self, func_signature};
use crate::errors::Failure;
use crate::js::{Js, Kind, Value};
use crate::names::label;
use crate::runtime::host_bridge;
use crate::store::HostState;

/// Module names of WASI preview 1 imports.
pub const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// How a module's imports are served: which imports (by position in `Module::imports`) JS
/// functions provide, in host-function index order, and whether WASI preview 1 serves the rest.
/// Equal plans link equally, so the linked [`InstancePre`] is reused (see `cache/pre.rs`).
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
    let mut functions = Vec::new();
    let mut provided = Vec::new();
    let mut missing = Vec::new();
    for (position, import) in module.imports().enumerate() {
        let label = format!("\"{}.{}\"", label(import.module()), label(import.name()));
        let ExternType::Func(func_type) = import.ty() else {
            return Err(Failure::Link(format!(
                "import {label}: only function imports can be provided from JS in this version"
            )));
        };
        let namespace = match imports {
            Some(object) => js.get_own(object, import.module())?,
            None => None,
        };
        let function = match namespace {
            Some(namespace) if js.kind(namespace)? == Kind::Object => js.get_own(namespace, import.name())?,
            _ => None,
        };
        match function {
            Some(value) if js.kind(value)? == Kind::Function => {
                functions.push(value);
                provided.push(position);
            }
            // Null is absent, as undefined is (as a component's imports read it).
            Some(value) if !matches!(js.kind(value)?, Kind::Undefined | Kind::Null) => {
                return Err(Failure::Link(format!(
                    "imports: {label} must be a function, got {}",
                    js.describe(value)
                )));
            }
            _ if wasi && WASI_MODULES.contains(&import.module()) => {}
            _ => missing.push(format!("{label}: {}", func_signature(&func_type))),
        }
    }
    if !missing.is_empty() {
        return Err(Failure::missing_imports(&missing));
    }
    Ok((LinkPlan { wasi, provided }, functions))
}

/// Links `module` by `plan` and type-checks it: the recipe every instance with this plan uses.
pub fn link(module: &Module, plan: &LinkPlan) -> std::result::Result<InstancePre<HostState>, Failure> {
    let failed = |error: wasmtime::Error| Failure::link(&error);
    let mut linker = Linker::new(module.engine());
    if plan.wasi {
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut HostState| state.wasi.p1()).map_err(failed)?;
        // JS functions may replace single WASI functions.
        linker.allow_shadowing(true);
        crate::wasi_symlink::guard_p1(&mut linker).map_err(failed)?;
        crate::wasi_p1_io::guard_p1(&mut linker).map_err(failed)?;
        // wasmtime's `proc_exit` fails on a status of 126 or more (reserved by shells); any status
        // is the guest's exit code here, as `_exit` takes any int (the CLI maps it to 1..255).
        linker
            .func_wrap(
                "wasi_snapshot_preview1",
                "proc_exit",
                |status: i32| -> wasmtime::Result<()> { Err(wasmtime_wasi::I32Exit(status).into()) },
            )
            .map_err(failed)?;
    }
    let imports: Vec<_> = module.imports().collect();
    for (index, &position) in plan.provided.iter().enumerate() {
        let import = &imports[position];
        let ExternType::Func(func_type) = import.ty() else {
            return Err(Failure::Internal("a link plan names a non-function import".into()));
        };
        let label = format!("\"{}.{}\"", label(import.module()), label(import.name()));
        // A JS function could never take or return such a value: refused when linking, naming
        // the import and its type, not at the guest's first call.
        if let Some(ty) = func_type.params().chain(func_type.results()).find(|ty| !ty.is_num()) {
            return Err(Failure::Link(format!(
                "import {label} has type {}: a JS function cannot take or return {}",
                func_signature(&func_type),
                convert::type_name(&ty)
            )));
        }
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
    let values = caller.data_mut().call_host(
        index,
        label,
        move |js, function, _| {
            let mut js_args = Vec::with_capacity(args.len());
            for value in &args {
                js_args.push(convert::to_js(js, value)?);
            }
            Ok(js.call(function, &js_args)?)
        },
        move |js, outcome| {
            let returned = match outcome {
                Ok(value) => value,
                Err(thrown) => return Err(host_bridge::thrown(js, &label_owned, thrown)),
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
                        let item = js.get_index(returned, position as u32)?;
                        values.push(
                            convert::from_js(js, item, ty)
                                .map_err(|message| bad_return(format!("result {position}: {message}")))?,
                        );
                    }
                    Ok(values)
                }
            }
        },
    )?;
    for (slot, value) in out.iter_mut().zip(values) {
        *slot = value;
    }
    Ok(())
}
