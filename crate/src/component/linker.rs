//! Links JS functions to a component's imports: root functions by name, interface functions in
//! an object keyed by the interface name; own properties only (nothing from `Object.prototype`).

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, InstancePre, Linker, ResourceType, Type, Val};

use super::convert;
use super::footprint::{self, Footprint};
use super::imported_resources::ImportedResources;
use super::resources::{Resolved, holds_resources};
use super::types::{func_signature, with_resource_names};
use super::wasi_served::WasiImports;
use crate::errors::Failure;
use crate::js::places::Let;
use crate::js::{Js, Kind, Value};
use crate::names::{function_keys, interface_keys};
use crate::runtime::host_bridge;
use crate::store::HostState;

/// How a component's imports are served: the JS-provided functions in host-function index order,
/// grouped as the linker defines them, and whether WASI preview 2 serves the `wasi:*` imports JS
/// leaves alone. Equal plans link equally, so the linked [`InstancePre`] is reused.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkPlan {
    wasi: bool,
    items: Vec<PlanItem>,
}

#[derive(Clone, PartialEq, Eq)]
enum PlanItem {
    /// A root function import.
    Function(String),
    /// A resource imported at the root, implemented by a JS class: its name and payload.
    Resource(String, u32),
    /// An interface defined from JS (replacing WASI's, if any), with its functions and the
    /// resource types its JS classes implement (each with its payload).
    Interface(String, Vec<String>, Vec<(String, u32)>),
}

impl LinkPlan {
    /// How many host-implemented resource types the plan links (`host_dynamic(0..n)`).
    pub fn host_resources(&self) -> u32 {
        let payloads = self.items.iter().flat_map(|item| match item {
            PlanItem::Interface(_, _, resources) => resources.iter().map(|&(_, payload)| payload).collect(),
            PlanItem::Resource(_, payload) => vec![*payload],
            PlanItem::Function(_) => Vec::new(),
        });
        payloads.max().map_or(0, |most| most + 1)
    }
}

/// Finds the JS function for every function import of `component` (on the JS thread): root
/// functions by name, interface functions in an object keyed by the interface name. Returns the
/// link plan and those functions in host-function index order.
pub fn resolve(
    js: Js,
    component: &Component,
    imports: Option<Value>,
    wasi: &WasiImports,
    with_wasi: bool,
) -> Result<(LinkPlan, Vec<Value>), Failure> {
    // Messages spell resource types by name (`borrow<logger>`).
    with_resource_names(component, || resolve_named(js, component, imports, wasi, with_wasi))
}

