//! What core modules and components share once compiled: compiling and loading them (through the
//! on-disk cache), their export table, and instantiating them (JS imports resolved on the JS
//! thread, linking reused per link plan, the store created under the instance's limits). Each
//! kind says how it differs through [`Kind`]; `module.rs` and `component.rs` are the two kinds.

use std::borrow::Cow;
use std::sync::Arc;

use napi::JsValue;
use napi::bindgen_prelude::Unknown;
use wasmtime::Store;

use crate::binary::{self, Binary};
use crate::cache::disk::{self, Artifact};
use crate::cache::pre::PreCache;
use crate::call::{Export, Exports};
use crate::compile_cost;
use crate::component::resources::Resources;
use crate::component::wasi_served::WasiImports;
use crate::engine::EngineShared;
use crate::errors::{self, Failure};
use crate::js::{Js, Value};
use crate::limits;
use crate::options::NativeInstanceOptions;
use crate::runtime::abort::AbortFlag;
use crate::runtime::host_bridge::{HostBridge, HostFunctions, HttpClientOptions, Relay, serve_js_while};
use crate::runtime::{compile_pools, quiet_panic};
use crate::store::{self, Budget, HostState, Live, Slot, StoreFuture};
use crate::wasi::NativeWasiOptions;
use crate::wasi::{Output, WasiState};

/// One kind of compiled wasm: a core module or a component.
pub trait Kind: Sized + Send + Sync + 'static {
    /// wasmtime's compiled code (`Module` or `Component`).
    type Code: Artifact + Send + Sync + 'static;
    /// wasmtime's instance.
    type Instance: Send + 'static;
    type Export: Export<Instance = Self::Instance>;
    /// How the imports are served; equal plans link equally.
    type Plan: Clone + Eq + Send + 'static;
    /// wasmtime's linked instantiation recipe.
    type Pre: Clone + Send + Sync + 'static;
    /// The JS class of an instance.
    type Native: Send + 'static;

    const BINARY: Binary;
    /// "module" or "component", for messages.
    const NOUN: &'static str;
    /// What to say when given the other kind of binary.
    const WRONG_KIND: &'static str;
    /// wasmtime refuses to enter a component instance again after a trap.
    const POISON_ON_TRAP: bool;

    fn exports(code: &Self::Code) -> Exports<Self::Export>;
    /// How many times more host memory than wasmtime's hostcall fuel counts a lift of this code's
    /// values may take (see `component::convert::lift_ratio`), or more time than a copy of as many
    /// bytes (see [`crate::limits::TRANSCODING_RATIO`]): the fuel is divided by it. `binary`: what
    /// the code was compiled from, when known.
    fn lift_ratio(code: &Self::Code, engine: &wasmtime::Engine, binary: Option<&[u8]>) -> usize;
    /// Whether the code imports WASI (WASI is linked only then).
    fn wasi_imports(code: &Self::Code) -> WasiImports;
    /// The store's WASI state for these options, for an instance whose memories may hold `memory_bytes`.
    fn wasi(options: &NativeWasiOptions, memory_bytes: usize) -> Result<(WasiState, Output), Failure>;
    /// Finds the JS function for every import (on the JS thread): the plan and those functions in
    /// host-function index order.
    fn resolve(
        js: Js,
        code: &Self::Code,
        imports: Option<Value>,
        wasi: &WasiImports,
        with_wasi: bool,
    ) -> Result<(Self::Plan, Vec<Value>), Failure>;
    fn link(code: &Self::Code, plan: &Self::Plan) -> Result<Self::Pre, Failure>;
    /// How many host-implemented resource types `plan` links (`None`: the kind has no resources).
    fn host_resources(plan: &Self::Plan) -> Option<u32>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self::Instance>;
    /// Instantiates as a future, for stores whose guests may wait (see `store::wait`).
    fn instantiate_async(pre: Self::Pre, store: &mut Store<HostState>) -> StoreFuture<'_, Self::Instance>;
    fn native(parts: InstanceParts<Self::Export>) -> Self::Native;

    /// Refuses compiled code the addon will not describe or call (beyond wasmtime's own checks).
    fn check(code: &Self::Code) -> Result<(), Failure>;
}

/// What a new instance's JS object is made of.
pub struct InstanceParts<E: Export> {
    pub slot: Slot<E::Instance>,
    pub exports: Arc<Exports<E>>,
    pub output: Output,
}

