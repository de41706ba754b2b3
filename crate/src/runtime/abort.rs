//! What stops a call before its deadline: its AbortSignal, and the end of the worker thread that
//! issued it. A worker that is terminated cannot tell us itself: its JS thread may be inside our
//! `callSync`, where V8's termination request goes unseen, and its AbortSignals die with it, so a
//! call it left running on a pool thread would run (and burn a core) for the life of the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::js::Js;
use crate::runtime::dispatcher;

/// The abort sources of one call. Cheap to clone; checked on every epoch tick of a call that has
/// one, and by every wait the call makes.
#[derive(Clone, Default)]
pub struct Abort {
    signal: Option<Arc<AtomicBool>>,
    /// Set when the worker environment that issued the call goes away (`None` on the main thread,
    /// whose end is the end of the process).
    environment: Option<Arc<AtomicBool>>,
}

impl Abort {
    /// The abort sources every call issued from this JS environment has.
    pub fn of_environment(js: Js) -> Self {
        Abort {
            signal: None,
            environment: dispatcher::stopping_flag(js),
        }
    }

    /// These sources plus the call's own AbortSignal (its native flag).
    pub fn with_signal(&self, signal: Option<Arc<AtomicBool>>) -> Self {
        Abort {
            signal: signal.or_else(|| self.signal.clone()),
            environment: self.environment.clone(),
        }
    }

    /// Whether the call has an AbortSignal of its own.
    pub fn has_signal(&self) -> bool {
        self.signal.is_some()
    }

    /// Whether anything can abort the call: it then needs the epoch ticker and polling waits.
    pub fn is_armed(&self) -> bool {
        self.signal.is_some() || self.environment.is_some()
    }

    /// Whether the call must stop now. On a worker's JS thread this first asks Node whether the
    /// worker is being terminated.
    pub fn is_set(&self) -> bool {
        if let Some(environment) = &self.environment {
            dispatcher::probe_termination();
            if environment.load(Ordering::Acquire) {
                return true;
            }
        }
        self.signal.as_ref().is_some_and(|flag| flag.load(Ordering::Acquire))
    }
}
