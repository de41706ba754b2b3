//! Work off the JS thread: our own thread pool, the way back to the JS thread, and Promises.
//!
//! libuv's threadpool (4 threads) also serves fs, dns, zlib and crypto for the whole process, so a
//! long wasm call there would stall unrelated I/O. Our pool grows on demand (a guest may sit in a
//! host call for a long time and must not hold others up), lets idle threads go after a while,
//! and gives every thread a stack big enough for wasmtime's `max_wasm_stack` plus host frames.
//!
//! Each JS environment (the main thread, each worker) has one [`Dispatcher`] that runs closures
//! on its JS thread: completions of async calls and host-function calls share it, so an async
//! call costs one thread-safe-function message back, not a thread-safe function of its own.

use std::cell::Cell;
use std::collections::VecDeque;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::ToNapiValue;
use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status, sys};

use crate::errors::Failure;
use crate::js::{Js, Raw, Value};

/// Stack of each pool thread; `maxWasmStackBytes` is capped well below it (engine.rs).
pub const POOL_THREAD_STACK_BYTES: usize = 8 << 20;
const MAX_THREADS: usize = 256;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker that just finished keeps looking for the next job before it sleeps: waking
/// a sleeping thread costs tens of microseconds, more than most calls.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(50);

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    wake: Condvar,
    /// Jobs queued and not yet taken; read without the lock by spinning workers.
    queued: AtomicUsize,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    /// Workers free for a job (spinning or asleep).
    idle: usize,
    /// Workers blocked on the condvar, which only a notify wakes.
    sleeping: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            sleeping: 0,
        }),
        wake: Condvar::new(),
        queued: AtomicUsize::new(0),
    })
}

/// Runs `job` on a pool thread.
pub fn run_in_pool(job: impl FnOnce() + Send + 'static) {
    let pool = pool();
    let mut state = pool.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.queue.push_back(Box::new(job));
    pool.queued.fetch_add(1, Ordering::Release);
    // Jobs may block on the JS thread (host calls), so a queued job must never wait for a busy
    // thread: start one whenever nobody idle is left to take it.
    if state.idle < state.queue.len() && state.threads < MAX_THREADS {
        let spawned = std::thread::Builder::new()
            .name("airssys-wasm".into())
            .stack_size(POOL_THREAD_STACK_BYTES)
            .spawn(worker);
        if spawned.is_ok() {
            state.threads += 1;
            state.idle += 1;
        }
    }
    let wake = state.sleeping > 0;
    drop(state);
    if wake {
        pool.wake.notify_one();
    }
}

fn take(pool: &Pool, state: &mut PoolState) -> Option<Job> {
    let job = state.queue.pop_front()?;
    pool.queued.fetch_sub(1, Ordering::Release);
    state.idle -= 1;
    Some(job)
}

fn worker() {
    wasmtime::Engine::tls_eager_initialize();
    let pool = pool();
    loop {
        let mut state = pool.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(job) = take(pool, &mut state) {
            drop(state);
            job();
            pool.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).idle += 1;
            spin_for_work(pool);
            continue;
        }
        state.sleeping += 1;
        let (mut state, timeout) = pool
            .wake
            .wait_timeout(state, IDLE_TIMEOUT)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.sleeping -= 1;
        if timeout.timed_out() && state.queue.is_empty() {
            state.idle -= 1;
            state.threads -= 1;
            return;
        }
    }
}

fn spin_for_work(pool: &Pool) {
    let until = Instant::now() + SPIN_BEFORE_SLEEP;
    while pool.queued.load(Ordering::Acquire) == 0 && Instant::now() < until {
        std::hint::spin_loop();
    }
}

type JsJob = Box<dyn FnOnce(Js) + Send>;

/// How long the JS thread keeps looking for the next job after a job that announced one (a host
/// call answered on the spot: the guest resumes at once and its next message usually follows
/// within microseconds). Waking the JS thread from its event loop costs tens of microseconds here.
const LINGER: Duration = Duration::from_micros(50);

/// Runs Rust closures on one environment's JS thread. Jobs wait in our own queue; napi-rs's
/// thread-safe function only wakes the JS thread when it is not already running jobs, and handles
/// environment teardown. It keeps the event loop alive only while async calls are pending
/// (see [`hold`]).
pub struct Dispatcher {
    wake: ThreadsafeFunction<(), (), (), Status, false, true>,
    queue: Arc<JobQueue>,
}

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
}

