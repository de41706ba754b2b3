//! Promises both ways: one we create and settle later ([`Deferred`]), and one a JS host function
//! returned, whose outcome we wait for ([`Js::on_settled`]); the Promise stays referenced until
//! it settles or the wait is given up.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ptr;
use std::sync::{Arc, Mutex, Weak};

use napi::sys;

use super::{Js, Reference, Value, callback_args};
use crate::sync::lock;

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

type Shared = Arc<Mutex<Option<Pending>>>;

/// A wait on a Promise that may be given up ([`Waiting::cancel`]): the reference to the Promise is
/// released then, so a Promise that never settles is not kept for the life of the process.
pub struct Waiting {
    pending: Weak<Mutex<Option<Pending>>>,
    token: u64,
}

impl Waiting {
    /// Stops waiting (on the JS thread): the continuation is dropped and the Promise let go. A
    /// Promise that already settled is left alone.
    pub fn cancel(self, js: Js) {
        // Weak: only this environment's table of waits keeps the continuation (and the channel
        // it owns) alive, so a torn-down environment still drops it and wakes the waiter.
        let Some(shared) = self.pending.upgrade() else { return };
        forget_wait(self.token);
        let taken = lock(&shared).take();
        if let Some(pending) = taken {
            js.release(pending.promise);
        }
    }
}

/// Per JS environment: a JS helper that attaches both callbacks to a Promise, the one native
/// function they call with a token, and the waits by token. Creating two native functions per
/// Promise cost ~20k instructions a host call (callgrind); the helper's closures are V8's own.
struct Settlers {
    env: usize,
    attach: Reference,
    settle: Reference,
    next_token: u64,
    waits: HashMap<u64, Shared>,
}

thread_local! {
    /// This JS thread's [`Settlers`] (one environment per thread at a time), emptied when the
    /// environment goes away, which drops every continuation still waiting and so wakes its waiter.
    static SETTLERS: RefCell<Option<Settlers>> = const { RefCell::new(None) };
}

/// `attach(promise, token, settle)`: settles through `settle(token, fulfilled, value)`, always
/// after `attach` returns. A host's Promise may carry its own `then`: one that throws settles as a
/// rejection with what it threw (its Promise's own rejection, if any, handled, so that it does not
/// end the process), and one that calls back at once is answered on a later microtask, as a
/// Promise's own `then` always is (the waiter's continuation must not run inside `attach`).
const ATTACH_SOURCE: &str = r#"(() => {
  const then = Promise.prototype.then
  const later = Promise.resolve()
  return function attach(promise, token, settle) {
    let attaching = true
    const answer = (fulfilled, value) => {
      if (attaching) then.call(later, () => settle(token, fulfilled, value))
      else settle(token, fulfilled, value)
    }
    try {
      promise.then((value) => answer(true, value), (error) => answer(false, error))
    } catch (error) {
      try { then.call(promise, undefined, () => {}) } catch {}
      answer(false, error)
    }
    attaching = false
  }
})()"#;

/// Drops the wait filed under `token`, if it is still there.
fn forget_wait(token: u64) -> Option<Shared> {
    SETTLERS.with(|settlers| {
        settlers
            .borrow_mut()
            .as_mut()
            .and_then(|settlers| settlers.waits.remove(&token))
    })
}

