//! Calling a core module's export: its signature, argument lowering, the call (a typed fast path
//! for all-numeric signatures), result lifting.

use std::sync::Arc;

use smallvec::SmallVec;
use wasmtime::{ExternType, Func, Instance, Module, ModuleExport, Val, ValRaw, ValType};

use crate::call::{Export, Exports, Resources};
use crate::convert;
use crate::engine::EngineShared;
use crate::errors::Failure;
use crate::js::{Js, Value};
use crate::runtime::host_bridge::WaitLimits;
use crate::store::{self, Budget, Live};

/// Arguments or results of one call: core signatures are short, so they stay on the stack.
type Vals = SmallVec<[Val; 4]>;

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

/// The exported functions of `module`, by name.
pub fn exports(module: &Module) -> Exports<CoreExport> {
    let mut exports = Exports::new("module");
    for export in module.exports() {
        let ExternType::Func(func) = export.ty() else { continue };
        let Some(index) = module.get_export_index(export.name()) else {
            continue;
        };
        exports.insert(
            export.name().to_string(),
            Arc::new(CoreExport {
                name: export.name().to_string(),
                index,
                params: func.params().collect(),
                results: func.results().collect(),
                numeric: func.params().chain(func.results()).all(|ty| ty.is_num()),
            }),
        );
    }
    exports
}

impl Export for CoreExport {
    type Instance = Instance;
    type Func = Func;
    type Params = Vals;
    type Output = Vals;

    fn name(&self) -> &str {
        &self.name
    }

    fn lower_args(
        &self,
        js: Js,
        _resources: Resources<'_>,
        _guest_memory: usize,
        args: &[Value],
    ) -> std::result::Result<Vals, Failure> {
        self.check_count(args)?;
        // Refused before the guest runs, as a parameter of such a type is: the call's effects
        // would otherwise happen and its result be lost. (A `numeric` signature has none: its
        // calls, which come here when the store waits, skip the search.)
        if !self.numeric
            && let Some((index, ty)) = self.results.iter().enumerate().find(|(_, ty)| !ty.is_num())
        {
            return Err(Failure::Type(format!(
                "{}: result {index}: results of type {} are not supported",
                crate::names::label(&self.name),
                convert::type_name(ty)
            )));
        }
        let mut values = Vals::with_capacity(args.len());
        for (index, (ty, &arg)) in self.params.iter().zip(args).enumerate() {
            values.push(self.convert_arg(js, index, ty, arg)?);
        }
        Ok(values)
    }

    fn lookup(&self, live: &mut Live<Instance>) -> std::result::Result<Func, Failure> {
        match live.instance.get_module_export(&mut live.store, &self.index) {
            Some(wasmtime::Extern::Func(func)) => Ok(func),
            _ => Err(Failure::Internal(format!("export {} vanished", self.name))),
        }
    }

    fn invoke(
        &self,
        live: &mut Live<Instance>,
        func: Func,
        engine: &EngineShared,
        budget: &Budget,
        params: &Vals,
    ) -> std::result::Result<Vals, Failure> {
        let waits = live.store.data().waits();
        if self.numeric && !waits {
            return self.invoke_numeric(live, func, budget, engine, params);
        }
        let mut results: Vals = self.results.iter().map(convert::placeholder).collect();
        store::run(&mut live.store, engine, budget, &mut live.metrics, |store| {
            if waits {
                store::wait(store, |store| Box::pin(func.call_async(store, params, &mut results)))
            } else {
                func.call(store, params, &mut results)
            }
        })?;
        Ok(results)
    }

    fn no_output() -> Vals {
        Vals::new()
    }

    fn declares_value(&self) -> bool {
        !self.results.is_empty()
    }

    /// A core function's results are a few numbers: nothing to stop for.
    fn lift(
        &self,
        js: Js,
        _resources: Resources<'_>,
        _limits: &WaitLimits,
        results: Vals,
    ) -> std::result::Result<Value, Failure> {
        results_to_js(js, results.into_iter())
    }

    /// All-numeric exports (where the store's calls wait, `call_direct` takes the generic steps).
    fn is_direct(&self) -> bool {
        self.numeric
    }

    fn call_direct(
        &self,
        js: Js,
        live: &mut Live<Instance>,
        func: Func,
        engine: &EngineShared,
        budget: &Budget,
        args: &[Value],
    ) -> std::result::Result<Value, Failure> {
        if live.store.data().waits() {
            let params = self.lower_args(js, None, usize::MAX, args)?;
            let results = self.invoke(live, func, engine, budget, &params)?;
            return self.lift(js, None, &WaitLimits::default(), results);
        }
        self.check_count(args)?;
        self.call_raw(
            live,
            func,
            budget,
            engine,
            |index, ty| raw_of(&self.convert_arg(js, index, ty, args[index])?),
            |results| results_to_js(js, self.results_of(results)),
        )
    }
}