impl JobQueue {
    fn push(&self, job: JsJob) -> Option<JsJob> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.closed.load(Ordering::Acquire) {
            return Some(job);
        }
        jobs.push_back(job);
        self.len.fetch_add(1, Ordering::SeqCst);
        None
    }

    fn pop(&self) -> Option<JsJob> {
        let job = self
            .jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_front()?;
        self.len.fetch_sub(1, Ordering::SeqCst);
        Some(job)
    }

    /// Drops every queued job and refuses new ones; dropping a job closes the channels it owns,
    /// which wakes whoever waits for its answer.
    fn close(&self) {
        let jobs = {
            let mut jobs = self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.closed.store(true, Ordering::Release);
            self.len.store(0, Ordering::SeqCst);
            std::mem::take(&mut *jobs)
        };
        drop(jobs);
    }

    /// Runs queued jobs on the JS thread until none is left (lingering after a job that asked).
    fn drain(&self, js: Js) {
        // Only the JS thread sets the flag: set already means a job is draining further up the
        // stack, which will look at the queue again itself.
        if self.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        loop {
            while let Some(job) = self.pop() {
                run_job(js, job);
            }
            if self.linger.swap(false, Ordering::AcqRel) && self.wait_for_job(LINGER) {
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

    fn wait_for_job(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.len.load(Ordering::Acquire) > 0 {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }
}

/// Runs one job in its own handle scope; a JS exception it leaves pending would otherwise
/// surface as an uncaught error elsewhere.
fn run_job(js: Js, job: JsJob) {
    let mut scope = ptr::null_mut();
    let opened = unsafe { sys::napi_open_handle_scope(js.0, &mut scope) } == sys::Status::napi_ok;
    job(js);
    let mut pending = false;
    unsafe { sys::napi_is_exception_pending(js.0, &mut pending) };
    if pending {
        let mut thrown = ptr::null_mut();
        unsafe { sys::napi_get_and_clear_last_exception(js.0, &mut thrown) };
    }
    if opened {
        unsafe { sys::napi_close_handle_scope(js.0, scope) };
    }
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
                drained.drain(Js(context.env.raw()));
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
        self.queue.drain(js);
    }

    /// Called by a job on the JS thread: its answer lets a pool thread go on, which will most
    /// likely queue another job within microseconds, so the JS thread waits briefly for it
    /// rather than going back to sleep in the event loop.
    pub fn expect_next_job(&self) {
        self.queue.linger.store(true, Ordering::Release);
    }
}

/// Per-environment state, kept as the addon's N-API instance data.
struct EnvRuntime {
    dispatcher: Arc<Dispatcher>,
    /// Async calls in flight; the dispatcher keeps the loop alive while this is above zero.
    pending: Cell<usize>,
}

fn runtime(js: Js) -> napi::Result<&'static EnvRuntime> {
    let env = Env::from_raw(js.0);
    if let Some(runtime) = env.get_instance_data::<EnvRuntime>()? {
        return Ok(runtime);
    }
    let runtime = EnvRuntime {
        dispatcher: Arc::new(Dispatcher::new(env)?),
        pending: Cell::new(0),
    };
    // At teardown, jobs still queued are dropped (their waiters see closed channels).
    env.set_instance_data(runtime, (), |context| context.value.dispatcher.queue.close())?;
    env.get_instance_data::<EnvRuntime>()?
        .map(|runtime| &*runtime)
        .ok_or_else(|| napi::Error::from_reason("cannot keep per-environment state"))
}

/// The JS-thread dispatcher of this environment.
pub fn dispatcher(js: Js) -> napi::Result<Arc<Dispatcher>> {
    Ok(runtime(js)?.dispatcher.clone())
}

/// Marks an async operation as started (`true`) or settled (`false`), so Node does not exit
/// while one is pending and is free to exit when none is.
fn hold(js: Js, started: bool) {
    let Ok(runtime) = runtime(js) else { return };
    let before = runtime.pending.get();
    let after = if started { before + 1 } else { before.saturating_sub(1) };
    runtime.pending.set(after);
    let raw = runtime.dispatcher.wake.raw();
    if before == 0 && after == 1 {
        unsafe { sys::napi_ref_threadsafe_function(js.0, raw) };
    } else if before == 1 && after == 0 {
        unsafe { sys::napi_unref_threadsafe_function(js.0, raw) };
    }
}

/// A pending Promise's resolver; only touched on the JS thread that created it.
struct Deferred(sys::napi_deferred);

// SAFETY: the handle travels through the pool but is used only by the JS-thread job.
unsafe impl Send for Deferred {}

/// Runs `work` on the pool and returns a Promise settled on the JS thread by `finish`, which turns
/// the work's output into a JS value (or a [`Failure`] into the matching JS error).
pub fn promise<W, R, F>(env: &Env, work: impl FnOnce() -> W + Send + 'static, finish: F) -> napi::Result<Raw>
where
    W: Send + 'static,
    R: ToNapiValue + 'static,
    F: FnOnce(Js, W) -> Result<R, Failure> + Send + 'static,
{
    let js = Js(env.raw());
    let dispatcher = dispatcher(js)?;
    let mut deferred = ptr::null_mut();
    let mut promise: Value = ptr::null_mut();
    let status = unsafe { sys::napi_create_promise(js.0, &mut deferred, &mut promise) };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::from_reason("cannot create a Promise"));
    }
    let deferred = Deferred(deferred);
    hold(js, true);
    run_in_pool(move || {
        let output = work();
        dispatcher.run(Box::new(move |js| {
            settle(js, deferred, finish(js, output));
            hold(js, false);
        }));
    });
    Ok(Raw(promise))
}

fn settle<R: ToNapiValue>(js: Js, deferred: Deferred, outcome: Result<R, Failure>) {
    let value = match outcome {
        Ok(value) => unsafe { R::to_napi_value(js.0, value) }.map_err(|error| Failure::Internal(error.reason)),
        Err(failure) => Err(failure),
    };
    match value {
        Ok(value) => unsafe { sys::napi_resolve_deferred(js.0, deferred.0, value) },
        Err(failure) => {
            let error = failure
                .to_js(js)
                .or_else(|_| js.error("ERR_WASM_INTERNAL", "cannot build the error", false))
                .unwrap_or(ptr::null_mut());
            unsafe { sys::napi_reject_deferred(js.0, deferred.0, error) }
        }
    };
}
