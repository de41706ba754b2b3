//! [`wasmtime::Engine`] with its [`Config`], and the epoch ticker thread behind wall-clock deadlines.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use napi::bindgen_prelude::Uint8Array;
use napi::{Env, Result};
use napi_derive::napi;
use wasmtime::{
    Config, Engine as EngineImpl, EngineWeak, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use crate::component::NativeComponent;
use crate::disk_cache::DiskCache;
use crate::errors::{Failure, throw};
use crate::external::reported;
use crate::js::{Js, Raw};
use crate::module::NativeModule;
use crate::tasks::{self, POOL_THREAD_STACK_BYTES};

/// Engine options after the TS layer applied defaults (lib/engine.ts owns the defaults).
#[napi(object)]
pub struct NativeEngineOptions {
    /// Instrument code with fuel metering ([`Config::consume_fuel`]).
    pub fuel: bool,
    /// Period of the epoch ticker thread, in milliseconds.
    pub epoch_tick_ms: u32,
    /// [`Config::max_wasm_stack`], in bytes.
    pub max_wasm_stack_bytes: u32,
    /// Enables the pooling allocator with this many instance slots.
    pub pooling_max_instances: Option<u32>,
    /// Largest linear memory of a pooled instance, in bytes.
    pub pooling_max_memory_bytes: Option<f64>,
    /// On-disk compiled-code cache directory ([`DiskCache`]).
    pub cache_dir: Option<String>,
}

/// Counters of the on-disk cache.
#[napi(object)]
pub struct NativeCacheStats {
    /// Compiles answered from a file.
    pub hits: f64,
    /// Compiles that had no usable file (and compiled).
    pub misses: f64,
    /// Artifacts that could not be written (the compile itself succeeded).
    pub write_failures: f64,
}

/// Largest `maxWasmStackBytes`: wasm runs on the JS thread for `callSync` (a Node worker has a
/// 4 MiB stack) and on pool threads of [`POOL_THREAD_STACK_BYTES`]; leave room for host frames.
pub const MAX_WASM_STACK_LIMIT: u32 = 2 << 20;

/// Frames kept in a trap's `wasmBacktrace` (the innermost ones).
const MAX_BACKTRACE_FRAMES: usize = 32;

/// What an engine's compiled code and instances share: the wasmtime engine and its ticker.
pub struct EngineShared {
    pub engine: EngineImpl,
    /// The on-disk compiled-code cache, when `cacheDir` is set.
    pub cache: Option<DiskCache>,
    pub fuel: bool,
    tick: Duration,
    closed: AtomicBool,
    ticker: Mutex<Option<Ticker>>,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl EngineShared {
    fn new(options: &NativeEngineOptions) -> std::result::Result<Self, Failure> {
        if options.epoch_tick_ms == 0 {
            return Err(Failure::Options("epochTickMs must be at least 1".into()));
        }
        if options.max_wasm_stack_bytes < 64 * 1024 || options.max_wasm_stack_bytes > MAX_WASM_STACK_LIMIT {
            return Err(Failure::Options(format!(
                "maxWasmStackBytes must be between 65536 and {MAX_WASM_STACK_LIMIT}, got {}",
                options.max_wasm_stack_bytes
            )));
        }
        debug_assert!((MAX_WASM_STACK_LIMIT as usize) * 2 < POOL_THREAD_STACK_BYTES);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(options.fuel)
            .epoch_interruption(true)
            .max_wasm_stack(options.max_wasm_stack_bytes as usize)
            // A deep recursion would otherwise carry thousands of frames into every error.
            .wasm_backtrace_max_frames(NonZeroUsize::new(MAX_BACKTRACE_FRAMES))
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true);
        if let Some(slots) = options.pooling_max_instances {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(
                slots,
                options.pooling_max_memory_bytes.unwrap_or((64 << 20) as f64),
            )?));
        }
        let engine = EngineImpl::new(&config).map_err(|error| Failure::Options(format!("{error:#}")))?;
        let cache = match &options.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, &engine)?),
            None => None,
        };
        Ok(EngineShared {
            engine,
            cache,
            fuel: options.fuel,
            tick: Duration::from_millis(options.epoch_tick_ms as u64),
            closed: AtomicBool::new(false),
            ticker: Mutex::new(None),
        })
    }

    pub fn check_open(&self) -> std::result::Result<(), Failure> {
        if self.closed.load(Ordering::Acquire) {
            Err(Failure::Disposed("the engine was closed".into()))
        } else {
            Ok(())
        }
    }

    /// Starts the ticker on the first call that has a deadline or an abort signal, so an engine
    /// that never needs one costs no thread.
    pub fn ensure_ticker(&self) -> std::result::Result<(), Failure> {
        self.check_open()?;
        let mut ticker = self.ticker.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if ticker.is_none() {
            *ticker = Some(Ticker::start(self.engine.weak(), self.tick));
        }
        Ok(())
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let ticker = self
            .ticker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(ticker) = ticker {
            ticker.stop();
        }
    }
}

impl Drop for EngineShared {
    fn drop(&mut self) {
        self.close();
    }
}

impl Ticker {
    /// The thread holds only a weak engine: it never keeps the engine (or Node) alive.
    fn start(engine: EngineWeak, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("airssys-wasm-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Acquire) {
                    std::thread::park_timeout(tick);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        Ticker { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
    }
}

fn pooling(slots: u32, max_memory_bytes: f64) -> std::result::Result<PoolingAllocationConfig, Failure> {
    if slots == 0 || !(65536.0..=(4u64 << 30) as f64).contains(&max_memory_bytes) {
        return Err(Failure::Options(
            "pooling: maxInstances must be at least 1 and maxMemoryBytes between 64 KiB and 4 GiB".into(),
        ));
    }
    let mut pooling = PoolingAllocationConfig::new();
    // Components instantiate several core modules, each with a memory and a table: give each
    // slot room for a handful rather than failing on the second core instance.
    pooling
        .total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(4))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(2))
        .max_memory_size(max_memory_bytes as usize);
    Ok(pooling)
}

