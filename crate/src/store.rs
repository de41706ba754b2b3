//! [`wasmtime::Store`] and its `HostState`: the limiter, per-call fuel and deadline, the abort
//! flag, the last host error and the metrics, plus the slot that serialises access to a store.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::component::resources::Resources;
use crate::engine::{EngineShared, InstanceTicket};
use crate::errors::{CallFacts, Failure, HostCallFailed, Interrupt, StartLeft};
use crate::js::{Js, Value};
use crate::limits::{Limiter, LimitsConfig, hostcall_fuel};
use crate::metrics::{Metrics, PublishedMetrics};
use crate::runtime::abort::{self, Abort};
use crate::runtime::executor::{self, Outcome};
use crate::runtime::host_bridge::{HostBridge, WaitLimits, converting};
use crate::runtime::native_stack;
use crate::wasi::{Output, TakenOutput, WasiState};

/// Far enough in epochs that a call without a deadline is never interrupted.
const NO_DEADLINE: u64 = u64::MAX / 2;

/// Data every store carries.
pub struct HostState {
    pub limiter: Limiter,
    pub host: HostBridge,
    pub wasi: WasiState,
    /// The failure a host function recorded for the call in progress.
    pub host_failure: Option<Failure>,
    /// A component instance's resource handles (`None` for a core module).
    pub resources: Option<Arc<Resources>>,
    /// Whether the engine meters fuel: asking the store instead makes an error each time it does
    /// not (wasmtime's `get_fuel`), which took a sync host call from 2 to 30 µs.
    pub metered: bool,
    deadline: Option<(Instant, f64)>,
    /// The deadline of the call that ended last, which converting its result to JS keeps to.
    returned_deadline: Option<(Instant, f64)>,
    abort: Abort,
    interrupt: Option<Interrupt>,
    /// The epoch callback suspended the guest inside wasm code (a worker's termination poll),
    /// where its fuel count is not written back; cleared at the next callback.
    yielded_in_wasm: bool,
}

impl HostState {
    /// Calls JS host function `index` for the guest, within the current call's deadline and abort
    /// (see [`HostBridge::invoke`]). A failure is kept in the store for the caller and wasmtime
    /// gets a marker, so the thrown JS value comes back intact as the call's error.
    pub fn call_host<R: Send + 'static>(
        &mut self,
        index: usize,
        label: &str,
        call: impl FnOnce(Js, Value, &WaitLimits) -> Result<Result<Value, Value>, Failure> + Send + 'static,
        finish: impl FnOnce(Js, Result<Value, Value>) -> Result<R, Failure> + Send + 'static,
    ) -> wasmtime::Result<R> {
        let limits = self.call_limits();
        self.host
            .invoke(index, label, limits, call, finish)
            .map_err(|failure| self.fail_call(failure))
    }

    /// Fails the guest's current call with `failure`: kept here, reported when the call returns.
    pub fn fail_call(&mut self, failure: Failure) -> wasmtime::Error {
        self.host_failure = Some(failure);
        wasmtime::Error::new(HostCallFailed)
    }
}

impl HostState {
    /// How much of V8's heap the JS values one call makes of a guest's may take: the hostcall
    /// fuel a store starts with before a component's `lift_ratio` divides it (see
    /// [`hostcall_fuel`]).
    pub fn js_heap_cap(&self) -> usize {
        hostcall_fuel(self.limiter.metrics().limit_bytes)
    }

    /// The deadline and abort flag of the call in progress.
    pub fn call_limits(&self) -> WaitLimits {
        WaitLimits {
            deadline: self.deadline,
            abort: self.abort.clone(),
        }
    }

    /// The deadline of the call that ended last, with `abort`, its abort flag: converting its
    /// result (or error payload) to JS stops at them, as the guest did.
    pub fn returned_limits(&self, abort: &Abort) -> WaitLimits {
        WaitLimits {
            deadline: self.returned_deadline,
            abort: abort.clone(),
        }
    }

    /// Whether calls into this store run as futures (see [`wait`]): WASI is linked in its async
    /// form, so a guest may wait in a host call, and such a wait must end at the deadline.
    pub fn waits(&self) -> bool {
        !matches!(self.wasi, WasiState::None)
    }
}

