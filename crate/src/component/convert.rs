//! JS values <-> component [`Val`]s, driven by the wasm [`Type`] (jco's mapping; the README's
//! value table).
//!
//! Errors say where the bad value sits (`field "age": expected u8, got -1`); the caller adds the
//! parameter name. Numbers are range-checked, never wrapped.

use smallvec::SmallVec;
use wasmtime::component::{Type, Val};

use super::footprint::{Footprint, element_bytes};
use super::resources::Resources;
use crate::errors::{Failure, LaterJs};
use crate::js::{ElementType, Js, Kind, ShortString, StringValue, Value};
use crate::names::{LONE_SURROGATE_NAME, camel_case, name_units_read, quoted, unread};
use crate::runtime::host_bridge::{WaitLimits, converting};

/// Longest JS array accepted for a `list`: the length comes from the caller and is read before
/// any element, so it must not size an allocation by itself (`new Array(2 ** 32 - 1)` is a valid,
/// empty-looking array). Typed arrays are not capped: their bytes already exist.
const MAX_ARRAY_ITEMS: u32 = 1 << 22;

/// Most names one conversion keeps (see [`Names`]); names come from the value's type, so only a
/// type with more distinct names than this makes some of them again.
const MAX_NAMES: usize = 64;

/// The JS strings one conversion has made for WIT names: record and flag keys (camelCased),
/// `tag` and `val`, case names. A list of 1,000 records then makes each key once rather than
/// 1,000 times, and V8 hashes and interns a key the first time it is used as one, not on every
/// element. Handles stay valid for the N-API call the conversion runs in.
///
/// The names' text sits in one buffer, on the stack for the usual few short names.
#[derive(Default)]
struct Names {
    text: SmallVec<[u8; 256]>,
    /// Where each name is in `text`, whether it is camelCased, and its JS string.
    made: SmallVec<[(usize, usize, bool, Value); 8]>,
}

impl Names {
    fn get(&mut self, js: Js, name: &str, camel: bool) -> napi::Result<Value> {
        let found = self.made.iter().find(|&&(start, length, c, _)| {
            c == camel && self.text.get(start..start + length) == Some(name.as_bytes())
        });
        if let Some(&(_, _, _, made)) = found {
            return Ok(made);
        }
        let made = if camel {
            js.string(&camel_case(name))?
        } else {
            js.string(name)?
        };
        if self.made.len() < MAX_NAMES {
            self.made.push((self.text.len(), name.len(), camel, made));
            self.text.extend_from_slice(name.as_bytes());
        }
        Ok(made)
    }
}

/// What one conversion from JS carries: the names it made, and the count of what the values
/// bound for the guest need of its memory (see [`Footprint`]), shared by the arguments of a call.
struct Walk<'a> {
    names: Names,
    footprint: &'a mut Footprint,
}

/// The resources of the instance a value belongs to (`None` where no resource can appear).
pub type Cx<'a> = Option<&'a std::sync::Arc<Resources>>;

/// A component value with its type and the resources of its instance, converted to JS later on
/// the JS thread within the limits of the call that made it (an export's `result::err` payload
/// travels this way inside a failure, and may hold resources, as a return value may).
pub struct TypedVal {
    pub value: Val,
    pub ty: Type,
    pub resources: Option<std::sync::Arc<Resources>>,
    pub limits: WaitLimits,
    /// What the value is to its call ("its error payload"), for a timeout's message.
    pub what: &'static str,
}

impl LaterJs for TypedVal {
    fn to_js(self: Box<Self>, js: Js) -> Result<Value, Failure> {
        let TypedVal {
            value,
            ty,
            resources,
            limits,
            what,
        } = *self;
        into_js_until(js, resources.as_ref(), value, &ty, &|| {
            limits.stopped(|| converting(what))
        })
    }
}

fn wrap<T>(result: Result<T, String>, context: impl FnOnce() -> String) -> Result<T, String> {
    result.map_err(|inner| format!("{}: {inner}", context()))
}

fn expected(js: Js, what: &str, value: Value) -> String {
    format!("expected {what}, got {}", js.describe(value))
}

fn napi_error(error: napi::Error) -> String {
    error.reason
}

fn kind(js: Js, value: Value) -> Result<Kind, String> {
    js.kind(value).map_err(napi_error)
}

fn is_plain_object(js: Js, value: Value) -> Result<bool, String> {
    Ok(kind(js, value)? == Kind::Object && !js.is_array(value).map_err(napi_error)?)
}

/// A JS number that must be an integer within `[min, max]`.
fn integer(js: Js, value: Value, name: &str, min: f64, max: f64) -> Result<f64, String> {
    let Some(n) = js.number_value(value).map_err(napi_error)? else {
        return Err(expected(js, name, value));
    };
    // In range first (NaN is not), then whole: the cast is exact for every range used here.
    if !(min..=max).contains(&n) || n as i64 as f64 != n {
        return Err(expected(js, name, value));
    }
    Ok(n)
}

fn bigint(js: Js, value: Value, name: &str, min: i128, max: i128) -> Result<i128, String> {
    if kind(js, value)? != Kind::BigInt {
        return Err(expected(js, &format!("{name} (a bigint)"), value));
    }
    match js.get_bigint_i128(value).map_err(napi_error)? {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(expected(js, name, value)),
    }
}

fn number(js: Js, value: Value, name: &str) -> Result<f64, String> {
    js.number_value(value)
        .map_err(napi_error)?
        .ok_or_else(|| expected(js, name, value))
}

/// A `string` value: its UTF-8 in guest memory, at least a byte per UTF-16 unit, is counted in
/// `footprint` (a string too long for what is left is refused before its text is copied).
fn counted_string(js: Js, footprint: &mut Footprint, value: Value) -> Result<String, String> {
    let found = js.string_value_within(value, footprint.left()).map_err(napi_error)?;
    if let StringValue::TooLong(units) = found {
        return Err(footprint.too_large_with(units));
    }
    let text = text(js, found, value)?;
    footprint.need(text.len())?;
    Ok(text)
}

fn text(js: Js, found: StringValue, value: Value) -> Result<String, String> {
    match found {
        StringValue::Text(text) => Ok(text),
        StringValue::NotString => Err(expected(js, "string", value)),
        StringValue::LoneSurrogate => {
            Err("expected string, got a string with a lone surrogate (not valid Unicode)".to_string())
        }
        StringValue::TooLong(units) => Err(format!("a string of {units} UTF-16 units is too long here")),
    }
}

