//! [`wasmtime::Store`] and its `HostState`: the limiter, per-call fuel and deadline, the abort
//! flag, the last host error and the metrics, plus the slot that serialises access to a store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::{Store, UpdateDeadline};

use crate::engine::EngineShared;
use crate::errors::{CallFacts, Failure, Interrupt};
use crate::host::{HostBridge, WaitLimits};
use crate::limits::{Limiter, LimitsConfig, MemoryMetrics};
use crate::wasi::{NativeWasiOptions, WasiState};

/// Far enough in epochs that a call without a deadline is never interrupted.
const NO_DEADLINE: u64 = u64::MAX / 2;

/// Data every store carries.
pub struct HostState {
    pub limiter: Limiter,
    pub host: HostBridge,
    pub wasi: WasiState,
    /// The failure a host function recorded for the call in progress.
    pub host_failure: Option<Failure>,
    deadline: Option<(Instant, f64)>,
    abort: Option<Arc<AtomicBool>>,
    interrupt: Option<Interrupt>,
}

impl HostState {
    /// The current call's deadline and abort flag, for a host call to wait within.
    pub fn wait_limits(&self) -> WaitLimits {
        WaitLimits {
            deadline: self.deadline,
            abort: self.abort.clone(),
        }
    }
}

/// Per-call budgets; `None` means unmetered / no deadline.
#[derive(Clone, Default)]
pub struct Budget {
    pub fuel: Option<u64>,
    pub timeout_ms: Option<f64>,
    pub abort: Option<Arc<AtomicBool>>,
}

/// What `metrics()` reports.
#[derive(Clone, Copy, Default)]
pub struct Metrics {
    pub calls: u64,
    pub traps: u64,
    pub last_call_fuel: u64,
    pub total_fuel: u64,
    pub memory: MemoryMetrics,
}

/// Creates a store with our limiter and an epoch callback that enforces the call's deadline and
/// abort flag on every tick.
pub fn new_store(engine: &EngineShared, limits: LimitsConfig, host: HostBridge, wasi: WasiState) -> Store<HostState> {
    let state = HostState {
        limiter: Limiter::new(limits),
        host,
        wasi,
        host_failure: None,
        deadline: None,
        abort: None,
        interrupt: None,
    };
    let mut store = Store::new(&engine.engine, state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut();
        if state.abort.as_ref().is_some_and(|flag| flag.load(Ordering::Acquire)) {
            state.interrupt = Some(Interrupt::Aborted);
            return Ok(UpdateDeadline::Interrupt);
        }
        if let Some((at, timeout_ms)) = state.deadline
            && Instant::now() >= at
        {
            state.interrupt = Some(Interrupt::Timeout { timeout_ms });
            return Ok(UpdateDeadline::Interrupt);
        }
        Ok(UpdateDeadline::Continue(1))
    });
    store.set_epoch_deadline(NO_DEADLINE);
    store
}

