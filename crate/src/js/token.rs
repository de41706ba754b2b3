//! Tokens: JS values that carry a Rust value only the addon can read back (an External marked
//! with a type tag, so no other External passes for one). The Rust value is dropped when the
//! token is garbage-collected.

use std::ptr;

use napi::sys;

use super::{Js, Value};
use napi::Result;

/// Distinguishes one kind of token from every other External (a random 128-bit tag).
pub struct TokenTag(pub sys::napi_type_tag);

unsafe extern "C" fn finalize<T>(_env: sys::napi_env, data: *mut std::ffi::c_void, _hint: *mut std::ffi::c_void) {
    // SAFETY: `data` is the `Box<T>` leaked by `Js::token` for this External, finalized once.
    drop(unsafe { Box::from_raw(data.cast::<T>()) });
}

impl Js {
    /// A new token holding `data`, tagged with `tag`.
    pub fn token<T: 'static>(self, tag: &TokenTag, data: T) -> Result<Value> {
        let data = Box::into_raw(Box::new(data));
        let mut out = ptr::null_mut();
        let status =
            unsafe { sys::napi_create_external(self.0, data.cast(), Some(finalize::<T>), ptr::null_mut(), &mut out) };
        if status != sys::Status::napi_ok {
            // SAFETY: the External was not created, so nothing else owns `data`.
            drop(unsafe { Box::from_raw(data) });
            self.check(status, "external")?;
        }
        self.tag(out, tag)?;
        Ok(out)
    }

    /// The data of a token tagged with `tag`, or `None` for any other value.
    pub fn token_data<'a, T: 'static>(self, tag: &TokenTag, value: Value) -> Result<Option<&'a T>> {
        if self.kind(value)? != super::Kind::External || !self.tagged(value, tag)? {
            return Ok(None);
        }
        let mut data = ptr::null_mut();
        self.check(
            unsafe { sys::napi_get_value_external(self.0, value, &mut data) },
            "external value",
        )?;
        // SAFETY: only `Js::token` tags Externals with `tag`, and it stores a `Box<T>` for that tag;
        // the data lives as long as the External, which the caller holds.
        Ok(Some(unsafe { &*data.cast::<T>() }))
    }

    /// Marks the object `value` with `tag` (once: an object takes one tag).
    pub fn tag(self, value: Value, tag: &TokenTag) -> Result<()> {
        self.check(unsafe { sys::napi_type_tag_object(self.0, value, &tag.0) }, "type tag")
    }

    /// Whether `value` is an object marked with `tag`.
    pub fn has_tag(self, value: Value, tag: &TokenTag) -> Result<bool> {
        Ok(matches!(self.kind(value)?, super::Kind::Object | super::Kind::Function) && self.tagged(value, tag)?)
    }

    /// Whether the object (or External) `value` is marked with `tag`.
    fn tagged(self, value: Value, tag: &TokenTag) -> Result<bool> {
        let mut tagged = false;
        self.check(
            unsafe { sys::napi_check_object_type_tag(self.0, value, &tag.0, &mut tagged) },
            "check type tag",
        )?;
        Ok(tagged)
    }
}
