//! The addon's memory allocator: mimalloc's v2 line.
//!
//! Component values live in many small allocations (wasmtime's `Val` tree: a box per payload, a
//! string per case name), made and freed on every call; glibc's allocator spent about a third of
//! a large structured call in malloc and free (BENCHMARKING.md, issue 16).
//!
//! Why v2 and not v3: mimalloc takes the first thread that uses it for the process's main thread.
//! When the addon is loaded in a worker first (a process whose main thread never loads it), v3
//! tears its main heap down as that worker ends, and the next thread to allocate crashes the
//! process (`__test__/integration/worker-only.mjs`). v2 survives it. v2 also hands freed pages
//! back to the OS after 10 ms, where v3 waits a second, which kept about 20 MiB more resident
//! under the soak's load (RELIABILITY.md); `MIMALLOC_PURGE_DELAY` in the environment still wins.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(test)]
mod tests {
    use std::ffi::{c_int, c_long};

    /// `mi_option_purge_delay` in mimalloc.h.
    const PURGE_DELAY: c_int = 15;

    unsafe extern "C" {
        fn mi_option_get(option: c_int) -> c_long;
    }

    #[test]
    fn freed_pages_go_back_after_10_ms_unless_the_environment_says_otherwise() {
        // SAFETY: a plain call into the allocator linked into this library; options are atomics
        // inside mimalloc, safe to read from any thread.
        let delay = unsafe { mi_option_get(PURGE_DELAY) };
        match std::env::var("MIMALLOC_PURGE_DELAY") {
            Ok(chosen) => assert_eq!(delay.to_string(), chosen),
            Err(_) => assert_eq!(delay, 10),
        }
    }
}