fn resolve_named(
    js: Js,
    component: &Component,
    imports: Option<Value>,
    wasi: &WasiImports,
    with_wasi: bool,
) -> Result<(LinkPlan, Vec<Value>), Failure> {
    let engine = component.engine();
    let mut functions = Vec::new();
    let mut items = Vec::new();
    let mut missing = Vec::new();
    let resources = ImportedResources::of(component);
    let mut seen = Vec::new();
    for (name, import) in component.component_type().imports(engine) {
        if with_wasi && wasi.serves(name) && lookup_object(js, imports, name)?.is_none() {
            continue;
        }
        match &import.ty {
            ComponentItem::ComponentFunc(func) => match lookup_function(js, imports, &function_keys(name))? {
                Some(function) => {
                    functions.push(function);
                    items.push(PlanItem::Function(name.to_string()));
                }
                None => missing.push(format!("{name}: {}", func_signature(func))),
            },
            ComponentItem::ComponentInstance(instance) => {
                // Its resource types, each with its payload and whether this interface defines it.
                let linked: Vec<(String, u32, bool)> = instance
                    .exports(engine)
                    .filter_map(|(resource, export)| match &export.ty {
                        ComponentItem::Resource(ty) => {
                            let (payload, first) = resources.payload(ty, &mut seen);
                            Some((resource.to_string(), payload, first))
                        }
                        _ => None,
                    })
                    .collect();
                let Some(object) = lookup_object(js, imports, name)? else {
                    let functions: Vec<&str> = instance
                        .exports(engine)
                        .filter(|(_, export)| matches!(export.ty, ComponentItem::ComponentFunc(_)))
                        .map(|(function_name, _)| function_name)
                        .collect();
                    if functions.is_empty() && !linked.iter().any(|&(_, _, first)| first) {
                        // An interface of types alone, or of resources another import defines
                        // (wit-component imports it when another interface `use`s them), has
                        // nothing for the host to give.
                        let aliases = linked
                            .into_iter()
                            .map(|(resource, payload, _)| (resource, payload))
                            .collect();
                        items.push(PlanItem::Interface(name.to_string(), Vec::new(), aliases));
                        continue;
                    }
                    let lacked = wasi.lacked(name);
                    let hint = if wasi.serves(name) {
                        "; WASI is not linked (wasi: false)".to_string()
                    } else if !lacked.is_empty() {
                        format!("; the WASI this runtime provides lacks {}", lacked.join(", "))
                    } else if let Some(host) = wasi.tied_to(name) {
                        format!("; it shares resource types with {host}, which the host gives")
                    } else if name.starts_with("wasi:") {
                        "; not part of the WASI this runtime provides".to_string()
                    } else {
                        String::new()
                    };
                    // The classes of the resources it defines, then its functions.
                    let classes = (linked.iter().filter(|&&(_, _, first)| first))
                        .map(|(resource, _, _)| format!("class {}", crate::names::upper_camel_case(resource)));
                    let members: Vec<String> = classes.chain(functions.iter().map(|name| name.to_string())).collect();
                    let members = if members.is_empty() {
                        "an object".to_string()
                    } else {
                        format!("an object with {}", members.join(", "))
                    };
                    missing.push(format!("{name} ({members}{hint})"));
                    continue;
                };
                let mut provided = Vec::new();
                for (function_name, export) in instance.exports(engine) {
                    let ComponentItem::ComponentFunc(func) = &export.ty else {
                        continue;
                    };
                    match lookup_function(js, Some(object), &function_keys(function_name))? {
                        Some(function) => {
                            functions.push(function);
                            provided.push(function_name.to_string());
                        }
                        // The interface's name cut as a name in a message is, so that the cut of
                        // the whole keeps which function is missing.
                        None => missing.push(format!(
                            "{}#{function_name}: {}",
                            crate::names::label(name),
                            func_signature(func)
                        )),
                    }
                }
                let linked = linked
                    .into_iter()
                    .map(|(resource, payload, _)| (resource, payload))
                    .collect();
                items.push(PlanItem::Interface(name.to_string(), provided, linked));
            }
            ComponentItem::Type(_) => {}
            ComponentItem::Resource(ty) => {
                let (payload, _) = resources.payload(ty, &mut seen);
                items.push(PlanItem::Resource(name.to_string(), payload));
            }
            _ => {
                return Err(Failure::Link(format!(
                    "import {name}: only functions and interfaces can be imported"
                )));
            }
        }
    }
    if !missing.is_empty() {
        return Err(Failure::missing_imports(&missing));
    }
    Ok((LinkPlan { wasi: with_wasi, items }, functions))
}

/// Links `component` by `plan` and type-checks it: the recipe every instance with this plan uses.
pub fn link(component: &Component, plan: &LinkPlan) -> Result<InstancePre<HostState>, Failure> {
    let failed = |error: wasmtime::Error| Failure::link(&error);
    let mut linker = Linker::new(component.engine());
    if plan.wasi {
        super::wasi_served::add_to_linker(&mut linker).map_err(failed)?;
        // JS functions may replace single WASI interfaces.
        linker.allow_shadowing(true);
        crate::wasi_symlink::guard_p2(&mut linker).map_err(failed)?;
        crate::wasi_p2_writes::guard(&mut linker).map_err(failed)?;
    }
    let mut index = 0;
    let mut host_function = |name: String| {
        let label: Arc<str> = format!("\"{}\"", crate::names::label(&name)).into();
        let own = index;
        index += 1;
        move |mut cx: StoreContextMut<'_, HostState>, ty: ComponentFunc, params: &[Val], results: &mut [Val]| {
            host_call(&mut cx, own, &label, ty, params, results)
        }
    };
    for item in &plan.items {
        match item {
            PlanItem::Function(name) => {
                let function = host_function(name.clone());
                linker.root().func_new(name, function).map_err(failed)?;
            }
            PlanItem::Resource(name, payload) => {
                linker
                    .root()
                    .resource(name, ResourceType::host_dynamic(*payload), release_host_object)
                    .map_err(failed)?;
            }
            PlanItem::Interface(interface, names, resources) => {
                let mut instance = linker.instance(interface).map_err(failed)?;
                for (resource, payload) in resources {
                    instance
                        .resource(resource, ResourceType::host_dynamic(*payload), release_host_object)
                        .map_err(failed)?;
                }
                for name in names {
                    let function = host_function(format!("{interface}#{name}"));
                    instance.func_new(name, function).map_err(failed)?;
                }
            }
        }
    }
    linker.instantiate_pre(component).map_err(failed)
}

