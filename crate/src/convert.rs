//! JS values <-> core wasm values ([`wasmtime::Val`]), driven by the function's [`ValType`]s.
//!
//! i32 accepts the union of the signed and unsigned ranges (wasm integers have no sign) and is
//! returned signed, as Node's WebAssembly does; i64 is a bigint. Nothing wraps silently.

use napi_derive::napi;
use wasmtime::{FuncType, Val, ValType};

use crate::js::{Js, Kind, Value};

pub fn type_name(ty: &ValType) -> String {
    match ty {
        ValType::I32 => "i32".into(),
        ValType::I64 => "i64".into(),
        ValType::F32 => "f32".into(),
        ValType::F64 => "f64".into(),
        ValType::V128 => "v128".into(),
        ValType::Ref(reference) => ref_type_name(reference),
    }
}

/// The type of a core function: its parameter and result types by name (`i32`, `i64`, `funcref`).
#[napi(object)]
pub struct CoreFuncInfo {
    pub params: Vec<String>,
    pub results: Vec<String>,
}

/// The descriptor of a core function type, for listings; [`render_func`] spells it.
pub fn describe_func(func: &FuncType) -> CoreFuncInfo {
    CoreFuncInfo {
        params: func.params().map(|ty| type_name(&ty)).collect(),
        results: func.results().map(|ty| type_name(&ty)).collect(),
    }
}

/// `func(i32, i32) -> i32`, the spelling of a core function type in listings and errors.
pub fn render_func(func: &CoreFuncInfo) -> String {
    let params = func.params.join(", ");
    match func.results.as_slice() {
        [] => format!("func({params})"),
        [single] => format!("func({params}) -> {single}"),
        many => format!("func({params}) -> ({})", many.join(", ")),
    }
}

/// The spelling of a core function type, for error messages.
pub fn func_signature(func: &FuncType) -> String {
    render_func(&describe_func(func))
}

/// `funcref` / `externref` for the nullable abstract references, `(ref null (func …))` for a typed
/// function reference (wasmtime names its type by an internal index), wasmtime's spelling otherwise.
pub fn ref_type_name(reference: &wasmtime::RefType) -> String {
    // A typed function reference by its kind only: spelling its signature (whose values may be
    // typed references in turn) made a few KB of types list gigabytes.
    if let wasmtime::HeapType::ConcreteFunc(_) = reference.heap_type() {
        return if reference.is_nullable() {
            "(ref null (func …))"
        } else {
            "(ref (func …))"
        }
        .into();
    }
    match reference.to_string().as_str() {
        "(ref null func)" => "funcref".into(),
        "(ref null extern)" => "externref".into(),
        other => other.into(),
    }
}

/// Converts a JS value to a core value of type `ty`.
pub fn from_js(js: Js, value: Value, ty: &ValType) -> Result<Val, String> {
    match ty {
        ValType::I32 | ValType::F32 | ValType::F64 => {
            // One N-API call reads and checks a number (a call with numeric arguments does this
            // for each): the messages are made only on the way out.
            let Some(n) = js.number_value(value).map_err(|error| error.reason)? else {
                return Err(wrong_type(js, value, ty));
            };
            match ty {
                // In range first (NaN is not), then whole: the cast is exact within i64.
                ValType::I32 if (i32::MIN as f64..=u32::MAX as f64).contains(&n) && n as i64 as f64 == n => {
                    Ok(Val::I32(n as i64 as i32))
                }
                ValType::I32 => Err(wrong_type(js, value, ty)),
                ValType::F32 => Ok(Val::F32((n as f32).to_bits())),
                _ => Ok(Val::F64(n.to_bits())),
            }
        }
        ValType::I64 => {
            if js.kind(value).map_err(|error| error.reason)? != Kind::BigInt {
                return Err(format!("expected i64 (a bigint), got {}", js.describe(value)));
            }
            match js.get_bigint_i128(value).map_err(|error| error.reason)? {
                Some(n) if (i64::MIN as i128..=u64::MAX as i128).contains(&n) => {
                    Ok(Val::I64(if n < 0 { n as i64 } else { n as u64 as i64 }))
                }
                _ => Err(wrong_type(js, value, ty)),
            }
        }
        other => Err(format!("parameters of type {} are not supported", type_name(other))),
    }
}

#[cold]
fn wrong_type(js: Js, value: Value, ty: &ValType) -> String {
    format!("expected {}, got {}", type_name(ty), js.describe(value))
}

/// Converts a core value to JS.
pub fn to_js(js: Js, value: &Val) -> napi::Result<Value> {
    match value {
        Val::I32(n) => js.number(*n as f64),
        Val::I64(n) => js.bigint_i64(*n),
        Val::F32(bits) => js.number(f32::from_bits(*bits) as f64),
        Val::F64(bits) => js.number(f64::from_bits(*bits)),
        _ => Err(napi::Error::from_reason(
            "results of reference or vector type are not supported",
        )),
    }
}

/// A value of type `ty` to fill result slots before a call.
pub fn placeholder(ty: &ValType) -> Val {
    Val::default_for_ty(ty).unwrap_or(Val::I32(0))
}