/// Runs `body` (a call into wasm, or an instantiation) under `budget`, and turns its error into a
/// [`Failure`] using what the store saw. Metrics are updated either way.
pub fn run<R>(
    store: &mut Store<HostState>,
    engine: &EngineShared,
    budget: &Budget,
    metrics: &mut Metrics,
    body: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R, Failure> {
    run_classified(store, engine, budget, metrics, body, Failure::call)
}

/// [`run`] with the error classification chosen by the caller (instantiation differs).
pub fn run_classified<R>(
    store: &mut Store<HostState>,
    engine: &EngineShared,
    budget: &Budget,
    metrics: &mut Metrics,
    body: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    classify: impl FnOnce(wasmtime::Error, CallFacts) -> Failure,
) -> Result<R, Failure> {
    let denied_before = store.data().limiter.metrics().denied_growths;
    if let Some(flag) = &budget.abort
        && flag.load(Ordering::Acquire)
    {
        return Err(Failure::interrupted(
            "ABORT_ERR",
            "The operation was aborted".into(),
            None,
        ));
    }
    let fuel_budget = budget.fuel.unwrap_or(u64::MAX);
    if engine.fuel {
        store
            .set_fuel(fuel_budget)
            .map_err(|error| Failure::Internal(format!("{error:#}")))?;
    }
    let timed = budget.timeout_ms.is_some() || budget.abort.is_some();
    // Reading the clock costs as much as a small call: only timed calls need it.
    let started = timed.then(Instant::now);
    {
        let state = store.data_mut();
        state.host_failure = None;
        state.interrupt = None;
        state.abort = budget.abort.clone();
        state.deadline = budget
            .timeout_ms
            .zip(started)
            .map(|(ms, started)| (started + std::time::Duration::from_secs_f64(ms / 1000.0), ms));
    }
    if timed {
        engine.ensure_ticker()?;
        store.set_epoch_deadline(1);
    }
    let outcome = body(store);
    let elapsed_ms = started.map_or(0.0, |started| started.elapsed().as_secs_f64() * 1000.0);
    if timed {
        store.set_epoch_deadline(NO_DEADLINE);
    }
    // An epoch interrupt unwinds compiled code before it writes its fuel counter back to the
    // store, so the store's fuel is stale: report nothing rather than a wrong number.
    let interrupted = outcome
        .as_ref()
        .err()
        .is_some_and(|error| error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt));
    let fuel_consumed = if engine.fuel && !interrupted {
        store.get_fuel().ok().map(|left| fuel_budget - left)
    } else {
        None
    };

    metrics.calls += 1;
    metrics.last_call_fuel = 0;
    if let Some(consumed) = fuel_consumed {
        metrics.last_call_fuel = consumed;
        metrics.total_fuel = metrics.total_fuel.saturating_add(consumed);
    }
    metrics.memory = store.data().limiter.metrics();
    let state = store.data_mut();
    state.abort = None;
    state.deadline = None;
    outcome.map_err(|error| {
        metrics.traps += 1;
        classify(
            error,
            CallFacts {
                host_failure: state.host_failure.take(),
                interrupt: state.interrupt.take(),
                fuel_consumed,
                elapsed_ms,
                memory_denied: metrics.memory.denied_growths > denied_before,
            },
        )
    })
}

/// Instantiates into `store` under the instance's default budget (start functions run then) and
/// pairs the store with the instance. Instantiation is not a call: only its memory shows in the
/// metrics.
pub fn instantiate<I>(
    mut store: Store<HostState>,
    engine: &EngineShared,
    defaults: &Budget,
    body: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<I>,
) -> Result<Live<I>, Failure> {
    let instance = run_classified(
        &mut store,
        engine,
        defaults,
        &mut Metrics::default(),
        body,
        Failure::instantiate,
    )?;
    let metrics = Metrics {
        memory: store.data().limiter.metrics(),
        ..Metrics::default()
    };
    Ok(Live {
        store,
        instance,
        metrics,
    })
}

/// A store plus the instance living in it.
pub struct Live<I> {
    pub store: Store<HostState>,
    pub instance: I,
    pub metrics: Metrics,
}

/// Owns one instance's store and hands it to one caller at a time: a second caller gets
/// ERR_WASM_BUSY instead of waiting (a sync caller waiting on the JS thread could deadlock with a
/// host call that needs the JS thread).
pub struct Slot<I> {
    live: Mutex<Option<Live<I>>>,
    snapshot: Mutex<Metrics>,
    disposed: AtomicBool,
    poisoned: AtomicBool,
    /// Component instances refuse re-entry after a trap; core instances stay usable.
    poison_on_trap: bool,
    pub engine: Arc<EngineShared>,
    pub defaults: Budget,
}

impl<I> Slot<I> {
    pub fn new(live: Live<I>, engine: Arc<EngineShared>, defaults: Budget, poison_on_trap: bool) -> Self {
        Slot {
            snapshot: Mutex::new(live.metrics),
            live: Mutex::new(Some(live)),
            disposed: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            poison_on_trap,
            engine,
            defaults,
        }
    }

