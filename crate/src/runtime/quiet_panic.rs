//! Catching a panic we expect from a dependency without Rust's panic hook printing it: wasmparser
//! asserts some of its limits instead of reporting them, and a guest's bytes reach those asserts,
//! so each such input would print a panic report to the host's stderr.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`catch`], whose panics the hook leaves unprinted.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `body`, returning its panic's message instead of unwinding, and printing nothing: the
/// caller reports it. Panics elsewhere are printed as before.
pub fn catch<R>(body: impl FnOnce() -> R) -> Result<R, String> {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.replace(true);
    let caught = panic::catch_unwind(AssertUnwindSafe(body));
    QUIET.set(was);
    caught.map_err(|panic| {
        (panic.downcast_ref::<&str>().map(|text| text.to_string()))
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_its_message_and_the_thread_goes_on() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(catch(|| -> u8 { panic!("at {}", 3) }), Err("at 3".into()));
        assert_eq!(catch(|| -> u8 { panic!("plain") }), Err("plain".into()));
        assert_eq!(catch(|| 8), Ok(8));
    }
}
