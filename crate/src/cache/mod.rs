//! Caches of compiled and linked code: wasmtime artifacts on disk, linked `InstancePre`s in memory.

pub mod disk;
pub mod pre;