/// The element type a typed array must have to stand for `list<ty>`, if any.
fn typed_element(ty: &Type) -> Option<ElementType> {
    Some(match ty {
        Type::U8 => ElementType::Uint8,
        Type::S8 => ElementType::Int8,
        Type::U16 => ElementType::Uint16,
        Type::S16 => ElementType::Int16,
        Type::U32 => ElementType::Uint32,
        Type::S32 => ElementType::Int32,
        Type::U64 => ElementType::BigUint64,
        Type::S64 => ElementType::BigInt64,
        Type::Float32 => ElementType::Float32,
        Type::Float64 => ElementType::Float64,
        _ => return None,
    })
}

fn typed_name(element: ElementType) -> &'static str {
    match element {
        ElementType::Uint8 => "Uint8Array",
        ElementType::Int8 => "Int8Array",
        ElementType::Uint16 => "Uint16Array",
        ElementType::Int16 => "Int16Array",
        ElementType::Uint32 => "Uint32Array",
        ElementType::Int32 => "Int32Array",
        ElementType::BigUint64 => "BigUint64Array",
        ElementType::BigInt64 => "BigInt64Array",
        ElementType::Float32 => "Float32Array",
        ElementType::Float64 => "Float64Array",
        ElementType::Uint8Clamped => "Uint8ClampedArray",
        ElementType::Other => "typed array",
    }
}

/// Reads a typed array's elements as `Val`s of `ty`.
fn from_typed(element: ElementType, length: usize, data: *const u8) -> Vec<Val> {
    macro_rules! read {
        ($t:ty, $variant:path) => {{
            // SAFETY: N-API reported `length` elements of this type at `data`; the view lives
            // for the current N-API call and we copy out of it at once. Typed arrays need not be
            // aligned for us, so read unaligned.
            (0..length)
                .map(|i| $variant(unsafe { (data as *const $t).add(i).read_unaligned() }))
                .collect()
        }};
    }
    if length == 0 {
        return Vec::new();
    }
    match element {
        ElementType::Uint8 | ElementType::Uint8Clamped => read!(u8, Val::U8),
        ElementType::Int8 => read!(i8, Val::S8),
        ElementType::Uint16 => read!(u16, Val::U16),
        ElementType::Int16 => read!(i16, Val::S16),
        ElementType::Uint32 => read!(u32, Val::U32),
        ElementType::Int32 => read!(i32, Val::S32),
        ElementType::BigUint64 => read!(u64, Val::U64),
        ElementType::BigInt64 => read!(i64, Val::S64),
        ElementType::Float32 => read!(f32, Val::Float32),
        ElementType::Float64 => read!(f64, Val::Float64),
        ElementType::Other => Vec::new(),
    }
}

/// The bytes of a `list<u8>` given as a `Uint8Array` (or `Uint8ClampedArray`) or as an array of
/// numbers, copied out for wasmtime's typed path: no `Val` per byte. `Ok(None)` for any other
/// value, which the generic path then converts or refuses with its own message.
pub fn bytes_from_js(js: Js, value: Value, guest_memory: usize) -> Result<Option<Vec<u8>>, String> {
    if let Some(view) = js.typed_array(value).map_err(napi_error)? {
        if !matches!(view.element, ElementType::Uint8 | ElementType::Uint8Clamped) {
            return Ok(None);
        }
        Footprint::new(guest_memory).need(view.length)?;
        if view.length == 0 {
            return Ok(Some(Vec::new()));
        }
        // SAFETY: the view points at `length` live bytes of the caller's array.
        return Ok(Some(
            unsafe { std::slice::from_raw_parts(view.data, view.length) }.to_vec(),
        ));
    }
    if !js.is_array(value).map_err(napi_error)? {
        return Ok(None);
    }
    let length = js.array_length(value).map_err(napi_error)?;
    if length > MAX_ARRAY_ITEMS {
        return Ok(None);
    }
    Footprint::new(guest_memory).need(length as usize)?;
    let bytes = elements(js, value, length, |item| Ok(integer(js, item, "u8", 0.0, 255.0)? as u8))?;
    Ok(Some(bytes))
}

/// The first `length` elements of a JS array, each through `convert`; an error names the index.
fn elements<T>(
    js: Js,
    array: Value,
    length: u32,
    mut convert: impl FnMut(Value) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let mut items = Vec::with_capacity(length as usize);
    for index in 0..length {
        let item = js.get_index(array, index).map_err(napi_error);
        items.push(wrap(item.and_then(&mut convert), || format!("list index {index}"))?);
    }
    Ok(items)
}

/// Converts a JS value to a component value of type `ty`.
/// `footprint` counts what the value's strings and list elements need of the guest's memory, on
/// top of what it counted before (a call's earlier arguments): past the limit, it is refused.
/// The caller keeps the host objects of a value that fails (an export's arguments).
pub fn from_js(js: Js, cx: Cx, value: Value, ty: &Type, footprint: &mut Footprint) -> Result<Val, String> {
    tracked(js, cx, value, ty, footprint, false)
}

/// [`from_js`] of a value the host gave up (a host function's return, or the payload it threw):
/// the host objects of one that fails are disposed, as nothing else holds them.
pub fn from_js_given(js: Js, cx: Cx, value: Value, ty: &Type, footprint: &mut Footprint) -> Result<Val, String> {
    tracked(js, cx, value, ty, footprint, true)
}

fn tracked(js: Js, cx: Cx, value: Value, ty: &Type, footprint: &mut Footprint, given_up: bool) -> Result<Val, String> {
    let walk = &mut Walk {
        names: Names::default(),
        footprint,
    };
    let Some(resources) = cx else {
        return from_js_in(js, cx, walk, value, ty);
    };
    let mark = resources.converting();
    let converted = from_js_in(js, cx, walk, value, ty).and_then(|converted| match resources.capped_since(&mark) {
        Some(limit) => Err(limit),
        None => Ok(converted),
    });
    resources.converted(mark, converted.is_ok(), given_up);
    converted
}

