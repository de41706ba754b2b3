//! Calling a component export: its signature, argument lowering, the call, result lifting.

use std::sync::Arc;

use smallvec::SmallVec;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, Func, Instance, Type, Val};

use super::convert::{self, TypedVal};
use super::footprint::Footprint;
use super::resources::{Loans, Resolved, holds_resources};
use super::types::{wit_type, with_resource_names};
use super::wire::{self, Shape};
use crate::call::{Export, Exports, Resources};
use crate::engine::EngineShared;
use crate::errors::{Failure, deferred_drop};
use crate::js::{ElementType, Js, Value};
use crate::names::export_paths;
use crate::runtime::host_bridge::{self, WaitLimits};
use crate::store::{self, Budget, Live};

/// Most bytes of a guest's `result::err` text its error's message repeats.
const ERR_TEXT_BYTES: usize = 1024;

/// Most bytes of the parameters a wrong argument count's message spells out.
const SIGNATURE_BYTES: usize = 500;

/// Arguments of one call: most signatures are short, so they stay on the stack.
pub type Vals = SmallVec<[Val; 4]>;

/// An export path resolved once per component: where it is and what it takes and returns.
pub struct ExportFunc {
    /// `name` or `interface#name`, as WIT spells it.
    pub path: String,
    /// The path as messages show it ([`crate::names::label`]).
    shown: String,
    pub index: ComponentExportIndex,
    pub params: Vec<(String, Type)>,
    /// The parameters as WIT writes them, resources by name (`self: borrow<counter>, by: s32`),
    /// for the message of a call with the wrong number of arguments.
    signature: String,
    pub result: Option<Type>,
    /// Whether a parameter or the result can hold a resource (their conversion then needs the
    /// instance's [`Resources`](super::resources::Resources) and the store).
    pub resources_in: bool,
    pub resources_out: bool,
    /// What one flags value in the result counts for (see [`convert::flags_cost`]).
    result_flags: usize,
    /// A `func(list<u8>) -> list<u8>`: called through wasmtime's typed API when given a
    /// `Uint8Array` or an array of numbers (see [`ExportFunc::invoke_typed`]).
    bytes_to_bytes: bool,
    /// A `func(string) -> string`: called through wasmtime's typed API too.
    text_to_text: bool,
    /// The type of what a call returns to JS: the result's, or the ok value's of a `result` (an
    /// err is thrown).
    lifted: Option<Type>,
    /// The flat form of that, when it has one.
    flat: Option<Shape>,
    /// The flat forms of the parameters, when they all have one.
    flat_params: Option<Vec<Shape>>,
}

fn is_bytes(ty: &Type) -> bool {
    matches!(ty, Type::List(list) if matches!(list.ty(), Type::U8))
}

/// The arguments of one call: component values, or the one argument of a signature the typed
/// path serves.
pub enum Args {
    /// With the host objects they lend or give to the guest, when they hold any.
    Vals(Vals, Option<Loans>),
    Bytes(Vec<u8>),
    Text(String),
}

/// What one call returned.
pub enum Returned {
    Val(Option<Val>),
    Bytes(Vec<u8>),
    Text(String),
    /// The guest returned, but its deadline passed while wasmtime lifted its values (seconds for
    /// millions of small ones): the call ends with this failure, and the instance stays usable.
    Late(Failure),
}

impl Export for ExportFunc {
    type Instance = Instance;
    type Func = Func;
    type Params = Args;
    type Output = Returned;

    fn name(&self) -> &str {
        &self.path
    }

    /// Errors name the parameter and the path inside it.
    fn lower_args(
        &self,
        js: Js,
        resources: Resources<'_>,
        guest_memory: usize,
        args: &[Value],
    ) -> Result<Args, Failure> {
        let fail = |message: String| Failure::Type(format!("{}: {message}", self.shown));
        if let (true, [arg], [(name, _)]) = (self.bytes_to_bytes, args, self.params.as_slice())
            && let Some(bytes) = convert::bytes_from_js(js, *arg, guest_memory)
                .map_err(|message| fail(format!("param \"{}\": {message}", crate::names::label(name))))?
        {
            return Ok(Args::Bytes(bytes));
        }
        let count = args.len();
        if count != self.params.len() {
            return Err(fail(format!(
                "expected {} argument(s) ({}), got {count}",
                self.params.len(),
                self.signature
            )));
        }
        let resources = resources.filter(|_| self.resources_in);
        let types = || self.params.iter().map(|(_, ty)| ty);
        let mut values = Vals::with_capacity(count);
        // One count for all the arguments: together they must fit the guest.
        let mut footprint = Footprint::new(guest_memory);
        for ((name, ty), &arg) in self.params.iter().zip(args) {
            match convert::from_js(js, resources, arg, ty, &mut footprint) {
                Ok(value) => values.push(value),
                Err(message) => {
                    // The host objects of the arguments before it go back (see `Loans`).
                    if let Some(resources) = resources {
                        drop(resources.loans(&mut values, types()));
                        // The value was fine; the instance has no room for another handle.
                        if let Some(limit) = resources.take_limit_hit() {
                            return Err(limit);
                        }
                    }
                    return Err(fail(format!("param \"{}\": {message}", crate::names::label(name))));
                }
            }
        }
        if let (true, [Val::String(_)]) = (self.text_to_text, values.as_slice())
            && let Some(Val::String(text)) = values.pop()
        {
            return Ok(Args::Text(text));
        }
        let loans = resources.and_then(|resources| resources.loans(&mut values, types()));
        Ok(Args::Vals(values, loans))
    }

