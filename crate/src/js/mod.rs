//! Every raw N-API call of the addon, as thin checked wrappers named by what they do: values
//! here, the environment (handle scopes, exceptions, external memory, thread-safe function
//! references) in `env.rs`, Promises in `promise.rs`.
//!
//! napi-rs's typed wrappers carry lifetimes that fight a recursive, type-driven converter; these
//! helpers keep every `unsafe` N-API call in one place and turn a non-ok status into an error.

// `napi_value` handles are opaque tokens that N-API validates; we never dereference them.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::borrow::Cow;
use std::ptr;

use smallvec::SmallVec;

use napi::{Error, Result, Status, sys};

pub mod env;
pub mod failure;
pub mod places;
pub mod promise;
pub mod token;

/// A JavaScript value handle, valid only on the JS thread during the current N-API call.
pub type Value = sys::napi_value;

/// The N-API environment of the JS thread we are running on.
#[derive(Clone, Copy)]
pub struct Js(pub sys::napi_env);

impl Js {
    /// A non-ok status as an error. When the call failed because JS threw (a getter, a proxy
    /// trap, a revoked proxy), the exception is taken, so it cannot escape untyped past our own
    /// error, and its message becomes part of ours.
    #[inline]
    pub(crate) fn check(self, status: sys::napi_status, what: &str) -> Result<()> {
        if status == sys::Status::napi_ok {
            return Ok(());
        }
        self.failed(status, what)
    }

    #[cold]
    fn failed(self, status: sys::napi_status, what: &str) -> Result<()> {
        // Node reports a throwing getter or proxy trap as a generic failure with the exception
        // left pending.
        let mut pending = false;
        unsafe { sys::napi_is_exception_pending(self.0, &mut pending) };
        if pending {
            let mut thrown = ptr::null_mut();
            unsafe { sys::napi_get_and_clear_last_exception(self.0, &mut thrown) };
            let detail = self.error_message(thrown).unwrap_or_else(|| self.describe(thrown));
            return Err(Error::new(
                Status::PendingException,
                format!("reading the JS value threw ({what}): {detail}"),
            ));
        }
        Err(Error::new(Status::from(status), format!("N-API call failed: {what}")))
    }

    /// `error.message` of an Error object, without running any JS (no getters).
    fn error_message(self, value: Value) -> Option<String> {
        let mut is_error = false;
        unsafe { sys::napi_is_error(self.0, value, &mut is_error) };
        if !is_error {
            return None;
        }
        let key = self.string("message").ok()?;
        let mut message = ptr::null_mut();
        let status = unsafe { sys::napi_get_property(self.0, value, key, &mut message) };
        if status != sys::Status::napi_ok {
            let mut thrown = ptr::null_mut();
            unsafe { sys::napi_get_and_clear_last_exception(self.0, &mut thrown) };
            return None;
        }
        self.get_string(message).ok().flatten()
    }
}

/// The JS type of a value, as `typeof` reports it (with `null` and arrays told apart).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Undefined,
    Null,
    Boolean,
    Number,
    String,
    Symbol,
    Object,
    Function,
    BigInt,
    External,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Undefined => "undefined",
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Symbol => "symbol",
            Kind::Object => "object",
            Kind::Function => "function",
            Kind::BigInt => "bigint",
            Kind::External => "external",
        }
    }
}

/// UTF-16 text as a Rust string, a lone surrogate written `\u{d800}`; `escaped`: every other
/// character as Rust's `{:?}` escapes it too.
fn lone_surrogates_written(units: &[u16], escaped: bool) -> String {
    let mut text = String::with_capacity(units.len());
    for decoded in char::decode_utf16(units.iter().copied()) {
        match decoded {
            Ok(c) if escaped => text.extend(c.escape_debug()),
            Ok(c) => text.push(c),
            Err(lone) => text.push_str(&format!("\\u{{{:x}}}", lone.unpaired_surrogate())),
        }
    }
    text
}

/// The most characters of a string a message quotes.
const SHOWN_STRING_CHARS: usize = 24;

/// The element type of a typed array.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ElementType {
    Int8,
    Uint8,
    Uint8Clamped,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Float32,
    Float64,
    BigInt64,
    BigUint64,
    Other,
}

impl ElementType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElementType::Int8 | ElementType::Uint8 | ElementType::Uint8Clamped | ElementType::Other => 1,
            ElementType::Int16 | ElementType::Uint16 => 2,
            ElementType::Int32 | ElementType::Uint32 | ElementType::Float32 => 4,
            ElementType::Float64 | ElementType::BigInt64 | ElementType::BigUint64 => 8,
        }
    }
}

/// A borrowed view of a typed array's elements.
pub struct TypedArrayView {
    pub element: ElementType,
    pub length: usize,
    pub data: *const u8,
}

impl Js {
    pub fn kind(self, value: Value) -> Result<Kind> {
        let mut raw = 0;
        self.check(unsafe { sys::napi_typeof(self.0, value, &mut raw) }, "typeof")?;
        Ok(match raw {
            sys::ValueType::napi_undefined => Kind::Undefined,
            sys::ValueType::napi_null => Kind::Null,
            sys::ValueType::napi_boolean => Kind::Boolean,
            sys::ValueType::napi_number => Kind::Number,
            sys::ValueType::napi_string => Kind::String,
            sys::ValueType::napi_symbol => Kind::Symbol,
            sys::ValueType::napi_function => Kind::Function,
            sys::ValueType::napi_bigint => Kind::BigInt,
            sys::ValueType::napi_external => Kind::External,
            _ => Kind::Object,
        })
    }

