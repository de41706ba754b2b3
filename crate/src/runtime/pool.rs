//! Our own thread pool for work off the JS thread.
//!
//! libuv's threadpool (4 threads) also serves fs, dns, zlib and crypto for the whole process, so a
//! long wasm call there would stall unrelated I/O. Our pool grows on demand (a guest may sit in a
//! host call for a long time and must not hold others up), lets idle threads go after a while,
//! and gives every thread a stack big enough for wasmtime's `max_wasm_stack` plus host frames.
//!
//! A thread waiting for the JS thread (a guest's call awaiting a host Promise) does not count
//! against the threads that run jobs: what settles that Promise may itself be a call that needs a
//! thread (a host function calling another instance), and with every thread waiting so, nothing
//! would ever run again. A job for a JS thread that blocks until it ends never queues at all.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use super::spin;
use crate::sync::{lock, wait_timeout};

/// Stack of each pool thread; `maxWasmStackBytes` is capped well below it (engine.rs).
pub const POOL_THREAD_STACK_BYTES: usize = 8 << 20;
/// Threads running jobs, not counting those blocked waiting for the JS thread.
const MAX_RUNNING: usize = 256;
/// Threads in all, blocked ones included; past it jobs queue.
const MAX_THREADS: usize = 1024;
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
    /// Workers inside a job, waiting for the JS thread (see [`Blocked`]).
    blocked: usize,
}

impl PoolState {
    /// Whether queued jobs outnumber the workers free to take them.
    fn wanting(&self) -> bool {
        self.idle < self.queue.len()
    }

    fn may_grow(&self) -> bool {
        self.threads - self.blocked < MAX_RUNNING && self.threads < MAX_THREADS
    }

    fn spawn(&mut self) {
        if spawn_thread("airssys-wasm", worker) {
            self.threads += 1;
            self.idle += 1;
        }
    }
}

/// Starts a thread named `name` running `body`, with the stack every thread that runs or compiles
/// wasm gets ([`POOL_THREAD_STACK_BYTES`]); false if the system refused one.
pub fn spawn_thread(name: &str, body: fn()) -> bool {
    (std::thread::Builder::new()
        .name(name.into())
        .stack_size(POOL_THREAD_STACK_BYTES))
    .spawn(body)
    .is_ok()
}

thread_local! {
    /// Set on the pool's own threads.
    static IN_POOL: Cell<bool> = const { Cell::new(false) };
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            sleeping: 0,
            blocked: 0,
        }),
        wake: Condvar::new(),
        queued: AtomicUsize::new(0),
    })
}

/// Runs `job` on a pool thread. A job that panics ends only itself: the caller's job must catch
/// its own panics to report them (see `task.rs`), the worker survives either way.
pub fn run_in_pool(job: impl FnOnce() + Send + 'static) {
    submit(Box::new(job), false);
}

/// Runs `job` on a pool thread at once, starting one past the pool's bounds if none is free: for
/// a JS thread that blocks until the job ends. Queued, it could wait for threads whose jobs wait
/// for that JS thread. Such jobs are as many as JS threads blocked so.
pub fn run_now(job: impl FnOnce() + Send + 'static) {
    submit(Box::new(job), true);
}

fn submit(job: Job, now: bool) {
    let pool = pool();
    let mut state = lock(&pool.state);
    // First in line: the thread started for it takes the queue's first job, and jobs may be
    // queued already (the pool at its bounds).
    if now {
        state.queue.push_front(job);
    } else {
        state.queue.push_back(job);
    }
    pool.queued.fetch_add(1, Ordering::Release);
    // Start a thread whenever nobody idle is left to take the job.
    if state.wanting() && (now || state.may_grow()) {
        state.spawn();
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

/// While alive: the calling pool thread waits for the JS thread, and a queued job may have a new
/// thread (see the module's comment). Does nothing on other threads.
pub struct Blocked(bool);

impl Blocked {
    pub fn enter() -> Self {
        if !IN_POOL.get() {
            return Blocked(false);
        }
        let pool = pool();
        let mut state = lock(&pool.state);
        state.blocked += 1;
        while state.wanting() && state.may_grow() {
            let before = state.threads;
            state.spawn();
            if state.threads == before {
                break;
            }
        }
        Blocked(true)
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if self.0 {
            lock(&pool().state).blocked -= 1;
        }
    }
}

fn worker() {
    IN_POOL.set(true);
    wasmtime::Engine::tls_eager_initialize();
    let pool = pool();
    loop {
        let mut state = lock(&pool.state);
        if let Some(job) = take(pool, &mut state) {
            drop(state);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            lock(&pool.state).idle += 1;
            spin_for_work(pool);
            continue;
        }
        state.sleeping += 1;
        let (mut state, timeout) = wait_timeout(&pool.wake, state, IDLE_TIMEOUT);
        state.sleeping -= 1;
        if timeout.timed_out() && state.queue.is_empty() {
            state.idle -= 1;
            state.threads -= 1;
            return;
        }
    }
}

fn spin_for_work(pool: &Pool) {
    spin::wait_until(SPIN_BEFORE_SLEEP, || pool.queued.load(Ordering::Acquire) > 0);
}
