//! Calling an export, the same way for core modules and components: the function handle that runs
//! on the JS thread (`callSync`, `function(name)`) and the Promise-returning call that runs on the
//! pool. Each kind of export says how its arguments, function, call and result work ([`Export`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, JsValue};

use crate::engine::EngineShared;
use crate::errors::{Failure, answer, caught, exit_zero_is_success, fail, return_or_fail};
use crate::js::{ElementType, Js, Raw, StringValue, TypedArrayView, Value, callback_args};
use crate::names::{LONE_SURROGATE_NAME, name_units_read, quoted, unread};
use crate::options::{NativeAbortHandle, call_budget, call_budget_from_js};
use crate::runtime::host_bridge::{WaitLimits, serve_js_while};
use crate::runtime::task;
use crate::store::{Budget, Live, Slot};

/// The resource handles of the instance a call converts values for (components only).
pub type Resources<'a> = Option<&'a Arc<crate::component::resources::Resources>>;

/// An exported function of a core module or a component.
pub trait Export: Send + Sync + 'static {
    /// The wasmtime instance the export lives in.
    type Instance: Send + 'static;
    type Func: Copy + 'static;
    /// The converted arguments of one call.
    type Params: Send + 'static;
    /// What one call returned, before it is converted to JS.
    type Output: Send + 'static;

    /// `name` or `interface#name`, for error messages.
    fn name(&self) -> &str;
    /// Converts the JS arguments; errors name the parameter.
    /// `resources` are the instance's (components), for resource arguments; `guest_memory` is its
    /// memory limit, which a value bound for guest memory must fit (components).
    fn lower_args(
        &self,
        js: Js,
        resources: Resources<'_>,
        guest_memory: usize,
        args: &[Value],
    ) -> Result<Self::Params, Failure>;
    /// The export's function in `live`'s store.
    fn lookup(&self, live: &mut Live<Self::Instance>) -> Result<Self::Func, Failure>;
    /// Calls `func` under `budget`.
    fn invoke(
        &self,
        live: &mut Live<Self::Instance>,
        func: Self::Func,
        engine: &EngineShared,
        budget: &Budget,
        params: &Self::Params,
    ) -> Result<Self::Output, Failure>;
    /// What a call that ended in a WASI `exit(0)` returned.
    fn no_output() -> Self::Output;
    /// Whether the export declares a value for its calls to return: one that ends in a WASI
    /// `exit(0)` then fails, having none.
    fn declares_value(&self) -> bool;
    /// Converts what the call returned to JS, stopping at the call's `limits`.
    fn lift(
        &self,
        js: Js,
        resources: Resources<'_>,
        limits: &WaitLimits,
        output: Self::Output,
    ) -> Result<Value, Failure>;
    /// Reads the arguments from their flat form (component values, see `component::wire`), bound
    /// for a guest whose memory limit is `guest_memory`.
    fn decode_args(&self, _bytes: &[u8], _guest_memory: usize) -> Result<Self::Params, Failure> {
        Err(Failure::Internal(format!(
            "{}: its arguments have no flat form",
            self.name()
        )))
    }
    /// Appends what the call returned to `out` in the flat form the TypeScript layer decodes
    /// (component values, see `component::wire`); `false` when it returned nothing.
    fn encode(&self, _output: Self::Output, _out: &mut Vec<u8>) -> Result<bool, Failure> {
        Err(Failure::Internal(format!(
            "{}: its result has no flat form",
            self.name()
        )))
    }

    /// Whether [`Export::call_direct`] serves this export.
    fn is_direct(&self) -> bool {
        false
    }

    /// The whole call on the JS thread, from JS arguments to a JS result, for exports whose
    /// values convert straight to and from raw wasm values (the general path moves them through
    /// several layers of owned values, which is most of the cost of a call to a tiny export).
    fn call_direct(
        &self,
        _js: Js,
        _live: &mut Live<Self::Instance>,
        _func: Self::Func,
        _engine: &EngineShared,
        _budget: &Budget,
        _args: &[Value],
    ) -> Result<Value, Failure> {
        Err(Failure::Internal(format!("{}: no direct call", self.name())))
    }
}