    /// Describes a value for error messages: its type, and the value itself when it is short.
    pub fn describe(self, value: Value) -> String {
        match self.kind(value) {
            Ok(Kind::Number) => match self.get_f64(value) {
                Ok(n) => format!("{}", JsNumber(n)),
                Err(_) => "number".into(),
            },
            Ok(Kind::BigInt) => match self.get_bigint_i128(value) {
                Ok(Some(n)) => format!("{n}n"),
                _ => "bigint".into(),
            },
            Ok(Kind::Boolean) => match self.get_bool(value) {
                Ok(b) => b.to_string(),
                Err(_) => "boolean".into(),
            },
            Ok(Kind::String) => match self.shown_string(value) {
                Some(shown) => format!("string {shown}"),
                None => "string".into(),
            },
            Ok(Kind::Object) if self.is_array(value).unwrap_or(false) => "array".into(),
            Ok(Kind::Object) if self.typed_array(value).ok().flatten().is_some() => "typed array".into(),
            Ok(kind) => kind.describe().into(),
            Err(_) => "value".into(),
        }
    }

    /// `value` unless it is `undefined` or `null`.
    pub fn defined(self, value: Value) -> Option<Value> {
        match self.kind(value) {
            Ok(Kind::Undefined | Kind::Null) | Err(_) => None,
            Ok(_) => Some(value),
        }
    }