impl Drop for HostState {
    fn drop(&mut self) {
        if let Some(resources) = &self.resources {
            resources.store_dropped();
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (ctx, table) = self.wasi.http();
        WasiHttpCtxView {
            ctx,
            table,
            hooks: &mut self.host,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.p2()
    }
}

/// Per-call budgets; `None` means unmetered / no deadline.
#[derive(Clone, Default)]
pub struct Budget {
    pub fuel: Option<u64>,
    pub timeout_ms: Option<f64>,
    pub abort: Abort,
}

impl Budget {
    /// Whether the call has a deadline or an AbortSignal: both need the engine's epoch ticker.
    fn has_own_limits(&self) -> bool {
        self.timeout_ms.is_some() || self.abort.has_signal()
    }

    /// Whether the call runs with the epoch ticker. A worker's call also needs it to notice the
    /// worker's termination; on a closed engine (no ticker) it runs without that watch.
    fn is_timed(&self, engine: &EngineShared) -> bool {
        self.has_own_limits() || (self.abort.is_armed() && engine.check_open().is_ok())
    }

    /// A closed engine refuses new calls with a deadline or signal (they would need its ticker);
    /// calls issued before `close()` keep theirs.
    pub fn check_engine(&self, engine: &EngineShared) -> Result<(), Failure> {
        if self.has_own_limits() {
            engine.check_open()?;
        }
        Ok(())
    }
}

/// Creates a store with our limiter and an epoch callback that enforces the call's deadline and
/// abort flag on every tick.
pub fn new_store(
    engine: &EngineShared,
    limits: LimitsConfig,
    host: HostBridge,
    wasi: WasiState,
    resources: Option<Arc<Resources>>,
) -> Store<HostState> {
    let state = HostState {
        limiter: Limiter::new(limits, engine.memory_slot_bytes),
        host,
        wasi,
        host_failure: None,
        resources,
        metered: engine.fuel,
        deadline: None,
        returned_deadline: None,
        abort: Abort::default(),
        interrupt: None,
        yielded_in_wasm: false,
    };
    let handle_cap = state.resources.as_ref().map(|resources| resources.store_handles());
    let mut store = Store::new(&engine.engine, state);
    store.set_hostcall_fuel(hostcall_fuel(limits.memory_bytes));
    if let Some(cap) = handle_cap {
        store.set_max_component_handles(cap);
    }
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut();
        state.yielded_in_wasm = false;
        if state.abort.is_set() {
            state.interrupt = Some(Interrupt::Aborted);
            return Ok(UpdateDeadline::Interrupt);
        }
        if let Some((at, timeout_ms)) = state.deadline
            && Instant::now() >= at
        {
            state.interrupt = Some(Interrupt::Timeout { timeout_ms });
            return Ok(UpdateDeadline::Interrupt);
        }
        // A worker's JS thread running a guest's future cannot ask Node about termination from
        // the guest's fiber (`is_set` skips the probe there): yielding lets the thread's executor
        // ask between polls. A WASI guest spinning in `callSync` without a deadline was never
        // stopped by `terminate()` otherwise.
        if abort::on_fiber() && state.abort.needs_polling() {
            state.yielded_in_wasm = true;
            return Ok(UpdateDeadline::Yield(1));
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
    let table_denials_before = store.data().limiter.table_denials();
    if budget.abort.is_set() {
        return Err(Failure::aborted_before_entry());
    }
    let fuel_budget = budget.fuel.unwrap_or(u64::MAX);
    if engine.fuel {
        store
            .set_fuel(fuel_budget)
            .map_err(|error| Failure::Internal(format!("{error:#}")))?;
    }
    let timed = budget.is_timed(engine);
    // Reading the clock costs as much as a small call: only timed calls need it.
    let started = timed.then(Instant::now);
    {
        let state = store.data_mut();
        state.host_failure = None;
        state.interrupt = None;
        state.yielded_in_wasm = false;
        // Nothing to set or reset when both are unarmed (a call on the main thread without a
        // signal); an armed leftover (a call that unwound early) is still replaced.
        if budget.abort.is_armed() || state.abort.is_armed() {
            state.abort = budget.abort.clone();
        }
        // A deadline too far to represent is no deadline (options.rs bounds it well before that).
        state.deadline = budget.timeout_ms.zip(started).and_then(|(ms, started)| {
            let after = std::time::Duration::try_from_secs_f64(ms / 1000.0).ok()?;
            Some((started.checked_add(after)?, ms))
        });
    }
    let timed_call = if timed {
        let running = engine.timed_call();
        store.set_epoch_deadline(1);
        Some(running)
    } else {
        None
    };
    // Stopped while it waited in a host call (WASI), the guest had written its fuel count back
    // before calling out, unless it was suspended inside wasm code.
    let mut stopped_waiting = false;
    let outcome = body(store).map_err(|error| match error.downcast_ref::<WaitEnded>() {
        Some(&WaitEnded(interrupt)) => {
            let state = store.data_mut();
            state.interrupt = Some(interrupt);
            stopped_waiting = !state.yielded_in_wasm;
            wasmtime::Error::new(wasmtime::Trap::Interrupt)
        }
        None => error,
    });
    let elapsed_ms = started.map_or(0.0, |started| started.elapsed().as_secs_f64() * 1000.0);
    if timed {
        store.set_epoch_deadline(NO_DEADLINE);
    }
    drop(timed_call);
    // An epoch interrupt unwinds compiled code before it writes its fuel counter back to the
    // store, so the store's fuel is stale: report nothing rather than a wrong number.
    let interrupted = !stopped_waiting
        && outcome
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
    let handle_cap = store.max_component_handles();
    let state = store.data_mut();
    if state.abort.is_armed() {
        state.abort = Abort::default();
    }
    state.returned_deadline = state.deadline.take();
    outcome.map_err(|error| {
        let failure = classify(
            error,
            CallFacts {
                host_failure: state.host_failure.take(),
                interrupt: state.interrupt.take(),
                fuel_consumed,
                elapsed_ms,
                memory_denial: (metrics.memory.denied_growths > denied_before)
                    .then(|| state.limiter.last_denial())
                    .flatten(),
                table_denied: state.limiter.table_denials() > table_denials_before,
                handle_cap,
            },
        );
        // A command's exit(0) is how it succeeds (the caller reports it so), not a trap.
        if !matches!(failure, Failure::Exit(0)) {
            metrics.traps += 1;
        }
        failure
    })
}

/// A future borrowing the store: a call or an instantiation in progress.
pub type StoreFuture<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// Runs `call`'s future on this (pool) thread until it ends, or until the current call's deadline
/// or abort, which drop it unfinished: for a guest that may wait in WASI. Used inside [`run`] or
/// [`instantiate`], which set the deadline and abort and classify the interrupt.
pub fn wait<'a, R>(
    store: &'a mut Store<HostState>,
    call: impl FnOnce(&'a mut Store<HostState>) -> StoreFuture<'a, R>,
) -> wasmtime::Result<R> {
    let deadline = store.data().deadline;
    let abort = store.data().abort.clone();
    let interrupt = match executor::block_on(call(store), deadline.map(|(at, _)| at), &abort) {
        Outcome::Done(result) => return result,
        Outcome::TimedOut => Interrupt::Timeout {
            timeout_ms: deadline.map_or(0.0, |(_, ms)| ms),
        },
        Outcome::Aborted => Interrupt::Aborted,
    };
    Err(wasmtime::Error::new(WaitEnded(interrupt)))
}

/// A waiting guest's future was dropped at the deadline or abort; [`run_classified`] turns it
/// into the same interrupt an epoch tick gives a running guest.
#[derive(Debug)]
struct WaitEnded(Interrupt);

impl std::fmt::Display for WaitEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the guest was stopped while it waited")
    }
}

impl std::error::Error for WaitEnded {}

/// Instantiates into `store` under the instance's default budget (start functions run then) and
/// pairs the store with the instance. Instantiation is not a call: its memory shows in the
/// metrics, and the fuel its start functions burned in the total. A failure of start code that ran
/// carries what the store held of its doing (the output piped to `output`, memory figures, fuel),
/// which would otherwise go with it.
pub fn instantiate<I>(
    mut store: Store<HostState>,
    engine: &EngineShared,
    defaults: &Budget,
    output: &Output,
    body: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<I>,
) -> Result<Live<I>, Failure> {
    native_stack::check(engine.max_wasm_stack)?;
    let mut start = Metrics::default();
    // The fuel a failed start burnt, when known: a failure in a host function has it nowhere else.
    let mut fuel_consumed = None;
    let started = run_classified(&mut store, engine, defaults, &mut start, body, |error, facts| {
        fuel_consumed = facts.fuel_consumed;
        Failure::instantiate(error, facts)
    });
    let instance = started.map_err(|failure| {
        if !failure.ran_start() {
            return failure;
        }
        output.settle();
        let TakenOutput { stdout, stderr } = output.take();
        Failure::Started {
            failure: Box::new(failure),
            left: Box::new(StartLeft {
                stdout,
                stderr,
                // As run_classified read them when the start ended.
                peak_bytes: start.memory.peak_bytes,
                denied_growths: start.memory.denied_growths,
                fuel_consumed,
            }),
        }
    })?;
    let metrics = Metrics {
        memory: store.data().limiter.metrics(),
        total_fuel: start.total_fuel,
        ..Metrics::default()
    };
    output.settle();
    Ok(Live {
        store,
        instance,
        metrics,
        ticket: None,
        output: output.clone(),
    })
}

/// A store plus the instance living in it.
pub struct Live<I> {
    pub store: Store<HostState>,
    pub instance: I,
    pub metrics: Metrics,
    /// Its slot of `pooling.maxInstances`, given back when the store goes.
    pub ticket: Option<InstanceTicket>,
    /// Its piped stdout and stderr, settled whenever the guest stops running.
    pub output: Output,
}

/// Owns one instance's store and hands it to one caller at a time: a second caller gets
/// ERR_WASM_BUSY instead of waiting (a sync caller waiting on the JS thread could deadlock with a
/// host call that needs the JS thread).
pub struct Slot<I> {
    live: Mutex<Option<Live<I>>>,
    snapshot: PublishedMetrics,
    disposed: AtomicBool,
    poisoned: AtomicBool,
    /// Component instances refuse re-entry after a trap; core instances stay usable.
    poison_on_trap: bool,
    /// Calls run as futures (see [`HostState::waits`]) on a pool thread, because the guest also
    /// calls JS, which must not run on a fiber's stack: a synchronous call then relays its host
    /// calls to the waiting JS thread. A waiting guest without JS imports runs on the JS thread.
    pub waits_on_pool: bool,
    pub engine: Arc<EngineShared>,
    pub defaults: Budget,
    /// The instance's resource handles, for converting values on the JS thread.
    pub resources: Option<Arc<Resources>>,
    /// `limits.memoryBytes`: what an argument bound for guest memory must fit.
    pub guest_memory: usize,
}

impl<I> Slot<I> {
    pub fn new(live: Live<I>, engine: Arc<EngineShared>, defaults: Budget, poison_on_trap: bool) -> Self {
        Slot {
            resources: live.store.data().resources.clone(),
            guest_memory: live.store.data().limiter.metrics().limit_bytes,
            snapshot: PublishedMetrics::new(live.metrics),
            waits_on_pool: live.store.data().waits() && live.store.data().host.calls_js(),
            live: Mutex::new(Some(live)),
            disposed: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            poison_on_trap,
            engine,
            defaults,
        }
    }

