//! [`wasmtime::Engine`] with its [`Config`], and the epoch ticker thread behind wall-clock deadlines.
//! The engine knows nothing of what it compiles: modules and components are made by their own
//! constructors (`module.rs`, `component.rs`), which take the engine.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use napi::bindgen_prelude::Uint8Array;
use napi::{Env, Result};
use napi_derive::napi;
use wasmtime::{
    Config, Engine as EngineImpl, EngineWeak, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Strategy,
};

use crate::binary::{self, Binary};
use crate::cache::disk::DiskCache;
use crate::compile_cost;
use crate::errors::{Failure, compile_text, guard};
use crate::js::{Js, Raw};
use crate::runtime::pool::POOL_THREAD_STACK_BYTES;
use crate::runtime::task;
use crate::sync::lock;

/// Engine options after the TS layer applied defaults (lib/options.ts owns the defaults).
#[napi(object)]
pub struct NativeEngineOptions {
    /// Instrument code with fuel metering ([`wasmtime::Config::consume_fuel`]).
    pub fuel: bool,
    /// Period of the epoch ticker thread, in milliseconds.
    pub epoch_tick_ms: u32,
    /// [`wasmtime::Config::max_wasm_stack`], in bytes.
    pub max_wasm_stack_bytes: u32,
    /// Enables the pooling allocator with this many instance slots.
    pub pooling_max_instances: Option<u32>,
    /// Largest linear memory of a pooled instance, in bytes.
    pub pooling_max_memory_bytes: Option<f64>,
    /// On-disk compiled-code cache directory.
    pub cache_dir: Option<String>,
    /// Largest module or component accepted by compile and validate, in bytes.
    pub max_module_bytes: Option<f64>,
    /// `"cranelift"` or `"winch"` ([`wasmtime::Config::strategy`]).
    pub compiler: String,
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

/// Stack a guest that waits (WASI, async host functions) runs on beyond its `maxWasmStackBytes`: the
/// host's own frames, a trap's handling among them. wasmtime's default fiber stack of 2 MiB left
/// them nothing at a `maxWasmStackBytes` of 2 MiB, and a guest that recursed to its limit aborted
/// the process ("execution on async fiber has overflowed its stack", probe Z54). wasmtime's
/// defaults leave 1.5 MiB.
const HOST_FIBER_STACK_BYTES: usize = 3 << 19;

/// Default `maxModuleBytes`: far above real modules (a large Rust component is a few MiB), far
/// below what would let one input occupy a compile thread for minutes.
pub const DEFAULT_MAX_MODULE_BYTES: usize = 64 << 20;

/// Largest `maxModuleBytes` accepted.
pub const MAX_MODULE_BYTES_LIMIT: usize = 1 << 30;

/// Frames kept in a trap's `wasmBacktrace` (the innermost ones).
const MAX_BACKTRACE_FRAMES: usize = 32;

/// `pooling.maxMemoryBytes` when not given: the most bytes one memory of a pooling engine may take.
const DEFAULT_POOL_MEMORY_BYTES: f64 = (64 << 20) as f64;

/// What an engine's compiled code and instances share: the wasmtime engine and its ticker.
pub struct EngineShared {
    pub engine: EngineImpl,
    /// The on-disk compiled-code cache, when `cacheDir` is set.
    pub cache: Option<DiskCache>,
    pub fuel: bool,
    /// Largest module or component accepted, in bytes.
    pub max_module_bytes: usize,
    /// With pooling: how many instances may live at once (`pooling.maxInstances`), and how many
    /// do. The pool's own counts are per core instance and memory (a component takes several),
    /// so the limit the option names is kept here.
    instance_slots: Option<(usize, Arc<AtomicUsize>)>,
    /// With pooling: the most bytes one memory may take (`pooling.maxMemoryBytes`).
    pub memory_slot_bytes: Option<usize>,
    /// `maxWasmStackBytes`: a call needs this much native stack, and more (runtime/native_stack.rs).
    pub max_wasm_stack: usize,
    tick: Duration,
    closed: AtomicBool,
    ticker: Mutex<Option<Ticker>>,
}

struct Ticker {
    state: Arc<TickerState>,
    thread: JoinHandle<()>,
}

struct TickerState {
    /// The engine was closed: stop once no timed call is running.
    stop: AtomicBool,
    running_calls: AtomicUsize,
}

impl EngineShared {
    /// What tells this engine's compiles apart from other engines' (see `runtime/compiles.rs`):
    /// its address, which no other live engine has.
    pub fn key(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    fn new(options: &NativeEngineOptions) -> std::result::Result<Self, Failure> {
        if options.epoch_tick_ms == 0 {
            return Err(Failure::OptionAt {
                path: "epochTickMs",
                message: "epochTickMs must be at least 1".into(),
            });
        }
        if options.max_wasm_stack_bytes < 64 * 1024 || options.max_wasm_stack_bytes > MAX_WASM_STACK_LIMIT {
            return Err(Failure::OptionAt {
                path: "maxWasmStackBytes",
                message: format!(
                    "maxWasmStackBytes must be between 65536 and {MAX_WASM_STACK_LIMIT}, got {}",
                    options.max_wasm_stack_bytes
                ),
            });
        }
        debug_assert!((MAX_WASM_STACK_LIMIT as usize) * 2 < POOL_THREAD_STACK_BYTES);

        let strategy = match options.compiler.as_str() {
            "cranelift" => Strategy::Cranelift,
            "winch" => Strategy::Winch,
            other => {
                return Err(Failure::OptionAt {
                    path: "compiler",
                    message: format!("compiler: expected 'cranelift' or 'winch', got '{other}'"),
                });
            }
        };
        let mut config = Config::new();
        config
            .strategy(strategy)
            .wasm_component_model(true)
            .consume_fuel(options.fuel)
            .epoch_interruption(true)
            .max_wasm_stack(options.max_wasm_stack_bytes as usize)
            .async_stack_size(options.max_wasm_stack_bytes as usize + HOST_FIBER_STACK_BYTES)
            // A memory grows in place, within its reservation (4 GiB), or not at all: a 64-bit
            // memory growing past it was copied whole, 4 GiB in 4.3-12 s that no deadline, abort
            // or fuel stopped, every page of it touched (probe H61).
            .memory_may_move(false)
            // A deep recursion would otherwise carry thousands of frames into every error.
            .wasm_backtrace_max_frames(NonZeroUsize::new(MAX_BACKTRACE_FRAMES))
            .cranelift_opt_level(OptLevel::Speed)
            // A memory image is built when compiling only where the data segments fill at least
            // half of it: by default any image up to 16 MiB was, and one byte of data at each end
            // of a memory (some ten bytes of input) built all 16 MiB, per memory.
            .memory_guaranteed_dense_image_size(0)
            .parallel_compilation(true);
        if let Some(slots) = options.pooling_max_instances {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(
                slots,
                options.pooling_max_memory_bytes.unwrap_or(DEFAULT_POOL_MEMORY_BYTES),
            )?));
        }
        let engine = EngineImpl::new(&config).map_err(|error| Failure::Options(format!("{error:#}")))?;
        let max_module_bytes = match options.max_module_bytes {
            None => DEFAULT_MAX_MODULE_BYTES,
            Some(bytes) if bytes >= 8.0 && bytes.fract() == 0.0 && bytes <= MAX_MODULE_BYTES_LIMIT as f64 => {
                bytes as usize
            }
            Some(bytes) => {
                return Err(Failure::OptionAt {
                    path: "maxModuleBytes",
                    message: format!(
                        "maxModuleBytes must be an integer between 8 and {MAX_MODULE_BYTES_LIMIT}, got {bytes}"
                    ),
                });
            }
        };
        let cache = match &options.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, &engine)?),
            None => None,
        };
        Ok(EngineShared {
            engine,
            cache,
            fuel: options.fuel,
            max_module_bytes,
            instance_slots: options
                .pooling_max_instances
                .map(|slots| (slots as usize, Arc::new(AtomicUsize::new(0)))),
            max_wasm_stack: options.max_wasm_stack_bytes as usize,
            memory_slot_bytes: options
                .pooling_max_instances
                .map(|_| options.pooling_max_memory_bytes.unwrap_or(DEFAULT_POOL_MEMORY_BYTES) as usize),
            tick: Duration::from_millis(options.epoch_tick_ms as u64),
            closed: AtomicBool::new(false),
            ticker: Mutex::new(None),
        })
    }

    /// Takes one of `pooling.maxInstances` slots for a new instance (none without pooling); the
    /// slot is free again when the ticket is dropped with the instance's store.
    pub fn admit_instance(&self) -> std::result::Result<Option<InstanceTicket>, Failure> {
        let Some((slots, live)) = &self.instance_slots else {
            return Ok(None);
        };
        let taken = live.fetch_add(1, Ordering::AcqRel);
        if taken >= *slots {
            live.fetch_sub(1, Ordering::AcqRel);
            return Err(Failure::PoolExhausted(format!(
                "the engine's pool has no free slot: {slots} instance(s) live (dispose instances, or raise pooling.maxInstances)"
            )));
        }
        Ok(Some(InstanceTicket(live.clone())))
    }

    /// Why `bytes` (binary or WAT) are not a valid module or component for this engine, or
    /// `None`: the engine's own validation of every core module, without compiling.
    pub fn validate(&self, bytes: &[u8]) -> Option<String> {
        if let Err(Failure::Compile(message)) = self.check_size(bytes) {
            return Some(message);
        }
        if binary::kind(bytes).is_none() && !binary::is_text(bytes) {
            return Some(binary::not_wasm(bytes));
        }
        let bytes = match wat::parse_bytes(bytes) {
            Ok(bytes) => bytes,
            Err(error) => return Some(error.to_string()),
        };
        // What compiles is the rewrite (`bulk_chunks.rs`), larger than the input.
        let rewritten = crate::bulk_chunks::chunked(&bytes).ok().flatten();
        if let Err(message) = compile_cost::check(rewritten.as_deref().unwrap_or(&bytes)) {
            return Some(message);
        }
        let validate_module =
            |module: &[u8]| wasmtime::Module::validate(&self.engine, module).map_err(|error| compile_text(&error));
        let valid = match binary::kind(&bytes) {
            Some(Binary::Component) => binary::validate_component(&bytes, validate_module),
            _ => validate_module(&bytes),
        };
        valid.err()
    }

    /// Refuses bytes larger than `maxModuleBytes` before any parsing or compiling.
    pub fn check_size(&self, bytes: &[u8]) -> std::result::Result<(), Failure> {
        if bytes.len() > self.max_module_bytes {
            return Err(Failure::Compile(format!(
                "the input is {} bytes, more than the engine's maxModuleBytes ({})",
                bytes.len(),
                self.max_module_bytes
            )));
        }
        Ok(())
    }

    /// Whether calls must end now: set by `close()`. Calls already running keep their deadlines
    /// (the ticker runs until they end); new work is refused.
    pub fn check_open(&self) -> std::result::Result<(), Failure> {
        if self.closed.load(Ordering::Acquire) {
            Err(Failure::Disposed("the engine was closed".into()))
        } else {
            Ok(())
        }
    }

    /// Starts the ticker on the first call that has a deadline or an abort signal, so an engine
    /// that never needs one costs no thread; the thread sleeps while no such call runs. The returned guard keeps the ticker running until the
    /// call ends, even if the engine is closed meanwhile (a call issued before `close()` keeps its
    /// deadline; callers refuse new timed calls on a closed engine when they are issued).
    pub fn timed_call(&self) -> TimedCall {
        let mut ticker = lock(&self.ticker);
        if let Some(ticker) = ticker.as_ref() {
            // The first timed call after an idle spell wakes the ticker.
            if ticker.state.running_calls.fetch_add(1, Ordering::AcqRel) == 0 {
                ticker.thread.thread().unpark();
            }
            return TimedCall(ticker.state.clone());
        }
        let state = Arc::new(TickerState {
            stop: AtomicBool::new(self.closed.load(Ordering::Acquire)),
            running_calls: AtomicUsize::new(1),
        });
        let started = Ticker::start(self.engine.weak(), self.tick, state.clone());
        if !started.state.stop.load(Ordering::Acquire) {
            *ticker = Some(started);
        }
        TimedCall(state)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let ticker = lock(&self.ticker).take();
        if let Some(ticker) = ticker {
            ticker.stop();
        }
    }
}

