//! The way back to the JS thread. Each JS environment (the main thread, each worker) has one
//! [`Dispatcher`] that runs closures on its JS thread: completions of async calls and
//! host-function calls share it, so an async call costs one message back, not a thread-safe
//! function of its own.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};

use crate::js::{Js, Reference};
use crate::runtime::abort::{self, AbortFlag};
use crate::runtime::spin;
use crate::sync::lock;

/// A closure to run on the JS thread.
pub type JsJob = Box<dyn FnOnce(Js) + Send>;

/// How long the JS thread keeps looking for the next job after a job that announced one (a host
/// call answered on the spot: the guest resumes at once and its next message usually follows
/// within microseconds). Waking the JS thread from its event loop costs tens of microseconds here.
const LINGER: Duration = Duration::from_micros(50);

/// The longest the JS thread runs jobs, drain after drain, before it lets the event loop turn
/// (timers, I/O, other callbacks). With many quick calls in flight, each drain was short, but every
/// one ended in Promise reactions that started calls whose completions asked for the next, and
/// Node's thread-safe function runs up to 1,000 such wake-ups in one turn: a 10 ms interval fired
/// 4 times in 3 s, the event loop stalling 950 ms at a time (an outside probe).
const TURN: Duration = Duration::from_millis(2);

/// Runs Rust closures on one environment's JS thread. Jobs wait in our own queue; napi-rs's
/// thread-safe function only wakes the JS thread when it is not already running jobs, and handles
/// environment teardown. It keeps the event loop alive only while async calls are pending
/// (see [`hold`]).
pub struct Dispatcher {
    wake: ThreadsafeFunction<(), (), (), Status, false, true>,
    queue: Arc<JobQueue>,
}

/// When a chain of host calls began, and whether it is watched: whether [`turned`] will end it when
/// the event loop turns.
struct Chain {
    began: Instant,
    watched: bool,
}

/// How long a chain runs before it is watched (it then runs [`TURN`] more at most). Watching costs
/// a `setImmediate` and a turn of the loop: watched from its first link, every `call` whose guest
/// called an async host function paid some 6 µs (16 → 22 µs), and watched after 100 µs, some 5.
const WATCH_AFTER: Duration = Duration::from_millis(1);

#[derive(Default)]
struct JobQueue {
    jobs: Mutex<VecDeque<JsJob>>,
    /// Jobs in `jobs`, read without the lock by the lingering JS thread.
    len: AtomicUsize,
    /// The JS thread is running jobs and will look at the queue again before it stops.
    draining: AtomicBool,
    /// A job asked the JS thread to linger for the next one.
    linger: AtomicBool,
    /// The environment is gone: jobs are dropped instead of queued.
    closed: AtomicBool,
    /// The last drain was deferred after a long job: the deferred drain defers once more, so that
    /// the event loop's timers run before the next job (a drain deferred from the poll phase runs
    /// in that same turn's check phase, before any timer).
    after_long: AtomicBool,
    /// When the JS thread began running jobs since the event loop last ran a deferred drain (see
    /// [`TURN`]); touched on the JS thread only. Only a deferred drain resets it: the gaps
    /// between drains are the Promise reactions they cause, which may take any time, so no gap
    /// can tell that the loop turned.
    turn_began: Mutex<Option<Instant>>,
    /// The current chain of host calls: answers that let a guest go on, each drain running the
    /// guest's next call, in the Promise reaction of the last answer or by lingering (see
    /// [`JobQueue::chain_too_long`]). `None` once the loop turned after it was watched.
    chain: Mutex<Option<Chain>>,
    /// The function that ends a watched chain (see [`turned`]), made once: one made per chain, as
    /// N-API makes them (a native callback, data with a finalizer), added some 80 µs to each
    /// `call` whose guest called a host function.
    turned: Mutex<Option<Reference>>,
}

impl JobQueue {
    fn push(&self, job: JsJob) -> Option<JsJob> {
        let mut jobs = lock(&self.jobs);
        if self.closed.load(Ordering::Acquire) {
            return Some(job);
        }
        jobs.push_back(job);
        self.len.fetch_add(1, Ordering::SeqCst);
        None
    }