/// A wasmtime [`Engine`](wasmtime::Engine): compiles modules and components and owns the epoch
/// ticker used for deadlines.
#[napi]
pub struct NativeEngine {
    shared: Arc<EngineShared>,
}

#[napi]
impl NativeEngine {
    /// Creates an engine; see [`Config`](https://docs.rs/wasmtime/48.0.8/wasmtime/struct.Config.html).
    #[napi(constructor)]
    pub fn new(env: Env, options: NativeEngineOptions) -> Result<Self> {
        let shared = throw(Js(env.raw()), EngineShared::new(&options))?;
        Ok(NativeEngine {
            shared: Arc::new(shared),
        })
    }

    /// Stops the epoch ticker; later compiles and deadline-bound calls throw ERR_WASM_DISPOSED.
    #[napi]
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Whether this engine meters fuel (`Config::consume_fuel`).
    #[napi(getter)]
    pub fn fuel_enabled(&self) -> bool {
        self.shared.fuel
    }

    /// What the on-disk cache did since this engine was created; `null` without `cacheDir`.
    #[napi(getter)]
    pub fn cache_stats(&self) -> Option<NativeCacheStats> {
        self.shared.cache.as_ref().map(|cache| {
            let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
            NativeCacheStats {
                hits: count(&cache.counters.hits),
                misses: count(&cache.counters.misses),
                write_failures: count(&cache.counters.write_failures),
            }
        })
    }

    /// Compiles a component (binary or WAT) on the JS thread; `digest` is the bytes' SHA-256 in
    /// hex, if known, for the on-disk cache.
    #[napi]
    pub fn compile_component_sync(
        &self,
        env: Env,
        bytes: Uint8Array,
        digest: Option<String>,
    ) -> Result<NativeComponent> {
        let js = Js(env.raw());
        throw(js, NativeComponent::compile(&self.shared, &bytes, digest.as_deref()))
            .map(|compiled| reported(js, compiled))
    }

    /// Compiles a component (binary or WAT) on a pool thread.
    #[napi(ts_return_type = "Promise<NativeComponent>")]
    pub fn compile_component(&self, env: &Env, bytes: Uint8Array, digest: Option<String>) -> Result<Raw> {
        let shared = self.shared.clone();
        let bytes = bytes.to_vec();
        tasks::promise(
            env,
            move || NativeComponent::compile(&shared, &bytes, digest.as_deref()),
            |js, result| result.map(|compiled| reported(js, compiled)),
        )
    }

    /// Compiles a core module (binary or WAT) on the JS thread.
    #[napi]
    pub fn compile_module_sync(&self, env: Env, bytes: Uint8Array, digest: Option<String>) -> Result<NativeModule> {
        let js = Js(env.raw());
        throw(js, NativeModule::compile(&self.shared, &bytes, digest.as_deref())).map(|compiled| reported(js, compiled))
    }

    /// Compiles a core module (binary or WAT) on a pool thread.
    #[napi(ts_return_type = "Promise<NativeModule>")]
    pub fn compile_module(&self, env: &Env, bytes: Uint8Array, digest: Option<String>) -> Result<Raw> {
        let shared = self.shared.clone();
        let bytes = bytes.to_vec();
        tasks::promise(
            env,
            move || NativeModule::compile(&shared, &bytes, digest.as_deref()),
            |js, result| result.map(|compiled| reported(js, compiled)),
        )
    }

    /// Loads a component from `serialize()` output of a compatible engine.
    #[napi]
    pub fn deserialize_component(&self, env: Env, bytes: Uint8Array) -> Result<NativeComponent> {
        let js = Js(env.raw());
        throw(js, NativeComponent::deserialize(&self.shared, &bytes)).map(|loaded| reported(js, loaded))
    }

    /// Loads a core module from `serialize()` output of a compatible engine.
    #[napi]
    pub fn deserialize_module(&self, env: Env, bytes: Uint8Array) -> Result<NativeModule> {
        let js = Js(env.raw());
        throw(js, NativeModule::deserialize(&self.shared, &bytes)).map(|loaded| reported(js, loaded))
    }

    /// Checks that bytes are a valid module or component for this engine, without keeping code.
    /// Returns the error message, or `null` when valid.
    #[napi]
    pub fn validate(&self, bytes: Uint8Array) -> Option<String> {
        let bytes = match wat::parse_bytes(&bytes) {
            Ok(bytes) => bytes,
            Err(error) => return Some(error.to_string()),
        };
        let result = if is_component(&bytes) {
            NativeComponent::compile(&self.shared, &bytes, None).map(drop)
        } else {
            NativeModule::validate(&self.shared, &bytes)
        };
        match result {
            Ok(()) => None,
            Err(Failure::Compile(message)) => Some(message),
            Err(_) => Some("invalid".into()),
        }
    }
}

/// Whether binary wasm bytes are a component (layer 1) rather than a core module.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes.starts_with(b"\0asm") && bytes[6..8] == [1, 0]
}

/// Whether binary wasm bytes are a core module (layer 0).
pub fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes.starts_with(b"\0asm") && bytes[6..8] == [0, 0]
}