/// One live instance's slot of `pooling.maxInstances`.
pub struct InstanceTicket(Arc<AtomicUsize>);

impl Drop for InstanceTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running call with a deadline or an abort signal: the epoch ticker keeps going while one lives.
pub struct TimedCall(Arc<TickerState>);

impl Drop for TimedCall {
    fn drop(&mut self) {
        self.0.running_calls.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for EngineShared {
    fn drop(&mut self) {
        self.close();
    }
}

impl Ticker {
    /// The thread holds only a weak engine: it never keeps the engine (or Node) alive.
    fn start(engine: EngineWeak, tick: Duration, state: Arc<TickerState>) -> Self {
        let seen = state.clone();
        let thread = std::thread::Builder::new()
            .name("airssys-wasm-epoch".into())
            .spawn(move || {
                loop {
                    if seen.running_calls.load(Ordering::Acquire) == 0 {
                        if seen.stop.load(Ordering::Acquire) {
                            return;
                        }
                        // No timed call needs the epoch: sleep until one starts (`timed_call`)
                        // or the engine closes, so idle engines cost no wake-ups (probe Z4: 300
                        // idle sandboxes, an engine each, took 23% of a core ticking).
                        std::thread::park();
                        continue;
                    }
                    std::thread::park_timeout(tick);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        Ticker { state, thread }
    }

    /// Stops the thread once the timed calls still running have ended.
    fn stop(self) {
        self.state.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
    }
}

fn pooling(slots: u32, max_memory_bytes: f64) -> std::result::Result<PoolingAllocationConfig, Failure> {
    if slots == 0 || !(65536.0..=(4u64 << 30) as f64).contains(&max_memory_bytes) {
        return Err(Failure::OptionAt {
            path: "pooling",
            message: "pooling: maxInstances must be at least 1 and maxMemoryBytes between 64 KiB and 4 GiB".into(),
        });
    }
    let mut pooling = PoolingAllocationConfig::new();
    // Components instantiate several core modules, each with a memory and a table: give each
    // slot room for a handful rather than failing on the second core instance.
    pooling
        .total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(4))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(2))
        // wasmtime's default of one each refused a module with two memories at compile time;
        // four is `limits.memories`' default, and the totals above still bound the pool.
        .max_memories_per_module(4)
        .max_tables_per_module(4)
        .max_memory_size(max_memory_bytes as usize);
    Ok(pooling)
}

/// A wasmtime [`Engine`](wasmtime::Engine): the configuration modules and components are compiled
/// for, and the epoch ticker used for deadlines.
#[napi]
pub struct NativeEngine {
    shared: Arc<EngineShared>,
}

impl NativeEngine {
    /// What compiled code and instances of this engine share.
    pub fn shared(&self) -> &Arc<EngineShared> {
        &self.shared
    }
}

#[napi]
impl NativeEngine {
    /// Creates an engine; see [`Config`](https://docs.rs/wasmtime/48.0.8/wasmtime/struct.Config.html).
    #[napi(constructor)]
    pub fn new(env: Env, options: NativeEngineOptions) -> Result<Self> {
        let shared = guard(Js(env.raw()), || EngineShared::new(&options))?;
        Ok(NativeEngine {
            shared: Arc::new(shared),
        })
    }

    /// Refuses new work (ERR_WASM_DISPOSED); calls already running keep their deadlines and
    /// aborts until they end (the ticker stops when the engine is dropped).
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

    /// Checks that bytes (binary or WAT) are a valid module or component for this engine,
    /// without compiling them. Returns the error message, or `null` when valid.
    #[napi]
    pub fn validate(&self, env: Env, bytes: Uint8Array) -> Result<Option<String>> {
        guard(Js(env.raw()), || Ok(self.shared.validate(&bytes)))
    }

    /// [`validate`](Self::validate) on a compile thread: a Promise of the error message or `null`.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn validate_async(&self, env: &Env, bytes: Uint8Array) -> Result<Raw> {
        let shared = self.shared.clone();
        let bytes = bytes.to_vec();
        let engine = self.shared.key();
        task::compile_promise(env, engine, move || shared.validate(&bytes), |_, message| Ok(message))
    }
}
