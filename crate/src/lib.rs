//! airssys-wasm: a Node.js addon over Wasmtime. See DESIGN.md for the contract.

#![deny(clippy::all)]

pub mod call;
pub mod component;
pub mod convert;
pub mod disk_cache;
pub mod engine;
pub mod errors;
pub mod external;
pub mod host;
pub mod instance;
pub mod js;
pub mod limits;
pub mod module;
pub mod pre_cache;
pub mod store;
pub mod tasks;
pub mod trap;
pub mod wasi;
