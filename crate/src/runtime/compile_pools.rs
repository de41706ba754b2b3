//! The threads a compile spreads its functions over. wasmtime compiles a module's functions in
//! parallel on the rayon pool the compile runs in: left alone, rayon's one pool for the process,
//! which takes work first in, first out. So a 40-byte compile on one engine waited for the
//! functions of every compile other engines had started (probe H51: 9 s behind 60 compiles of
//! 0.3 s each, 22–25 s behind two of 10 s), and a sync compile held its JS thread as long. Each
//! thread that compiles (a compile thread, see `compiles.rs`, or a JS thread compiling
//! synchronously) now has a pool of its own: compiles share the cores as their threads do, each
//! making progress. (Compiling a small input on the calling thread alone, without hand-offs, was
//! slower here: 726 µs for the bench's 145-byte module where its own pool takes 655.)

use std::cell::OnceCell;

use rayon_core::{ThreadPool, ThreadPoolBuilder};

use super::pool::POOL_THREAD_STACK_BYTES;

/// Most threads one pool starts: a compile seldom gains past this, and up to 64 compile threads
/// each keep a pool.
const MAX_THREADS_PER_POOL: usize = 8;

thread_local! {
    /// This thread's pool, made at its first compile (`None` if no thread could be started),
    /// ended with the thread.
    static POOL: OnceCell<Option<ThreadPool>> = const { OnceCell::new() };
}

/// Runs `compile` on this thread's own pool (where wasmtime's parallel work then stays), or here
/// when there is none. The pool's threads have the stack a pool thread of ours has: the checks
/// before a compile and wasmparser's walks recurse.
pub fn in_own_pool<R: Send>(compile: impl FnOnce() -> R + Send) -> R {
    POOL.with(|pool| {
        let pool = pool.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
            ThreadPoolBuilder::new()
                .num_threads(cores.min(MAX_THREADS_PER_POOL))
                .stack_size(POOL_THREAD_STACK_BYTES)
                .thread_name(|_| "airssys-wasm-cranelift".into())
                .build()
                .ok()
        });
        match pool {
            Some(pool) => pool.install(compile),
            None => compile(),
        }
    })
}