    fn lookup(&self, live: &mut Live<Instance>) -> Result<Func, Failure> {
        live.instance
            .get_func(&mut live.store, self.index)
            .ok_or_else(|| Failure::Internal(format!("export {} vanished", self.shown)))
    }

    /// A `result::err` return becomes ERR_WASM_COMPONENT.
    fn invoke(
        &self,
        live: &mut Live<Instance>,
        func: Func,
        engine: &EngineShared,
        budget: &Budget,
        params: &Args,
    ) -> Result<Returned, Failure> {
        let (params, loans) = match params {
            Args::Vals(params, loans) => (params, loans),
            Args::Bytes(bytes) => {
                let (out,) = self.invoke_typed::<&[u8], Vec<u8>>(live, func, engine, budget, bytes)?;
                return Ok(Returned::Bytes(out));
            }
            Args::Text(text) => {
                let (out,) = self.invoke_typed::<&str, String>(live, func, engine, budget, text)?;
                convert::check_js_string(&out, || format!("the result of {}", self.shown))?;
                return Ok(Returned::Text(out));
            }
        };
        let mut slot = [Val::Bool(false)];
        let results = &mut slot[..usize::from(self.result.is_some())];
        let waits = live.store.data().waits();
        // Handles whose JS side was collected are dropped first, under this call's budget.
        let collected = (live.store.data().resources.as_ref())
            .map(|resources| resources.take_collected())
            .unwrap_or_default();
        // Only a signature that can hold a resource needs them (an Arc clone is two locked
        // instructions on every call).
        let resources = if self.resources_in || self.resources_out {
            live.store.data().resources.clone()
        } else {
            None
        };
        // Resource markers become the guest's handles, by the function's types in this store.
        let mut lent = Vec::new();
        let mut resolved_params;
        let params = match &resources {
            Some(resources) if self.resources_in => {
                resolved_params = params.clone();
                let ty = func.ty(&live.store);
                let mut resolved = Resolved::default();
                for (value, (name, ty)) in resolved_params.iter_mut().zip(ty.params()) {
                    if let Err(message) = resources.resolve(&mut live.store, value, &ty, &mut resolved) {
                        resources.refused(&mut live.store, resolved);
                        return Err(resources.take_limit_hit().unwrap_or_else(|| {
                            Failure::Type(format!(
                                "{}: param \"{}\": {message}",
                                self.shown,
                                crate::names::label(name)
                            ))
                        }));
                    }
                }
                lent = resources.start(resolved);
                if let Some(loans) = loans {
                    loans.started();
                }
                &resolved_params
            }
            _ => params,
        };
        let outcome = store::run(&mut live.store, engine, budget, &mut live.metrics, |store| {
            if waits {
                store::wait(store, |store| {
                    Box::pin(async move {
                        for handle in collected {
                            handle.resource_drop_async(&mut *store).await.map_err(deferred_drop)?;
                        }
                        func.call_async(store, params, results).await
                    })
                })
            } else {
                for handle in collected {
                    handle.resource_drop(&mut *store).map_err(deferred_drop)?;
                }
                func.call(&mut *store, params, results)
            }
        });
        if let Some(resources) = &resources {
            resources.end_lent(&mut live.store, lent);
        }
        outcome?;
        let mut value = self
            .result
            .is_some()
            .then(|| std::mem::replace(&mut slot[0], Val::Bool(false)));
        // A large value, whose size check, encoding and conversion would take long, is given up
        // on; a small one is returned whatever the time.
        let late = value
            .as_ref()
            .filter(|value| convert::holds_more_than(value, convert::STOP_EVERY as usize))
            .and_then(|_| {
                (live.store.data().returned_limits(&budget.abort)).stopped(|| host_bridge::converting("its result"))
            });
        if let Some(late) = late {
            // Freed on the pool, as a conversion stopped part way frees them.
            crate::runtime::pool::run_in_pool(move || drop(value));
            return Ok(Returned::Late(late));
        }
        // The guest has returned, but a result too large for JS, or with more handles than the
        // limit, still ends the call without a value and poisons the instance: a trap in the
        // metrics, as the same failure inside a host call is.
        let trapped = |metrics: &mut crate::metrics::Metrics, failure: Failure| {
            metrics.traps += 1;
            failure
        };
        if let Some(value) = &value {
            convert::check_js_size(
                std::slice::from_ref(value),
                self.result_flags,
                live.store.data().js_heap_cap(),
                || format!("the result of {}", self.shown),
            )
            .map_err(|failure| trapped(&mut live.metrics, failure))?;
        }
        if let (Some(resources), Some(returned), true) = (&resources, value.as_mut(), self.resources_out) {
            let ty = func.ty(&live.store).results().next();
            if let Some(ty) = ty {
                resources
                    .capture(&mut live.store, returned, &ty, &mut Vec::new(), &mut 0)
                    .map_err(|failure| trapped(&mut live.metrics, failure))?;
            }
        }
        if let (Some(Val::Result(Err(payload))), Some(Type::Result(result_type))) = (&value, &self.result) {
            let payload = payload.as_deref().cloned().zip(result_type.err());
            let message = match &payload {
                // The guest's text, escaped (it could print lines of its own) and cut short; the
                // whole of it is the error's `payload`.
                Some((Val::String(text), _)) => format!(
                    "{} returned an error: {}",
                    self.shown,
                    crate::names::escaped(&crate::names::shortened(text, ERR_TEXT_BYTES))
                ),
                _ => format!("{} returned an error", self.shown),
            };
            let payload = payload.map(|(value, ty)| {
                Box::new(TypedVal {
                    value,
                    ty,
                    resources: resources.clone(),
                    limits: live.store.data().returned_limits(&budget.abort),
                    what: "its error payload",
                }) as Box<dyn crate::errors::LaterJs>
            });
            return Err(Failure::Component { message, payload });
        }
        Ok(Returned::Val(value))
    }

