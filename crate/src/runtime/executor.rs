//! Runs a guest call that may wait (WASI clocks, polls, stdio, files) as a future on the calling
//! thread, and gives up on it at the call's deadline or abort: dropping wasmtime's future unwinds
//! the guest's fiber, so a guest asleep in WASI cannot outlive its deadline.
//!
//! Each thread that runs such calls (pool threads; the JS thread for a `callSync` whose guest
//! imports no JS function) has its own single-threaded tokio runtime: wasmtime-wasi's async WASI
//! needs tokio's timers and blocking pool.

use std::future::Future;
use std::pin::pin;
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

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a single-threaded tokio runtime with timers");
}

/// Drives `future` to completion, unless `deadline` passes or `abort` is set first (the future
/// is then dropped unfinished).
pub fn block_on<F: Future>(future: F, deadline: Option<Instant>, abort: &Abort) -> Outcome<F::Output> {
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
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
    })
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}