/// Compiled code and what every instance of it shares.
pub struct Compiled<K: Kind> {
    pub code: K::Code,
    pub engine: Arc<EngineShared>,
    pub exports: Arc<Exports<K::Export>>,
    pub wasi_imports: WasiImports,
    /// See [`Kind::lift_ratio`].
    lift_ratio: usize,
    linked: PreCache<K::Plan, K::Pre>,
}

/// Where an instantiation runs: on the JS thread (start functions call JS imports directly) or on
/// the pool (they go through the dispatcher).
#[derive(Clone, Copy)]
pub enum Thread {
    Js(Js),
    Pool,
}

impl<K: Kind> Compiled<K> {
    fn new(code: K::Code, engine: &Arc<EngineShared>, binary: Option<&[u8]>) -> Self {
        Compiled {
            exports: Arc::new(K::exports(&code)),
            wasi_imports: K::wasi_imports(&code),
            lift_ratio: K::lift_ratio(&code, &engine.engine, binary),
            code,
            engine: engine.clone(),
            linked: PreCache::new(),
        }
    }

    /// Compiles `bytes` (binary or WAT) through the engine's on-disk cache.
    pub fn compile(engine: &Arc<EngineShared>, bytes: &[u8]) -> Result<Self, Failure> {
        let bytes = Self::input(engine, bytes)?;
        // `compile_cost` too, when they are compiled: a hit in `cacheDir` skips its walk over every
        // operator (some 3 ms per MiB of code), the bytes having passed it when they were compiled.
        let check = |bytes: &[u8]| compile_cost::check(bytes).map_err(Failure::Compile);
        // wasmtime asserts some of its limits while it builds a component's adapters (more than
        // 100 memories in one, types past a size) rather than reporting them: a valid component of
        // 1.6 KB reached one. Such a component cannot be compiled, which is what its error says.
        let compiled = compile_pools::in_own_pool(|| {
            quiet_panic::catch(|| disk::compile::<K::Code>(&engine.engine, engine.cache.as_ref(), &bytes, check))
        });
        let code = compiled.map_err(|panic| Failure::Compile(errors::compile_panic_text(K::NOUN, &panic)))??;
        Self::checked(code, engine, Some(&*bytes))
    }

    /// What the engine's on-disk cache holds for `bytes`, without compiling them (`None` without
    /// `cacheDir`); the bytes are checked as [`Compiled::compile`] checks them first.
    pub fn cached(engine: &Arc<EngineShared>, bytes: &[u8]) -> Result<Option<Self>, Failure> {
        let bytes = Self::input(engine, bytes)?;
        match disk::cached::<K::Code>(&engine.engine, engine.cache.as_ref(), &bytes) {
            Some(code) => Self::checked(code, engine, Some(&*bytes)).map(Some),
            None => Ok(None),
        }
    }

    /// Loads what the addon compiled from `bytes` in a child process (`artifact`, its
    /// `serialize()` output), through the engine's on-disk cache as a compile here would. The
    /// bytes are not checked again: `cached` and the child did. Text is not stored: the cache keys
    /// binaries, and parsing it here is what the child was for (WAT's labels cost time growing with
    /// the square of their nesting).
    pub fn adopt(engine: &Arc<EngineShared>, bytes: &[u8], artifact: &[u8]) -> Result<Self, Failure> {
        engine.check_open()?;
        let cache = binary::kind(bytes).and(engine.cache.as_ref());
        let code = disk::adopt::<K::Code>(&engine.engine, cache, bytes, artifact)?;
        Self::checked(code, engine, binary::kind(bytes).map(|_| bytes))
    }