/// `value` if it is an array, or the JS layer's copy of a `Proxy` of one: N-API sees such a proxy
/// as an object, where `Array.isArray` and jco take it as an array (probe Z61).
fn array(js: Js, value: Value) -> Result<Option<Value>, String> {
    if js.is_array(value).map_err(napi_error)? {
        return Ok(Some(value));
    }
    if kind(js, value)? != Kind::Object {
        return Ok(None);
    }
    crate::js::failure::array_copy(js, value, MAX_ARRAY_ITEMS).transpose()
}

fn from_js_in(js: Js, cx: Cx, walk: &mut Walk<'_>, value: Value, ty: &Type) -> Result<Val, String> {
    Ok(match ty {
        Type::Bool => {
            if kind(js, value)? != Kind::Boolean {
                return Err(expected(js, "bool", value));
            }
            Val::Bool(js.get_bool(value).map_err(napi_error)?)
        }
        Type::U8 => Val::U8(integer(js, value, "u8", 0.0, u8::MAX as f64)? as u8),
        Type::U16 => Val::U16(integer(js, value, "u16", 0.0, u16::MAX as f64)? as u16),
        Type::U32 => Val::U32(integer(js, value, "u32", 0.0, u32::MAX as f64)? as u32),
        Type::S8 => Val::S8(integer(js, value, "s8", i8::MIN as f64, i8::MAX as f64)? as i8),
        Type::S16 => Val::S16(integer(js, value, "s16", i16::MIN as f64, i16::MAX as f64)? as i16),
        Type::S32 => Val::S32(integer(js, value, "s32", i32::MIN as f64, i32::MAX as f64)? as i32),
        Type::U64 => Val::U64(bigint(js, value, "u64", 0, u64::MAX as i128)? as u64),
        Type::S64 => Val::S64(bigint(js, value, "s64", i64::MIN as i128, i64::MAX as i128)? as i64),
        Type::Float32 => Val::Float32(number(js, value, "f32")? as f32),
        Type::Float64 => Val::Float64(number(js, value, "f64")?),
        Type::Char => {
            // A character is at most two UTF-16 units: a longer string is not read.
            let found = js.string_value_within(value, 2).map_err(napi_error)?;
            let text = text(js, found, value).map_err(|_| expected(js, "char (a one-character string)", value))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(expected(js, "char (a one-character string)", value)),
            }
        }
        Type::String => Val::String(counted_string(js, walk.footprint, value)?),
        Type::List(list) => {
            let element_type = list.ty();
            if let Some(view) = js.typed_array(value).map_err(napi_error)? {
                let wanted = typed_element(&element_type);
                let fits = wanted == Some(view.element)
                    || (wanted == Some(ElementType::Uint8) && view.element == ElementType::Uint8Clamped);
                if !fits {
                    let what = match wanted {
                        Some(element) => format!("array or {}", typed_name(element)),
                        None => "array".into(),
                    };
                    return Err(format!("expected {what}, got {}", typed_name(view.element)));
                }
                walk.footprint.need(view.length.saturating_mul(view.element.size()))?;
                Val::List(from_typed(view.element, view.length, view.data))
            } else if let Some(array) = array(js, value)? {
                let length = js.array_length(array).map_err(napi_error)?;
                if length > MAX_ARRAY_ITEMS {
                    return Err(format!(
                        "an array of {length} elements is longer than a list argument may be ({MAX_ARRAY_ITEMS}; pass bytes as a Uint8Array)"
                    ));
                }
                walk.footprint
                    .need((length as usize).saturating_mul(element_bytes(&element_type)))?;
                Val::List(elements(js, array, length, |item| {
                    from_js_in(js, cx, walk, item, &element_type)
                })?)
            } else {
                return Err(expected(js, "array", value));
            }
        }
        Type::Record(record) => {
            if !is_plain_object(js, value)? {
                return Err(expected(js, "record (an object)", value));
            }
            // Each record's `Val` holds its field names.
            walk.footprint
                .names(record.fields().map(|field| field.name.len()).sum())?;
            let mut fields = Vec::new();
            for field in record.fields() {
                let converted = wrap(
                    walk.names
                        .get(js, field.name, true)
                        .and_then(|key| member(js, value, key, field.name))
                        .map_err(napi_error)
                        .and_then(|item| from_js_in(js, cx, walk, item, &field.ty)),
                    || format!("field \"{}\"", crate::names::label(&camel_case(field.name))),
                )?;
                fields.push((field.name.to_string(), converted));
            }
            Val::Record(fields)
        }
        Type::Tuple(tuple) => {
            let types: Vec<Type> = tuple.types().collect();
            let Some(array) = array(js, value)? else {
                return Err(expected(js, &format!("tuple (an array of {})", types.len()), value));
            };
            let length = js.array_length(array).map_err(napi_error)?;
            if length as usize != types.len() {
                return Err(format!(
                    "expected tuple of {} elements, got an array of {length}",
                    types.len()
                ));
            }
            let mut items = Vec::with_capacity(types.len());
            for (index, item_type) in types.iter().enumerate() {
                let item = js.get_index(array, index as u32).map_err(napi_error);
                items.push(wrap(
                    item.and_then(|item| from_js_in(js, cx, walk, item, item_type)),
                    || format!("tuple index {index}"),
                )?);
            }
            Val::Tuple(items)
        }
        Type::Variant(variant) => {
            let longest = || variant.cases().map(|case| case.name.len()).max().unwrap_or(0);
            let (tag, payload) = tagged(js, &mut walk.names, value, "variant", longest)?;
            let Some(case) = variant.cases().find(|case| case.name == tag.as_str()) else {
                return Err(format!(
                    "unknown variant case {}, expected one of: {}",
                    tag.shown(),
                    listed(variant.cases().map(|case| case.name))
                ));
            };
            let tag = tag.as_str();
            let payload = match &case.ty {
                Some(payload_type) => Some(Box::new(wrap(from_js_in(js, cx, walk, payload, payload_type), || {
                    format!("case \"{}\"", crate::names::label(tag))
                })?)),
                None => None,
            };
            walk.footprint.names(case.name.len())?;
            Val::Variant(case.name.to_string(), payload)
        }
        Type::Enum(enumeration) => {
            let unknown = |shown: String| {
                format!(
                    "unknown enum case {shown}, expected one of: {}",
                    listed(enumeration.names())
                )
            };
            // WIT names are ASCII: a string longer than the longest case (and than a message
            // shows) is not read.
            let longest = enumeration.names().map(str::len).max().unwrap_or(0);
            let name = match js
                .string_value_within(value, name_units_read(longest))
                .map_err(napi_error)?
            {
                StringValue::TooLong(units) => return Err(unknown(unread(units))),
                found => text(js, found, value).map_err(|_| expected(js, "enum case (a string)", value))?,
            };
            if !enumeration.names().any(|case| case == name) {
                return Err(unknown(quoted(&name)));
            }
            walk.footprint.names(name.len())?;
            Val::Enum(name)
        }
        Type::Option(option) => {
            let inner = option.ty();
            if matches!(inner, Type::Option(_)) {
                // option<option<T>>: `undefined` would be ambiguous, so the outer level is tagged.
                let (tag, payload) = tagged(
                    js,
                    &mut walk.names,
                    value,
                    "option (tagged: { tag: 'some', val } or { tag: 'none' })",
                    || "none".len(),
                )?;
                match tag.as_str() {
                    "none" => Val::Option(None),
                    "some" => Val::Option(Some(Box::new(wrap(from_js_in(js, cx, walk, payload, &inner), || {
                        "some".into()
                    })?))),
                    _ => {
                        return Err(format!(
                            "unknown option tag {}, expected \"some\" or \"none\"",
                            tag.shown()
                        ));
                    }
                }
            } else if matches!(kind(js, value)?, Kind::Undefined | Kind::Null) {
                Val::Option(None)
            } else {
                Val::Option(Some(Box::new(from_js_in(js, cx, walk, value, &inner)?)))
            }
        }
        Type::Result(result) => {
            let what = "result ({ tag: 'ok' | 'err', val })";
            let (tag, payload) = tagged(js, &mut walk.names, value, what, || "err".len())?;
            let (ok, side) = match tag.as_str() {
                "ok" => (true, result.ok()),
                "err" => (false, result.err()),
                _ => {
                    return Err(format!(
                        "unknown result tag {}, expected \"ok\" or \"err\"",
                        tag.shown()
                    ));
                }
            };
            let payload = match side {
                Some(payload_type) => Some(Box::new(wrap(
                    from_js_in(js, cx, walk, payload, &payload_type),
                    || tag.as_str().to_string(),
                )?)),
                None => None,
            };
            Val::Result(if ok { Ok(payload) } else { Err(payload) })
        }
        Type::Flags(flags) => {
            if !is_plain_object(js, value)? {
                return Err(expected(js, "flags (an object of booleans)", value));
            }
            let cases: Vec<&str> = flags.names().collect();
            // Spelled once per value, not once per key and flag (32 flags of 200 characters took
            // 13 s for 40,000 values).
            let keys: Vec<String> = cases.iter().map(|name| camel_case(name)).collect();
            let longest = keys.iter().map(String::len).max().unwrap_or(0);
            for key in js.keys_within(value, name_units_read(longest)).map_err(napi_error)? {
                let shown = match key {
                    StringValue::Text(key) if keys.contains(&key) => continue,
                    StringValue::Text(key) => quoted(&key),
                    StringValue::TooLong(units) => unread(units),
                    StringValue::LoneSurrogate => LONE_SURROGATE_NAME.into(),
                    // Keys are listed as strings (numbers converted, symbols skipped).
                    StringValue::NotString => "(a key that is not a string)".into(),
                };
                return Err(format!("unknown flag {shown}"));
            }
            let mut set = Vec::new();
            for name in cases {
                let key = walk.names.get(js, name, true).map_err(napi_error)?;
                let flag = member(js, value, key, name).map_err(napi_error)?;
                match kind(js, flag)? {
                    Kind::Undefined => {}
                    Kind::Boolean => {
                        if js.get_bool(flag).map_err(napi_error)? {
                            walk.footprint.names(name.len())?;
                            set.push(name.to_string());
                        }
                    }
                    _ => {
                        let key = camel_case(name);
                        let key = crate::names::label(&key);
                        return Err(format!("flag \"{key}\": {}", expected(js, "boolean", flag)));
                    }
                }
            }
            Val::Flags(set)
        }
        Type::Own(_) | Type::Borrow(_) => match cx {
            Some(resources) => resources.from_js(js, value, ty)?,
            None => return Err("resources cannot be passed here".into()),
        },
        other => {
            return Err(format!(
                "values of type {} are not supported yet",
                super::types::wit_type(other)
            ));
        }
    })
}

