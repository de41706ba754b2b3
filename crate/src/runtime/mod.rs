//! What runs around the guest: our thread pool, the way back to the JS thread, Promise-returning
//! tasks, the bridge to JS host functions, native memory reported to V8, compile children a
//! terminated worker leaves, and the library staying loaded for the life of the process.

pub mod abort;
pub mod children;
pub mod compile_pools;
pub mod compiles;
pub mod dispatcher;
pub mod executor;
pub mod external;
pub mod host_bridge;
pub mod native_stack;
pub mod pool;
pub mod quiet_panic;
pub mod resident;
pub mod spin;
pub mod task;
