//! airssys-wasm: a Node.js addon over Wasmtime. docs/ARCHITECTURE.md describes the layers, the
//! life of a call and which file owns which rule.

#![deny(clippy::all)]

pub mod binary;
pub mod cache;
pub mod call;
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
pub mod metrics;
pub mod module;
pub mod names;
pub mod options;
pub mod runtime;
pub mod store;
pub mod trap;
pub mod wasi;
pub mod wasi_http;

/// Component values live in many small allocations (wasmtime's `Val` tree: a box per payload, a
/// string per case name), made and freed on every call; glibc's allocator spent about a third of
/// a large structured call in malloc and free (BENCHMARKING.md, issue 16).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
