//! Where async compiles and validations run: threads of their own, as many as the machine has
//! cores, taking each engine's work in turn.
//!
//! In the pool that runs calls (`pool.rs`, up to 256 running jobs), a burst of 300 compiles on one
//! engine took 256 threads, and another engine's `call`, whose deadline counts from when it gets a
//! thread, waited 2–13 s behind them (probe Z49). Compiles are work for the cores, not waits: more
//! of them at once than there are cores only shares the cores (Cranelift spreads each one over
//! them itself), so they queue here, and a call never waits for one. The queue is per engine,
//! served in turn, so that one engine's burst delays another engine's compile by one compile,
//! not by the burst.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use super::pool::POOL_THREAD_STACK_BYTES;

type Job = Box<dyn FnOnce() + Send>;

/// How long an idle compile thread waits for work before it ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

struct Compiles {
    state: Mutex<State>,
    wake: Condvar,
    /// Threads at most: the machine's cores.
    limit: usize,
}

#[derive(Default)]
struct State {
    /// Each engine with work waiting (by its key), in the order they are served.
    engines: VecDeque<(usize, VecDeque<Job>)>,
    threads: usize,
    idle: usize,
}

impl State {
    /// The next job: the first engine's oldest, that engine then going to the back of the line.
    fn take(&mut self) -> Option<Job> {
        let (engine, mut jobs) = self.engines.pop_front()?;
        let job = jobs.pop_front();
        if !jobs.is_empty() {
            self.engines.push_back((engine, jobs));
        }
        job
    }
}

fn compiles() -> &'static Compiles {
    static COMPILES: OnceLock<Compiles> = OnceLock::new();
    COMPILES.get_or_init(|| Compiles {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        limit: std::thread::available_parallelism().map_or(2, |cores| cores.get()),
    })
}

/// Runs `job` on a compile thread, after the work `engine` (any key that tells engines apart)
/// queued before it, and in turn with other engines' work. A job that panics ends only itself
/// (the caller's job catches its own panics to report them, see `task.rs`).
pub fn run_compile(engine: usize, job: impl FnOnce() + Send + 'static) {
    let compiles = compiles();
    let mut state = compiles.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match state.engines.iter_mut().find(|(key, _)| *key == engine) {
        Some((_, jobs)) => jobs.push_back(Box::new(job)),
        None => state
            .engines
            .push_back((engine, VecDeque::from([Box::new(job) as Job]))),
    }
    if state.idle == 0 && state.threads < compiles.limit {
        let spawned = std::thread::Builder::new()
            .name("airssys-wasm-compile".into())
            .stack_size(POOL_THREAD_STACK_BYTES)
            .spawn(worker);
        if spawned.is_ok() {
            state.threads += 1;
            return;
        }
    }
    drop(state);
    compiles.wake.notify_one();
}

fn worker() {
    let compiles = compiles();
    let mut state = compiles.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        if let Some(job) = state.take() {
            drop(state);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            state = compiles.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            continue;
        }
        state.idle += 1;
        let (next, timeout) = compiles
            .wake
            .wait_timeout(state, IDLE_TIMEOUT)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.engines.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, mpsc};

    #[test]
    fn engines_are_served_in_turn_and_at_most_a_core_s_worth_at_once() {
        let limit = compiles().limit;
        // Every compile thread held by engine 3, so that what follows queues.
        let (started, running) = mpsc::channel();
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        for _ in 0..limit {
            let (started, gate) = (started.clone(), gate.clone());
            run_compile(3, move || {
                started.send(()).unwrap();
                let _ = gate.lock().unwrap().recv();
            });
        }
        for _ in 0..limit {
            running.recv().unwrap();
        }
        // Engine 1 queues a burst, then engine 2 one job: it runs second, not twenty-first.
        let (sent, received) = mpsc::channel();
        for index in 0..20 {
            let sent = sent.clone();
            run_compile(1, move || sent.send((1, index)).unwrap());
        }
        run_compile(2, move || sent.send((2, 0)).unwrap());
        assert!(compiles().state.lock().unwrap().threads <= limit);
        for _ in 0..limit {
            release.send(()).unwrap();
        }
        let order: Vec<(u32, i32)> = (0..21).map(|_| received.recv().unwrap()).collect();
        let second = order.iter().position(|&(engine, _)| engine == 2).unwrap();
        assert!(second <= limit, "{order:?}");
    }
}