    /// Gives `body` exclusive use of the live instance.
    pub fn with<R>(&self, body: impl FnOnce(&mut Live<I>) -> Result<R, Failure>) -> Result<R, Failure> {
        if self.disposed.load(Ordering::Acquire) {
            return Err(Failure::Disposed("the instance was disposed".into()));
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Failure::Poisoned(
                "the instance trapped earlier and cannot be entered again; create a new instance".into(),
            ));
        }
        let mut guard = match self.live.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(Failure::Busy("another call is running on this instance".into()));
            }
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        let Some(live) = guard.as_mut() else {
            return Err(Failure::Disposed("the instance was disposed".into()));
        };
        let result = body(live);
        *self.snapshot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = live.metrics;
        if let Err(failure) = &result
            && self.poison_on_trap
            && failure.poisons()
        {
            self.poisoned.store(true, Ordering::Release);
        }
        if self.disposed.load(Ordering::Acquire) {
            guard.take();
        }
        result
    }

    /// [`Slot::with`] on the JS thread: host functions are called directly, not through the
    /// dispatcher.
    pub fn with_on_js_thread<R>(
        &self,
        js: crate::js::Js,
        body: impl FnOnce(&mut Live<I>) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        self.with(|live| {
            live.store.data_mut().host.set_sync_env(Some(js));
            let result = body(live);
            live.store.data_mut().host.set_sync_env(None);
            result
        })
    }

    /// Splits the arguments of a function handle into its budget and the export's arguments: a
    /// budgeted handle takes `(fuel, timeoutMs, ...args)`, a plain one uses `default`.
    pub fn handle_budget<'a>(
        &self,
        js: crate::js::Js,
        budgeted: bool,
        default: &Budget,
        args: &'a [crate::js::Value],
    ) -> Result<(Budget, &'a [crate::js::Value]), Failure> {
        match (budgeted, args) {
            (true, [fuel, timeout_ms, rest @ ..]) => Ok((self.budget_from_js(js, *fuel, *timeout_ms)?, rest)),
            (true, _) => Err(Failure::Type("expected (fuel, timeoutMs, ...args)".into())),
            (false, all) => Ok((default.clone(), all)),
        }
    }

    /// Native bytes the instance holds: its linear memory now and the store around it (RSS per
    /// live instance measured ~6 KiB; see bench/live-instances.ts).
    pub fn native_bytes(&self) -> usize {
        const STORE_BYTES: usize = 8 * 1024;
        self.metrics().memory.current_bytes + STORE_BYTES
    }

    pub fn metrics(&self) -> Metrics {
        *self.snapshot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Frees the store now, or when the running call ends.
    pub fn dispose(&self) {
        self.disposed.store(true, Ordering::Release);
        if let Ok(mut guard) = self.live.try_lock() {
            guard.take();
        }
    }

    pub fn is_disposed(&self) -> bool {
        self.disposed.load(Ordering::Acquire)
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// The budget for one call from two JS values (`undefined` for the instance's default).
    pub fn budget_from_js(
        &self,
        js: crate::js::Js,
        fuel: crate::js::Value,
        timeout_ms: crate::js::Value,
    ) -> Result<Budget, Failure> {
        let read = |name: &str, value| -> Result<Option<f64>, Failure> {
            match js.kind(value).map_err(|error| Failure::Internal(error.reason))? {
                crate::js::Kind::Undefined | crate::js::Kind::Null => Ok(None),
                crate::js::Kind::Number => Ok(Some(
                    js.get_f64(value).map_err(|error| Failure::Internal(error.reason))?,
                )),
                _ => Err(Failure::Type(format!(
                    "option \"{name}\": expected a number, got {}",
                    js.describe(value)
                ))),
            }
        };
        self.budget(read("fuel", fuel)?, read("timeoutMs", timeout_ms)?, None)
    }

    /// The budget for one call: the per-call values win over the instance's defaults.
    pub fn budget(
        &self,
        fuel: Option<f64>,
        timeout_ms: Option<f64>,
        abort: Option<Arc<AtomicBool>>,
    ) -> Result<Budget, Failure> {
        let fuel = match fuel {
            Some(value) if !(value >= 0.0 && value.fract() == 0.0 && value <= 2f64.powi(53)) => {
                return Err(Failure::Type(format!(
                    "option \"fuel\": expected a non-negative integer, got {value}"
                )));
            }
            Some(value) => Some(value as u64),
            None => self.defaults.fuel,
        };
        if fuel.is_some() && !self.engine.fuel {
            return Err(Failure::Options(
                "option \"fuel\": this engine was created without fuel metering (new Engine({ fuel: true }))".into(),
            ));
        }
        let timeout_ms = match timeout_ms {
            Some(value) if !(value > 0.0 && value.is_finite()) => {
                return Err(Failure::Type(format!(
                    "option \"timeoutMs\": expected a positive number, got {value}"
                )));
            }
            Some(value) => Some(value),
            None => self.defaults.timeout_ms,
        };
        Ok(Budget {
            fuel,
            timeout_ms,
            abort,
        })
    }
}

/// Instance options after the TS layer applied defaults (lib/instance.ts owns the defaults).
#[napi_derive::napi(object)]
pub struct NativeInstanceOptions {
    /// Total bytes of all linear memories (`limits.memoryBytes`).
    pub memory_bytes: f64,
    pub table_elements: u32,
    pub instances: u32,
    pub tables: u32,
    pub memories: u32,
    /// A denied `memory.grow` traps (MemoryLimitError) instead of returning -1.
    pub trap_on_memory_denial: bool,
    /// Default fuel budget per call.
    pub fuel: Option<f64>,
    /// Default wall-clock deadline per call, in milliseconds.
    pub timeout_ms: Option<f64>,
    /// WASI to link; `None` links none (a WASI import is then a LinkError).
    pub wasi: Option<NativeWasiOptions>,
}

impl NativeInstanceOptions {
    /// The instance's default per-call budget.
    pub fn defaults(&self) -> Budget {
        Budget {
            fuel: self.fuel.map(|fuel| fuel as u64),
            timeout_ms: self.timeout_ms,
            abort: None,
        }
    }

    pub fn limits(&self) -> Result<LimitsConfig, Failure> {
        if !(self.memory_bytes >= 0.0 && self.memory_bytes.fract() == 0.0 && self.memory_bytes <= 2f64.powi(53)) {
            return Err(Failure::Type(format!(
                "limits.memoryBytes: expected a non-negative integer, got {}",
                self.memory_bytes
            )));
        }
        Ok(LimitsConfig {
            memory_bytes: self.memory_bytes as usize,
            table_elements: self.table_elements as usize,
            instances: self.instances as usize,
            tables: self.tables as usize,
            memories: self.memories as usize,
            trap_on_memory_denial: self.trap_on_memory_denial,
        })
    }
}

/// `metrics().memory`
#[napi_derive::napi(object)]
pub struct MemoryMetricsInfo {
    pub current_bytes: f64,
    pub peak_bytes: f64,
    pub limit_bytes: f64,
    pub denied_growths: f64,
}

/// `metrics().fuel`
#[napi_derive::napi(object)]
pub struct FuelMetricsInfo {
    pub last_call_consumed: f64,
    pub total_consumed: f64,
}

/// `metrics()`
#[napi_derive::napi(object)]
pub struct InstanceMetrics {
    pub memory: MemoryMetricsInfo,
    pub fuel: FuelMetricsInfo,
    pub calls: f64,
    pub traps: f64,
}

impl From<Metrics> for InstanceMetrics {
    fn from(metrics: Metrics) -> Self {
        InstanceMetrics {
            memory: MemoryMetricsInfo {
                current_bytes: metrics.memory.current_bytes as f64,
                peak_bytes: metrics.memory.peak_bytes as f64,
                limit_bytes: metrics.memory.limit_bytes as f64,
                denied_growths: metrics.memory.denied_growths as f64,
            },
            fuel: FuelMetricsInfo {
                last_call_consumed: metrics.last_call_fuel as f64,
                total_consumed: metrics.total_fuel as f64,
            },
            calls: metrics.calls as f64,
            traps: metrics.traps as f64,
        }
    }
}

/// The native side of one call's AbortSignal: `abort()` makes the epoch callback stop the guest.
#[napi_derive::napi]
pub struct NativeAbortHandle {
    flag: Arc<AtomicBool>,
}

#[napi_derive::napi]
impl NativeAbortHandle {
    #[napi_derive::napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NativeAbortHandle {
            flag: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Requests the call to stop at the next epoch tick.
    #[napi_derive::napi]
    pub fn abort(&self) {
        self.flag.store(true, Ordering::Release);
    }
}

impl NativeAbortHandle {
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}