unsafe extern "C" fn forget_settlers(_: *mut std::ffi::c_void) {
    // Taken out first: dropping continuations may run code that looks at the table.
    let gone = SETTLERS.with(|settlers| settlers.borrow_mut().take());
    drop(gone);
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
        let shared: Shared = Arc::new(Mutex::new(Some(pending)));
        let attached = self.register_wait(shared.clone()).and_then(|(token, attach, settle)| {
            let called = self.number(token as f64).and_then(|token_value| {
                self.call(attach, &[promise, token_value, settle])?
                    .map_err(|_| napi::Error::from_reason("promise.then threw"))
            });
            if called.is_err() {
                forget_wait(token);
            }
            called.map(|_| token)
        });
        match attached {
            Ok(token) => Ok(Waiting {
                pending: Arc::downgrade(&shared),
                token,
            }),
            Err(error) => {
                if let Some(pending) = lock(&shared).take() {
                    self.release(pending.promise);
                }
                Err(error)
            }
        }
    }

    /// Attaches callbacks that do nothing to `promise`: a Promise we refuse (a host function's,
    /// during a synchronous call) must not reject unhandled, which ends a Node process.
    pub fn ignore_settlement(self, promise: Value) -> napi::Result<()> {
        let (attach, settle) = self.settlers()?;
        // No token: `settle` finds no wait to settle.
        let no_token = self.undefined()?;
        self.call(attach, &[promise, no_token, settle])?
            .map(|_| ())
            .map_err(|_| napi::Error::from_reason("promise.then threw"))
    }

    /// Files `shared` under a new token; returns the token, the attach helper and the settle
    /// function of this environment.
    fn register_wait(self, shared: Shared) -> napi::Result<(u64, Value, Value)> {
        let (attach, settle) = self.settlers()?;
        let token = SETTLERS.with(|settlers| {
            let mut settlers = settlers.borrow_mut();
            let settlers = settlers
                .as_mut()
                .ok_or_else(|| napi::Error::from_reason("promise helper missing"))?;
            let token = settlers.next_token;
            settlers.next_token += 1;
            settlers.waits.insert(token, shared);
            Ok::<_, napi::Error>(token)
        })?;
        Ok((token, attach, settle))
    }

    /// The attach helper and the settle function of this environment, made on first use.
    fn settlers(self) -> napi::Result<(Value, Value)> {
        let env = self.0 as usize;
        let fresh = SETTLERS.with(|settlers| settlers.borrow().as_ref().is_none_or(|settlers| settlers.env != env));
        if fresh {
            let source = self.string(ATTACH_SOURCE)?;
            let mut attach = ptr::null_mut();
            self.check(
                unsafe { sys::napi_run_script(self.0, source, &mut attach) },
                "promise helper",
            )?;
            let settle = self.function("settle", (), Some(settle))?;
            let settlers = Settlers {
                env,
                attach: self.reference(attach)?,
                settle: self.reference(settle)?,
                next_token: 0,
                waits: HashMap::new(),
            };
            self.check(
                unsafe { sys::napi_add_env_cleanup_hook(self.0, Some(forget_settlers), ptr::null_mut()) },
                "cleanup hook",
            )?;
            SETTLERS.with(|slot| *slot.borrow_mut() = Some(settlers));
        }
        SETTLERS.with(|settlers| {
            let settlers = settlers.borrow();
            let settlers = settlers
                .as_ref()
                .ok_or_else(|| napi::Error::from_reason("promise helper missing"))?;
            Ok((self.dereference(&settlers.attach)?, self.dereference(&settlers.settle)?))
        })
    }
}

/// `settle(token, fulfilled, value)`, called by the attach helper's callbacks.
unsafe extern "C" fn settle(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `settle` is only installed by `register_wait`, with `()` as the function's data.
    let (js, _, args, _) = unsafe { callback_args::<()>(env, info) };
    let (Some(&token), Some(&fulfilled), value) = (args.first(), args.get(1), args.get(2).copied()) else {
        return ptr::null_mut();
    };
    let (Ok(token), Ok(fulfilled)) = (js.get_f64(token), js.get_bool(fulfilled)) else {
        return ptr::null_mut();
    };
    let value = value.unwrap_or_else(|| js.undefined().unwrap_or(ptr::null_mut()));
    let taken = forget_wait(token as u64).and_then(|shared| lock(&shared).take());
    if let Some(Pending { continuation, promise }) = taken {
        js.release(promise);
        let outcome = if fulfilled { Ok(value) } else { Err(value) };
        // A panic must not unwind into V8.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| continuation(js, outcome)));
    }
    ptr::null_mut()
}
