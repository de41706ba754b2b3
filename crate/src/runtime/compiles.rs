//! Where async compiles and validations run: threads of their own, apart from the pool that runs
//! calls, each engine running at most as many at once as the machine has cores.
//!
//! In the pool that runs calls (`pool.rs`, up to 256 running jobs), a burst of 300 compiles on one
//! engine took 256 threads, and another engine's `call`, whose deadline counts from when it gets a
//! thread, waited 2–13 s behind them (probe Z49). Compiles are work for the cores, not waits: more
//! of one engine's at once than there are cores only shares the cores (Cranelift spreads each one
//! over them itself), so an engine's further compiles queue here, and a call never waits for one.
//! Another engine's compile does not queue behind them: it gets a thread of its own, so that even
//! compiles that take a minute each (SECURITY.md, finding 49's open shapes) delay other engines'
//! by their share of the cores only.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use super::pool::spawn_thread;
use crate::sync::{lock, wait_timeout};

type Job = Box<dyn FnOnce() + Send>;

/// How long an idle compile thread waits for work before it ends.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Compile threads in all, every engine together: past it, compiles queue whatever their engine.
const MAX_THREADS: usize = 64;

struct Compiles {
    state: Mutex<State>,
    wake: Condvar,
    /// Most compiles one engine runs at once: the machine's cores.
    per_engine: usize,
}

/// One engine's compiles: those waiting, and how many run.
struct Queue {
    engine: usize,
    jobs: VecDeque<Job>,
    running: usize,
}

#[derive(Default)]
struct State {
    /// Each engine with compiles waiting or running, in the order they are served.
    engines: VecDeque<Queue>,
    threads: usize,
    idle: usize,
}

impl State {
    fn runnable(&self, per_engine: usize) -> Option<usize> {
        (self.engines.iter()).position(|queue| !queue.jobs.is_empty() && queue.running < per_engine)
    }

    /// The next compile to run: the oldest of the first engine that may run one more, that engine
    /// then going to the back of the line.
    fn take(&mut self, per_engine: usize) -> Option<(usize, Job)> {
        let mut queue = self.engines.remove(self.runnable(per_engine)?)?;
        let job = queue.jobs.pop_front()?;
        queue.running += 1;
        let engine = queue.engine;
        self.engines.push_back(queue);
        Some((engine, job))
    }

    fn done(&mut self, engine: usize) {
        let Some(index) = self.engines.iter().position(|queue| queue.engine == engine) else {
            return;
        };
        let queue = &mut self.engines[index];
        queue.running -= 1;
        if queue.running == 0 && queue.jobs.is_empty() {
            self.engines.remove(index);
        }
    }
}

fn compiles() -> &'static Compiles {
    static COMPILES: OnceLock<Compiles> = OnceLock::new();
    COMPILES.get_or_init(|| Compiles {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        per_engine: std::thread::available_parallelism().map_or(2, |cores| cores.get()),
    })
}

/// Runs `job` on a compile thread, after the compiles `engine` (any key that tells engines apart)
/// queued before it, and beside other engines' compiles. A job that panics ends only itself (the
/// caller's job catches its own panics to report them, see `task.rs`).
pub fn run_compile(engine: usize, job: impl FnOnce() + Send + 'static) {
    let compiles = compiles();
    let mut state = lock(&compiles.state);
    match state.engines.iter_mut().find(|queue| queue.engine == engine) {
        Some(queue) => queue.jobs.push_back(Box::new(job)),
        None => state.engines.push_back(Queue {
            engine,
            jobs: VecDeque::from([Box::new(job) as Job]),
            running: 0,
        }),
    }
    let runnable = state.runnable(compiles.per_engine).is_some();
    if runnable && state.idle == 0 && state.threads < MAX_THREADS && spawn_thread("airssys-wasm-compile", worker) {
        state.threads += 1;
        return;
    }
    drop(state);
    if runnable {
        compiles.wake.notify_one();
    }
}

fn worker() {
    let compiles = compiles();
    let mut state = lock(&compiles.state);
    loop {
        if let Some((engine, job)) = state.take(compiles.per_engine) {
            drop(state);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            state = lock(&compiles.state);
            state.done(engine);
            continue;
        }
        state.idle += 1;
        let (next, timeout) = wait_timeout(&compiles.wake, state, IDLE_TIMEOUT);
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.runnable(compiles.per_engine).is_none() {
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
    fn an_engine_runs_a_core_s_worth_at_once_and_others_beside_it() {
        let per_engine = compiles().per_engine;
        // Engine 3 runs as many as it may, each held until released, and queues one more.
        let (started, running) = mpsc::channel();
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        for index in 0..=per_engine {
            let (started, gate) = (started.clone(), gate.clone());
            run_compile(3, move || {
                started.send(index).unwrap();
                let _ = gate.lock().unwrap().recv();
            });
        }
        let mut first: Vec<usize> = (0..per_engine).map(|_| running.recv().unwrap()).collect();
        first.sort_unstable();
        assert_eq!(first, (0..per_engine).collect::<Vec<_>>());
        // Engine 2's compile runs beside them; engine 3's last waits for one of its own to end.
        let (sent, received) = mpsc::channel();
        run_compile(2, move || sent.send(2).unwrap());
        assert_eq!(received.recv_timeout(Duration::from_secs(10)), Ok(2));
        assert!(running.recv_timeout(Duration::from_millis(100)).is_err());
        release.send(()).unwrap();
        assert_eq!(running.recv_timeout(Duration::from_secs(10)), Ok(per_engine));
        for _ in 0..per_engine {
            release.send(()).unwrap();
        }
    }
}
