//! What runs around the guest: our thread pool, the way back to the JS thread, Promise-returning
//! tasks, the bridge to JS host functions, and native memory reported to V8.

pub mod abort;
pub mod dispatcher;
pub mod executor;
pub mod external;
pub mod host_bridge;
pub mod pool;
pub mod spin;
pub mod task;