/// A call's results as JS: `undefined` for none, the value for one, an array for several.
fn results_to_js(js: Js, mut values: impl ExactSizeIterator<Item = Val>) -> std::result::Result<Value, Failure> {
    let count = values.len();
    if count <= 1 {
        return Ok(match values.next() {
            Some(value) => convert::to_js(js, &value)?,
            None => js.undefined()?,
        });
    }
    let array = js.array(count)?;
    for (index, value) in values.enumerate() {
        js.set_index(array, index as u32, convert::to_js(js, &value)?)?;
    }
    Ok(array)
}

/// A numeric value as wasmtime's raw form.
fn raw_of(value: &Val) -> std::result::Result<ValRaw, Failure> {
    Ok(match *value {
        Val::I32(n) => ValRaw::i32(n),
        Val::I64(n) => ValRaw::i64(n),
        Val::F32(bits) => ValRaw::f32(bits),
        Val::F64(bits) => ValRaw::f64(bits),
        _ => return Err(Failure::Internal("a non-numeric value on the numeric path".into())),
    })
}

/// A raw result of numeric type `ty` as a value.
fn val_of(ty: &ValType, value: ValRaw) -> Val {
    match ty {
        ValType::I64 => Val::I64(value.get_i64()),
        ValType::F32 => Val::F32(value.get_f32()),
        ValType::F64 => Val::F64(value.get_f64()),
        _ => Val::I32(value.get_i32()),
    }
}

impl CoreExport {
    /// The typed fast path: raw values in one buffer, no per-call type lookup or checks.
    fn invoke_numeric(
        &self,
        live: &mut Live<Instance>,
        func: Func,
        budget: &Budget,
        engine: &EngineShared,
        params: &[Val],
    ) -> std::result::Result<Vals, Failure> {
        self.call_raw(
            live,
            func,
            budget,
            engine,
            |index, _| raw_of(&params[index]),
            |results| Ok(self.results_of(results).collect()),
        )
    }

    /// The raw results of a call as values of the export's result types.
    fn results_of<'a>(&'a self, raw: &'a [ValRaw]) -> impl ExactSizeIterator<Item = Val> + 'a {
        self.results.iter().zip(raw).map(|(ty, value)| val_of(ty, *value))
    }

    /// Calls an all-numeric export with its arguments as raw values (`arg(index, type)` gives
    /// each), in one buffer that then holds the results, which `results` reads.
    fn call_raw<R>(
        &self,
        live: &mut Live<Instance>,
        func: Func,
        budget: &Budget,
        engine: &EngineShared,
        mut arg: impl FnMut(usize, &ValType) -> std::result::Result<ValRaw, Failure>,
        results: impl FnOnce(&[ValRaw]) -> std::result::Result<R, Failure>,
    ) -> std::result::Result<R, Failure> {
        let mut raw = [ValRaw::i32(0); 16];
        let mut buffer: Vec<ValRaw>;
        let slots = self.params.len().max(self.results.len());
        let raw: &mut [ValRaw] = if slots <= raw.len() {
            &mut raw[..slots]
        } else {
            buffer = vec![ValRaw::i32(0); slots];
            &mut buffer
        };
        for (index, (ty, slot)) in self.params.iter().zip(raw.iter_mut()).enumerate() {
            *slot = arg(index, ty)?;
        }
        store::run(&mut live.store, engine, budget, &mut live.metrics, |store| {
            // SAFETY: `numeric` guarantees the signature is all numbers, `arg` gave one value of
            // the declared type per parameter, and the buffer has room for the results.
            unsafe { func.call_unchecked(store, raw as *mut [ValRaw]) }
        })?;
        results(&raw[..self.results.len()])
    }

    fn check_count(&self, args: &[Value]) -> std::result::Result<(), Failure> {
        if args.len() != self.params.len() {
            return Err(Failure::Type(format!(
                "{}: expected {} argument(s), got {}",
                crate::names::label(&self.name),
                self.params.len(),
                args.len()
            )));
        }
        Ok(())
    }

    #[inline]
    fn convert_arg(&self, js: Js, index: usize, ty: &ValType, arg: Value) -> std::result::Result<Val, Failure> {
        convert::from_js(js, arg, ty)
            .map_err(|message| Failure::Type(format!("{}: param {index}: {message}", crate::names::label(&self.name))))
    }
}
