//! What stops a call before its deadline: its AbortSignal, and the end of the worker thread that
//! issued it. A worker that is terminated cannot tell us itself: its JS thread may be inside our
//! `callSync`, where V8's termination request goes unseen, and its AbortSignals die with it, so a
//! call it left running on a pool thread would run (and burn a core) for the life of the process.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::js::Js;

/// The abort sources of one call. Cheap to clone; checked on every epoch tick of a call that has
/// one, and by every wait the call makes.
#[derive(Clone, Default)]
pub struct Abort {
    signal: Option<Arc<AtomicBool>>,
    /// Set when the worker environment that issued the call goes away (`None` on the main thread,
    /// whose end is the end of the process).
    environment: Option<Arc<AtomicBool>>,
}

impl Abort {
    /// The abort sources every call issued from a JS environment has: the flag set when the
    /// environment goes away (a worker's; `None` for the main thread).
    pub fn of_environment(stopping: Option<Arc<AtomicBool>>) -> Self {
        Abort {
            signal: None,
            environment: stopping,
        }
    }

    /// These sources plus the call's own AbortSignal (its native flag).
    pub fn with_signal(&self, signal: Option<Arc<AtomicBool>>) -> Self {
        Abort {
            signal: signal.or_else(|| self.signal.clone()),
            environment: self.environment.clone(),
        }
    }

    /// Whether the call has an AbortSignal of its own.
    pub fn has_signal(&self) -> bool {
        self.signal.is_some()
    }

    /// Whether anything can abort the call: it then needs the epoch ticker and polling waits.
    pub fn is_armed(&self) -> bool {
        self.signal.is_some() || self.environment.is_some()
    }

    /// Whether the call must stop now. On a worker's JS thread this first asks Node whether the
    /// worker is being terminated.
    pub fn is_set(&self) -> bool {
        if let Some(environment) = &self.environment {
            probe_termination();
            if environment.load(Ordering::Acquire) {
                return true;
            }
        }
        self.signal.as_ref().is_some_and(|flag| flag.load(Ordering::Acquire))
    }
}

thread_local! {
    /// On a worker's JS thread: its environment and `stopping` flag, for [`probe_termination`].
    static WORKER: RefCell<Option<(Js, Arc<AtomicBool>)>> = const { RefCell::new(None) };
    /// Set while this thread polls a guest's future: the guest then runs on its own fiber stack.
    static ON_FIBER: Cell<bool> = const { Cell::new(false) };
}

/// Makes this (JS) thread probe for its worker's termination during synchronous calls.
pub fn watch_worker(js: Js, stopping: Arc<AtomicBool>) {
    WORKER.with(|worker| *worker.borrow_mut() = Some((js, stopping)));
}

/// The worker's environment is gone: nothing left to probe.
pub fn forget_worker() {
    WORKER.with(|worker| worker.borrow_mut().take());
}

/// On a worker's JS thread inside a synchronous call: asks Node whether the worker is being
/// terminated, and if so sets its `stopping` flag. Node stops letting N-API call into JS as soon
/// as `terminate()` is called, long before it can tear the environment down (which waits for our
/// call to return). Never probes from a guest's fiber stack, where V8 must not run.
pub fn probe_termination() {
    if ON_FIBER.get() {
        return;
    }
    WORKER.with(|worker| {
        if let Some((js, stopping)) = worker.borrow().as_ref()
            && !js.can_run_js()
        {
            stopping.store(true, Ordering::Release);
        }
    });
}

/// Marks the thread as polling a guest until dropped (also when the poll panics).
pub struct FiberGuard;

impl FiberGuard {
    pub fn enter() -> Self {
        ON_FIBER.set(true);
        FiberGuard
    }
}

impl Drop for FiberGuard {
    fn drop(&mut self) {
        ON_FIBER.set(false);
    }
}
