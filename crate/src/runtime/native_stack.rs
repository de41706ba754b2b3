//! How much native stack the current thread has left. wasmtime bounds a guest's stack by
//! `maxWasmStackBytes` counted from where the call enters wasm, not by what the thread has: a
//! `callSync` made deep in a worker's JS recursion (Node gives workers 4 MiB stacks, which JS may
//! nearly fill) let a recursing guest run past the thread's real stack, and the process died of
//! SIGSEGV. A call that could not get its whole wasm stack plus room for host frames is refused
//! before it enters wasm (a StackOverflowError: the guest would have overflowed anyway).

use std::cell::Cell;

use crate::errors::Failure;

/// Stack kept for what runs below the guest's frames: wasmtime's trampolines and libcalls, our
/// host-call frames, and JS host functions called from the guest (V8 stops those at its own limit).
pub const HOST_FRAMES_BYTES: usize = 256 * 1024;

thread_local! {
    /// The lowest address of this thread's stack, found once per thread (0: unknown).
    static STACK_LOW: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Refuses to enter wasm when this thread cannot give the guest `max_wasm_stack` bytes of stack
/// plus [`HOST_FRAMES_BYTES`]. Pool threads always can; a JS thread deep in recursion may not.
pub fn check(max_wasm_stack: usize) -> Result<(), Failure> {
    let needed = max_wasm_stack + HOST_FRAMES_BYTES;
    match remaining() {
        Some(left) if left < needed => Err(Failure::no_native_stack(left, needed)),
        _ => Ok(()),
    }
}

/// Bytes of stack between here and the end of this thread's stack, if the platform says.
pub fn remaining() -> Option<usize> {
    let low = STACK_LOW.with(|cell| {
        let low = cell.get().unwrap_or_else(stack_low);
        cell.set(Some(low));
        low
    });
    let here = std::hint::black_box(0u8);
    let here = &here as *const u8 as usize;
    (low != 0 && here > low).then(|| here - low)
}

#[cfg(target_os = "linux")]
fn stack_low() -> usize {
    // The main thread's stack grows on demand up to RLIMIT_STACK: glibc reports the limit, musl
    // only what is mapped so far, which would refuse every call there. Not checked on musl's main
    // thread, where V8 stops JS at about 1 MiB deep unless `--stack-size` raises it.
    // SAFETY: gettid and getpid only read the calling thread's and process's ids.
    if cfg!(target_env = "musl") && unsafe { libc::gettid() == libc::getpid() } {
        return 0;
    }
    // SAFETY: `attr` is initialised by pthread_getattr_np before it is read and destroyed after.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return 0;
        }
        let mut address: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let found = libc::pthread_attr_getstack(&attr, &mut address, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if found { address as usize } else { 0 }
    }
}

#[cfg(target_os = "macos")]
fn stack_low() -> usize {
    // SAFETY: both calls only read the current thread's own attributes.
    unsafe {
        let thread = libc::pthread_self();
        let high = libc::pthread_get_stackaddr_np(thread) as usize;
        high.saturating_sub(libc::pthread_get_stacksize_np(thread))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn stack_low() -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::remaining;

    #[test]
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    fn a_thread_knows_how_much_stack_it_has_left() {
        let on_a_small_thread = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(remaining)
            .unwrap()
            .join()
            .unwrap();
        let left = on_a_small_thread.expect("Linux and macOS report thread stacks");
        // glibc may give a new thread a cached stack up to 4 times the size asked for (another
        // test's 2 MiB thread, seen in CI): the bound read is the stack the thread really has.
        assert!(left > 512 * 1024 && left <= 4 << 20, "{left}");
    }
}
