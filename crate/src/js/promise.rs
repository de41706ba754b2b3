//! Promises both ways: one we create and settle later ([`Deferred`]), and one a JS host function
//! returned, whose outcome we wait for ([`Js::on_settled`]); the Promise stays referenced until
//! it settles or the wait is given up.

use std::ptr;
use std::sync::{Arc, Mutex, Weak};

use napi::sys;

use super::{Js, Value, callback_args};

/// A pending Promise's resolver; only touched on the JS thread that created it.
pub struct Deferred(sys::napi_deferred);

// SAFETY: the handle travels through other threads but is used only on its JS thread.
unsafe impl Send for Deferred {}

/// What to run once a Promise settles: `Ok` fulfilled, `Err` rejected.
pub type Continuation = Box<dyn FnOnce(Js, Result<Value, Value>) + Send>;

/// What waits for a Promise: the continuation, and a reference that keeps the Promise (and so
/// the callbacks attached to it) alive until it settles. Without it a Promise nothing else holds
/// is collected and its continuation dropped, which its waiter would take for a shutdown.
struct Pending {
    continuation: Continuation,
    promise: super::Reference,
}

struct Settle {
    pending: Arc<Mutex<Option<Pending>>>,
    fulfilled: bool,
}

/// A wait on a Promise that may be given up ([`Waiting::cancel`]): the reference to the Promise is
/// released then, so a Promise that never settles is not kept for the life of the process.
pub struct Waiting(Weak<Mutex<Option<Pending>>>);

impl Waiting {
    /// Stops waiting (on the JS thread): the continuation is dropped and the Promise let go. A
    /// Promise that already settled is left alone.
    pub fn cancel(self, js: Js) {
        // Weak: only the Promise's callbacks keep the continuation (and the channel it owns)
        // alive, so a torn-down environment still drops it and wakes the waiter.
        let Some(shared) = self.0.upgrade() else { return };
        let taken = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(pending) = taken {
            js.release(pending.promise);
        }
    }
}

impl Js {
    /// A new Promise and its resolver.
    pub fn deferred(self) -> napi::Result<(Deferred, Value)> {
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        self.check(
            unsafe { sys::napi_create_promise(self.0, &mut deferred, &mut promise) },
            "create promise",
        )?;
        Ok((Deferred(deferred), promise))
    }

    pub fn resolve(self, deferred: Deferred, value: Value) {
        unsafe { sys::napi_resolve_deferred(self.0, deferred.0, value) };
    }

    pub fn reject(self, deferred: Deferred, error: Value) {
        unsafe { sys::napi_reject_deferred(self.0, deferred.0, error) };
    }

    /// Calls `continuation` on the JS thread once `promise` settles. When the callbacks cannot be
    /// attached, the continuation is dropped (which closes whatever channel it owns).
    pub fn on_settled(self, promise: Value, continuation: Continuation) -> napi::Result<Waiting> {
        let pending = Pending {
            continuation,
            promise: self.reference(promise)?,
        };
        let shared = Arc::new(Mutex::new(Some(pending)));
        let attached = (|| {
            let settle_with = |fulfilled| {
                let name = if fulfilled { "onFulfilled" } else { "onRejected" };
                let data = Settle {
                    pending: shared.clone(),
                    fulfilled,
                };
                self.function(name, data, Some(settle))
            };
            let on_fulfilled = settle_with(true)?;
            let on_rejected = settle_with(false)?;
            let then = self.get(promise, "then")?;
            self.call_method(promise, then, &[on_fulfilled, on_rejected])?
                .map_err(|_| napi::Error::from_reason("promise.then threw"))
        })();
        if attached.is_err()
            && let Some(pending) = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
        {
            self.release(pending.promise);
        }
        attached.map(|_| Waiting(Arc::downgrade(&shared)))
    }
}

unsafe extern "C" fn settle(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `settle` is only installed by `on_settled`, with a `Settle` as the function's data.
    let (js, settle, args) = unsafe { callback_args::<Settle>(env, info) };
    let value = match args.first() {
        Some(&value) => value,
        None => js.undefined().unwrap_or(ptr::null_mut()),
    };
    let taken = settle
        .pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(Pending { continuation, promise }) = taken {
        js.release(promise);
        let outcome = if settle.fulfilled { Ok(value) } else { Err(value) };
        // A panic must not unwind into V8.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| continuation(js, outcome)));
    }
    ptr::null_mut()
}