/// The guest dropped a handle to a host object: the object leaves the instance's slab, and its
/// `[Symbol.dispose]` runs, if it has one, when that was the last handle to it.
fn release_host_object(mut cx: StoreContextMut<'_, HostState>, rep: u32) -> wasmtime::Result<()> {
    let state = cx.data_mut();
    let Some(object) = state.resources.as_ref().and_then(|resources| resources.take_host(rep)) else {
        return Ok(());
    };
    // Not while another handle holds it: the host may have given it more than once.
    state
        .host
        .run_js_later(Box::new(move |js| host_bridge::let_go(js, object, Let::Dropped)));
    Ok(())
}

/// `object[key]` when it is an own property and not `undefined`.
fn property(js: Js, object: Value, key: &str) -> Result<Option<Value>, Failure> {
    if !matches!(js.kind(object)?, Kind::Object | Kind::Function) {
        return Ok(None);
    }
    // Null is absent too, as undefined is: neither stops the search at a key.
    Ok(match js.get_own(object, key)? {
        Some(value) if !matches!(js.kind(value)?, Kind::Undefined | Kind::Null) => Some(value),
        _ => None,
    })
}

fn lookup_function(js: Js, object: Option<Value>, keys: &[String]) -> Result<Option<Value>, Failure> {
    let Some(object) = object else { return Ok(None) };
    for key in keys {
        if let Some(value) = property(js, object, key)? {
            if js.kind(value)? != Kind::Function {
                return Err(Failure::Link(format!(
                    "imports: \"{}\" must be a function, got {}",
                    crate::names::label(key),
                    js.describe(value)
                )));
            }
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// The object for interface `name`, found by its full name or by the name without `@version`.
fn lookup_object(js: Js, object: Option<Value>, name: &str) -> Result<Option<Value>, Failure> {
    let Some(object) = object else { return Ok(None) };
    for key in interface_keys(name) {
        if let Some(value) = property(js, object, key)? {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// The JS heap (estimated) of a host call's arguments past which their `Val`s are freed on the
/// pool, not on the JS thread: some 100,000 values.
const FREE_ON_POOL_BYTES: usize = 4 << 20;

fn host_call(
    cx: &mut StoreContextMut<'_, HostState>,
    index: usize,
    label: &Arc<str>,
    ty: ComponentFunc,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    // wasmtime has lifted the arguments, which may have outlasted the call's deadline (seconds
    // for millions of small values): then nothing more is done with them.
    if let Some(stopped) = (cx.data().call_limits()).stopped(|| format!("passing arguments to host function {label}")) {
        return Err(cx.data_mut().fail_call(stopped));
    }
    let param_types: Vec<Type> = ty.params().map(|(_, ty)| ty).collect();
    let result_type = ty.results().next();
    let cap = cx.data().js_heap_cap();
    let flags = param_types.iter().map(convert::flags_cost).max().unwrap_or(0);
    let js_heap = match convert::check_js_size(params, flags, cap, || format!("the arguments to {label}")) {
        Ok(bytes) => bytes,
        Err(failure) => return Err(cx.data_mut().fail_call(failure)),
    };
    charge_moved(cx, params, js_heap)?;
    let mut args = params.to_vec();
    let resources = cx.data().resources.clone();
    // Resources the guest hands out become markers here, where the store is at hand.
    let mut borrowed = Vec::new();
    if let Some(resources) = &resources {
        let mut captured = 0;
        for (value, ty) in args.iter_mut().zip(&param_types) {
            if holds_resources(ty)
                && let Err(failure) = resources.capture(&mut *cx, value, ty, &mut borrowed, &mut captured)
            {
                return Err(cx.data_mut().fail_call(failure));
            }
        }
    }
    let (to_js_cx, from_js_cx) = (resources.clone(), resources.clone());
    let (owned_label, stop_label) = (label.clone(), label.clone());
    let returned_type = result_type.clone();
    let memory_limit = cx.data().limiter.metrics().limit_bytes;
    let value = cx.data_mut().call_host(
        index,
        label,
        move |js, function, limits| {
            // The guest waits for these values within its deadline and abort, which a conversion
            // of its many small values may outlast: the function is not called past them.
            let stop = || limits.stopped(|| host_bridge::waiting(&stop_label));
            let converted: Result<Vec<Value>, Failure> = args
                .iter()
                .zip(&param_types)
                .map(|(value, ty)| convert::to_js_until(js, to_js_cx.as_ref(), value, ty, &stop))
                .collect();
            // Freeing millions of values took the JS thread a third of a second (an outside probe):
            // large ones are freed on the pool.
            if js_heap > FREE_ON_POOL_BYTES {
                crate::runtime::pool::run_in_pool(move || drop(args));
            }
            let js_args = converted?;
            if let Some(stopped) = stop() {
                return Err(stopped);
            }
            Ok(js.call(function, &js_args)?)
        },
        move |js, returned| {
            let cx = from_js_cx.as_ref();
            outcome_to_val(js, cx, &owned_label, returned, returned_type.as_ref(), memory_limit)
        },
    );
    if let Some(resources) = &resources {
        resources.end_borrows(&mut *cx, borrowed)?;
        if let Some(limit) = resources.take_limit_hit() {
            return Err(cx.data_mut().fail_call(limit));
        }
    }
    let mut value = value?;
    if let (Some(resources), Some(returned), Some(ty)) = (&resources, value.as_mut(), result_type.as_ref())
        && holds_resources(ty)
    {
        let mut resolved = Resolved::default();
        if let Err(message) = resources.resolve(&mut *cx, returned, ty, &mut resolved) {
            resources.refused(&mut *cx, resolved);
            let failure = resources.take_limit_hit().unwrap_or_else(|| Failure::Host {
                message: format!("host function {label} returned a bad value: {message}"),
                cause: None,
            });
            return Err(cx.data_mut().fail_call(failure));
        }
        // A result holds no borrow: nothing is lent.
        resources.start(resolved);
    }
    if let Some(value) = &value {
        charge_moved(cx, std::slice::from_ref(value), 0)?;
    }
    if let (Some(slot), Some(value)) = (results.first_mut(), value) {
        *slot = value;
    }
    Ok(())
}

/// Charges the guest, when the engine meters fuel, one unit per byte of the strings and lists
/// `values` carry across a host call, and one per byte of V8's heap (`js_heap`, estimated) that
/// their JS form takes: its instructions cost a few units, and the host copies and converts
/// whatever it passes (a guest looping on a call passing 1 MiB used 36,000 units of a 1,000,000
/// budget in 10 s; an outside probe), as `memory.copy` costs a unit per byte; a value of many small
/// parts costs the host per part, not per byte (100,000 tuples of tuples of a `bool`, 100,000
/// bytes, took a second to convert). Past the fuel left, the call traps as any instruction does
/// when the fuel runs out.
fn charge_moved(cx: &mut StoreContextMut<'_, HostState>, values: &[Val], js_heap: usize) -> wasmtime::Result<()> {
    if !cx.data().metered {
        return Ok(());
    }
    let left = cx.get_fuel()?;
    let moved = values
        .iter()
        .map(footprint::moved_bytes)
        .fold(js_heap as u64, u64::saturating_add);
    if moved > left {
        cx.set_fuel(0)?;
        return Err(wasmtime::Trap::OutOfFuel.into());
    }
    cx.set_fuel(left - moved)
}

/// What a host function's return (or throw) means for the guest: for a `result`
/// return type the function returns the ok value and throws the err value.
fn outcome_to_val(
    js: Js,
    cx: convert::Cx,
    label: &str,
    returned: Result<Value, Value>,
    result_type: Option<&Type>,
    memory_limit: usize,
) -> Result<Option<Val>, Failure> {
    let bad_return = |message: String| Failure::Host {
        message: format!("host function {label} returned a bad value: {message}"),
        cause: None,
    };
    let convert = |value: Value, ty: &Type| {
        convert::from_js_given(js, cx, value, ty, &mut Footprint::new(memory_limit)).map_err(bad_return)
    };
    match returned {
        Ok(_) if result_type.is_none() => Ok(None),
        Ok(value) => {
            let result_type = result_type.expect("checked above");
            if let Type::Result(result) = result_type {
                // The result itself, as jco takes it: an object whose own `tag` is ok or err,
                // unless the ok value may carry that tag itself.
                if returns_result(js, value, result.ok().as_ref()) {
                    return Ok(Some(convert(value, result_type)?));
                }
                let payload = match result.ok() {
                    Some(ok_type) => Some(Box::new(convert(value, &ok_type)?)),
                    None => None,
                };
                Ok(Some(Val::Result(Ok(payload))))
            } else {
                Ok(Some(convert(value, result_type)?))
            }
        }
        Err(thrown) => {
            let Some(Type::Result(result)) = result_type.filter(|_| !host_bridge::is_host_failure(js, thrown)) else {
                return Err(host_bridge::thrown(js, label, thrown));
            };
            let Some(err_type) = result.err() else {
                return Ok(Some(Val::Result(Err(None))));
            };
            let payload = crate::js::failure::err_payload(js, thrown, matches!(err_type, Type::String));
            let footprint = &mut Footprint::new(memory_limit);
            match payload.map(|payload| convert::from_js_given(js, cx, payload, &err_type, footprint)) {
                Some(Ok(payload)) => Ok(Some(Val::Result(Err(Some(Box::new(payload)))))),
                // Not an err the guest can take: a failure of the host's, saying why.
                Some(Err(why)) => {
                    Err(host_bridge::thrown(js, label, thrown).with_reason(&format!("its err payload: {why}")))
                }
                None => Err(host_bridge::thrown(js, label, thrown)),
            }
        }
    }
}

/// Whether a host function's return for a `result` type is the result itself (`{ tag: 'ok' |
/// 'err', val }`) rather than its ok value: jco's rule, so host code written for jco works here.
/// A tag that a value of the ok type may carry itself ([`tags_carried`]) means the ok value.
fn returns_result(js: Js, value: Value, ok: Option<&Type>) -> bool {
    let tag = property(js, value, "tag").ok().flatten();
    // "err" at most: a longer tag is not read.
    let Some(crate::js::StringValue::Text(tag)) = tag.and_then(|tag| js.string_value_within(tag, "err".len()).ok())
    else {
        return false;
    };
    let [carries_ok, carries_err] = ok.map_or([false, false], tags_carried);
    (tag == "ok" && !carries_ok) || (tag == "err" && !carries_err)
}

/// Whether a JS value of `ty` may have an own `tag` of `ok`, and of `err` (jco's rule, which
/// lib/util/wit.ts repeats): a result's has either, a variant's its cases of those names, a
/// record with a field and flags with a flag whose JS key is `tag` (`tag` or `TAG` in WIT; jco
/// looks at the WIT name only, and fails on `TAG`) may have any, an option's what its element's
/// may.
fn tags_carried(ty: &Type) -> [bool; 2] {
    let tag_key = |name: &str| crate::names::camel_case(name) == "tag";
    match ty {
        Type::Result(_) => [true, true],
        Type::Variant(variant) => ["ok", "err"].map(|tag| variant.cases().any(|case| case.name == tag)),
        Type::Record(record) if record.fields().any(|field| tag_key(field.name)) => [true, true],
        Type::Flags(flags) if flags.names().any(tag_key) => [true, true],
        Type::Option(option) => tags_carried(&option.ty()),
        _ => [false, false],
    }
}
