//! JS host functions called from wasm.
//!
//! During `callSync` the guest runs on the JS thread inside our N-API call, so a host function is
//! called directly. During `call` the guest runs on a pool thread: the call is queued to the JS
//! thread through a thread-safe function and the pool thread waits for its outcome (never the
//! other way round: the JS thread never waits for wasm that waits for JS).

use std::ptr;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::ThreadId;

use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status, sys};

use crate::errors::Failure;
use crate::js::{Js, Reference, Value};

/// The JS functions an instance imports, kept alive by references released on the JS thread.
pub struct HostFunctions {
    env: sys::napi_env,
    thread: ThreadId,
    functions: Vec<Reference>,
    dispatcher: Option<Arc<Dispatcher>>,
}

// SAFETY: `env` is only used on the thread recorded in `thread`; elsewhere the references are
// handed to the dispatcher, which releases them on the JS thread.
unsafe impl Send for HostFunctions {}
unsafe impl Sync for HostFunctions {}

impl HostFunctions {
    /// Keeps `functions` alive; creates the dispatcher only when there is something to call.
    pub fn new(js: Js, functions: Vec<Value>) -> napi::Result<Self> {
        let dispatcher = if functions.is_empty() {
            None
        } else {
            Some(Arc::new(Dispatcher::new(js)?))
        };
        Ok(HostFunctions {
            env: js.0,
            thread: std::thread::current().id(),
            functions: functions
                .into_iter()
                .map(|f| js.reference(f))
                .collect::<napi::Result<_>>()?,
            dispatcher,
        })
    }
}

impl Drop for HostFunctions {
    fn drop(&mut self) {
        let functions = std::mem::take(&mut self.functions);
        if std::thread::current().id() == self.thread {
            let js = Js(self.env);
            functions.into_iter().for_each(|f| js.release(f));
        } else if let Some(dispatcher) = &self.dispatcher {
            dispatcher.run(Box::new(move |js| functions.into_iter().for_each(|f| js.release(f))));
        }
    }
}

/// Host-call plumbing of one store.
pub struct HostBridge {
    functions: Arc<HostFunctions>,
    /// Set while a `callSync` runs on the JS thread.
    sync_env: Option<sys::napi_env>,
}

// SAFETY: `sync_env` is set and used only on the JS thread, during a `callSync`.
unsafe impl Send for HostBridge {}

impl HostBridge {
    pub fn new(functions: Arc<HostFunctions>) -> Self {
        HostBridge {
            functions,
            sync_env: None,
        }
    }

    /// Marks the start (Some) or end (None) of a call running on the JS thread.
    pub fn set_sync_env(&mut self, env: Option<Js>) {
        self.sync_env = env.map(|js| js.0);
    }

    /// Calls host function `index` on the JS thread with `job`, which converts arguments, calls,
    /// and converts the outcome there.
    pub fn invoke<R: Send + 'static>(
        &self,
        index: usize,
        job: impl FnOnce(Js, Value) -> Result<R, Failure> + Send + 'static,
    ) -> Result<R, Failure> {
        if let Some(env) = self.sync_env {
            let js = Js(env);
            let function = js
                .dereference(&self.functions.functions[index])
                .map_err(|error| Failure::Internal(error.reason))?;
            return job(js, function);
        }
        let Some(dispatcher) = &self.functions.dispatcher else {
            return Err(Failure::Internal("no host function dispatcher".into()));
        };
        let functions = self.functions.clone();
        let (sender, receiver) = mpsc::sync_channel(1);
        dispatcher.run(Box::new(move |js| {
            let outcome = js
                .dereference(&functions.functions[index])
                .map_err(|error| Failure::Internal(error.reason))
                .and_then(|function| job(js, function));
            // The receiver only goes away if the waiting thread died; nothing to tell then.
            let _ = sender.send(outcome);
        }));
        receiver.recv().unwrap_or_else(|_| {
            Err(Failure::Internal(
                "the JS environment shut down during a host call".into(),
            ))
        })
    }
}

type JsJob = Box<dyn FnOnce(Js) + Send>;

/// Runs Rust closures on the JS thread. Built on napi-rs's thread-safe function, which handles
/// environment teardown (a worker exiting, the process ending) from any thread. It is weak, so it
/// never keeps the event loop alive by itself (the pending call's Promise does).
pub struct Dispatcher(ThreadsafeFunction<JsJob, (), (), Status, false, true>);

impl Dispatcher {
    fn new(js: Js) -> napi::Result<Self> {
        let env = Env::from_raw(js.0);
        let callee = env.create_function_from_closure::<(), (), _>("airssysWasmHostCall", |_| Ok(()))?;
        let tsfn = callee
            .build_threadsafe_function::<JsJob>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|context: ThreadsafeCallContext<JsJob>| {
                let js = Js(context.env.raw());
                (context.value)(js);
                // A JS exception left pending would surface as an uncaught error elsewhere.
                let mut pending = false;
                unsafe { sys::napi_is_exception_pending(js.0, &mut pending) };
                if pending {
                    let mut thrown = ptr::null_mut();
                    unsafe { sys::napi_get_and_clear_last_exception(js.0, &mut thrown) };
                }
                Ok(())
            })?;
        Ok(Dispatcher(tsfn))
    }

    /// Queues `job` for the JS thread. If the environment is closing the job is dropped, which
    /// closes any channel it owns and so wakes whoever waits for it.
    fn run(&self, job: JsJob) {
        self.0.call(job, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// The failure for a host function that threw `thrown`: HostError with the value as `cause`.
pub fn thrown(js: Js, label: &str, thrown: Value) -> Failure {
    let detail = if js.is_error(thrown).unwrap_or(false) {
        js.get(thrown, "message")
            .ok()
            .and_then(|message| js.get_string(message).ok().flatten())
            .unwrap_or_default()
    } else {
        js.describe(thrown)
    };
    Failure::Host {
        message: format!("host function {label} threw: {detail}"),
        cause: js.reference(thrown).ok(),
    }
}

/// The failure for a host function that returned a Promise where we cannot wait for one.
pub fn returned_promise(label: &str) -> Failure {
    Failure::Host {
        message: format!(
            "host function {label} returned a Promise: async host functions are not supported in this version"
        ),
        cause: None,
    }
}
