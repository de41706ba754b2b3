//! The addon's memory allocator: mimalloc, with freed memory handed back to the OS sooner than
//! mimalloc's default.

use std::ffi::{c_int, c_long};
use std::sync::Once;

/// Component values live in many small allocations (wasmtime's `Val` tree: a box per payload, a
/// string per case name), made and freed on every call; glibc's allocator spent about a third of
/// a large structured call in malloc and free (BENCHMARKING.md, issue 16).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h: the same index in mimalloc v2 and v3 (retired options
/// keep their slots).
const PURGE_DELAY: c_int = 15;
/// mimalloc v3's own default for it, in milliseconds.
const MIMALLOC_DEFAULT_PURGE_DELAY_MS: c_long = 1000;
/// How long freed pages stay with the allocator before they go back to the OS. mimalloc's default
/// of one second kept about 20 MiB more resident under the soak's load (RELIABILITY.md); 0 makes
/// every large buffer that a call frees come back as fresh zeroed pages on the next call (a 1 MiB
/// `list<u8>` round trip went from ~0.23 to ~1.1-1.6 ms). 10 ms keeps both.
const PURGE_DELAY_MS: c_long = 10;

unsafe extern "C" {
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
}

/// Sets the purge delay once per process, unless `MIMALLOC_PURGE_DELAY` in the environment already
/// chose one (mimalloc reads it on the first `mi_option_get`).
pub fn tune() {
    static TUNED: Once = Once::new();
    TUNED.call_once(|| {
        if purge_delay_ms() == MIMALLOC_DEFAULT_PURGE_DELAY_MS {
            // SAFETY: as in `purge_delay_ms`.
            unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
        }
    });
}

/// The purge delay in force, in milliseconds.
fn purge_delay_ms() -> c_long {
    // SAFETY: a plain call into the allocator linked into this library; options are atomics
    // inside mimalloc, safe to read and set from any thread at any time.
    unsafe { mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tune_sets_the_purge_delay_unless_the_environment_chose_one() {
        let chosen = std::env::var("MIMALLOC_PURGE_DELAY").ok();
        tune();
        match chosen {
            None => assert_eq!(purge_delay_ms(), PURGE_DELAY_MS),
            Some(value) => assert_eq!(purge_delay_ms().to_string(), value),
        }
    }
}