    fn no_output() -> Returned {
        Returned::Val(None)
    }

    /// A `result` without an ok type declares none: `wasi:cli/run`'s `run` succeeds by `exit(0)`.
    fn declares_value(&self) -> bool {
        match &self.result {
            None => false,
            Some(Type::Result(result)) => result.ok().is_some(),
            Some(_) => true,
        }
    }

    fn decode_args(&self, bytes: &[u8], guest_memory: usize) -> Result<Args, Failure> {
        let failed = |message: String| Failure::Internal(format!("{}: flat arguments: {message}", self.shown));
        let Some(shapes) = &self.flat_params else {
            return Err(failed("its parameters have no flat form".into()));
        };
        let mut reader = wire::Reader::new(bytes, guest_memory);
        let mut values = Vals::with_capacity(shapes.len());
        for (shape, (name, _)) in shapes.iter().zip(&self.params) {
            match wire::decode(shape, &mut reader) {
                Ok(value) => values.push(value),
                // The caller's value, too large for the guest: as the generic path says it.
                Err(message) if reader.over_limit() => {
                    return Err(Failure::Type(format!(
                        "{}: param \"{}\": {message}",
                        self.shown,
                        crate::names::label(name)
                    )));
                }
                Err(message) => return Err(failed(message)),
            }
        }
        if !reader.is_done() {
            return Err(failed("bytes left over".into()));
        }
        Ok(Args::Vals(values, None))
    }

    fn encode(&self, output: Returned, out: &mut Vec<u8>) -> Result<bool, Failure> {
        let failed = |message: &str| Failure::Internal(format!("{}: {message}", self.shown));
        let Some(shape) = &self.flat else {
            return Err(failed("its result has no flat form"));
        };
        let value = match output {
            Returned::Val(value) => self.lifted_value(value),
            Returned::Bytes(_) | Returned::Text(_) => return Err(failed("a typed result has no flat form")),
            Returned::Late(failure) => return Err(failure),
        };
        match value {
            Some(value) => wire::encode(&value, shape, out).map_err(|message| failed(&message))?,
            None => return Ok(false),
        }
        Ok(true)
    }

    /// `undefined` for none, the ok value of a `result`.
    fn lift(&self, js: Js, resources: Resources<'_>, limits: &WaitLimits, value: Returned) -> Result<Value, Failure> {
        let value = match value {
            Returned::Val(value) => value,
            Returned::Bytes(bytes) => return Ok(js.typed_array_from(ElementType::Uint8, bytes.len(), &bytes)?),
            Returned::Text(text) => return Ok(js.string(&text)?),
            Returned::Late(failure) => return Err(failure),
        };
        match (self.lifted_value(value), &self.lifted) {
            (Some(value), Some(ty)) => {
                let stop = || limits.stopped(|| host_bridge::converting("its result"));
                convert::into_js_until(js, resources, value, ty, &stop)
            }
            _ => Ok(js.undefined()?),
        }
    }
}

