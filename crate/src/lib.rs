//! airssys-wasm: a Node.js addon over Wasmtime. docs/ARCHITECTURE.md describes the layers, the
//! life of a call and which file owns which rule.

#![deny(clippy::all)]

pub mod allocator;
pub mod binary;
pub mod bulk_chunks;
pub mod cache;
pub mod call;
pub mod compile_cost;
pub mod compiled;
pub mod component;
pub mod convert;
pub mod engine;
pub mod errors;
pub mod func;
pub mod instance;
pub mod js;
pub mod limits;
pub mod linker;
pub mod live_locals;
pub mod metrics;
pub mod module;
pub mod names;
pub mod options;
pub mod plugin_claims;
pub mod runtime;
pub mod store;
pub mod sync;
pub mod trap;
pub mod type_checks;
pub mod wasi;
pub mod wasi_http;
pub mod wasi_p1_io;
pub mod wasi_p2_writes;
pub mod wasi_stdio;
pub mod wasi_symlink;