/// The exported functions of a module or component by every name they may be called by.
pub struct Exports<E> {
    by_name: HashMap<String, Arc<E>>,
    /// The longest name's length in bytes.
    longest: usize,
    /// "module" or "component", for messages.
    noun: &'static str,
}

impl<E: Export> Exports<E> {
    pub fn new(noun: &'static str) -> Self {
        Exports {
            by_name: HashMap::new(),
            longest: 0,
            noun,
        }
    }

    /// Makes `export` callable as `name`, unless an earlier export is: with two versions of one
    /// interface exported, the name without `@version` means the first listed, as it does in
    /// `inst.exports`.
    pub fn insert(&mut self, name: String, export: Arc<E>) {
        self.longest = self.longest.max(name.len());
        self.by_name.entry(name).or_insert(export);
    }

    /// The export a caller's JS value names, and the name. A string longer than any name (and
    /// than a message shows) is not read.
    pub fn get(&self, js: Js, name: Value) -> Result<(Arc<E>, String), Failure> {
        let shown = match js.string_value_within(name, name_units_read(self.longest))? {
            StringValue::Text(name) => match self.by_name.get(&name) {
                Some(export) => return Ok((export.clone(), name)),
                None => quoted(&name),
            },
            StringValue::TooLong(units) => unread(units),
            StringValue::LoneSurrogate => LONE_SURROGATE_NAME.into(),
            StringValue::NotString => {
                return Err(Failure::Type(format!(
                    "an export's name must be a string, got {}",
                    js.describe(name)
                )));
            }
        };
        Err(self.missing(&shown))
    }

    /// That there is no export `shown` (a name as a message shows it); the error lists what there is.
    fn missing(&self, shown: &str) -> Failure {
        let mut known: Vec<&str> = self.by_name.values().map(|export| export.name()).collect();
        known.sort_unstable();
        known.dedup();
        // Quoted: a guest's names may hold newlines, which would print lines of their own.
        // The list too is bounded: a module may export thousands of functions.
        const LISTED: usize = 50;
        let more = known.len().saturating_sub(LISTED);
        known.truncate(LISTED);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        Failure::Type(format!(
            "the {} has no exported function {shown}; it exports: {}{tail}",
            self.noun,
            known.iter().map(|name| quoted(name)).collect::<Vec<_>>().join(", ")
        ))
    }
}

/// More arguments than any export takes (wasm functions take a few, and wasmtime caps them);
/// checked before the array is read so that its length never sizes an allocation.
const MAX_ARGUMENTS: u32 = 1000;

/// Converts a JS argument array.
fn lower_array<E: Export>(
    export: &E,
    js: Js,
    resources: Resources<'_>,
    guest_memory: usize,
    args: Value,
) -> Result<E::Params, Failure> {
    if js.is_array(args)? && js.array_length(args)? > MAX_ARGUMENTS {
        return Err(Failure::Type(format!(
            "{}: expected its arguments, got an array of {} elements",
            export.name(),
            js.array_length(args)?
        )));
    }
    match js.array_items(args)? {
        Some(items) => export.lower_args(js, resources, guest_memory, &items),
        None => Err(Failure::Type(format!("{}: arguments must be an array", export.name()))),
    }
}

/// What a call returned, with the limits converting it to JS keeps to (see [`lift`]).
type Finished<E> = (<E as Export>::Output, WaitLimits);

/// Looks the function up (once per handle, when the handle's `known` cell is given) and calls it.
fn run<E: Export>(
    export: &E,
    live: &mut Live<E::Instance>,
    known: Option<&Cell<Option<E::Func>>>,
    engine: &EngineShared,
    budget: &Budget,
    params: &E::Params,
) -> Result<Finished<E>, Failure> {
    let func = find(export, live, known)?;
    let output = export.invoke(live, func, engine, budget, params);
    let output = exited_before_value(export, live, output)?;
    Ok((output, live.store.data().returned_limits(&budget.abort)))
}

