//! Keeps the addon's library loaded until the process ends.
//!
//! Node unloads an addon (`dlclose`, `FreeLibrary`) when the last environment that loaded it
//! ends; in a process whose main thread never loads it, that is the end of a worker thread. Parts
//! of the addon outlive any one environment: the pool's threads, the epoch ticker, WASI's runtime,
//! and the thread-local destructors that Rust's std and mimalloc register for each thread that
//! used them (the ending worker's own among them, run after the unload). Any of them running code
//! of an unmapped library crashes the whole process, so the first environment to load the addon
//! marks the library as never to be unloaded.

use std::sync::Once;

use napi::bindgen_prelude::Object;
use napi_derive::napi;

/// Runs when an environment (the main thread or a worker) loads the addon.
#[napi(module_exports)]
pub fn stay_resident(_exports: Object) {
    static PINNED: Once = Once::new();
    // Best effort: a library that cannot be pinned still works in every process whose main
    // thread also loads it, as Node then never unloads it.
    PINNED.call_once(pin);
}

/// Any address inside this library's image.
fn inside_this_library() -> *const std::ffi::c_void {
    stay_resident as *const std::ffi::c_void
}

/// Opens the loaded library again with `RTLD_NODELETE` (`RTLD_NOLOAD`: only if it is the one
/// already loaded), which makes every later `dlclose` leave it mapped; the handle is never closed.
#[cfg(unix)]
fn pin() {
    // SAFETY: `dladdr` fills `info` for an address inside a loaded object; the file name it
    // gives stays valid while that object is loaded, which it is (this code runs from it).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(inside_this_library(), &mut info) != 0 && !info.dli_fname.is_null() {
            libc::dlopen(
                info.dli_fname,
                libc::RTLD_LAZY | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
            );
        }
    }
}

/// Takes a reference to this module with `GET_MODULE_HANDLE_EX_FLAG_PIN`: it then stays loaded
/// until the process ends, whatever `FreeLibrary` is called.
#[cfg(windows)]
fn pin() {
    const GET_MODULE_HANDLE_EX_FLAG_PIN: u32 = 0x1;
    const GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS: u32 = 0x4;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn GetModuleHandleExW(flags: u32, name: *const u16, module: *mut *mut std::ffi::c_void) -> i32;
    }
    let mut module = std::ptr::null_mut();
    // SAFETY: with FROM_ADDRESS, `name` is an address inside a loaded module (this one).
    unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_PIN | GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
            inside_this_library().cast(),
            &mut module,
        );
    }
}

#[cfg(not(any(unix, windows)))]
fn pin() {}
