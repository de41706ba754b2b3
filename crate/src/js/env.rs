//! The environment around JS calls: handle scopes, pending exceptions, the external-memory
//! counter V8 uses to schedule garbage collection, and references on thread-safe functions.

use std::ptr;

use napi::sys;

use super::Js;

/// A handle scope opened by [`Js::open_scope`]; values created inside die when it closes.
pub struct Scope(Option<sys::napi_handle_scope>);

impl Js {
    /// Opens a handle scope (for work the JS thread runs outside any N-API call of ours).
    pub fn open_scope(self) -> Scope {
        let mut scope = ptr::null_mut();
        let opened = unsafe { sys::napi_open_handle_scope(self.0, &mut scope) } == sys::Status::napi_ok;
        Scope(opened.then_some(scope))
    }

    pub fn close_scope(self, scope: Scope) {
        if let Some(scope) = scope.0 {
            unsafe { sys::napi_close_handle_scope(self.0, scope) };
        }
    }

    /// Takes and drops a pending JS exception, if any: one left pending by a job the dispatcher
    /// ran would surface as an uncaught error somewhere unrelated.
    pub fn discard_pending_exception(self) {
        let mut pending = false;
        unsafe { sys::napi_is_exception_pending(self.0, &mut pending) };
        if pending {
            let mut thrown = ptr::null_mut();
            unsafe { sys::napi_get_and_clear_last_exception(self.0, &mut thrown) };
        }
    }

    /// Whether N-API still lets this environment call into JS. Node refuses as soon as a worker's
    /// `terminate()` is called, while the worker's thread may still be inside a native call of
    /// ours; reading a plain data property (`globalThis.undefined`, no getter) asks without
    /// running JS. A pending exception also refuses, but does not mean the end.
    pub fn can_run_js(self) -> bool {
        let scope = self.open_scope();
        let mut global = ptr::null_mut();
        let mut value = ptr::null_mut();
        let status = unsafe {
            match sys::napi_get_global(self.0, &mut global) {
                sys::Status::napi_ok => sys::napi_get_named_property(self.0, global, c"undefined".as_ptr(), &mut value),
                failed => failed,
            }
        };
        let mut pending = false;
        if status != sys::Status::napi_ok {
            unsafe { sys::napi_is_exception_pending(self.0, &mut pending) };
        }
        self.close_scope(scope);
        status == sys::Status::napi_ok || pending
    }

    /// Tells V8 that native memory held by JS objects grew (positive) or shrank (negative).
    pub fn adjust_external_memory(self, change: i64) {
        if change != 0 {
            let mut total = 0;
            // A failure only means V8 was not told: nothing to recover.
            unsafe { sys::napi_adjust_external_memory(self.0, change, &mut total) };
        }
    }

    /// Makes a thread-safe function keep the event loop alive (`true`) or not (`false`).
    pub fn hold_threadsafe_function(self, function: sys::napi_threadsafe_function, hold: bool) {
        if hold {
            unsafe { sys::napi_ref_threadsafe_function(self.0, function) };
        } else {
            unsafe { sys::napi_unref_threadsafe_function(self.0, function) };
        }
    }
}