    pub fn undefined(self) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(unsafe { sys::napi_get_undefined(self.0, &mut out) }, "undefined")?;
        Ok(out)
    }

    pub fn boolean(self, value: bool) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(unsafe { sys::napi_get_boolean(self.0, value, &mut out) }, "boolean")?;
        Ok(out)
    }

    pub fn number(self, value: f64) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(unsafe { sys::napi_create_double(self.0, value, &mut out) }, "number")?;
        Ok(out)
    }

    pub fn bigint_i64(self, value: i64) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(
            unsafe { sys::napi_create_bigint_int64(self.0, value, &mut out) },
            "bigint",
        )?;
        Ok(out)
    }

    pub fn bigint_u64(self, value: u64) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(
            unsafe { sys::napi_create_bigint_uint64(self.0, value, &mut out) },
            "bigint",
        )?;
        Ok(out)
    }

    /// A JS string. Text that fits Latin-1 (ASCII above all) becomes a one-byte string, other text
    /// a two-byte one, both by a plain copy: V8's own UTF-8 decoder takes several times longer.
    pub fn string(self, value: &str) -> Result<Value> {
        let create = |scratch: &mut Vec<u16>| {
            let mut out = ptr::null_mut();
            let status = match js_text(value, scratch) {
                JsText::Latin1(bytes) => unsafe {
                    sys::napi_create_string_latin1(self.0, bytes.as_ptr().cast(), bytes.len() as isize, &mut out)
                },
                JsText::Utf16(units) => unsafe {
                    sys::napi_create_string_utf16(self.0, units.as_ptr(), units.len() as isize, &mut out)
                },
            };
            if scratch.len() > MAX_SCRATCH_UNITS {
                *scratch = Vec::new();
            }
            (status, out)
        };
        // A string made while another is being made (nothing does that today) gets its own buffer.
        let (status, out) = UTF16_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => create(&mut scratch),
            Err(_) => create(&mut Vec::new()),
        });
        self.check(status, "string")?;
        Ok(out)
    }

    /// `globalThis`.
    pub fn global(self) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(unsafe { sys::napi_get_global(self.0, &mut out) }, "global")?;
        Ok(out)
    }

    pub fn object(self) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(unsafe { sys::napi_create_object(self.0, &mut out) }, "object")?;
        Ok(out)
    }

    pub fn array(self, length: usize) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(
            unsafe { sys::napi_create_array_with_length(self.0, length, &mut out) },
            "array",
        )?;
        Ok(out)
    }

    pub fn get_bool(self, value: Value) -> Result<bool> {
        let mut out = false;
        self.check(
            unsafe { sys::napi_get_value_bool(self.0, value, &mut out) },
            "bool value",
        )?;
        Ok(out)
    }

    pub fn get_f64(self, value: Value) -> Result<f64> {
        let mut out = 0.0;
        self.check(
            unsafe { sys::napi_get_value_double(self.0, value, &mut out) },
            "number value",
        )?;
        Ok(out)
    }

    /// A number's value, or `None` when the value is not a number: one N-API call where
    /// `kind` then `get_f64` take two (a call with numeric arguments reads each this way).
    pub fn number_value(self, value: Value) -> Result<Option<f64>> {
        let mut out = 0.0;
        match unsafe { sys::napi_get_value_double(self.0, value, &mut out) } {
            sys::Status::napi_number_expected => Ok(None),
            status => self.check(status, "number value").map(|()| Some(out)),
        }
    }

    /// A BigInt's value, or `None` when it does not fit in 128 bits.
    pub fn get_bigint_i128(self, value: Value) -> Result<Option<i128>> {
        let mut sign = 0;
        let mut words = [0u64; 3];
        let mut count = words.len();
        self.check(
            unsafe { sys::napi_get_value_bigint_words(self.0, value, &mut sign, &mut count, words.as_mut_ptr()) },
            "bigint value",
        )?;
        if count > 2 || (count == 2 && words[1] >> 63 == 1) {
            return Ok(None);
        }
        let magnitude = (words[0] as i128) | ((if count == 2 { words[1] } else { 0 } as i128) << 64);
        Ok(Some(if sign == 1 { -magnitude } else { magnitude }))
    }

    /// The string's text, or `None` if it holds a lone surrogate (not Unicode text, so not a WIT
    /// `string`). V8 writes UTF-8 fast but replaces a lone surrogate with U+FFFD, so only text
    /// containing U+FFFD is read again as UTF-16 to tell the two apart.
    pub fn get_string(self, value: Value) -> Result<Option<String>> {
        match self.string_value(value)? {
            StringValue::Text(text) => Ok(Some(text)),
            StringValue::LoneSurrogate => Ok(None),
            StringValue::NotString | StringValue::TooLong(_) => {
                Err(Error::new(Status::StringExpected, "expected a string".to_string()))
            }
        }
    }

    /// A string's first `max_units` UTF-16 units for a message, a lone surrogate written
    /// `\u{d800}` (UTF-8 would make it U+FFFD). `None` for a non-string. The rest is not copied:
    /// a host's 64 MiB message cost 130 MB to show 1 KiB of it.
    pub fn message_text(self, value: Value, max_units: usize) -> Option<String> {
        let length = self.string_units(value).ok()??;
        let mut units = vec![0u16; length.min(max_units) + 1];
        let mut written = 0;
        let status =
            unsafe { sys::napi_get_value_string_utf16(self.0, value, units.as_mut_ptr(), units.len(), &mut written) };
        if status != sys::Status::napi_ok {
            return None;
        }
        let mut kept = &units[..written.min(length)];
        // A cut between the halves of a pair would show the first half as a lone surrogate.
        if kept.len() < length && kept.last().is_some_and(|&unit| (0xD800..0xDC00).contains(&unit)) {
            kept = &kept[..kept.len() - 1];
        }
        Some(lone_surrogates_written(kept, false))
    }

    /// A string's length in UTF-16 code units, or `None` for any other value.
    pub fn string_units(self, value: Value) -> Result<Option<usize>> {
        let mut units = 0;
        match unsafe { sys::napi_get_value_string_utf16(self.0, value, ptr::null_mut(), 0, &mut units) } {
            sys::Status::napi_string_expected => Ok(None),
            status => self.check(status, "string length").map(|()| Some(units)),
        }
    }

    /// A value's text if it is a string: one N-API call fewer than asking its kind first (the
    /// length query reports a non-string).
    pub fn string_value(self, value: Value) -> Result<StringValue> {
        self.string_value_within(value, usize::MAX)
    }

    /// [`Js::string_value`], or `TooLong` for a string of more than `max_units` UTF-16 units,
    /// before its text is copied.
    pub fn string_value_within(self, value: Value, max_units: usize) -> Result<StringValue> {
        let mut units = 0;
        match unsafe { sys::napi_get_value_string_utf16(self.0, value, ptr::null_mut(), 0, &mut units) } {
            sys::Status::napi_string_expected => return Ok(StringValue::NotString),
            status => self.check(status, "string length")?,
        }
        if units > max_units {
            return Ok(StringValue::TooLong(units));
        }
        // At most 3 UTF-8 bytes per UTF-16 unit, plus the terminator napi writes.
        let mut bytes: Vec<u8> = Vec::with_capacity(units * 3 + 1);
        let mut written = 0;
        self.check(
            unsafe {
                sys::napi_get_value_string_utf8(
                    self.0,
                    value,
                    bytes.as_mut_ptr().cast(),
                    bytes.capacity(),
                    &mut written,
                )
            },
            "string value",
        )?;
        // SAFETY: napi wrote `written` bytes (fewer than the capacity it was given) at the start.
        unsafe { bytes.set_len(written.min(bytes.capacity())) };
        if !contains_replacement_character(&bytes) && simdutf8::basic::from_utf8(&bytes).is_ok() {
            // SAFETY: validated as UTF-8 on the line above (simdutf8: std's check, vectorized).
            return Ok(StringValue::Text(unsafe { String::from_utf8_unchecked(bytes) }));
        }
        let mut units = vec![0u16; units + 1];
        let mut written = 0;
        self.check(
            unsafe { sys::napi_get_value_string_utf16(self.0, value, units.as_mut_ptr(), units.len(), &mut written) },
            "string value",
        )?;
        units.truncate(written);
        Ok(String::from_utf16(&units).map_or(StringValue::LoneSurrogate, StringValue::Text))
    }

    /// A short string's UTF-8 written into `buffer`, without allocating (case names are read for
    /// every element of a list): `Text(n)` when the first `n` bytes are the whole text, `Long`
    /// when it may not have fit. A lone surrogate arrives as U+FFFD, which no WIT name contains.
    pub fn short_string(self, value: Value, buffer: &mut [u8; 64]) -> Result<ShortString> {
        // The length first: writing any of a string makes V8 flatten all of it, and UTF-8 takes
        // at least a byte per unit.
        let Some(units) = self.string_units(value)? else {
            return Ok(ShortString::NotString);
        };
        if units + 1 + 4 > buffer.len() {
            return Ok(ShortString::Long(units));
        }
        let mut written = 0;
        let status = unsafe {
            sys::napi_get_value_string_utf8(self.0, value, buffer.as_mut_ptr().cast(), buffer.len(), &mut written)
        };
        match status {
            sys::Status::napi_string_expected => return Ok(ShortString::NotString),
            status => self.check(status, "string value")?,
        }
        // napi keeps one byte for the terminator and never splits a character (up to 4 bytes), so
        // the text may have been cut unless more than a character's room was left over.
        if written + 1 + 4 > buffer.len() || std::str::from_utf8(&buffer[..written]).is_err() {
            return Ok(ShortString::Long(units));
        }
        Ok(ShortString::Text(written))
    }

    /// A string of at most [`SHOWN_STRING_CHARS`] characters quoted for a message: escaped as
    /// Rust's `{:?}` escapes, a lone surrogate as `\u{d800}` (UTF-8 would show it as U+FFFD, the
    /// very character a lone surrogate is refused for not being). `None` for a longer one.
    fn shown_string(self, value: Value) -> Option<String> {
        // The length first: reading any of a string makes V8 flatten all of it (a repeated string
        // of 256 MiB: 150 ms and as many bytes, for a message that would not show it).
        let length = self.string_units(value).ok()??;
        if length > 2 * SHOWN_STRING_CHARS {
            return None;
        }
        let mut units = [0u16; 2 * SHOWN_STRING_CHARS + 1];
        let mut written = 0;
        let status =
            unsafe { sys::napi_get_value_string_utf16(self.0, value, units.as_mut_ptr(), units.len(), &mut written) };
        // Filling the buffer may have cut the text.
        if status != sys::Status::napi_ok || written + 1 >= units.len() {
            return None;
        }
        let units = &units[..written];
        (char::decode_utf16(units.iter().copied()).count() <= SHOWN_STRING_CHARS)
            .then(|| format!("\"{}\"", lone_surrogates_written(units, true)))
    }

    fn get_string_lossy(self, value: Value) -> Result<String> {
        let mut length = 0;
        self.check(
            unsafe { sys::napi_get_value_string_utf8(self.0, value, ptr::null_mut(), 0, &mut length) },
            "string length",
        )?;
        let mut bytes = vec![0u8; length + 1];
        let mut written = 0;
        self.check(
            unsafe {
                sys::napi_get_value_string_utf8(self.0, value, bytes.as_mut_ptr().cast(), bytes.len(), &mut written)
            },
            "string value",
        )?;
        bytes.truncate(written);
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn is_array(self, value: Value) -> Result<bool> {
        let mut out = false;
        self.check(unsafe { sys::napi_is_array(self.0, value, &mut out) }, "is array")?;
        Ok(out)
    }

    pub fn is_promise(self, value: Value) -> Result<bool> {
        let mut out = false;
        self.check(unsafe { sys::napi_is_promise(self.0, value, &mut out) }, "is promise")?;
        Ok(out)
    }

    pub fn is_error(self, value: Value) -> Result<bool> {
        let mut out = false;
        self.check(unsafe { sys::napi_is_error(self.0, value, &mut out) }, "is error")?;
        Ok(out)
    }

    /// The elements of an array, or `None` when the value is not an array.
    pub fn array_items(self, value: Value) -> Result<Option<Vec<Value>>> {
        if !self.is_array(value)? {
            return Ok(None);
        }
        let length = self.array_length(value)?;
        (0..length)
            .map(|index| self.get_index(value, index))
            .collect::<Result<_>>()
            .map(Some)
    }

    /// A JS function calling `callback` with `data`, which lives as long as the function does.
    pub fn function<T: 'static>(self, name: &str, data: T, callback: sys::napi_callback) -> Result<Value> {
        unsafe extern "C" fn free<T>(_env: sys::napi_env, data: *mut std::ffi::c_void, _hint: *mut std::ffi::c_void) {
            // SAFETY: `data` is the box leaked below, finalized exactly once.
            drop(unsafe { Box::from_raw(data.cast::<T>()) });
        }
        let data = Box::into_raw(Box::new(data));
        let mut out = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_function(
                self.0,
                name.as_ptr().cast(),
                name.len() as isize,
                callback,
                data.cast(),
                &mut out,
            )
        };
        if status != sys::Status::napi_ok {
            drop(unsafe { Box::from_raw(data) });
            return self.check(status, "create function").map(|_| out);
        }
        self.check(
            unsafe {
                sys::napi_add_finalizer(
                    self.0,
                    out,
                    data.cast(),
                    Some(free::<T>),
                    ptr::null_mut(),
                    ptr::null_mut(),
                )
            },
            "function finalizer",
        )?;
        Ok(out)
    }

    /// Throws `error` (a JS value) from a raw callback.
    pub fn throw(self, error: Value) {
        unsafe { sys::napi_throw(self.0, error) };
    }

    pub fn array_length(self, value: Value) -> Result<u32> {
        let mut out = 0;
        self.check(
            unsafe { sys::napi_get_array_length(self.0, value, &mut out) },
            "array length",
        )?;
        Ok(out)
    }

    pub fn get_index(self, value: Value, index: u32) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(
            unsafe { sys::napi_get_element(self.0, value, index, &mut out) },
            "array element",
        )?;
        Ok(out)
    }

    pub fn set_index(self, target: Value, index: u32, value: Value) -> Result<()> {
        self.check(
            unsafe { sys::napi_set_element(self.0, target, index, value) },
            "set array element",
        )
    }

    pub fn get(self, object: Value, key: &str) -> Result<Value> {
        self.get_key(object, self.string(key)?)
    }

    /// `object[key]` with a key already made (a converter reuses one key for every element).
    pub fn get_key(self, object: Value, key: Value) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(
            unsafe { sys::napi_get_property(self.0, object, key, &mut out) },
            "property",
        )?;
        Ok(out)
    }

    /// Whether `key` is `object`'s own property.
    pub fn has_own_key(self, object: Value, key: Value) -> Result<bool> {
        let mut own = false;
        self.check(
            unsafe { sys::napi_has_own_property(self.0, object, key, &mut own) },
            "own property check",
        )?;
        Ok(own)
    }

    /// `object[key]` when `key` is the object's own property, else `undefined`.
    pub fn get_own_key(self, object: Value, key: Value) -> Result<Value> {
        if self.has_own_key(object, key)? {
            self.get_key(object, key)
        } else {
            self.undefined()
        }
    }

    /// `object[key]` when the object has `key` itself or from a prototype of its own (a class's
    /// getter), else `undefined`: never from `Object.prototype`, this realm's or another's (an
    /// object made in a `vm` context: a chain's end with `hasOwnProperty` of its own; a class may
    /// name a method so, but its prototype has a prototype), where a polluted property would fill
    /// what the caller left out (a record's field, a variant's `tag`).
    pub fn get_unpolluted_key(self, object: Value, key: Value) -> Result<Value> {
        if self.has_own_key(object, key)? {
            return self.get_key(object, key);
        }
        let prototype_of = |at: Value| -> Result<Value> {
            let mut out = ptr::null_mut();
            self.check(unsafe { sys::napi_get_prototype(self.0, at, &mut out) }, "prototype")?;
            Ok(out)
        };
        let object_prototype = prototype_of(self.object()?)?;
        let mut at = prototype_of(object)?;
        while matches!(self.kind(at)?, Kind::Object | Kind::Function) {
            let mut same = false;
            self.check(
                unsafe { sys::napi_strict_equals(self.0, at, object_prototype, &mut same) },
                "strict equality",
            )?;
            let next = prototype_of(at)?;
            let last = !matches!(self.kind(next)?, Kind::Object | Kind::Function);
            if same || (last && self.has_own_key(at, self.string("hasOwnProperty")?)?) {
                break;
            }
            if self.has_own_key(at, key)? {
                return self.get_key(object, key);
            }
            at = next;
        }
        self.undefined()
    }

    /// `object[key]` when `key` is the object's own property, else `None`: names that come from a
    /// guest (import names) must never reach `Object.prototype` (`constructor`, `__proto__`).
    pub fn get_own(self, object: Value, key: &str) -> Result<Option<Value>> {
        let key = self.string(key)?;
        if !self.has_own_key(object, key)? {
            return Ok(None);
        }
        self.get_key(object, key).map(Some)
    }

    pub fn set(self, object: Value, key: &str, value: Value) -> Result<()> {
        self.set_key(object, self.string(key)?, value)
    }

    pub fn set_key(self, object: Value, key: Value, value: Value) -> Result<()> {
        self.check(
            unsafe { sys::napi_set_property(self.0, object, key, value) },
            "set property",
        )
    }

    /// The object's own enumerable string keys (not its prototypes': `napi_get_property_names`
    /// gives those too, so one enumerable key on a polluted `Object.prototype` failed every
    /// flags value), each read as by [`Js::string_value_within`].
    pub fn keys_within(self, object: Value, max_units: usize) -> Result<Vec<StringValue>> {
        let mut names = ptr::null_mut();
        self.check(
            unsafe {
                sys::napi_get_all_property_names(
                    self.0,
                    object,
                    sys::KeyCollectionMode::own_only,
                    sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
                    sys::KeyConversion::numbers_to_strings,
                    &mut names,
                )
            },
            "property names",
        )?;
        let count = self.array_length(names)?;
        (0..count)
            .map(|i| self.string_value_within(self.get_index(names, i)?, max_units))
            .collect()
    }

    /// The typed-array view of a value, or `None` when it is not a typed array.
    pub fn typed_array(self, value: Value) -> Result<Option<TypedArrayView>> {
        let mut is_typed = false;
        self.check(
            unsafe { sys::napi_is_typedarray(self.0, value, &mut is_typed) },
            "is typed array",
        )?;
        if !is_typed {
            return Ok(None);
        }
        let mut raw_type = 0;
        let mut length = 0;
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        let mut offset = 0;
        self.check(
            unsafe {
                sys::napi_get_typedarray_info(
                    self.0,
                    value,
                    &mut raw_type,
                    &mut length,
                    &mut data,
                    &mut buffer,
                    &mut offset,
                )
            },
            "typed array info",
        )?;
        let element = match raw_type {
            sys::TypedarrayType::int8_array => ElementType::Int8,
            sys::TypedarrayType::uint8_array => ElementType::Uint8,
            sys::TypedarrayType::uint8_clamped_array => ElementType::Uint8Clamped,
            sys::TypedarrayType::int16_array => ElementType::Int16,
            sys::TypedarrayType::uint16_array => ElementType::Uint16,
            sys::TypedarrayType::int32_array => ElementType::Int32,
            sys::TypedarrayType::uint32_array => ElementType::Uint32,
            sys::TypedarrayType::float32_array => ElementType::Float32,
            sys::TypedarrayType::float64_array => ElementType::Float64,
            sys::TypedarrayType::bigint64_array => ElementType::BigInt64,
            sys::TypedarrayType::biguint64_array => ElementType::BigUint64,
            _ => ElementType::Other,
        };
        Ok(Some(TypedArrayView {
            element,
            length,
            data: data as *const u8,
        }))
    }

    /// A new `ArrayBuffer` holding a copy of `bytes`.
    pub fn array_buffer_from(self, bytes: &[u8]) -> Result<Value> {
        let mut data = ptr::null_mut();
        let mut buffer = ptr::null_mut();
        self.check(
            unsafe { sys::napi_create_arraybuffer(self.0, bytes.len(), &mut data, &mut buffer) },
            "array buffer",
        )?;
        if !bytes.is_empty() {
            // SAFETY: `data` points at a fresh, writable buffer of exactly `bytes.len()` bytes.
            unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len()) };
        }
        Ok(buffer)
    }

    /// A new `Uint8Array` over `bytes`, which it takes without a copy (but where the runtime allows
    /// no external buffers): they are freed when the array is collected, V8 told of their size
    /// meanwhile (so that it collects them in time).
    pub fn uint8_array_owning(self, bytes: Vec<u8>) -> Result<Value> {
        unsafe extern "C" fn finalize(env: sys::napi_env, _data: *mut std::ffi::c_void, hint: *mut std::ffi::c_void) {
            // SAFETY: `hint` is the `Box<Vec<u8>>` leaked below for this buffer, finalized once.
            let bytes = unsafe { Box::from_raw(hint.cast::<Vec<u8>>()) };
            Js(env).adjust_external_memory(-(bytes.len() as i64));
        }
        let length = bytes.len();
        let mut bytes = Box::new(bytes);
        let data = bytes.as_mut_ptr();
        let hint = Box::into_raw(bytes);
        let mut buffer = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_external_arraybuffer(self.0, data.cast(), length, Some(finalize), hint.cast(), &mut buffer)
        };
        if status != sys::Status::napi_ok {
            // SAFETY: the buffer was not created, so nothing else owns the bytes.
            let bytes = unsafe { Box::from_raw(hint) };
            // A runtime that allows no external buffers (V8's sandbox, as in Electron) gets a copy.
            return self.typed_array_from(ElementType::Uint8, bytes.len(), &bytes);
        }
        self.adjust_external_memory(length as i64);
        let mut out = ptr::null_mut();
        self.check(
            unsafe {
                sys::napi_create_typedarray(self.0, sys::TypedarrayType::uint8_array, length, buffer, 0, &mut out)
            },
            "typed array",
        )?;
        Ok(out)
    }

    /// A new typed array holding a copy of `bytes` (already in the platform's little-endian
    /// element layout), of `length` elements of the given type.
    pub fn typed_array_from(self, element: ElementType, length: usize, bytes: &[u8]) -> Result<Value> {
        let buffer = self.array_buffer_from(bytes)?;
        let raw_type = match element {
            ElementType::Int8 => sys::TypedarrayType::int8_array,
            ElementType::Uint8 | ElementType::Other => sys::TypedarrayType::uint8_array,
            ElementType::Uint8Clamped => sys::TypedarrayType::uint8_clamped_array,
            ElementType::Int16 => sys::TypedarrayType::int16_array,
            ElementType::Uint16 => sys::TypedarrayType::uint16_array,
            ElementType::Int32 => sys::TypedarrayType::int32_array,
            ElementType::Uint32 => sys::TypedarrayType::uint32_array,
            ElementType::Float32 => sys::TypedarrayType::float32_array,
            ElementType::Float64 => sys::TypedarrayType::float64_array,
            ElementType::BigInt64 => sys::TypedarrayType::bigint64_array,
            ElementType::BigUint64 => sys::TypedarrayType::biguint64_array,
        };
        let mut out = ptr::null_mut();
        self.check(
            unsafe { sys::napi_create_typedarray(self.0, raw_type, length, buffer, 0, &mut out) },
            "typed array",
        )?;
        Ok(out)
    }

    /// A new `Error` (or `TypeError`) with `code` and `message` set.
    pub fn error(self, code: &str, message: &str, type_error: bool) -> Result<Value> {
        let code_value = self.string(code)?;
        let message_value = self.string(message)?;
        let mut out = ptr::null_mut();
        let status = if type_error {
            unsafe { sys::napi_create_type_error(self.0, code_value, message_value, &mut out) }
        } else {
            unsafe { sys::napi_create_error(self.0, code_value, message_value, &mut out) }
        };
        self.check(status, "error")?;
        Ok(out)
    }

    /// Calls `function` with `this` undefined. `Ok(Err(thrown))` is a JS exception, caught and
    /// cleared so the caller decides what it becomes.
    pub fn call(self, function: Value, args: &[Value]) -> Result<std::result::Result<Value, Value>> {
        self.call_method(self.undefined()?, function, args)
    }

    /// Calls `function` with `this` bound, catching a JS exception as `Ok(Err(thrown))`.
    pub fn call_method(
        self,
        this: Value,
        function: Value,
        args: &[Value],
    ) -> Result<std::result::Result<Value, Value>> {
        let mut out = ptr::null_mut();
        let status = unsafe { sys::napi_call_function(self.0, this, function, args.len(), args.as_ptr(), &mut out) };
        if status == sys::Status::napi_ok {
            return Ok(failure::unboxed(self, out)?.map_or(Ok(out), Err));
        }
        let mut pending = false;
        self.check(
            unsafe { sys::napi_is_exception_pending(self.0, &mut pending) },
            "exception check",
        )?;
        if !pending {
            self.check(status, "call function")?;
        }
        let mut thrown = ptr::null_mut();
        self.check(
            unsafe { sys::napi_get_and_clear_last_exception(self.0, &mut thrown) },
            "take exception",
        )?;
        Ok(Err(thrown))
    }

    /// Calls `value[Symbol.dispose]()` if it is a function. What it throws, or the rejection of
    /// the Promise an async one returns, has no caller to go to (the guest dropped a handle, or an
    /// instance went): it becomes a process warning (`AIRSSYS_DISPOSE_FAILED`), as Node reports
    /// what a cleanup callback throws, never a crash (an unhandled rejection ends a Node process)
    /// and never silence. The JS layer reads and calls the method (see `failure::dispose`).
    pub fn dispose(self, value: Value) -> Result<()> {
        if !matches!(self.kind(value)?, Kind::Object | Kind::Function) {
            return Ok(());
        }
        let Some(outcome) = failure::dispose(self, value) else {
            return Ok(());
        };
        if self.is_promise(outcome)? {
            // Settles later, or never: the wait is not kept, and a Promise that never settles is
            // held only until the environment goes. The JS layer's Promise never rejects.
            self.on_settled(
                outcome,
                Box::new(|js: Js, settled| {
                    if let Ok(outcome) = settled {
                        let _ = js.warn_dispose_failed(outcome);
                    }
                }),
            )?;
            return Ok(());
        }
        self.warn_dispose_failed(outcome)
    }

    /// The `AIRSSYS_DISPOSE_FAILED` warning for what the JS layer says failed in a host
    /// resource's `[Symbol.dispose]` (nothing when `outcome` is `undefined`): an object of its
    /// own, `{ did, message, thrown }`, whose `message` is set when `thrown` is error-like.
    fn warn_dispose_failed(self, outcome: Value) -> Result<()> {
        if self.kind(outcome)? != Kind::Object {
            return Ok(());
        }
        let did = self.get_string_lossy(self.get(outcome, "did")?)?;
        let message = self.get(outcome, "message")?;
        let reason = match self.kind(message)? {
            Kind::String => self.get_string_lossy(message)?,
            _ => self.describe(self.get(outcome, "thrown")?),
        };
        self.dispose_warning(&format!(
            "a host resource's [Symbol.dispose] {did}: {}",
            crate::names::quoted(&reason)
        ))
    }

    /// Emits `message` as the `AIRSSYS_DISPOSE_FAILED` process warning.
    fn dispose_warning(self, message: &str) -> Result<()> {
        let process = self.get(self.global()?, "process")?;
        let emit = self.get(process, "emitWarning")?;
        let options = self.object()?;
        // The package's warnings share one name (`AIRSSYS_ONDENIED_FAILED` is the other).
        self.set(options, "type", self.string("AirssysWasmWarning")?)?;
        self.set(options, "code", self.string("AIRSSYS_DISPOSE_FAILED")?)?;
        let _ = self.call_method(process, emit, &[self.string(message)?, options])?;
        Ok(())
    }

    /// Keeps a value alive across calls; must be released on this JS thread with `release`.
    pub fn reference(self, value: Value) -> Result<Reference> {
        // Node 20's N-API only references objects and functions: box primitives in an array.
        let boxed = !matches!(self.kind(value)?, Kind::Object | Kind::Function);
        let target = if boxed {
            let holder = self.array(1)?;
            self.set_index(holder, 0, value)?;
            holder
        } else {
            value
        };
        let mut out = ptr::null_mut();
        self.check(
            unsafe { sys::napi_create_reference(self.0, target, 1, &mut out) },
            "reference",
        )?;
        Ok(Reference { raw: out, boxed })
    }

    pub fn dereference(self, reference: &Reference) -> Result<Value> {
        let mut out = ptr::null_mut();
        self.check(
            unsafe { sys::napi_get_reference_value(self.0, reference.raw, &mut out) },
            "dereference",
        )?;
        if reference.boxed {
            self.get_index(out, 0)
        } else {
            Ok(out)
        }
    }

    pub fn release(self, reference: Reference) {
        // Best effort: a failure here means the environment is tearing down and owns the value.
        unsafe { sys::napi_delete_reference(self.0, reference.raw) };
    }
}