    /// The binary that `bytes` (binary or WAT) stand for, refused early when it is not of this
    /// kind or would cost the compiler far more than its size.
    fn input<'a>(engine: &EngineShared, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, Failure> {
        engine.check_open()?;
        engine.check_size(bytes)?;
        let bytes = match binary::kind(bytes) {
            Some(kind) if kind != K::BINARY => return Err(Failure::Compile(K::WRONG_KIND.into())),
            None if !binary::is_text(bytes) => return Err(Failure::Compile(binary::not_wasm(bytes))),
            Some(_) => Cow::Borrowed(bytes),
            // Text: what it stands for is only known once parsed, and the parsed binary is what
            // compiles (text that does not parse goes on, for wasmtime's message).
            None => wat::parse_bytes(bytes).map_or(Cow::Borrowed(bytes), |binary| Cow::Owned(binary.into_owned())),
        };
        if binary::kind(&bytes) == Some(Binary::Component) {
            binary::check_component(&bytes).map_err(Failure::Compile)?;
        }
        Ok(bytes)
    }

    fn checked(code: K::Code, engine: &Arc<EngineShared>, binary: Option<&[u8]>) -> Result<Self, Failure> {
        K::check(&code)?;
        Ok(Self::new(code, engine, binary))
    }

    /// Loads `serialize()` output of a compatible engine.
    pub fn deserialize(engine: &Arc<EngineShared>, bytes: &[u8]) -> Result<Self, Failure> {
        engine.check_open()?;
        // SAFETY: wasmtime checks the header (version, engine configuration) and rejects
        // incompatible bytes; the bytes themselves must come from `serialize` (documented: never
        // deserialize untrusted input).
        let code = unsafe { K::Code::deserialize(&engine.engine, bytes) }
            .map_err(|error| Failure::Compile(format!("cannot deserialize {}: {error:#}", K::NOUN)))?;
        // What it was compiled from is not known: it counts as transcoding strings.
        Self::checked(code, engine, None)
    }

    pub fn serialize(&self) -> Result<Vec<u8>, Failure> {
        self.code
            .serialize()
            .map_err(|error| Failure::Internal(format!("{error:#}")))
    }

    /// Resolves `imports` (on the JS thread) and returns the work that creates the instance, to
    /// run on `thread`.
    pub fn prepare(
        self: &Arc<Self>,
        js: Js,
        options: &NativeInstanceOptions,
        imports: Option<Unknown>,
        http: Option<Unknown>,
        abort: Option<Arc<AbortFlag>>,
    ) -> Result<impl FnOnce(Thread) -> Result<K::Native, Failure> + Send + 'static, Failure> {
        self.engine.check_open()?;
        let limits = options.limits()?;
        let defaults = options.defaults(js, self.engine.fuel)?;
        // Start functions run under the instance's defaults and the instantiation's own signal.
        let start = Budget {
            abort: defaults.abort.with_signal(abort),
            ..defaults.clone()
        };
        let imports = imports.and_then(|value| js.defined(value.raw()));
        let (wasi, output) = match &options.wasi {
            Some(wasi_options) if self.wasi_imports.any => K::wasi(wasi_options, limits.memory_bytes)?,
            _ => (WasiState::None, Output::default()),
        };
        let with_wasi = !matches!(wasi, WasiState::None);
        let (plan, functions) = K::resolve(js, &self.code, imports, &self.wasi_imports, with_wasi)?;
        let relayed = with_wasi && !functions.is_empty();
        // The wasi:http client is kept only where wasi:http can be imported.
        let http = match (&options.wasi, http.and_then(|value| js.defined(value.raw()))) {
            (Some(wasi_options), Some(client)) if with_wasi && K::BINARY == Binary::Component => {
                Some(HttpClientOptions {
                    function: client,
                    max_body_bytes: wasi_options.http_max_body_bytes as usize,
                    max_concurrent_requests: wasi_options.http_max_concurrent_requests as usize,
                })
            }
            _ => None,
        };
        let functions = Arc::new(HostFunctions::new(js, functions, http)?);
        let resources = K::host_resources(&plan).map(|host_types| {
            let owner = functions.clone();
            Resources::new(
                host_types,
                options.resource_handles,
                Box::new(move |references, how| owner.release(references, how)),
            )
        });
        let compiled = self.clone();
        let create = move |sync_js: Option<Js>, relay: Option<Relay>| {
            let engine = &compiled.engine;
            let ticket = engine.admit_instance()?;
            let pre = compiled
                .linked
                .get_or_build(plan, |plan| K::link(&compiled.code, plan))?;
            let mut store = store::new_store(engine, limits, HostBridge::new(functions), wasi, resources);
            let fuel = limits::divided_hostcall_fuel(store.hostcall_fuel(), compiled.lift_ratio);
            store.set_hostcall_fuel(fuel);
            store.data_mut().host.set_sync_env(sync_js);
            store.data_mut().host.set_relay(relay);
            let mut live: Live<K::Instance> = store::instantiate(store, engine, &start, &output, |store| {
                if store.data().waits() {
                    store::wait(store, |store| K::instantiate_async(pre, store))
                } else {
                    K::instantiate(&pre, store)
                }
            })?;
            live.store.data_mut().host.set_sync_env(None);
            live.store.data_mut().host.set_relay(None);
            live.ticket = ticket;
            Ok(K::native(InstanceParts {
                slot: Slot::new(live, engine.clone(), defaults, K::POISON_ON_TRAP),
                exports: compiled.exports.clone(),
                output,
            }))
        };
        Ok(move |thread: Thread| match thread {
            Thread::Pool => create(None, None),
            // A guest that may wait runs as a future on a fiber, whose stack is no place to call
            // into V8: with JS imports it runs on a pool thread and its JS calls are relayed to
            // this JS thread, which waits for it.
            Thread::Js(js) if relayed => serve_js_while(js, move |relay| create(None, Some(relay)))?,
            Thread::Js(js) => create(Some(js), None),
        })
    }
}

