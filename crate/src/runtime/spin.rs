//! Short waits for another thread, without a sleep and a wake-up (tens of microseconds each on a
//! small VM). Yielding the core on each turn instead of spinning was measured: it shortened the
//! rare long waits (p99 of a host call inside `call` 135–225 -> 50–80 µs) but doubled the median
//! (8–19 -> 25 µs), so waits spin.

use std::time::{Duration, Instant};

/// Polls `ready` until it returns true (then true) or `limit` has passed (then false).
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        std::hint::spin_loop();
    }
}