/// A strong N-API reference to a JS value. Created and released on the JS thread only; it may
/// travel through other threads in between (it is an opaque pointer there, never dereferenced).
pub struct Reference {
    raw: sys::napi_ref,
    boxed: bool,
}

// SAFETY: the pointer is only dereferenced through `Js` methods, which run on the JS thread.
unsafe impl Send for Reference {}
unsafe impl Sync for Reference {}

/// Formats a JS number the way JS prints it for the common cases (integers without `.0`).
struct JsNumber(f64);

impl std::fmt::Display for JsNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        if n.is_nan() {
            write!(f, "NaN")
        } else if n.is_infinite() {
            write!(f, "{}Infinity", if n < 0.0 { "-" } else { "" })
        } else if n.fract() == 0.0 && n.abs() < 1e21 {
            write!(f, "{n:.0}")
        } else {
            write!(f, "{n}")
        }
    }
}

/// The arguments, data and `this` of a raw callback made by [`Js::function`].
///
/// # Safety
/// `info` must be the callback info of a function created by `Js::function` with data `T`.
pub unsafe fn callback_args<'a, T>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> (Js, &'a T, SmallVec<[Value; 8]>, Value) {
    let mut argv: SmallVec<[Value; 8]> = SmallVec::from_elem(ptr::null_mut(), 8);
    let mut argc = argv.len();
    let mut data = ptr::null_mut();
    let mut this = ptr::null_mut();
    unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), &mut this, &mut data) };
    if argc > argv.len() {
        argv = SmallVec::from_elem(ptr::null_mut(), argc);
        unsafe {
            sys::napi_get_cb_info(
                env,
                info,
                &mut argc,
                argv.as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
    }
    argv.truncate(argc);
    // SAFETY: the caller guarantees `data` is the `T` given to `Js::function`, alive while the
    // function is.
    (Js(env), unsafe { &*(data as *const T) }, argv, this)
}

impl Js {
    /// A value napi-rs knows how to convert (a class instance, a typed object).
    pub fn convert<T: napi::bindgen_prelude::ToNapiValue>(self, value: T) -> Result<Value> {
        // SAFETY: `self.0` is the live environment of the JS thread we run on.
        unsafe { T::to_napi_value(self.0, value) }
    }
}

/// A JS value built by us, returned as-is from a binding.
pub struct Raw(pub Value);

impl napi::bindgen_prelude::ToNapiValue for Raw {
    unsafe fn to_napi_value(_env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        Ok(value.0)
    }
}

impl napi::bindgen_prelude::TypeName for Raw {
    fn type_name() -> &'static str {
        "unknown"
    }

    fn value_type() -> napi::ValueType {
        napi::ValueType::Unknown
    }
}