/// WIT names whose lowerCamelCase every object inherits from `Object.prototype` (lib/dts.ts's
/// `INHERITED` lists the same, for the generated types).
const OBJECT_MEMBERS: [&str; 7] = [
    "constructor",
    "has-own-property",
    "is-prototype-of",
    "property-is-enumerable",
    "to-locale-string",
    "to-string",
    "value-of",
];

/// The cases a message offers for an unknown one: the first 20, each cut (a type may have
/// thousands, and a service may log the message of every bad request).
fn listed<'a>(cases: impl ExactSizeIterator<Item = &'a str>) -> String {
    const LISTED: usize = 20;
    let count = cases.len();
    let mut shown: Vec<String> = cases.take(LISTED).map(crate::names::label).collect();
    if count > LISTED {
        shown.push(format!("… ({count} in all)"));
    }
    shown.join(", ")
}

/// A record field's or a flag's value in `object`, by its key and WIT name. One that every object
/// inherits (`constructor`, `toString`…) counts only as the object's own property: `{}` has no
/// field `constructor`, and its flag `toString` is not set. Any other is the object's own or its
/// class's, never `Object.prototype`'s (a polluted one filled a field the caller left out).
fn member(js: Js, object: Value, key: Value, wit_name: &str) -> napi::Result<Value> {
    if OBJECT_MEMBERS.contains(&wit_name) {
        js.get_own_key(object, key)
    } else {
        js.get_unpolluted_key(object, key)
    }
}

/// The `tag` of a tagged JS value: real case names are short and stay on the stack.
enum Tag {
    Short([u8; 64], usize),
    Long(String),
    /// Longer than any case it could name and than a message shows: not read.
    Unread(usize),
}

