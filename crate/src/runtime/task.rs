//! Promise-returning operations: the work runs on the pool, the Promise settles on the JS thread.
//! Every such Promise settles, even when the work or its conversion panics (ERR_WASM_INTERNAL).

use std::panic::{AssertUnwindSafe, catch_unwind};

use napi::Env;
use napi::bindgen_prelude::ToNapiValue;

use super::compiles::run_compile;
use super::dispatcher::{dispatcher, hold, stopping_flag};
use super::pool::run_in_pool;
use crate::errors::Failure;
use crate::js::{Js, Raw};

/// Runs `work` on the pool and returns a Promise settled on the JS thread by `finish`, which turns
/// the work's output into a JS value (or a [`Failure`] into the matching JS error).
pub fn promise<W, R, F>(env: &Env, work: impl FnOnce() -> W + Send + 'static, finish: F) -> napi::Result<Raw>
where
    W: Send + 'static,
    R: ToNapiValue + 'static,
    F: FnOnce(Js, W) -> Result<R, Failure> + Send + 'static,
{
    settled(env, run_in_pool, work, finish)
}

/// [`promise`] for a compile or validation of `engine` (the engine's address): on the compile
/// threads, in turn with other engines' (see `compiles.rs`), never in the pool that runs calls.
/// A terminated worker's compiles still queued never start: nothing is left to take their code,
/// and they held the cores for seconds (probe H51: 60 queued ran 20 s after the terminate).
pub fn compile_promise<W, R, F>(
    env: &Env,
    engine: usize,
    work: impl FnOnce() -> W + Send + 'static,
    finish: F,
) -> napi::Result<Raw>
where
    W: Send + 'static,
    R: ToNapiValue + 'static,
    F: FnOnce(Js, W) -> Result<R, Failure> + Send + 'static,
{
    let stopping = stopping_flag(Js(env.raw()));
    let run = move |job: Box<dyn FnOnce() + Send>| {
        run_compile(engine, move || {
            if !stopping.is_some_and(|flag| flag.is_raised()) {
                job();
            }
        })
    };
    settled(env, run, work, finish)
}

fn settled<W, R, F>(
    env: &Env,
    run: impl FnOnce(Box<dyn FnOnce() + Send>),
    work: impl FnOnce() -> W + Send + 'static,
    finish: F,
) -> napi::Result<Raw>
where
    W: Send + 'static,
    R: ToNapiValue + 'static,
    F: FnOnce(Js, W) -> Result<R, Failure> + Send + 'static,
{
    let js = Js(env.raw());
    let dispatcher = dispatcher(js)?;
    let (deferred, promise) = js.deferred()?;
    hold(js, true);
    run(Box::new(move || {
        let output = catch_unwind(AssertUnwindSafe(work)).map_err(Failure::panicked);
        dispatcher.run(Box::new(move |js| {
            let outcome = output.and_then(|output| {
                catch_unwind(AssertUnwindSafe(|| finish(js, output)))
                    .unwrap_or_else(|panic| Err(Failure::panicked(panic)))
            });
            let value = outcome.and_then(|value| Ok(js.convert(value)?));
            match value {
                Ok(value) => js.resolve(deferred, value),
                Err(failure) => js.reject(deferred, failure.to_js_or_internal(js)),
            }
            hold(js, false);
        }));
    }));
    Ok(Raw(promise))
}
