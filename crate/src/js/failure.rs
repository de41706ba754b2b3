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

/// What the JS layer reads of a value a host function threw (the box's `describe`, set by
/// lib/util/failure.ts): `Some(Some(message))` for an error-like value, `Some(None)` for another,
/// `None` when it cannot be asked. Read in JS, where a throwing getter or a revoked `Proxy` meets
/// a `try` of its own: read here, through N-API, it aborted a process run with
/// `--abort-on-uncaught-exception`.
pub fn thrown_message(js: Js, thrown: Value) -> Option<Option<Value>> {
    let target = failure_box(js).ok()?;
    let describe = js.get(target, "describe").ok()?;
    if js.kind(describe).ok()? != super::Kind::Function {
        return None;
    }
    match js.call(describe, &[thrown]).ok()? {
        Ok(message) => Some(js.defined(message)),
        Err(_) => None,
    }
}
