//! Work off the JS thread: our own thread pool and the Promise plumbing around it.
//!
//! libuv's threadpool (4 threads) also serves fs, dns, zlib and crypto for the whole process, so a
//! long wasm call there would stall unrelated I/O. Our pool grows on demand (a guest may sit in a
//! host call for a long time and must not hold others up), lets idle threads go after a while,
//! and gives every thread a stack big enough for wasmtime's `max_wasm_stack` plus host frames.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use napi::bindgen_prelude::{Object, ToNapiValue};
use napi::{Env, JsDeferred};

use crate::errors::Failure;
use crate::js::Js;

/// Stack of each pool thread; `maxWasmStackBytes` is capped well below it (engine.rs).
pub const POOL_THREAD_STACK_BYTES: usize = 8 << 20;
const MAX_THREADS: usize = 256;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    wake: Condvar,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
        }),
        wake: Condvar::new(),
    })
}

/// Runs `job` on a pool thread.
pub fn run_in_pool(job: impl FnOnce() + Send + 'static) {
    let pool = pool();
    let mut state = pool.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.queue.push_back(Box::new(job));
    // Jobs may block on the JS thread (host calls), so a queued job must never wait for a busy
    // thread: start one whenever nobody idle is left to take it.
    if state.idle < state.queue.len() && state.threads < MAX_THREADS {
        let spawned = std::thread::Builder::new()
            .name("airssys-wasm".into())
            .stack_size(POOL_THREAD_STACK_BYTES)
            .spawn(worker);
        if spawned.is_ok() {
            state.threads += 1;
        }
    }
    drop(state);
    pool.wake.notify_one();
}

fn worker() {
    let pool = pool();
    let mut state = pool.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            job();
            state = pool.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            continue;
        }
        state.idle += 1;
        let (next, timeout) = pool
            .wake
            .wait_timeout(state, IDLE_TIMEOUT)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.queue.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

type Resolver<T> = Box<dyn FnOnce(Env) -> napi::Result<T>>;

/// Runs `work` on the pool and returns a Promise settled on the JS thread by `finish`, which turns
/// the work's output into a JS value (or a [`Failure`] into the matching JS error).
pub fn promise<'env, W, R, F>(
    env: &'env Env,
    work: impl FnOnce() -> W + Send + 'static,
    finish: F,
) -> napi::Result<Object<'env>>
where
    W: Send + 'static,
    R: ToNapiValue + 'static,
    F: FnOnce(Js, W) -> Result<R, Failure> + Send + 'static,
{
    let (deferred, promise): (JsDeferred<R, Resolver<R>>, Object<'env>) = env.create_deferred()?;
    run_in_pool(move || {
        let output = work();
        deferred.resolve(Box::new(move |env: Env| {
            let js = Js(env.raw());
            finish(js, output).map_err(|failure| failure.into_napi(js))
        }));
    });
    Ok(promise)
}