impl Tag {
    /// The tag's text; empty (which no WIT name is) when it was not read.
    fn as_str(&self) -> &str {
        match self {
            // `Short` is only built from text that was valid UTF-8 of that length.
            Tag::Short(bytes, length) => std::str::from_utf8(&bytes[..*length]).unwrap_or_default(),
            Tag::Long(text) => text,
            Tag::Unread(_) => "",
        }
    }

    /// The tag as a message shows it.
    fn shown(&self) -> String {
        match self {
            Tag::Unread(units) => unread(*units),
            _ => quoted(self.as_str()),
        }
    }
}

/// Reads `{ tag, val }`, where no case name is longer than `longest()` bytes (asked only of a
/// tag too long for the stack buffer: real case names are short).
fn tagged(
    js: Js,
    names: &mut Names,
    value: Value,
    what: &str,
    longest: impl FnOnce() -> usize,
) -> Result<(Tag, Value), String> {
    // An array is an object too: it fails on its missing `tag` below, which saves asking every
    // element of a list whether it is an array.
    if kind(js, value)? != Kind::Object {
        return Err(expected(js, what, value));
    }
    let tag = names
        .get(js, "tag", false)
        .and_then(|key| js.get_unpolluted_key(value, key));
    let tag = tag.map_err(napi_error)?;
    let mut buffer = [0; 64];
    let tag = match js.short_string(tag, &mut buffer).map_err(napi_error)? {
        ShortString::Text(length) => Tag::Short(buffer, length),
        ShortString::Long(units) if units > name_units_read(longest()) => Tag::Unread(units),
        ShortString::Long(_) => Tag::Long(text(js, js.string_value(tag).map_err(napi_error)?, tag)?),
        ShortString::NotString => {
            return Err(format!(
                "{}: property \"tag\" must be a string",
                expected(js, what, value)
            ));
        }
    };
    let payload = names
        .get(js, "val", false)
        .and_then(|key| js.get_unpolluted_key(value, key));
    let payload = payload.map_err(napi_error)?;
    Ok((tag, payload))
}

fn tagged_to_js(
    js: Js,
    cx: Cx,
    conversion: &mut ToJs,
    tag: &str,
    payload: Option<(&Val, &Type)>,
) -> napi::Result<Value> {
    let object = js.object()?;
    js.set_key(
        object,
        conversion.names.get(js, "tag", false)?,
        conversion.names.get(js, tag, false)?,
    )?;
    if let Some((value, ty)) = payload {
        let converted = to_js_in(js, cx, conversion, value, ty)?;
        js.set_key(object, conversion.names.get(js, "val", false)?, converted)?;
    }
    Ok(object)
}

fn typed_to_js(js: Js, element: ElementType, items: &[Val]) -> napi::Result<Option<Value>> {
    macro_rules! write {
        ($variant:path) => {{
            let mut bytes = Vec::with_capacity(items.len() * 8);
            for item in items {
                match item {
                    $variant(n) => bytes.extend_from_slice(&n.to_le_bytes()),
                    _ => return Ok(None),
                }
            }
            bytes
        }};
    }
    let bytes = match element {
        ElementType::Uint8 => write!(Val::U8),
        ElementType::Int8 => write!(Val::S8),
        ElementType::Uint16 => write!(Val::U16),
        ElementType::Int16 => write!(Val::S16),
        ElementType::Uint32 => write!(Val::U32),
        ElementType::Int32 => write!(Val::S32),
        ElementType::BigUint64 => write!(Val::U64),
        ElementType::BigInt64 => write!(Val::S64),
        ElementType::Float32 => write!(Val::Float32),
        ElementType::Float64 => write!(Val::Float64),
        ElementType::Uint8Clamped | ElementType::Other => return Ok(None),
    };
    js.typed_array_from(element, items.len(), &bytes).map(Some)
}

/// Estimated bytes of V8's heap the JS form of a value takes, by kind (64-bit V8 without pointer
/// compression, as Node 20 builds it): what [`check_js_size`] adds up. Rounded up where V8's
/// layout varies: an object with many properties keeps them in a dictionary.
mod heap {
    /// An array element.
    pub const ELEMENT: usize = 8;
    /// An object's property: measured at about 50 bytes each on objects of 32 and of 200.
    pub const PROPERTY: usize = 48;
    /// An object (a record, flags, a `{ tag, val }`, a resource's wrapper) before its properties.
    pub const OBJECT: usize = 64;
    /// An array before its elements.
    pub const ARRAY: usize = 32;
    /// A typed array with its `ArrayBuffer`: measured at about 200 bytes each for 8 million empty
    /// ones. Their bytes live outside V8's heap, which is what overflows.
    pub const TYPED_ARRAY: usize = 200;
    /// A string before its characters.
    pub const STRING: usize = 24;
    /// A number that is no small integer, or a bigint.
    pub const BOXED: usize = 24;
}

/// How many times more host memory than wasmtime's hostcall fuel counts a lift of a value of
/// `ty` may take, at most. wasmtime counts a `Val` for each value, but for each flag set only the
/// bytes of its name, while it makes a `String` of it: a list of `flags` with 32 one-letter names
/// counted 72 bytes an element and took 1.3 KB (6 GB for a 64 MiB guest's call, where 8 ×
/// `memoryBytes` is 512 MiB; probe H42).
pub fn lift_ratio(ty: &Type) -> usize {
    let each = |types: &mut dyn Iterator<Item = Type>| types.map(|ty| lift_ratio(&ty)).max().unwrap_or(1);
    match ty {
        Type::Flags(flags) => {
            let value = std::mem::size_of::<Val>();
            let (names, text) = flags
                .names()
                .fold((0, 0), |(names, text), name| (names + 1, text + name.len()));
            // A heap allocation takes 16 bytes at least.
            let made = flags.names().map(|name| name.len().max(16)).sum::<usize>();
            (value + names * std::mem::size_of::<String>() + made).div_ceil(value + text)
        }
        Type::List(list) => lift_ratio(&list.ty()),
        Type::Record(record) => each(&mut record.fields().map(|field| field.ty)),
        Type::Tuple(tuple) => each(&mut tuple.types()),
        Type::Variant(variant) => each(&mut variant.cases().filter_map(|case| case.ty)),
        Type::Option(option) => lift_ratio(&option.ty()),
        Type::Result(result) => each(&mut [result.ok(), result.err()].into_iter().flatten()),
        _ => 1,
    }
}