impl ExportFunc {
    /// What JS receives of a call's result: the ok value of a `result` (an err was thrown).
    fn lifted_value(&self, value: Option<Val>) -> Option<Val> {
        match (value, &self.result) {
            (Some(Val::Result(Ok(payload))), Some(Type::Result(_))) => payload.map(|payload| *payload),
            (value, _) => value,
        }
    }

    /// Calls through wasmtime's typed API: the value goes into and out of guest memory in one
    /// copy each, where the dynamic `Val` path makes one `Val` per byte of a `list<u8>` (see
    /// BENCHMARKING.md, component-call).
    fn invoke_typed<P, R>(
        &self,
        live: &mut Live<Instance>,
        func: Func,
        engine: &EngineShared,
        budget: &Budget,
        arg: P,
    ) -> Result<(R,), Failure>
    where
        P: wasmtime::component::ComponentType + wasmtime::component::Lower + Send + Sync,
        R: wasmtime::component::ComponentType + wasmtime::component::Lift + Send + Sync + 'static,
    {
        let typed = func
            .typed::<(P,), (R,)>(&live.store)
            .map_err(|error| Failure::Internal(format!("{}: {error:#}", self.shown)))?;
        let waits = live.store.data().waits();
        let collected = (live.store.data().resources.as_ref())
            .map(|resources| resources.take_collected())
            .unwrap_or_default();
        store::run(&mut live.store, engine, budget, &mut live.metrics, |store| {
            if waits {
                store::wait(store, |store| {
                    Box::pin(async move {
                        for handle in collected {
                            handle.resource_drop_async(&mut *store).await.map_err(deferred_drop)?;
                        }
                        typed.call_async(store, (arg,)).await
                    })
                })
            } else {
                for handle in collected {
                    handle.resource_drop(&mut *store).map_err(deferred_drop)?;
                }
                typed.call(&mut *store, (arg,))
            }
        })
    }
}

/// The exported functions of `component` (at the root and inside exported interfaces) by every
/// path they answer to.
pub fn exports(component: &Component) -> Exports<ExportFunc> {
    with_resource_names(component, || resolve_exports(component))
}

fn resolve_exports(component: &Component) -> Exports<ExportFunc> {
    let mut exports = Exports::new("component");
    let engine = component.engine();
    let mut add = |interface: Option<&str>, name: &str, func: &ComponentFunc| {
        let interface_index = interface.and_then(|iface| component.get_export_index(None, iface));
        let Some(index) = component.get_export_index(interface_index.as_ref(), name) else {
            return;
        };
        let params: Vec<(String, Type)> = func.params().map(|(name, ty)| (name.to_string(), ty)).collect();
        let result = func.results().next();
        // What JS receives: the ok value of a `result` (an err is thrown).
        let lifted = match &result {
            Some(Type::Result(result)) => result.ok(),
            other => other.clone(),
        };
        let path = match interface {
            Some(iface) => format!("{iface}#{name}"),
            None => name.to_string(),
        };
        let export = Arc::new(ExportFunc {
            shown: crate::names::label(&path),
            path,
            index,
            bytes_to_bytes: matches!(
                (params.as_slice(), &result),
                ([(_, param)], Some(out)) if is_bytes(param) && is_bytes(out)
            ),
            text_to_text: matches!((params.as_slice(), &result), ([(_, Type::String)], Some(Type::String))),
            flat: lifted.as_ref().and_then(Shape::of),
            lifted,
            flat_params: params.iter().map(|(_, ty)| Shape::of(ty)).collect(),
            resources_in: params.iter().any(|(_, ty)| holds_resources(ty)),
            resources_out: result.as_ref().is_some_and(holds_resources),
            result_flags: result.as_ref().map_or(0, convert::flags_cost),
            // Cut: written out where each type is used, a few KB of types spelled a megabyte.
            signature: crate::names::shortened(
                &(params.iter())
                    .map(|(name, ty)| format!("{name}: {}", wit_type(ty)))
                    .collect::<Vec<_>>()
                    .join(", "),
                SIGNATURE_BYTES,
            )
            .into_owned(),
            params,
            result,
        });
        for path in export_paths(interface, name) {
            exports.insert(path, export.clone());
        }
    };
    for (name, export) in component.component_type().exports(engine) {
        match &export.ty {
            ComponentItem::ComponentFunc(func) => add(None, name, func),
            ComponentItem::ComponentInstance(instance) => {
                for (function_name, item) in instance.exports(engine) {
                    if let ComponentItem::ComponentFunc(func) = &item.ty {
                        add(Some(name), function_name, func);
                    }
                }
            }
            _ => {}
        }
    }
    exports
}