/// Text in one of the two encodings V8 stores strings in.
#[derive(Debug, PartialEq)]
enum JsText<'a> {
    /// Every character is below U+0100: one byte each.
    Latin1(Cow<'a, [u8]>),
    Utf16(&'a [u16]),
}

thread_local! {
    /// Where text becomes UTF-16 on its way to V8, kept between strings: V8 copies the units, so
    /// the buffer is free again at once, and a fresh one per string cost an allocation, zeroing
    /// and a free (a tenth of a 1 KiB string's round trip).
    static UTF16_SCRATCH: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Larger scratch buffers are let go after use rather than kept for the thread's life.
const MAX_SCRATCH_UNITS: usize = 1 << 16;

/// `text` in the narrowest encoding V8 can take as is (encoding_rs: vectorized where the text is
/// ASCII).
/// Two-byte text is written into `scratch`, which only grows (its old contents are overwritten).
fn js_text<'a>(text: &'a str, scratch: &'a mut Vec<u16>) -> JsText<'a> {
    let bytes = text.as_bytes();
    if bytes.is_ascii() {
        return JsText::Latin1(Cow::Borrowed(bytes));
    }
    if encoding_rs::mem::is_str_latin1(text) {
        let mut latin1 = vec![0u8; bytes.len()];
        let written = encoding_rs::mem::convert_utf8_to_latin1_lossy(bytes, &mut latin1);
        latin1.truncate(written);
        return JsText::Latin1(Cow::Owned(latin1));
    }
    // encoding_rs wants room for one unit per byte, plus one.
    if scratch.len() < bytes.len() + 1 {
        scratch.resize(bytes.len() + 1, 0);
    }
    let written = encoding_rs::mem::convert_str_to_utf16(text, scratch);
    JsText::Utf16(&scratch[..written])
}

/// What [`Js::string_value`] found.
pub enum StringValue {
    NotString,
    /// A string holding a lone surrogate: not Unicode text, so no wasm string.
    LoneSurrogate,
    Text(String),
    /// Longer than the caller allowed (its length in UTF-16 units); its text was not read.
    TooLong(usize),
}

/// What [`Js::short_string`] found.
pub enum ShortString {
    NotString,
    /// The text (of this many UTF-16 units) may not have fit, and was not read.
    Long(usize),
    /// The text is this many bytes at the start of the buffer.
    Text(usize),
}

/// Whether UTF-8 `bytes` contain U+FFFD (EF BF BD).
fn contains_replacement_character(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, "\u{FFFD}".as_bytes()).is_some()
}

#[cfg(test)]
mod tests {
    use super::{JsText, contains_replacement_character, js_text};

    fn latin1(text: &str) -> Option<Vec<u8>> {
        match js_text(text, &mut Vec::new()) {
            JsText::Latin1(bytes) => Some(bytes.into_owned()),
            JsText::Utf16(_) => None,
        }
    }

    #[test]
    fn text_below_u0100_is_latin1() {
        assert_eq!(latin1("plain"), Some(b"plain".to_vec()));
        assert_eq!(latin1("\u{80}é\u{ff}"), Some(vec![0x80, 0xE9, 0xFF]));
        assert_eq!(latin1(&"é".repeat(40)), Some(vec![0xE9; 40]));
        assert_eq!(latin1(""), Some(Vec::new()));
    }

    #[test]
    fn other_text_is_utf16_with_its_latin1_prefix() {
        let long = "ascii run long enough for the vector path ".repeat(8) + "€ then more ascii after it é🚀";
        // One scratch for all, longest first: a shorter text after a longer one must not carry
        // the longer one's leftover units.
        let mut scratch = Vec::new();
        for text in [&long, "ÿĀ", "🚀", "plain then € and 🚀 ü", "ü€ airssys-wasm ü€ ", "€"] {
            let expected: Vec<u16> = text.encode_utf16().collect();
            assert_eq!(js_text(text, &mut scratch), JsText::Utf16(&expected), "{text}");
        }
    }

    #[test]
    fn finds_the_replacement_character_anywhere() {
        assert!(contains_replacement_character("\u{FFFD}".as_bytes()));
        assert!(contains_replacement_character("ab\u{FFFD}".as_bytes()));
        assert!(!contains_replacement_character("\u{FEFF}\u{FFFE}ï".as_bytes()));
        assert!(!contains_replacement_character(&[0xEF, 0xBF]));
    }
}
