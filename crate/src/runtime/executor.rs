//! Runs a guest call that may wait (WASI clocks, polls, stdio, files) as a future on the calling
//! thread, and gives up on it at the call's deadline or abort: dropping wasmtime's future unwinds
//! the guest's fiber, so a guest asleep in WASI cannot outlive its deadline.
//!
//! The future runs on the calling thread (a pool thread; the JS thread for a `callSync` whose
//! guest imports no JS function), inside one tokio runtime shared by the process: wasmtime-wasi's
//! async WASI needs tokio's timers and blocking threads. One runtime, not one per thread, so that
//! the blocking threads are one bounded set: each thread's own pool kept as many idle threads as
//! its busiest moment needed (tokio wakes idle threads in turn, so steady work kept them all),
//! and a guest blocked in a syscall (a FIFO in a preopen) held one more thread for good, without
//! a bound.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::runtime::abort::{Abort, FiberGuard, Subscription};

/// How a waited-for call ended.
pub enum Outcome<T> {
    Done(T),
    TimedOut,
    Aborted,
}

/// How often a waiting call on a worker's JS thread probes for the worker's termination.
const ABORT_POLL: Duration = Duration::from_millis(5);

/// Threads for blocking file and stdio work, shared by every guest. Past it, work queues: when
/// all are blocked in syscalls that never return, file work in the process waits (SECURITY.md).
const BLOCKING_THREADS: usize = 64;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // One worker drives the timers and runs what WASI spawns (its streams' background work);
        // guests' futures run on their callers' threads.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("airssys-wasm-io")
            .enable_time()
            .build()
            .expect("a tokio runtime with timers")
    })
}

/// Drives `future` to completion, unless `deadline` passes or `abort` is set first (the future
/// is then dropped unfinished).
pub fn block_on<F: Future>(future: F, deadline: Option<Instant>, abort: &Abort) -> Outcome<F::Output> {
    runtime().block_on(async {
        let mut future = pin!(future);
        let mut timer = pin!(tokio::time::sleep_until(
            deadline.map_or_else(far_future, tokio::time::Instant::from_std)
        ));
        let mut ticks = tokio::time::interval(ABORT_POLL);
        // An abort wakes the task; only a worker's blocked JS thread has to look now and then.
        let mut woken_on_abort: Option<(Waker, [Option<Subscription>; 2])> = None;
        std::future::poll_fn(|context| {
            let polled = {
                let _fiber = FiberGuard::enter();
                future.as_mut().poll(context)
            };
            if let Poll::Ready(output) = polled {
                return Poll::Ready(Outcome::Done(output));
            }
            if deadline.is_some() && timer.as_mut().poll(context).is_ready() {
                return Poll::Ready(Outcome::TimedOut);
            }
            if abort.is_armed() {
                if !woken_on_abort
                    .as_ref()
                    .is_some_and(|(waker, _)| waker.will_wake(context.waker()))
                {
                    woken_on_abort = Some((context.waker().clone(), abort.subscribe(context.waker())));
                }
                if abort.is_set() {
                    return Poll::Ready(Outcome::Aborted);
                }
                if abort.needs_polling() {
                    // Registers the waker for the next probe.
                    while ticks.poll_tick(context).is_ready() {}
                }
            }
            Poll::Pending
        })
        .await
    })
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Gives the call's deadline and abort a look, from a host function in the middle of long work
/// (a WASI call moving a large buffer a piece at a time): the future is pending once, woken at
/// once, and [`block_on`] ends it there when its time is up.
pub async fn let_deadline_in() {
    let mut looked = false;
    std::future::poll_fn(|context| {
        if std::mem::replace(&mut looked, true) {
            return Poll::Ready(());
        }
        context.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