/// Declares the JS class of one kind of compiled code: compiling and loading (static methods
/// taking the engine), serializing and instantiating. `$kind` implements [`Kind`]; the two
/// literals are the TypeScript types of the Promises that `compile` and `instantiate` return, the
/// last two those of `cachedSync` and `cached`.
#[macro_export]
macro_rules! compiled_class {
    ($doc:literal, $class:ident, $kind:ty, $instance:ident, $class_name:literal, $instance_name:literal, $class_promise:literal, $instance_promise:literal, $maybe_class:literal, $maybe_class_promise:literal) => {
        #[doc = $doc]
        #[napi_derive::napi(custom_finalize)]
        pub struct $class {
            compiled: std::sync::Arc<$crate::compiled::Compiled<$kind>>,
            external: $crate::runtime::external::ExternalMemory,
        }

        $crate::holds_external!($class, |this| {
            $crate::cache::disk::Artifact::code_bytes(&this.compiled.code)
        });

        impl $class {
            fn wrap(js: $crate::js::Js, compiled: $crate::compiled::Compiled<$kind>) -> Self {
                $crate::runtime::external::reported(
                    js,
                    $class {
                        compiled: std::sync::Arc::new(compiled),
                        external: Default::default(),
                    },
                )
            }
        }

        #[napi_derive::napi]
        impl $class {
            /// Compiles bytes (binary or WAT) on the JS thread.
            #[napi(ts_return_type = $class_name)]
            pub fn compile_sync(
                env: napi::Env,
                engine: &$crate::engine::NativeEngine,
                bytes: napi::bindgen_prelude::Uint8Array,
            ) -> napi::Result<$crate::js::Raw> {
                let js = $crate::js::Js(env.raw());
                $crate::errors::answer(js, || {
                    $crate::compiled::Compiled::compile(engine.shared(), &bytes)
                        .map(|compiled| Self::wrap(js, compiled))
                })
            }

            /// Compiles bytes (binary or WAT) on a compile thread (`runtime/compiles.rs`).
            #[napi(ts_return_type = $class_promise)]
            pub fn compile(
                env: &napi::Env,
                engine: &$crate::engine::NativeEngine,
                bytes: napi::bindgen_prelude::Uint8Array,
            ) -> napi::Result<$crate::js::Raw> {
                let shared = engine.shared().clone();
                let bytes = bytes.to_vec();
                $crate::runtime::task::compile_promise(
                    env,
                    shared.key(),
                    move || $crate::compiled::Compiled::<$kind>::compile(&shared, &bytes),
                    |js, result| result.map(|compiled| Self::wrap(js, compiled)),
                )
            }

            /// What the engine's `cacheDir` holds for these bytes, or `null` (the lookup of a
            /// compile in a child process; see `lib/isolated-compile.ts`).
            #[napi(ts_return_type = $maybe_class)]
            pub fn cached_sync(
                env: napi::Env,
                engine: &$crate::engine::NativeEngine,
                bytes: napi::bindgen_prelude::Uint8Array,
            ) -> napi::Result<$crate::js::Raw> {
                let js = $crate::js::Js(env.raw());
                $crate::errors::answer(js, || {
                    $crate::compiled::Compiled::cached(engine.shared(), &bytes)
                        .map(|cached| cached.map(|compiled| Self::wrap(js, compiled)))
                })
            }

            /// `cachedSync` on a pool thread.
            #[napi(ts_return_type = $maybe_class_promise)]
            pub fn cached(
                env: &napi::Env,
                engine: &$crate::engine::NativeEngine,
                bytes: napi::bindgen_prelude::Uint8Array,
            ) -> napi::Result<$crate::js::Raw> {
                let shared = engine.shared().clone();
                let bytes = bytes.to_vec();
                $crate::runtime::task::promise(
                    env,
                    move || $crate::compiled::Compiled::<$kind>::cached(&shared, &bytes),
                    |js, result| result.map(|cached| cached.map(|compiled| Self::wrap(js, compiled))),
                )
            }

            /// Loads what this addon compiled from `bytes` in a child process (its `serialize()`
            /// output), and stores it in `cacheDir` as a compile here would.
            #[napi(ts_return_type = $class_name)]
            pub fn adopt_sync(
                env: napi::Env,
                engine: &$crate::engine::NativeEngine,
                bytes: napi::bindgen_prelude::Uint8Array,
                artifact: napi::bindgen_prelude::Uint8Array,
            ) -> napi::Result<$crate::js::Raw> {
                let js = $crate::js::Js(env.raw());
                $crate::errors::answer(js, || {
                    $crate::compiled::Compiled::adopt(engine.shared(), &bytes, &artifact)
                        .map(|compiled| Self::wrap(js, compiled))
                })
            }

            /// `adoptSync` on a pool thread.
            #[napi(ts_return_type = $class_promise)]
            pub fn adopt(
                env: &napi::Env,
                engine: &$crate::engine::NativeEngine,
                bytes: napi::bindgen_prelude::Uint8Array,
                artifact: napi::bindgen_prelude::Uint8Array,
            ) -> napi::Result<$crate::js::Raw> {
                let shared = engine.shared().clone();
                let (bytes, artifact) = (bytes.to_vec(), artifact.to_vec());
                $crate::runtime::task::promise(
                    env,
                    move || $crate::compiled::Compiled::<$kind>::adopt(&shared, &bytes, &artifact),
                    |js, result| result.map(|compiled| Self::wrap(js, compiled)),
                )
            }

            /// Loads `serialize()` output of a compatible engine (never untrusted bytes).
            #[napi(ts_return_type = $class_name)]
            pub fn deserialize(
                env: napi::Env,
                engine: &$crate::engine::NativeEngine,
                bytes: napi::bindgen_prelude::Uint8Array,
            ) -> napi::Result<$crate::js::Raw> {
                let js = $crate::js::Js(env.raw());
                $crate::errors::answer(js, || {
                    $crate::compiled::Compiled::deserialize(engine.shared(), &bytes)
                        .map(|compiled| Self::wrap(js, compiled))
                })
            }

            /// Precompiled code for `deserialize` on a compatible engine.
            #[napi]
            pub fn serialize(&self, env: napi::Env) -> napi::Result<napi::bindgen_prelude::Uint8Array> {
                $crate::errors::guard($crate::js::Js(env.raw()), || {
                    self.compiled
                        .serialize()
                        .map(napi::bindgen_prelude::Uint8Array::new)
                })
            }

            /// Instantiates on the JS thread; start functions may call synchronous JS imports.
            #[napi(ts_return_type = $instance_name)]
            pub fn instantiate_sync(
                &self,
                env: napi::Env,
                options: $crate::options::NativeInstanceOptions,
                imports: Option<napi::bindgen_prelude::Unknown>,
                http: Option<napi::bindgen_prelude::Unknown>,
            ) -> napi::Result<$crate::js::Raw> {
                let js = $crate::js::Js(env.raw());
                $crate::errors::answer(js, || {
                    let create = self.compiled.prepare(js, &options, imports, http, None)?;
                    create($crate::compiled::Thread::Js(js))
                        .map(|instance| $crate::runtime::external::reported(js, instance))
                })
            }

            /// Instantiates on a pool thread (imports are resolved on the JS thread first); `abort`
            /// stops a start function that is still running.
            #[napi(ts_return_type = $instance_promise)]
            pub fn instantiate(
                &self,
                env: &napi::Env,
                options: $crate::options::NativeInstanceOptions,
                imports: Option<napi::bindgen_prelude::Unknown>,
                http: Option<napi::bindgen_prelude::Unknown>,
                abort: Option<&$crate::options::NativeAbortHandle>,
            ) -> napi::Result<$crate::js::Raw> {
                let js = $crate::js::Js(env.raw());
                let abort = abort.map($crate::options::NativeAbortHandle::flag);
                let create = match $crate::errors::caught(|| self.compiled.prepare(js, &options, imports, http, abort))
                {
                    Ok(create) => create,
                    Err(failure) => return Ok($crate::js::Raw($crate::errors::fail(js, failure))),
                };
                $crate::runtime::task::promise(
                    env,
                    move || create($crate::compiled::Thread::Pool),
                    |js, result| result.map(|instance| $crate::runtime::external::reported(js, instance)),
                )
            }
        }
    };
}
