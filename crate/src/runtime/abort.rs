//! What stops a call before its deadline: its AbortSignal, and the end of the worker thread that
//! issued it. A worker that is terminated cannot tell us itself: its JS thread may be inside our
//! `callSync`, where V8's termination request goes unseen, and its AbortSignals die with it, so a
//! call it left running on a pool thread would run (and burn a core) for the life of the process.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::thread::Thread;

use crate::js::Js;
use crate::sync::lock;

/// A flag that, once raised, stays raised and wakes whoever waits on it: a call waiting for a
/// host function or in WASI sleeps until it is answered or aborted, instead of waking every few
/// milliseconds to look (100 calls waiting with an AbortSignal kept a fifth of a core busy).
#[derive(Default)]
pub struct AbortFlag {
    raised: AtomicBool,
    waiters: Mutex<Vec<(u64, Waker)>>,
    next_waiter: AtomicU64,
}

impl AbortFlag {
    pub fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// Wakes `waker` when the flag is raised, until the returned guard is dropped. Raised
    /// already: wakes it at once.
    fn subscribe(self: &Arc<Self>, waker: &Waker) -> Subscription {
        let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
        lock(&self.waiters).push((id, waker.clone()));
        if self.is_raised() {
            waker.wake_by_ref();
        }
        Subscription { flag: self.clone(), id }
    }
}

/// A waiter of an [`AbortFlag`], removed when dropped.
pub struct Subscription {
    flag: Arc<AbortFlag>,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.flag.waiters).retain(|(id, _)| *id != self.id);
    }
}

/// Wakes a thread parked in [`std::thread::park_timeout`].
pub struct ThreadWaker(pub Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The abort sources of one call. Cheap to clone; checked on every epoch tick of a call that has
/// one, and by every wait the call makes.
#[derive(Clone, Default)]
pub struct Abort {
    signal: Option<Arc<AbortFlag>>,
    /// Raised when the worker environment that issued the call goes away (`None` on the main
    /// thread, whose end is the end of the process).
    environment: Option<Arc<AbortFlag>>,
}

impl Abort {
    /// The abort sources every call issued from a JS environment has: the flag set when the
    /// environment goes away (a worker's; `None` for the main thread).
    pub fn of_environment(stopping: Option<Arc<AbortFlag>>) -> Self {
        Abort {
            signal: None,
            environment: stopping,
        }
    }

    /// These sources plus the call's own AbortSignal (its native flag).
    pub fn with_signal(&self, signal: Option<Arc<AbortFlag>>) -> Self {
        Abort {
            signal: signal.or_else(|| self.signal.clone()),
            environment: self.environment.clone(),
        }
    }

    /// Whether the call has an AbortSignal of its own.
    pub fn has_signal(&self) -> bool {
        self.signal.is_some()
    }

    /// Whether anything can abort the call: it then needs the epoch ticker.
    pub fn is_armed(&self) -> bool {
        self.signal.is_some() || self.environment.is_some()
    }

    /// Whether a wait on this thread must poll [`Abort::is_set`] now and then: on a worker's JS
    /// thread blocked in a synchronous call, nothing raises the worker's flag but that probe.
    pub fn needs_polling(&self) -> bool {
        self.environment.is_some() && WORKER.with(|worker| worker.borrow().is_some())
    }

    /// Wakes `waker` when the call is aborted, until the guards are dropped.
    pub fn subscribe(&self, waker: &Waker) -> [Option<Subscription>; 2] {
        [
            self.signal.as_ref().map(|flag| flag.subscribe(waker)),
            self.environment.as_ref().map(|flag| flag.subscribe(waker)),
        ]
    }

    /// Whether the call must stop now. On a worker's JS thread this first asks Node whether the
    /// worker is being terminated.
    pub fn is_set(&self) -> bool {
        if let Some(environment) = &self.environment {
            probe_termination();
            if environment.is_raised() {
                return true;
            }
        }
        self.signal.as_ref().is_some_and(|flag| flag.is_raised())
    }
}

thread_local! {
    /// On a worker's JS thread: its environment and `stopping` flag, for [`probe_termination`].
    static WORKER: RefCell<Option<(Js, Arc<AbortFlag>)>> = const { RefCell::new(None) };
    /// Set while this thread polls a guest's future: the guest then runs on its own fiber stack.
    static ON_FIBER: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is running a guest's future (see [`FiberGuard`]).
pub fn on_fiber() -> bool {
    ON_FIBER.get()
}

/// Makes this (JS) thread probe for its worker's termination during synchronous calls.
pub fn watch_worker(js: Js, stopping: Arc<AbortFlag>) {
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
            stopping.raise();
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
