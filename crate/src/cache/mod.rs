//! Caches of compiled and linked code: wasmtime artifacts on disk, linked `InstancePre`s in memory.

mod dir;
pub mod disk;
pub mod in_use;
pub mod pre;