    /// Refuses a call to a disposed or poisoned instance; checked before a call's arguments are
    /// converted too, which for a large argument took the JS thread seconds only to be refused
    /// (probe Z50: 2-3 s for 16 MiB given to a poisoned instance).
    pub fn usable(&self) -> Result<(), Failure> {
        if self.disposed.load(Ordering::Acquire) {
            return Err(Failure::Disposed("the instance was disposed".into()));
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Failure::Poisoned(
                "an earlier call ended inside the instance without returning (a trap, a host function's \
                 failure, an exit, exit(0) included, or a host limit), so it cannot be entered again; create a \
                 new instance"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Gives `body` exclusive use of the live instance.
    pub fn with<R>(&self, body: impl FnOnce(&mut Live<I>) -> Result<R, Failure>) -> Result<R, Failure> {
        self.usable()?;
        let mut guard = match self.live.try_lock() {
            Ok(guard) => guard,
            // dispose() holds the lock while it frees the store: then the call meets a disposal.
            Err(std::sync::TryLockError::WouldBlock) if self.disposed.load(Ordering::Acquire) => {
                return Err(Failure::Disposed("the instance was disposed".into()));
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(Failure::Busy("another call is running on this instance".into()));
            }
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        let Some(live) = guard.as_mut() else {
            return Err(Failure::Disposed("the instance was disposed".into()));
        };
        // Before the body: a refusal for want of stack is not a trap that poisons the instance.
        native_stack::check(self.engine.max_wasm_stack)?;
        let result = body(live);
        live.output.settle();
        self.snapshot.store(live.metrics);
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
        js: Js,
        body: impl FnOnce(&mut Live<I>) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        self.with(|live| {
            live.store.data_mut().host.set_sync_env(Some(js));
            let result = body(live);
            live.store.data_mut().host.set_sync_env(None);
            result
        })
    }

    /// The timeout of the call that ended last, once its deadline has passed, for converting its
    /// result in JS (nothing when the store is gone or in use: a later call has begun).
    pub fn returned_stopped(&self) -> Option<Failure> {
        let guard = match self.live.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        let limits = guard.as_ref()?.store.data().returned_limits(&Abort::default());
        limits.stopped(|| converting("its result"))
    }

    /// Native bytes the instance holds: its linear memory now and the store around it (RSS per
    /// live instance measured ~6 KiB; see bench/live-instances.ts).
    pub fn native_bytes(&self) -> usize {
        const STORE_BYTES: usize = 8 * 1024;
        self.metrics().memory.current_bytes + STORE_BYTES
    }

    pub fn metrics(&self) -> Metrics {
        self.snapshot.load()
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
}
