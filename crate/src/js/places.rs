//! How many handles hold each host object, counted by the JS layer (lib/util/places.ts) across
//! the thread's instances: one object a host function gave the guest as `own` more than once is
//! disposed once, when its last handle goes.

use super::failure::ask;
use super::{Js, Value};

/// How a handle to a host object went (see lib/util/places.ts).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Let {
    /// The guest dropped it (or its instance went, or the host gave the value holding it up).
    Dropped,
    /// A loan ended: a borrow, or a call that never started.
    GivenBack,
    /// Returned to JS as `own`: the object is JS's.
    Returned,
    /// An object the host gave up that never got a handle.
    GivenUp,
}

impl Let {
    fn name(self) -> &'static str {
        match self {
            Let::Dropped => "dropped",
            Let::GivenBack => "given-back",
            Let::Returned => "returned",
            Let::GivenUp => "given-up",
        }
    }
}

/// Counts a handle made for the host object `value`.
pub fn place(js: Js, value: Value) {
    let _ = ask(js, "place", &[value]);
}

/// Whether the `[Symbol.dispose]` of `value` is due now that one of its handles went `how`.
/// Without the JS layer (the binding used alone), as if nothing else held it.
pub fn unplace(js: Js, value: Value, how: Let) -> bool {
    let asked = js
        .string(how.name())
        .ok()
        .and_then(|name| ask(js, "unplace", &[value, name]))
        .and_then(|due| js.get_bool(due).ok());
    asked.unwrap_or(matches!(how, Let::Dropped | Let::GivenUp))
}