/// A WASI `exit(0)` is a call's success only for an export that declares no value: one that
/// declares a value never gave it, and fails as a trap does (counted, and poisoning a component
/// instance, in the slot that runs it).
fn exited_before_value<E: Export, T>(
    export: &E,
    live: &mut Live<E::Instance>,
    outcome: Result<T, Failure>,
) -> Result<T, Failure> {
    match outcome {
        Err(Failure::Exit(0)) if export.declares_value() => {
            live.metrics.traps += 1;
            Err(Failure::ExitBeforeValue)
        }
        other => other,
    }
}

/// What a call that ended in a WASI `exit(0)` returned: nothing, converted without limits.
fn exited<E: Export>() -> Finished<E> {
    (E::no_output(), WaitLimits::default())
}

/// The export's function in `live`, looked up once per handle when `known` is given.
fn find<E: Export>(
    export: &E,
    live: &mut Live<E::Instance>,
    known: Option<&Cell<Option<E::Func>>>,
) -> Result<E::Func, Failure> {
    if let Some(func) = known.and_then(Cell::get) {
        return Ok(func);
    }
    let func = export.lookup(live)?;
    if let Some(known) = known {
        known.set(Some(func));
    }
    Ok(func)
}

/// What a function made by [`function`] calls.
struct Handle<E: Export> {
    slot: Arc<Slot<E::Instance>>,
    export: Arc<E>,
    budget: Budget,
    /// The function takes `(fuel, timeoutMs, ...args)`: a per-call budget without the name lookup.
    budgeted: bool,
    /// The export's function in the slot's store, found at the first call (the data of a JS
    /// function is only touched on its JS thread).
    func: Cell<Option<E::Func>>,
    /// The function returns its result in the flat form (see [`lift_flat`]).
    flat: bool,
    /// The function takes its arguments in the flat form (see [`lower_flat`]).
    flat_args: bool,
}

/// Converts what a call returned to JS: in its flat form (see [`lift_flat`]) or value by value.
/// A guest's result of many small values costs the JS thread far more to convert than the guest
/// to make (0.3 s for 100,000 nested tuples of a 4 MiB guest, 2 s for a million of a 64 MiB one):
/// the conversion keeps to the call's deadline and abort, as the guest did. The flat form is
/// decoded in JS, which asks the instance's `resultStopped` for the same deadline.
fn lift<E: Export>(
    export: &E,
    flat: bool,
    js: Js,
    this: Value,
    resources: Resources<'_>,
    (output, limits): Finished<E>,
) -> Result<Value, Failure> {
    if flat {
        lift_flat(export, js, this, output)
    } else {
        export.lift(js, resources, &limits, output)
    }
}

/// `value`'s bytes if it is a `Uint8Array` (the buffer flat values travel in).
fn byte_view(js: Js, value: Value) -> Result<Option<TypedArrayView>, Failure> {
    Ok(js.typed_array(value)?.filter(|view| view.element == ElementType::Uint8))
}

/// Reads the arguments of a call from their flat form: `args` is their length in bytes at the
/// start of the `Uint8Array` passed as `this` (see [`lift_flat`]).
fn lower_flat<E: Export>(
    export: &E,
    js: Js,
    this: Value,
    args: &[Value],
    guest_memory: usize,
) -> Result<E::Params, Failure> {
    let length = match args {
        [length] => js.number_value(*length)?,
        _ => None,
    };
    match (length, byte_view(js, this)?) {
        (Some(length), Some(view)) if (0.0..=view.length as f64).contains(&length) => {
            // SAFETY: N-API reported `view.length` live bytes at `view.data`; they are read
            // before anything can run JS.
            let bytes = unsafe { std::slice::from_raw_parts(view.data, length as usize) };
            export.decode_args(bytes, guest_memory)
        }
        _ => Err(Failure::Type(format!(
            "{}: expected the length of flat arguments in the buffer given as this",
            export.name()
        ))),
    }
}

