//! A component [`Instance`](wasmtime::component::Instance) in its own store, as a JS class (the
//! same class shape as a core instance: see `instance.rs`).

crate::instance_class!(
    "An instantiated component.",
    NativeComponentInstance,
    super::func::ExportFunc
);
