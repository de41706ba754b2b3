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
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Runs Rust closures on one environment's JS thread. Built on napi-rs's thread-safe function,
/// which handles environment teardown (a worker exiting, the process ending) from any thread.
/// It keeps the event loop alive only while async calls are pending (see [`hold`]).
pub struct Dispatcher(ThreadsafeFunction<JsJob, (), (), Status, false, true>);

impl Dispatcher {
    fn new(env: Env) -> napi::Result<Self> {
        let callee = env.create_function_from_closure::<(), (), _>("airssysWasmDispatch", |_| Ok(()))?;
        let tsfn = callee
            .build_threadsafe_function::<JsJob>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|context: ThreadsafeCallContext<JsJob>| {
                let js = Js(context.env.raw());
                (context.value)(js);
                // A JS exception left pending would surface as an uncaught error elsewhere.
                let mut pending = false;
                unsafe { sys::napi_is_exception_pending(js.0, &mut pending) };
                if pending {
                    let mut thrown = ptr::null_mut();
                    unsafe { sys::napi_get_and_clear_last_exception(js.0, &mut thrown) };
                }
                Ok(())
            })?;
        Ok(Dispatcher(tsfn))
    }

    /// Queues `job` for the JS thread. If the environment is closing the job is dropped, which
    /// closes any channel it owns and so wakes whoever waits for it.
    pub fn run(&self, job: JsJob) {
        self.0.call(job, ThreadsafeFunctionCallMode::NonBlocking);
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
    env.set_instance_data(runtime, (), |_| {})?;
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
    let raw = runtime.dispatcher.0.raw();
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
