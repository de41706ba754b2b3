//! Native memory that a JS object keeps alive, reported to V8 as external memory.
//!
//! A compiled module holds megabytes of machine code and an instance its linear memory, while
//! their JS objects are a few dozen bytes: without a report, V8 sees no reason to collect them,
//! and code that drops modules or instances without `dispose()` piles up native memory between
//! garbage collections.

use std::sync::atomic::{AtomicI64, Ordering};

use napi::Env;

use crate::js::Js;

/// What one object has reported; given back when the object is finalized.
#[derive(Default)]
pub struct ExternalMemory(AtomicI64);

impl ExternalMemory {
    /// Reports `bytes` for this object (on its JS thread, once it is handed to JS).
    pub fn report(&self, js: Js, bytes: usize) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.0.store(bytes, Ordering::Relaxed);
        js.adjust_external_memory(bytes);
    }

    /// Gives the report back (from the object's finalizer, or at `dispose()`).
    pub fn release(&self, env: &Env) {
        Js(env.raw()).adjust_external_memory(-self.0.swap(0, Ordering::Relaxed));
    }
}

/// A native class whose objects hold memory outside V8's heap.
pub trait HoldsExternal {
    fn external(&self) -> &ExternalMemory;
    /// The bytes to report now.
    fn external_bytes(&self) -> usize;
}

/// Reports `value`'s memory as it is handed to JS, and returns it.
pub fn reported<T: HoldsExternal>(js: Js, value: T) -> T {
    value.external().report(js, value.external_bytes());
    value
}

/// Implements the finalizer and [`HoldsExternal`] for a `#[napi(custom_finalize)]` class with an
/// `external: ExternalMemory` field; `$bytes` computes the size to report from `$this`.
#[macro_export]
macro_rules! holds_external {
    ($type:ty, |$this:ident| $bytes:expr) => {
        impl napi::bindgen_prelude::ObjectFinalize for $type {
            fn finalize(self, env: napi::Env) -> napi::Result<()> {
                self.external.release(&env);
                Ok(())
            }
        }

        impl $crate::runtime::external::HoldsExternal for $type {
            fn external(&self) -> &$crate::runtime::external::ExternalMemory {
                &self.external
            }

            fn external_bytes(&self) -> usize {
                let $this = self;
                $bytes
            }
        }
    };
}