    fn pop(&self) -> Option<JsJob> {
        let job = lock(&self.jobs).pop_front()?;
        self.len.fetch_sub(1, Ordering::SeqCst);
        Some(job)
    }

    /// Drops every queued job and refuses new ones; dropping a job closes the channels it owns,
    /// which wakes whoever waits for its answer.
    fn close(&self) {
        let jobs = {
            let mut jobs = lock(&self.jobs);
            self.closed.store(true, Ordering::Release);
            self.len.store(0, Ordering::SeqCst);
            std::mem::take(&mut *jobs)
        };
        drop(jobs);
    }

    /// Runs queued jobs on the JS thread until none is left (lingering after a job that asked), or
    /// for [`TURN`], after which the rest wait for the event loop's next turn (`setImmediate`).
    /// `answered`: called where a host call's answer lets its guest go on (see
    /// [`Dispatcher::drain_here`]).
    fn drain(self: &Arc<Self>, js: Js, answered: bool) {
        // Only the JS thread sets the flag: set already means a job is draining further up the
        // stack, which will look at the queue again itself (or a drain is deferred, see below).
        if self.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        if answered && self.chain_too_long(js) && self.defer(js) {
            return;
        }
        let began = self.turn_began();
        loop {
            while let Some(job) = self.pop() {
                let job_began = Instant::now();
                run_job(js, job);
                // Only a backlog waits: a lone job, as a single call's, never pays the detour.
                // `draining` stays set: jobs queued meanwhile wait for the deferred drain, with
                // no wake-up of their own. A job that alone took a turn's time (a large result
                // converted) is followed by none in this turn, even one still to come: 16 calls
                // each returning 60 MiB of text held the event loop 1.6 s, their conversions
                // run one after another as each arrived (probe Z49).
                let long = job_began.elapsed() >= TURN;
                let backlog = began.elapsed() >= TURN && self.len.load(Ordering::Acquire) > 0;
                if (long || backlog) && self.defer(js) {
                    self.after_long.store(long, Ordering::Release);
                    *self.lock_turn() = None;
                    return;
                }
            }
            if self.linger.swap(false, Ordering::AcqRel) && self.wait_for_job(LINGER) {
                if self.chain_too_long(js) && self.defer(js) {
                    return;
                }
                continue;
            }
            self.draining.store(false, Ordering::SeqCst);
            // A job queued after the last pop saw `draining` still set and sent no wake-up.
            if self.len.load(Ordering::SeqCst) == 0 {
                return;
            }
            self.draining.store(true, Ordering::SeqCst);
        }
    }

    fn lock_turn(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        lock(&self.turn_began)
    }

    /// When the current run of drains began (now, for the first since a deferred drain). After an
    /// idle spell a backlog runs one job and defers the rest: one `setImmediate`.
    fn turn_began(&self) -> Instant {
        *self.lock_turn().get_or_insert_with(Instant::now)
    }