/// [`lift_ratio`] over every value a component's guest hands JS: its imports' parameters (but
/// WASI's, which the runtime's own code takes typed, without a `Val`) and its exports' results, in
/// instances too.
pub fn component_lift_ratio(component: &wasmtime::component::Component, engine: &wasmtime::Engine) -> usize {
    use wasmtime::component::types::ComponentItem;
    fn of_item(item: &ComponentItem, engine: &wasmtime::Engine, imported: bool) -> usize {
        match item {
            ComponentItem::ComponentFunc(func) if imported => {
                func.params().map(|(_, ty)| lift_ratio(&ty)).max().unwrap_or(1)
            }
            ComponentItem::ComponentFunc(func) => func.results().map(|ty| lift_ratio(&ty)).max().unwrap_or(1),
            ComponentItem::ComponentInstance(instance) => (instance.exports(engine))
                .map(|(_, inner)| of_item(&inner.ty, engine, imported))
                .max()
                .unwrap_or(1),
            _ => 1,
        }
    }
    let ty = component.component_type();
    let imports = (ty.imports(engine))
        .filter(|(name, _)| !name.starts_with("wasi:"))
        .map(|(_, import)| of_item(&import.ty, engine, true));
    let exports = ty.exports(engine).map(|(_, export)| of_item(&export.ty, engine, false));
    imports.chain(exports).max().unwrap_or(1).max(1)
}