thread_local! {
    /// Where a result is put in its flat form before it is copied to JS, kept between calls.
    static FLAT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Larger flat buffers are let go after use rather than kept for the thread's life.
const MAX_KEPT_FLAT: usize = 1 << 20;

/// Hands a result to JS in its flat form, which the TypeScript layer decodes: written into the
/// `Uint8Array` the caller passed as `this` when it fits (returning its length), else as a new
/// `ArrayBuffer`; `undefined` for no result. `this` carries the buffer so that the caller's
/// argument array is applied as it is, without a copy to put the buffer in front.
fn lift_flat<E: Export>(export: &E, js: Js, this: Value, output: E::Output) -> Result<Value, Failure> {
    FLAT.with(|cell| {
        let mut own = Vec::new();
        let mut kept = cell.try_borrow_mut();
        let out = match kept.as_deref_mut() {
            Ok(kept) => kept,
            Err(_) => &mut own,
        };
        out.clear();
        let value = if !export.encode(output, out)? {
            js.undefined()?
        } else {
            match byte_view(js, this)? {
                Some(view) if view.length >= out.len() => {
                    // SAFETY: N-API reported `view.length` writable bytes at `view.data`, a
                    // buffer of the caller's that nothing else touches during this call.
                    unsafe { std::ptr::copy_nonoverlapping(out.as_ptr(), view.data.cast_mut(), out.len()) };
                    js.number(out.len() as f64)?
                }
                _ => js.array_buffer_from(out)?,
            }
        };
        if out.capacity() > MAX_KEPT_FLAT {
            *out = Vec::new();
        }
        Ok(value)
    })
}

unsafe extern "C" fn call_handle<E: Export>(env: napi::sys::napi_env, info: napi::sys::napi_callback_info) -> Value {
    // SAFETY: this callback is only installed by `function` with a `Handle<E>`.
    let (js, handle, args, this) = unsafe { callback_args::<Handle<E>>(env, info) };
    return_or_fail(js, || {
        let own_budget;
        let (budget, args) = match (handle.budgeted, args.as_slice()) {
            (true, [fuel, timeout_ms, rest @ ..]) => {
                own_budget =
                    call_budget_from_js(js, &handle.slot.defaults, handle.slot.engine.fuel, *fuel, *timeout_ms)?;
                (&own_budget, rest)
            }
            (true, _) => return Err(Failure::Type("expected (fuel, timeoutMs, ...args)".into())),
            (false, all) => (&handle.budget, all),
        };
        budget.check_engine(&handle.slot.engine)?;
        let slot = &handle.slot;
        if handle.export.is_direct() && !slot.waits_on_pool {
            let export = &*handle.export;
            let outcome = slot.with_on_js_thread(js, |live| {
                let func = find(export, live, Some(&handle.func))?;
                let outcome = export.call_direct(js, live, func, &slot.engine, budget, args);
                exited_before_value(export, live, outcome)
            });
            return match exit_zero_is_success(outcome.map(Some), || None)? {
                Some(value) => Ok(value),
                None => Ok(js.undefined()?),
            };
        }
        slot.usable()?;
        let resources = handle.slot.resources.as_ref();
        let params = if handle.flat_args {
            lower_flat(&*handle.export, js, this, args, slot.guest_memory)?
        } else {
            handle.export.lower_args(js, resources, slot.guest_memory, args)?
        };
        if slot.waits_on_pool {
            // The guest may wait in WASI and calls JS: it runs as a future on a pool thread while
            // this thread serves its host calls (see `serve_js_while`).
            let (slot, export, budget) = (slot.clone(), handle.export.clone(), budget.clone());
            let output = serve_js_while(js, move |relay| {
                slot.with(|live| {
                    live.store.data_mut().host.set_relay(Some(relay));
                    let result = run(&*export, live, None, &slot.engine, &budget, &params);
                    live.store.data_mut().host.set_relay(None);
                    result
                })
            })?;
            let output = exit_zero_is_success(output, exited::<E>)?;
            return lift(&*handle.export, handle.flat, js, this, resources, output);
        }
        let output = exit_zero_is_success(
            slot.with_on_js_thread(js, |live| {
                run(&*handle.export, live, Some(&handle.func), &slot.engine, budget, &params)
            }),
            exited::<E>,
        )?;
        lift(&*handle.export, handle.flat, js, this, resources, output)
    })
}

/// The export as a plain JS function `(...args) => result`, called on the JS thread with the
/// instance's default budget; with `budgeted` it takes `(fuel, timeoutMs, ...args)`; with `flat`
/// it returns its result in the flat form (see [`lift_flat`]); with `flat_args` it takes its
/// arguments in the flat form (see [`lower_flat`]).
pub fn function<E: Export>(
    js: Js,
    slot: &Arc<Slot<E::Instance>>,
    found: Result<(Arc<E>, String), Failure>,
    budgeted: Option<bool>,
    flat: Option<bool>,
    flat_args: Option<bool>,
) -> napi::Result<Raw> {
    answer(js, || {
        let (export, name) = found?;
        let handle = Handle {
            export,
            budget: call_budget(&slot.defaults, slot.engine.fuel, None, None, None)?,
            slot: slot.clone(),
            budgeted: budgeted.unwrap_or(false),
            func: Cell::new(None),
            flat: flat.unwrap_or(false),
            flat_args: flat_args.unwrap_or(false),
        };
        Ok(js.function(&name, handle, Some(call_handle::<E>))?)
    })
}

/// How a `call` takes its arguments and gives its result: `flat_args` is the buffer holding the
/// arguments' flat form (`args` is then their length); with `flat_result` the Promise resolves to
/// the result's flat form, always in a new `ArrayBuffer` (the caller's buffer may be reused before
/// the Promise's reactions run).
pub struct Flat<'a> {
    pub args: Option<Unknown<'a>>,
    pub result: bool,
}

