//! Calling a component export: its signature, argument lowering, the call, result lifting.

use std::sync::Arc;

use smallvec::SmallVec;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, Func, Instance, Type, Val};

use super::convert::{self, TypedVal};
use super::resources::holds_resources;
use super::types::wit_type;
use crate::call::{Export, Exports, Resources};
use crate::engine::EngineShared;
use crate::errors::Failure;
use crate::js::{Js, Value};
use crate::names::export_paths;
use crate::store::{self, Budget, Live};

/// Arguments of one call: most signatures are short, so they stay on the stack.
pub type Vals = SmallVec<[Val; 4]>;

/// An export path resolved once per component: where it is and what it takes and returns.
pub struct ExportFunc {
    /// `name` or `interface#name`, as WIT spells it.
    pub path: String,
    pub index: ComponentExportIndex,
    pub params: Vec<(String, Type)>,
    pub result: Option<Type>,
    /// Whether a parameter or the result can hold a resource (their conversion then needs the
    /// instance's [`Resources`](super::resources::Resources) and the store).
    pub resources_in: bool,
    pub resources_out: bool,
}

impl Export for ExportFunc {
    type Instance = Instance;
    type Func = Func;
    type Params = Vals;
    /// The return value, if the function has one.
    type Output = Option<Val>;

    fn name(&self) -> &str {
        &self.path
    }

    /// Errors name the parameter and the path inside it.
    fn lower_args(&self, js: Js, resources: Resources<'_>, args: &[Value]) -> Result<Vals, Failure> {
        let fail = |message: String| Failure::Type(format!("{}: {message}", self.path));
        let count = args.len();
        if count != self.params.len() {
            let names: Vec<String> = self
                .params
                .iter()
                .map(|(name, ty)| format!("{name}: {}", wit_type(ty)))
                .collect();
            return Err(fail(format!(
                "expected {} argument(s) ({}), got {count}",
                self.params.len(),
                names.join(", ")
            )));
        }
        let mut values = Vals::with_capacity(count);
        for ((name, ty), &arg) in self.params.iter().zip(args) {
            let value = convert::from_js(js, resources, arg, ty)
                .map_err(|message| fail(format!("param \"{name}\": {message}")))?;
            values.push(value);
        }
        Ok(values)
    }

    fn lookup(&self, live: &mut Live<Instance>) -> Result<Func, Failure> {
        live.instance
            .get_func(&mut live.store, self.index)
            .ok_or_else(|| Failure::Internal(format!("export {} vanished", self.path)))
    }

    /// A `result::err` return becomes ERR_WASM_COMPONENT.
    fn invoke(
        &self,
        live: &mut Live<Instance>,
        func: Func,
        engine: &EngineShared,
        budget: &Budget,
        params: &Vals,
    ) -> Result<Option<Val>, Failure> {
        let mut slot = [Val::Bool(false)];
        let results = &mut slot[..usize::from(self.result.is_some())];
        let waits = live.store.data().waits();
        let resources = live.store.data().resources.clone();
        // Handles whose JS side was collected are dropped first, under this call's budget.
        let collected = resources.as_ref().map(|r| r.take_collected()).unwrap_or_default();
        // Resource markers become the guest's handles, by the function's types in this store.
        let mut lent = Vec::new();
        let mut resolved;
        let params = match &resources {
            Some(resources) if self.resources_in => {
                resolved = params.clone();
                let ty = func.ty(&live.store);
                for (value, (_, ty)) in resolved.iter_mut().zip(ty.params()) {
                    resources
                        .resolve(&mut live.store, value, &ty, &mut lent)
                        .map_err(|message| Failure::Type(format!("{}: {message}", self.path)))?;
                }
                &resolved
            }
            _ => params,
        };
        let outcome = store::run(&mut live.store, engine, budget, &mut live.metrics, |store| {
            if waits {
                store::wait(store, |store| {
                    Box::pin(async move {
                        for handle in collected {
                            handle.resource_drop_async(&mut *store).await?;
                        }
                        func.call_async(store, params, results).await
                    })
                })
            } else {
                for handle in collected {
                    handle.resource_drop(&mut *store)?;
                }
                func.call(&mut *store, params, results)
            }
        });
        if let Some(resources) = &resources {
            resources.end_lent(lent);
        }
        outcome?;
        let mut value = self
            .result
            .is_some()
            .then(|| std::mem::replace(&mut slot[0], Val::Bool(false)));
        if let (Some(resources), Some(returned), true) = (&resources, value.as_mut(), self.resources_out) {
            let ty = func.ty(&live.store).results().next();
            if let Some(ty) = ty {
                resources.capture(&mut live.store, returned, &ty, &mut Vec::new())?;
            }
        }
        if let (Some(Val::Result(Err(payload))), Some(Type::Result(result_type))) = (&value, &self.result) {
            let payload = payload.as_deref().cloned().zip(result_type.err());
            let message = match &payload {
                Some((Val::String(text), _)) => format!("{} returned an error: {text}", self.path),
                _ => format!("{} returned an error", self.path),
            };
            let payload = payload.map(|(value, ty)| Box::new(TypedVal(value, ty)) as Box<dyn crate::errors::LaterJs>);
            return Err(Failure::Component { message, payload });
        }
        Ok(value)
    }

    fn no_output() -> Option<Val> {
        None
    }

    /// `undefined` for none, the ok value of a `result`.
    fn lift(&self, js: Js, resources: Resources<'_>, value: Option<Val>) -> Result<Value, Failure> {
        let lifted = match (value, &self.result) {
            (Some(Val::Result(Ok(payload))), Some(Type::Result(result_type))) => match (payload, result_type.ok()) {
                (Some(payload), Some(ok_type)) => convert::to_js(js, resources, &payload, &ok_type),
                _ => js.undefined(),
            },
            (Some(value), Some(ty)) => convert::to_js(js, resources, &value, ty),
            _ => js.undefined(),
        };
        Ok(lifted?)
    }
}

/// The exported functions of `component` (at the root and inside exported interfaces) by every
/// path they answer to.
pub fn exports(component: &Component) -> Exports<ExportFunc> {
    let mut exports = Exports::new("component");
    let engine = component.engine();
    let mut add = |interface: Option<&str>, name: &str, func: &ComponentFunc| {
        let interface_index = interface.and_then(|iface| component.get_export_index(None, iface));
        let Some(index) = component.get_export_index(interface_index.as_ref(), name) else {
            return;
        };
        let export = Arc::new(ExportFunc {
            path: match interface {
                Some(iface) => format!("{iface}#{name}"),
                None => name.to_string(),
            },
            index,
            params: func.params().map(|(name, ty)| (name.to_string(), ty)).collect(),
            result: func.results().next(),
            resources_in: func.params().any(|(_, ty)| holds_resources(&ty)),
            resources_out: func.results().any(|ty| holds_resources(&ty)),
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