    fn lock_chain(&self) -> std::sync::MutexGuard<'_, Option<Chain>> {
        lock(&self.chain)
    }

    /// Whether a chain of host calls (see `chain`) has run for [`TURN`] in this turn of the event
    /// loop. A guest calling an async host function in a loop is such a chain: each answer's
    /// Promise reaction ran the guest's next call, and in a call of 2 s the loop turned a few times,
    /// timers late by up to 700 ms (an outside probe). A chain is watched (told when the loop
    /// turns) once it has run [`WATCH_AFTER`]: calls with a host call or two are done by then and
    /// pay nothing. An unwatched chain older than that may be one that ended in an earlier turn:
    /// counted from now, it is watched at once, so that no chain runs more than the two together.
    fn chain_too_long(self: &Arc<Self>, js: Js) -> bool {
        let now = Instant::now();
        let mut chain = self.lock_chain();
        let watch = match &mut *chain {
            Some(chain) if chain.watched => return chain.began.elapsed() >= TURN,
            Some(chain) if now.duration_since(chain.began) < WATCH_AFTER => return false,
            Some(_) => true,
            None => false,
        };
        *chain = Some(Chain {
            began: now,
            watched: watch,
        });
        drop(chain);
        if watch {
            let _ = self.mark_turn(js);
        }
        false
    }

    /// Asks `setImmediate` to call [`turned`] at the event loop's next turn.
    fn mark_turn(self: &Arc<Self>, js: Js) -> napi::Result<()> {
        let set_immediate = js.get(js.global()?, "setImmediate")?;
        let mut cached = lock(&self.turned);
        let function = match &*cached {
            Some(reference) => js.dereference(reference)?,
            None => {
                let function = js.function("airssysWasmTurned", self.clone(), Some(turned))?;
                *cached = Some(js.reference(function)?);
                function
            }
        };
        drop(cached);
        match js.call(set_immediate, &[function])? {
            Ok(_) => Ok(()),
            Err(_) => Err(napi::Error::from_reason("setImmediate threw")),
        }
    }

    /// Asks the event loop to drain again at its next turn; false if it cannot be asked.
    fn defer(self: &Arc<Self>, js: Js) -> bool {
        let asked = || -> napi::Result<()> {
            let set_immediate = js.get(js.global()?, "setImmediate")?;
            let again = js.function("airssysWasmDrain", self.clone(), Some(drain_deferred))?;
            match js.call(set_immediate, &[again])? {
                Ok(_) => Ok(()),
                Err(_) => Err(napi::Error::from_reason("setImmediate threw")),
            }
        };
        asked().is_ok()
    }

    fn wait_for_job(&self, limit: Duration) -> bool {
        spin::wait_until(limit, || self.len.load(Ordering::Acquire) > 0)
    }
}

/// The deferred drain (see [`JobQueue::defer`]), called by `setImmediate`.
unsafe extern "C" fn drain_deferred(env: napi::sys::napi_env, info: napi::sys::napi_callback_info) -> crate::js::Value {
    // SAFETY: this callback is only made by `defer`, with the queue as its data.
    let (js, queue, _, _) = unsafe { crate::js::callback_args::<Arc<JobQueue>>(env, info) };
    if queue.after_long.swap(false, Ordering::AcqRel) && queue.defer(js) {
        return std::ptr::null_mut();
    }
    // The loop has turned.
    *queue.lock_turn() = None;
    *queue.lock_chain() = None;
    queue.draining.store(false, Ordering::SeqCst);
    queue.drain(js, false);
    std::ptr::null_mut()
}

/// The event loop has turned since a chain of host calls began (see [`JobQueue::chain_too_long`]).
unsafe extern "C" fn turned(env: napi::sys::napi_env, info: napi::sys::napi_callback_info) -> crate::js::Value {
    // SAFETY: this callback is only made by `mark_turn`, with the queue as its data.
    let (_, queue, _, _) = unsafe { crate::js::callback_args::<Arc<JobQueue>>(env, info) };
    *queue.lock_chain() = None;
    std::ptr::null_mut()
}

/// Runs one job in its own handle scope. A panic ends only the job (whatever channel it owned is
/// dropped, which wakes its waiter); a JS exception it leaves pending is discarded.
fn run_job(js: Js, job: JsJob) {
    let scope = js.open_scope();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(js)));
    js.discard_pending_exception();
    js.close_scope(scope);
}

impl Dispatcher {
    fn new(env: Env) -> napi::Result<Self> {
        let queue = Arc::new(JobQueue::default());
        let drained = queue.clone();
        let callee = env.create_function_from_closure::<(), (), _>("airssysWasmDispatch", |_| Ok(()))?;
        let wake = callee
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(move |context: ThreadsafeCallContext<()>| {
                drained.drain(Js(context.env.raw()), false);
                Ok(())
            })?;
        Ok(Dispatcher { wake, queue })
    }

    /// Queues `job` for the JS thread. If the environment is closing the job is dropped, which
    /// closes any channel it owns and so wakes whoever waits for it.
    pub fn run(&self, job: JsJob) {
        if let Some(refused) = self.queue.push(job) {
            drop(refused);
            return;
        }
        if !self.queue.draining.load(Ordering::SeqCst)
            && self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking) != Status::Ok
        {
            self.queue.close();
        }
    }

    /// Runs queued jobs now, on the JS thread, from outside the dispatcher's own callback (a
    /// settled host Promise: its answer lets the guest go on, so lingering here saves a wake-up).
    pub fn drain_here(&self, js: Js) {
        self.queue.drain(js, true);
    }

    /// Called by a job on the JS thread: its answer lets a pool thread go on, which will most
    /// likely queue another job within microseconds, so the JS thread waits briefly for it
    /// rather than going back to sleep in the event loop.
    pub fn expect_next_job(&self) {
        self.queue.linger.store(true, Ordering::Release);
    }
}