/// Calls the export on a pool thread; the arguments are converted first, on the JS thread.
#[allow(clippy::too_many_arguments)]
pub fn call<E: Export>(
    env: &Env,
    slot: &Arc<Slot<E::Instance>>,
    export: Result<Arc<E>, Failure>,
    args: Unknown,
    fuel: Option<f64>,
    timeout_ms: Option<f64>,
    abort: Option<&NativeAbortHandle>,
    flat: Flat<'_>,
) -> napi::Result<Raw> {
    let js = Js(env.raw());
    let prepared = caught(|| {
        let export = export?;
        slot.usable()?;
        let params = match flat.args {
            Some(buffer) => lower_flat(&*export, js, buffer.raw(), &[args.raw()], slot.guest_memory)?,
            None => lower_array(&*export, js, slot.resources.as_ref(), slot.guest_memory, args.raw())?,
        };
        let budget = call_budget(
            &slot.defaults,
            slot.engine.fuel,
            fuel,
            timeout_ms,
            abort.map(NativeAbortHandle::flag),
        )?;
        budget.check_engine(&slot.engine)?;
        Ok((export, params, budget))
    });
    let (export, params, budget) = match prepared {
        Ok(prepared) => prepared,
        Err(failure) => return Ok(Raw(fail(js, failure))),
    };
    let flat_result = flat.result;
    let slot = slot.clone();
    let export_to_lift = export.clone();
    let lift_resources = slot.resources.clone();
    task::promise(
        env,
        move || {
            let returned = slot.with(|live| run(&*export, live, None, &slot.engine, &budget, &params));
            let returned = exit_zero_is_success(returned, exited::<E>)?;
            if !flat_result {
                return Ok(Ready::Values(returned));
            }
            // Put in its flat form here, off the JS thread, which then only copies the bytes (and
            // the values are freed here too: millions of them took the JS thread a third of a
            // second).
            let mut bytes = Vec::new();
            let some = export.encode(returned.0, &mut bytes)?;
            Ok(Ready::Flat(some.then_some(bytes)))
        },
        move |js, ready: Result<Ready<E>, Failure>| match ready? {
            Ready::Values(returned) => {
                let this = js.undefined()?;
                lift(&*export_to_lift, false, js, this, lift_resources.as_ref(), returned).map(Raw)
            }
            // A flat result comes in its own `ArrayBuffer`: the caller's scratch may be reused
            // before the Promise's reactions run.
            Ready::Flat(Some(bytes)) => Ok(Raw(js.array_buffer_from(&bytes)?)),
            Ready::Flat(None) => Ok(Raw(js.undefined()?)),
        },
    )
}

/// What a `call`'s pool thread hands the JS thread: the result as it returned, or in its flat
/// form (`None`: it returned nothing).
enum Ready<E: Export> {
    Values(Finished<E>),
    Flat(Option<Vec<u8>>),
}