/// What one flags value of any `flags` type within `ty` counts for at most (see
/// [`check_js_size`]): a flags value lists only the flags set, its JS object has them all, and
/// setting each one keys V8's object by the flag's name (its whole text, compared again for each
/// object: 32 names of 60 KB made a host function's `list<flags>` argument cost 100 µs an element).
pub fn flags_cost(ty: &Type) -> usize {
    match ty {
        Type::Flags(flags) => flags.names().map(|name| heap::PROPERTY + name.len()).sum(),
        Type::List(list) => flags_cost(&list.ty()),
        Type::Record(record) => record.fields().map(|field| flags_cost(&field.ty)).max().unwrap_or(0),
        Type::Tuple(tuple) => tuple.types().map(|ty| flags_cost(&ty)).max().unwrap_or(0),
        Type::Variant(variant) => variant
            .cases()
            .filter_map(|case| case.ty.as_ref().map(flags_cost))
            .max()
            .unwrap_or(0),
        Type::Option(option) => flags_cost(&option.ty()),
        Type::Result(result) => [result.ok(), result.err()]
            .iter()
            .flatten()
            .map(flags_cost)
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// The bytes of V8's heap that `values` (those of one crossing into JS: a call's result, a host
/// function's arguments) would take in their JS form (estimated, see [`heap`]), or a
/// HostLimitError about `what` when that is more than `cap`; `flags` is [`flags_cost`] of their
/// types. A
/// guest's values are bounded by wasmtime's hostcall fuel (`cap` is the same figure,
/// [`crate::limits::hostcall_fuel`]), but their JS form can take far more (a `list<list<u8>>` of
/// empty lists: 32 bytes of fuel, 200 of heap each; a `list<flags>` with 32 flags: 4 bytes of
/// guest memory and almost no fuel, 1.6 KB of heap each), and V8 aborts the process when its heap
/// is full.
pub fn check_js_size(
    values: &[Val],
    flags: usize,
    cap: usize,
    what: impl FnOnce() -> String,
) -> Result<usize, Failure> {
    let mut size = JsSize {
        flags,
        cap,
        total: 0,
        long_string: None,
    };
    if values.iter().try_for_each(|value| size.add(value)).is_ok() {
        return Ok(size.total);
    }
    Err(match size.long_string {
        Some(units) => long_string(&what(), units),
        None => Failure::HostLimit(format!(
            "{} would take more than {} bytes of JS heap, past what one call may move into the host \
             ({cap} bytes: {} times limits.memoryBytes, at least 4 MiB, at most 1 GiB)",
            what(),
            size.total,
            crate::limits::HOSTCALL_FUEL_PER_BYTE
        )),
    })
}

/// V8's longest string, in UTF-16 units (`v8::String::kMaxLength` on 64-bit): making a longer one
/// fails, which would otherwise surface as an error of ours, not the guest's.
const MAX_JS_STRING_UNITS: usize = (1 << 29) - 24;

/// The UTF-16 length of `text` if it is too long to be a JS string.
fn too_long_for_js(text: &str) -> Option<usize> {
    // A UTF-8 text never has more UTF-16 units than bytes: most texts need no count.
    if text.len() <= MAX_JS_STRING_UNITS {
        return None;
    }
    let units: usize = text.chars().map(char::len_utf16).sum();
    (units > MAX_JS_STRING_UNITS).then_some(units)
}

fn long_string(what: &str, units: usize) -> Failure {
    Failure::HostLimit(format!(
        "{what} holds a string of {units} UTF-16 units, longer than a JS string may be ({MAX_JS_STRING_UNITS})"
    ))
}

/// Refuses a string too long to become a JS string, as a HostLimitError about `what`.
pub fn check_js_string(text: &str, what: impl FnOnce() -> String) -> Result<(), Failure> {
    match too_long_for_js(text) {
        Some(units) => Err(long_string(&what(), units)),
        None => Ok(()),
    }
}

/// The running estimate of [`check_js_size`]; `Err` once it passes the cap (the walk stops).
struct JsSize {
    /// What a flags value counts for ([`flags_cost`]).
    flags: usize,
    cap: usize,
    total: usize,
    /// The length of a string met that no JS string can hold (the walk stops there too).
    long_string: Option<usize>,
}

impl JsSize {
    fn count(&mut self, bytes: usize) -> Result<(), ()> {
        self.total = self.total.saturating_add(bytes);
        if self.total > self.cap { Err(()) } else { Ok(()) }
    }

    fn add(&mut self, value: &Val) -> Result<(), ()> {
        match value {
            Val::Bool(_) | Val::U8(_) | Val::U16(_) | Val::S8(_) | Val::S16(_) | Val::S32(_) => Ok(()),
            Val::U32(_) | Val::U64(_) | Val::S64(_) | Val::Float32(_) | Val::Float64(_) => self.count(heap::BOXED),
            Val::Char(_) => self.count(heap::STRING + 4),
            Val::String(text) => {
                self.long_string = too_long_for_js(text);
                if self.long_string.is_some() {
                    return Err(());
                }
                self.count(heap::STRING + text.len())
            }
            // Enum and case names are made once per conversion.
            Val::Enum(_) => Ok(()),
            Val::List(items) => match items.first() {
                // A typed array, or (empty) at most one.
                None
                | Some(
                    Val::U8(_)
                    | Val::U16(_)
                    | Val::U32(_)
                    | Val::U64(_)
                    | Val::S8(_)
                    | Val::S16(_)
                    | Val::S32(_)
                    | Val::S64(_)
                    | Val::Float32(_)
                    | Val::Float64(_),
                ) => self.count(heap::TYPED_ARRAY),
                Some(_) => {
                    self.count(heap::ARRAY.saturating_add(heap::ELEMENT.saturating_mul(items.len())))?;
                    items.iter().try_for_each(|item| self.add(item))
                }
            },
            Val::Record(fields) => {
                self.count(heap::OBJECT + heap::PROPERTY * fields.len())?;
                fields.iter().try_for_each(|(_, item)| self.add(item))
            }
            Val::Tuple(items) => {
                self.count(heap::ARRAY + heap::ELEMENT * items.len())?;
                items.iter().try_for_each(|item| self.add(item))
            }
            Val::Variant(_, payload) | Val::Result(Ok(payload) | Err(payload)) => {
                self.count(heap::OBJECT + 2 * heap::PROPERTY)?;
                payload.iter().try_for_each(|item| self.add(item))
            }
            // The payload or `undefined` (an option of an option, rare, makes a `{ tag, val }` too).
            Val::Option(payload) => payload.iter().try_for_each(|item| self.add(item)),
            Val::Flags(_) => self.count(heap::OBJECT + self.flags),
            _ => self.count(heap::OBJECT),
        }
    }
}

/// Converts a component value of type `ty` to JS.
pub fn to_js(js: Js, cx: Cx, value: &Val, ty: &Type) -> napi::Result<Value> {
    to_js_in(js, cx, &mut ToJs::default(), value, ty)
}

/// Converts a component value of type `ty` to JS unless `stop` says to stop first (a host call's
/// deadline or abort), which it is asked every [`STOP_EVERY`] values: a guest's argument of a
/// million small tuples took a second of the JS thread, long after the call's deadline.
pub fn to_js_until(
    js: Js,
    cx: Cx,
    value: &Val,
    ty: &Type,
    stop: &dyn Fn() -> Option<Failure>,
) -> Result<Value, Failure> {
    // A value of fewer values than that is converted whatever the time: a guest that returned a
    // number just past its deadline (nothing in it checked the epoch) keeps its result.
    let mut conversion = ToJs {
        stop: Some(stop),
        until_look: STOP_EVERY,
        ..ToJs::default()
    };
    to_js_in(js, cx, &mut conversion, value, ty).map_err(|error| conversion.stopped.take().unwrap_or(error.into()))
}

/// Whether `value` holds more than `count` values in all (itself included; text counts one more
/// per [`TEXT_BYTES_PER_VALUE`] bytes), found without walking more than that many.
pub fn holds_more_than(value: &Val, count: usize) -> bool {
    fn walk(value: &Val, left: &mut usize) -> bool {
        if *left == 0 {
            return true;
        }
        *left -= 1;
        match value {
            Val::List(items) | Val::Tuple(items) => items.iter().any(|item| walk(item, left)),
            Val::Record(fields) => fields.iter().any(|(_, item)| walk(item, left)),
            Val::Variant(_, Some(payload)) | Val::Option(Some(payload)) => walk(payload, left),
            Val::Result(Ok(Some(payload)) | Err(Some(payload))) => walk(payload, left),
            Val::Flags(names) => names.len() > *left,
            Val::String(text) => text.len() / TEXT_BYTES_PER_VALUE > *left,
            _ => false,
        }
    }
    let mut left = count;
    walk(value, &mut left)
}

/// [`to_js_until`] for a value the caller is done with: a value stopped part way is large (it
/// outlasted a deadline), and is freed on the pool, where freeing millions of values does not hold
/// the JS thread (a tenth of a second for a million tuples).
pub fn into_js_until(
    js: Js,
    cx: Cx,
    value: Val,
    ty: &Type,
    stop: &dyn Fn() -> Option<Failure>,
) -> Result<Value, Failure> {
    let converted = to_js_until(js, cx, &value, ty, stop);
    if converted.is_err() {
        crate::runtime::pool::run_in_pool(move || drop(value));
    }
    converted
}

/// Values converted between two looks at a conversion's `stop` (some 100 µs of them at most).
pub const STOP_EVERY: u32 = 256;

/// Bytes of text that count as one value, for [`STOP_EVERY`] and [`holds_more_than`]: a KiB costs
/// the JS thread about what a value does to convert, and 16 results of 60 MiB each arriving at
/// once were all converted, seconds past their deadline (probe Z49).
pub const TEXT_BYTES_PER_VALUE: usize = 1024;

/// What one conversion to JS carries: the names it made, and when to look whether to stop.
#[derive(Default)]
struct ToJs<'a> {
    names: Names,
    stop: Option<&'a dyn Fn() -> Option<Failure>>,
    until_look: u32,
    stopped: Option<Failure>,
}

impl ToJs<'_> {
    /// Counts `values` more converted, asking `stop` whether to stop once [`STOP_EVERY`] have
    /// been since it was last asked.
    fn look(&mut self, values: u32) -> napi::Result<()> {
        let Some(stop) = self.stop else { return Ok(()) };
        if let Some(left) = self.until_look.checked_sub(values) {
            self.until_look = left;
            return Ok(());
        }
        self.until_look = STOP_EVERY;
        self.stopped = stop();
        match self.stopped {
            Some(_) => Err(napi::Error::from_reason("stopped")),
            None => Ok(()),
        }
    }
}