type TeardownHook = Box<dyn FnOnce()>;

/// Per-environment state, kept as the addon's N-API instance data.
struct EnvRuntime {
    dispatcher: Arc<Dispatcher>,
    /// Async calls in flight; the dispatcher keeps the loop alive while this is above zero.
    pending: Cell<usize>,
    /// Set when the environment goes away (see [`crate::runtime::abort`]).
    stopping: Arc<AbortFlag>,
    /// A worker thread's environment: its calls watch `stopping`.
    worker: Cell<bool>,
    /// What other parts of the addon let go of when the environment goes away, by name.
    teardown: RefCell<Vec<(&'static str, TeardownHook)>>,
}

fn runtime(js: Js) -> napi::Result<&'static EnvRuntime> {
    let env = Env::from_raw(js.0);
    if let Some(runtime) = env.get_instance_data::<EnvRuntime>()? {
        return Ok(runtime);
    }
    let runtime = EnvRuntime {
        dispatcher: Arc::new(Dispatcher::new(env)?),
        pending: Cell::new(0),
        stopping: Arc::new(AbortFlag::default()),
        worker: Cell::new(false),
        teardown: RefCell::new(Vec::new()),
    };
    // At teardown, jobs still queued are dropped (their waiters see closed channels) and calls
    // the environment left running are aborted.
    env.set_instance_data(runtime, (), |context| {
        context.value.stopping.raise();
        context.value.dispatcher.queue.close();
        abort::forget_worker();
        for (_, hook) in context.value.teardown.take() {
            hook();
        }
    })?;
    env.get_instance_data::<EnvRuntime>()?
        .map(|runtime| &*runtime)
        .ok_or_else(|| napi::Error::from_reason("cannot keep per-environment state"))
}

/// Marks the calling environment as a worker thread's: its calls are aborted when the worker is
/// terminated (the JS layer calls this once, when it is loaded in a worker).
#[napi_derive::napi(js_name = "markWorkerThread")]
pub fn mark_worker_thread(env: Env) -> napi::Result<()> {
    let js = Js(env.raw());
    let runtime = runtime(js)?;
    runtime.worker.set(true);
    abort::watch_worker(js, runtime.stopping.clone());
    Ok(())
}

/// The flag that is set when this environment goes away, for a worker's environment.
pub fn stopping_flag(js: Js) -> Option<Arc<AbortFlag>> {
    let runtime = runtime(js).ok()?;
    runtime.worker.get().then(|| runtime.stopping.clone())
}

/// Runs `hook` on the JS thread when this environment goes away (a worker terminated or ended,
/// or the process exiting), unless a hook of the same `name` is already set to.
pub fn at_teardown_once(js: Js, name: &'static str, hook: impl FnOnce() + 'static) -> napi::Result<()> {
    let mut teardown = runtime(js)?.teardown.borrow_mut();
    if !teardown.iter().any(|(set, _)| *set == name) {
        teardown.push((name, Box::new(hook)));
    }
    Ok(())
}

/// The JS-thread dispatcher of this environment.
pub fn dispatcher(js: Js) -> napi::Result<Arc<Dispatcher>> {
    Ok(runtime(js)?.dispatcher.clone())
}

/// Marks an async operation as started (`true`) or settled (`false`), so Node does not exit
/// while one is pending and is free to exit when none is.
pub fn hold(js: Js, started: bool) {
    let Ok(runtime) = runtime(js) else { return };
    let before = runtime.pending.get();
    let after = if started { before + 1 } else { before.saturating_sub(1) };
    runtime.pending.set(after);
    if (before == 0) != (after == 0) {
        js.hold_threadsafe_function(runtime.dispatcher.wake.raw(), after > 0);
    }
}
