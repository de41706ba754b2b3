//! Linked, type-checked instantiation recipes (wasmtime's `InstancePre`), kept per compiled module
//! or component and reused for every instantiation with the same link plan.
//!
//! Building a linker is the expensive part of instantiating anything that imports WASI (hundreds
//! of functions registered and type-checked each time); the plan (which imports JS provides, and
//! whether WASI serves the rest) is all that decides the result, because host functions find their
//! JS function through the store, not through the linker.

use std::sync::Mutex;

use crate::errors::Failure;
use crate::sync::lock;

/// Distinct plans kept per module: instances of one module are normally linked the same way, a
/// few different ways at most; beyond that the oldest plan is rebuilt when it comes back.
const MAX_PLANS: usize = 8;

pub struct PreCache<Plan, Pre> {
    entries: Mutex<Vec<(Plan, Pre)>>,
}

impl<Plan: Eq, Pre: Clone> PreCache<Plan, Pre> {
    pub fn new() -> Self {
        PreCache {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The recipe for `plan`, built by `build` the first time. Building happens under the lock, so
    /// concurrent instantiations of one module build it once.
    pub fn get_or_build(&self, plan: Plan, build: impl FnOnce(&Plan) -> Result<Pre, Failure>) -> Result<Pre, Failure> {
        let mut entries = lock(&self.entries);
        if let Some((_, pre)) = entries.iter().find(|(known, _)| *known == plan) {
            return Ok(pre.clone());
        }
        let pre = build(&plan)?;
        if entries.len() == MAX_PLANS {
            entries.remove(0);
        }
        entries.push((plan, pre.clone()));
        Ok(pre)
    }
}

impl<Plan: Eq, Pre: Clone> Default for PreCache<Plan, Pre> {
    fn default() -> Self {
        Self::new()
    }
}
