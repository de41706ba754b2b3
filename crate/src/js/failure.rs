//! The failure box: how failures cross between the addon and JS without N-API throwing them.
//!
//! N-API throws inside a `v8::TryCatch` of its own, which V8 counts as no handler at all: under
//! `node --abort-on-uncaught-exception` every failure a binding threw aborted the process even
//! inside the caller's `try`, and so did every error a host function threw into the addon. So a
//! failing binding puts its error in this object and returns the object (`errors::fail`), and a
//! host function's JS wrapper hands back what it threw the same way (`Js::call_method`); each side
//! throws the error again on its own side (lib/util/failure.ts).

use std::cell::RefCell;

use napi::sys;

use super::{Js, Reference, Result, Value};

thread_local! {
    /// The box of the environment on this thread, made at its first use. Keyed by environment:
    /// one made for an environment that has gone is never handed to another.
    static FAILURE_BOX: RefCell<Option<(usize, Reference)>> = const { RefCell::new(None) };
}

/// This environment's failure box: one object, so that every copy of the JS layer loaded in the
/// environment (ESM and CommonJS) knows it.
pub fn failure_box(js: Js) -> Result<Value> {
    let env = js.0 as usize;
    let known = FAILURE_BOX.with(|cell| match &*cell.borrow() {
        Some((owner, reference)) if *owner == env => Some(js.dereference(reference)),
        _ => None,
    });
    if let Some(target) = known {
        return target;
    }
    let made = js.object()?;
    let reference = js.reference(made)?;
    FAILURE_BOX.with(|cell| *cell.borrow_mut() = Some((env, reference)));
    Ok(made)
}

/// What a host function threw, if `returned` is the failure box its JS wrapper returned in place
/// of throwing. The box is emptied.
pub fn unboxed(js: Js, returned: Value) -> Result<Option<Value>> {
    if js.kind(returned)? != super::Kind::Object {
        return Ok(None);
    }
    let target = failure_box(js)?;
    let mut same = false;
    js.check(
        unsafe { sys::napi_strict_equals(js.0, returned, target, &mut same) },
        "strict equals",
    )?;
    if !same {
        return Ok(None);
    }
    let thrown = js.get(target, "error")?;
    js.set(target, "error", js.undefined()?)?;
    Ok(Some(thrown))
}

/// Calls the box's function `name` (set by lib/util/failure.ts) with `args`: `None` when there is
/// no such function (the binding used without its JS layer) or it failed. The JS layer reads host
/// values there, where a throwing getter or a revoked `Proxy` meets a `try` of its own: read here,
/// through N-API, each aborted a process run with `--abort-on-uncaught-exception`.
pub(super) fn ask(js: Js, name: &str, args: &[Value]) -> Option<Value> {
    let target = failure_box(js).ok()?;
    let function = js.get(target, name).ok()?;
    if js.kind(function).ok()? != super::Kind::Function {
        return None;
    }
    js.call(function, args).ok()?.ok()
}

/// What the JS layer reads of a value a host function threw: `Some(Some(message))` for an
/// error-like value, `Some(None)` for another, `None` when it cannot be asked.
pub fn thrown_message(js: Js, thrown: Value) -> Option<Option<Value>> {
    ask(js, "describe", &[thrown]).map(|message| js.defined(message))
}

/// The err payload a value thrown by a host function for a `result` import stands for, as the JS
/// layer reads it: its own `payload` property, else (`wants_message`: for a string error type) an
/// error's message, else the value itself. `None` when a getter threw or there is no JS layer.
pub fn err_payload(js: Js, thrown: Value, wants_message: bool) -> Option<Value> {
    let wants_message = js.boolean(wants_message).ok()?;
    ask(js, "payload", &[thrown, wants_message])
}

/// The JS layer's plain copy of `value` if it is a `Proxy` of an array (N-API sees such a proxy as
/// an object; `Array.isArray` and jco take it as an array), or why it cannot be read (a trap
/// threw, its length is no array length or more than `max`); `None` for any other value.
pub fn array_copy(js: Js, value: Value, max: u32) -> Option<std::result::Result<Value, String>> {
    let max = js.number(f64::from(max)).ok()?;
    let answer = ask(js, "arrayCopy", &[value, max])?;
    if js.is_array(answer).ok()? {
        return Some(Ok(answer));
    }
    match js.kind(answer).ok()? {
        super::Kind::String => Some(Err(js.message_text(answer, 1024)?)),
        _ => None,
    }
}

/// Runs a host object's `[Symbol.dispose]` through the JS layer. It answers `undefined`, what
/// failed (`{ did, message, thrown }`), or a Promise of either (an async dispose). `None` when
/// there is no JS layer: the dispose is not run.
pub fn dispose(js: Js, value: Value) -> Option<Value> {
    ask(js, "dispose", &[value])
}