fn to_js_in(js: Js, cx: Cx, conversion: &mut ToJs, value: &Val, ty: &Type) -> napi::Result<Value> {
    conversion.look(1)?;
    match (value, ty) {
        // A resource arrives as a marker (see `resources`), which looks like a plain integer.
        (marker, Type::Own(_) | Type::Borrow(_)) => match cx {
            Some(resources) => resources.to_js(js, marker, ty),
            None => Err(napi::Error::from_reason("a resource cannot be returned here")),
        },
        (Val::Bool(b), _) => js.boolean(*b),
        (Val::U8(n), _) => js.number(*n as f64),
        (Val::U16(n), _) => js.number(*n as f64),
        (Val::U32(n), _) => js.number(*n as f64),
        (Val::S8(n), _) => js.number(*n as f64),
        (Val::S16(n), _) => js.number(*n as f64),
        (Val::S32(n), _) => js.number(*n as f64),
        (Val::U64(n), _) => js.bigint_u64(*n),
        (Val::S64(n), _) => js.bigint_i64(*n),
        (Val::Float32(n), _) => js.number(*n as f64),
        (Val::Float64(n), _) => js.number(*n),
        (Val::Char(c), _) => js.string(c.encode_utf8(&mut [0; 4])),
        (Val::String(s), _) => {
            // Text counts one value more per TEXT_BYTES_PER_VALUE bytes.
            conversion.look(u32::try_from(s.len() / TEXT_BYTES_PER_VALUE).unwrap_or(u32::MAX))?;
            js.string(s)
        }
        (Val::List(items), Type::List(list)) => {
            let element_type = list.ty();
            if let Some(element) = typed_element(&element_type)
                && let Some(array) = typed_to_js(js, element, items)?
            {
                return Ok(array);
            }
            let array = js.array(items.len())?;
            for (index, item) in items.iter().enumerate() {
                js.set_index(array, index as u32, to_js_in(js, cx, conversion, item, &element_type)?)?;
            }
            Ok(array)
        }
        (Val::Record(fields), Type::Record(record)) => {
            let object = js.object()?;
            for ((name, item), field) in fields.iter().zip(record.fields()) {
                let converted = to_js_in(js, cx, conversion, item, &field.ty)?;
                js.set_key(object, conversion.names.get(js, name, true)?, converted)?;
            }
            Ok(object)
        }
        (Val::Tuple(items), Type::Tuple(tuple)) => {
            let array = js.array(items.len())?;
            for (index, (item, item_type)) in items.iter().zip(tuple.types()).enumerate() {
                js.set_index(array, index as u32, to_js_in(js, cx, conversion, item, &item_type)?)?;
            }
            Ok(array)
        }
        (Val::Variant(tag, payload), Type::Variant(variant)) => {
            let case_type = variant.cases().find(|case| case.name == tag).and_then(|case| case.ty);
            match (payload, case_type) {
                (Some(payload), Some(payload_type)) => {
                    tagged_to_js(js, cx, conversion, tag, Some((payload, &payload_type)))
                }
                _ => tagged_to_js(js, cx, conversion, tag, None),
            }
        }
        (Val::Enum(name), _) => conversion.names.get(js, name, false),
        (Val::Option(inner), Type::Option(option)) => {
            let inner_type = option.ty();
            let nested = matches!(inner_type, Type::Option(_));
            match (inner, nested) {
                (None, false) => js.undefined(),
                (Some(value), false) => to_js_in(js, cx, conversion, value, &inner_type),
                (None, true) => tagged_to_js(js, cx, conversion, "none", None),
                (Some(value), true) => tagged_to_js(js, cx, conversion, "some", Some((value, &inner_type))),
            }
        }
        (Val::Result(outcome), Type::Result(result)) => {
            let (tag, payload, payload_type) = match outcome {
                Ok(payload) => ("ok", payload, result.ok()),
                Err(payload) => ("err", payload, result.err()),
            };
            match (payload, payload_type) {
                (Some(payload), Some(payload_type)) => {
                    tagged_to_js(js, cx, conversion, tag, Some((payload, &payload_type)))
                }
                _ => tagged_to_js(js, cx, conversion, tag, None),
            }
        }
        (Val::Flags(set), Type::Flags(flags)) => {
            let object = js.object()?;
            for name in flags.names() {
                let on = js.boolean(set.iter().any(|flag| flag == name))?;
                js.set_key(object, conversion.names.get(js, name, true)?, on)?;
            }
            Ok(object)
        }
        _ => Err(napi::Error::from_reason(format!(
            "cannot convert a value of type {} to JS",
            super::types::wit_type(ty)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::component::Val;

    use crate::component::convert::{MAX_JS_STRING_UNITS, check_js_size, check_js_string, holds_more_than};
    use crate::errors::Failure;

    fn refusal(values: &[Val]) -> Option<String> {
        match check_js_size(values, 0, usize::MAX, || "the result of f".into()) {
            Ok(_) => None,
            Err(Failure::HostLimit(message)) => Some(message),
            Err(_) => Some("another failure".into()),
        }
    }

    #[test]
    fn text_counts_one_value_per_kib_of_it() {
        // With itself, 255 KiB of text holds 256 values: not more.
        assert!(!holds_more_than(&Val::String("a".repeat(255 * 1024)), 256));
        assert!(holds_more_than(&Val::String("a".repeat(256 * 1024)), 256));
        let inside = Val::List(vec![Val::String("a".repeat(300 * 1024))]);
        assert!(holds_more_than(&inside, 256));
    }

    #[test]
    fn a_string_longer_than_v8_allows_is_a_host_limit_before_any_js_string() {
        let longest = "a".repeat(MAX_JS_STRING_UNITS);
        assert_eq!(refusal(&[Val::String(longest.clone())]), None);
        let too_long = Val::List(vec![Val::String(longest + "a")]);
        let message = refusal(&[too_long]).expect("refused");
        assert!(message.contains("a string of 536870889 UTF-16 units, longer than a JS string may be"));
        // Counted in UTF-16 units, not bytes: two bytes of UTF-8 are one unit.
        let wide = "é".repeat(MAX_JS_STRING_UNITS / 2 + 1);
        assert!(wide.len() > MAX_JS_STRING_UNITS);
        assert_eq!(refusal(&[Val::String(wide.clone())]), None);
        assert!(check_js_string(&wide, || unreachable!()).is_ok());
        assert!(check_js_string(&"a".repeat(MAX_JS_STRING_UNITS + 1), || "r".into()).is_err());
    }
}
