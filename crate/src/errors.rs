//! The single place that turns a failure into a JS error with a stable `code` (the README's error
//! table; [`CODES`] lists every code and a test checks lib/errors.ts against it).
//!
//! Work off the JS thread produces a [`Failure`] (plain data, `Send`); the JS thread turns it into
//! an `Error` object with `code` and the fields its class needs. lib/errors.ts maps that `code` to
//! a class; nothing matches on message text. Every N-API entry point runs through [`guard`], so a
//! Rust panic becomes ERR_WASM_INTERNAL instead of ending the process.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use napi_derive::napi;
use wasmtime::{Trap, WasmBacktrace};

use crate::js::{Js, Reference, Value};
use crate::limits::MemoryLimitExceeded;
use crate::names::{cut, shortened};
use crate::trap;

/// Every `code` the addon can give an error. lib/errors.ts has a class for each (checked by
/// `__test__/errors.spec.ts` through [`error_codes`]).
pub const CODES: &[&str] = &[
    "ERR_WASM_COMPILE",
    "ERR_WASM_LINK",
    "ERR_WASM_TYPE",
    "ERR_WASM_CONFIG",
    "ERR_WASM_MEMORY_LIMIT",
    "ERR_WASM_POOL_EXHAUSTED",
    "ERR_WASM_HOST_LIMIT",
    "ERR_WASM_HOST",
    "ERR_WASM_COMPONENT",
    "ERR_WASM_EXIT",
    "ERR_WASM_DISPOSED",
    "ERR_WASM_BUSY",
    "ERR_WASM_INSTANCE_POISONED",
    "ERR_WASM_INTERNAL",
    "ERR_WASM_TIMEOUT",
    "ABORT_ERR",
    "ERR_WASM_TRAP",
    "ERR_WASM_GUEST_ABI",
    "ERR_WASM_TRAP_UNREACHABLE",
    "ERR_WASM_TRAP_MEMORY_OUT_OF_BOUNDS",
    "ERR_WASM_TRAP_DIVIDE_BY_ZERO",
    "ERR_WASM_TRAP_INTEGER_OVERFLOW",
    "ERR_WASM_TRAP_BAD_CONVERSION",
    "ERR_WASM_TRAP_STACK_OVERFLOW",
    "ERR_WASM_TRAP_INDIRECT_CALL",
    "ERR_WASM_TRAP_TABLE_OUT_OF_BOUNDS",
    "ERR_WASM_TRAP_BAD_SIGNATURE",
    "ERR_WASM_TRAP_OUT_OF_FUEL",
];

/// Every error `code` the addon can produce (for the test that keeps lib/errors.ts in step).
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    CODES.to_vec()
}

/// A value made off the JS thread that becomes a JS value later, on the JS thread (an export's
/// `result::err` payload): errors.rs stays free of any particular value conversion. A conversion
/// may stop (at its call's deadline): the failure it stops with is then thrown instead.
pub trait LaterJs: Send {
    fn to_js(self: Box<Self>, js: Js) -> Result<Value, Failure>;
}

/// One frame of a trap's wasm backtrace.
pub struct Frame {
    pub func_name: Option<String>,
    pub func_index: u32,
    pub module: Option<String>,
    pub func_offset: Option<usize>,
    pub module_offset: Option<usize>,
}

/// What a trap carries to JS.
pub struct TrapInfo {
    pub code: &'static str,
    /// Whether the guest was entered: a call refused before (an abort that came first, too little
    /// native stack) left its instance as it was, so it poisons nothing.
    pub entered: bool,
    pub trap_code: String,
    pub message: String,
    pub frames: Vec<Frame>,
    pub fuel_consumed: Option<u64>,
    pub elapsed_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
}

/// Every way an operation of ours can fail.
pub enum Failure {
    Compile(String),
    Link(String),
    /// A JS value that does not fit the wasm type (a `TypeError` in JS).
    Type(String),
    /// A bad option value passed to the binding.
    Options(String),
    /// A bad value of the option at `path` (as the JS layer's ConfigError names it: `fuel`,
    /// `cacheDir`, `wasi.preopens`).
    OptionAt {
        path: &'static str,
        message: String,
    },
    /// Every slot of the engine's pooling allocator is taken.
    PoolExhausted(String),
    /// The guest made the host go past one of its bounds (data lifted in one call, live handles,
    /// address space).
    HostLimit(String),
    Trap(Box<TrapInfo>),
    /// A JS host function threw: the thrown value travels as `cause`.
    Host {
        message: String,
        cause: Option<Reference>,
    },
    /// An export returned `result::err`.
    Component {
        message: String,
        payload: Option<Box<dyn LaterJs>>,
    },
    /// A WASI guest called `exit(code)`.
    Exit(i32),
    /// A WASI guest called `exit(0)` in a call of an export that declares a value, which it never
    /// gave: code 0, but no success.
    ExitBeforeValue,
    /// A guest destructor run first in a call called `exit(code)`: the call never ran.
    DestructorExit(i32),
    Disposed(String),
    Busy(String),
    Poisoned(String),
    Internal(String),
    /// Start code failed with `failure`; what it left goes with its store, so it travels here.
    Started {
        failure: Box<Failure>,
        left: Box<StartLeft>,
    },
}

/// What a failed instantiation left in its store: the output it piped and its memory figures.
pub struct StartLeft {
    pub stdout: String,
    pub stderr: String,
    pub peak_bytes: usize,
    pub denied_growths: u64,
    /// On an engine with fuel, unless a deadline or abort stopped it inside wasm.
    pub fuel_consumed: Option<u64>,
}

/// What the store knew about a failed call, beyond wasmtime's error.
#[derive(Default)]
pub struct CallFacts {
    /// The failure a host function recorded before handing wasmtime a [`HostCallFailed`] marker.
    pub host_failure: Option<Failure>,
    /// Why the epoch callback interrupted the guest, if it did.
    pub interrupt: Option<Interrupt>,
    pub fuel_consumed: Option<u64>,
    pub elapsed_ms: f64,
    /// The limiter denied a memory growth during the operation: why, the last time.
    pub memory_denial: Option<MemoryLimitExceeded>,
    /// The limiter denied a table growth (`limits.tableElements`) during the operation.
    pub table_denied: bool,
    /// wasmtime's cap on the store's live component handles.
    pub handle_cap: usize,
}

/// Why the epoch deadline callback stopped the guest.
#[derive(Clone, Copy, Debug)]
pub enum Interrupt {
    Timeout { timeout_ms: f64 },
    Aborted,
}

/// A guest destructor's WASI `exit(code)`, run first in a call (its resource was dropped while an
/// earlier call ran, or collected): the call's failure, not its own exit.
#[derive(Debug)]
pub struct DestructorExited(pub i32);

impl std::fmt::Display for DestructorExited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a destructor exited with code {}", self.0)
    }
}

impl std::error::Error for DestructorExited {}

/// `error` of a destructor run first in a call, its exit marked as a [`DestructorExited`].
pub fn deferred_drop(error: wasmtime::Error) -> wasmtime::Error {
    match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        Some(exit) => wasmtime::Error::new(DestructorExited(exit.0)),
        None => error,
    }
}

/// A WasiExitError: `exitCode`, and for the JS layer only (not a field of the class) whether the
/// exit failed the call it ended (a sandbox and the metrics count it as a trap then).
fn exit_error(js: Js, code: &str, message: &str, exit_code: i32, failed_call: bool) -> napi::Result<Value> {
    let error = js.error(code, message, false)?;
    js.set(error, "exitCode", js.number(f64::from(exit_code))?)?;
    if failed_call {
        js.set(error, "failedCall", js.boolean(true)?)?;
    }
    Ok(error)
}

/// The marker a host function returns to wasmtime; the real failure waits in the store.
#[derive(Debug)]
pub struct HostCallFailed;

impl std::fmt::Display for HostCallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("host function failed")
    }
}

impl std::error::Error for HostCallFailed {}

impl Failure {
    /// A HostError's message with `reason` added (`…; reason`); other failures as they are.
    pub fn with_reason(self, reason: &str) -> Self {
        match self {
            Failure::Host { message, cause } => Failure::Host {
                message: format!("{message}; {reason}"),
                cause,
            },
            other => other,
        }
    }

    /// The LinkError for imports the host did not give, each `label: type`: the first
    /// [`MISSING_LISTED`] of them, each cut at [`MISSING_TEXT_BYTES`] (a 5 KB module that imports
    /// a 1,000-parameter function 490 times made a 4.9 MB message).
    pub fn missing_imports(missing: &[String]) -> Self {
        let mut listed: Vec<&str> = (missing.iter().take(MISSING_LISTED))
            .map(|text| cut(text, MISSING_TEXT_BYTES))
            .collect();
        let more = missing.len().saturating_sub(MISSING_LISTED);
        let rest = format!("and {more} more");
        if more > 0 {
            listed.push(&rest);
        }
        Failure::Link(format!("missing import(s): {}", listed.join("; ")))
    }

    /// The LinkError of wasmtime's own linking error, as one line of bounded length: its text
    /// quotes the guest's import names (`unknown import: \`wasi_snapshot_preview1::…\``) whole,
    /// newlines included.
    pub fn link(error: &wasmtime::Error) -> Self {
        Failure::Link(crate::names::one_line(&crate::names::shortened(
            &format!("{error:#}"),
            LINK_TEXT_BYTES,
        )))
    }

    pub fn compile(error: &wasmtime::Error) -> Self {
        Failure::Compile(compile_text(error))
    }

    /// Classifies an instantiation error: resource limits, missing imports, traps in start code.
    pub fn instantiate(error: wasmtime::Error, facts: CallFacts) -> Self {
        // A start function that exits: the exit is the instantiation's outcome.
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return Failure::Exit(exit.0);
        }
        // Whatever came out of running start code (it carries wasm frames) is the guest's, as in a
        // call: a trap, or a value it handed an import that broke the canonical ABI. Only the rest
        // (linking) is the host's.
        let trapped = error.downcast_ref::<Trap>().is_some()
            || error.downcast_ref::<HostCallFailed>().is_some()
            || error
                .downcast_ref::<WasmBacktrace>()
                .is_some_and(|trace| !trace.frames().is_empty());
        // Memory the instance itself needs (its initial memories). A growth start code asked for
        // is the guest's, reported as in a call (under trapOnMemoryDenial); one denied earlier (it
        // returned -1) is not why a start function that trapped afterwards for another reason failed.
        if !trapped && (facts.memory_denial.is_some() || error.downcast_ref::<MemoryLimitExceeded>().is_some()) {
            // Ours says what the limit is and what was asked for, all memories together; wasmtime's
            // ("memory minimum size of 12 pages exceeds memory limits") only that one memory failed.
            let message = match (error.downcast_ref::<MemoryLimitExceeded>(), facts.memory_denial) {
                (None, Some(denial)) => format!("instantiation exceeds its memory limit: {denial}"),
                _ => format!(
                    "instantiation exceeds limits.memoryBytes (or a pooling engine's maxMemoryBytes per memory): {}",
                    error.root_cause()
                ),
            };
            return Failure::memory_limit(message, &error, facts.fuel_consumed);
        }
        if trapped {
            return Failure::call(error, facts);
        }
        if facts.table_denied {
            // A bound of the instance's, like limits.tables: no import is wrong.
            return Failure::HostLimit(format!(
                "instantiation exceeds limits.tableElements: {}",
                error.root_cause()
            ));
        }
        if error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
            return Failure::PoolExhausted(format!(
                "the engine's pool has no room for this instance's core instances, memories or tables (the pool holds 4, 2 \
                 and 2 of them per pooling.maxInstances, and a component takes one of each per core module it \
                 instantiates): dispose instances, or raise pooling.maxInstances (one that needs more than the \
                 whole pool never fits): {}",
                reason(&error)
            ));
        }
        if messages(&error).any(|text| text.starts_with(COUNT_LIMIT_EXCEEDED) || text.starts_with(MMAP_FAILED)) {
            return Failure::HostLimit(format!(
                "instantiation exceeds limits.instances, limits.tables or limits.memories, or the address space it needs: {}",
                reason(&error)
            ));
        }
        Failure::link(&error)
    }

    /// Classifies the error of a call into wasm, with what the store knew.
    pub fn call(error: wasmtime::Error, facts: CallFacts) -> Self {
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return Failure::Exit(exit.0);
        }
        if let Some(exited) = error.downcast_ref::<DestructorExited>() {
            return Failure::DestructorExit(exited.0);
        }
        if error.downcast_ref::<HostCallFailed>().is_some()
            && let Some(mut failure) = facts.host_failure
        {
            // Ended while the guest waited on a host function (a deadline or an abort): compiled
            // code wrote its fuel count back before calling out, so the figure is known.
            if let Failure::Trap(info) = &mut failure {
                info.fuel_consumed = info.fuel_consumed.or(facts.fuel_consumed);
            }
            return failure;
        }
        if lifted_too_much(&error) {
            return Failure::HostLimit(format!(
                "the guest made one call move more data into the host than its limits allow \
                 (about {} times limits.memoryBytes, {} times less for a component that passes \
                 strings in UTF-16 or latin1, less for one whose values hold flags): {}",
                crate::limits::HOSTCALL_FUEL_PER_BYTE,
                crate::limits::TRANSCODING_RATIO,
                reason(&error)
            ));
        }
        if asked_too_much_random(&error) {
            return Failure::HostLimit(format!(
                "the guest asked for more random bytes at once than one call may make \
                 (limits.memoryBytes, at most 64 MiB): {}",
                error.root_cause()
            ));
        }
        if handle_limit_hit(&error) {
            return Failure::HostLimit(format!(
                "{}: {}",
                crate::limits::store_handles_exceeded(facts.handle_cap),
                reason(&error)
            ));
        }
        if let Some(exceeded) = error.downcast_ref::<MemoryLimitExceeded>() {
            return Failure::memory_limit(exceeded.to_string(), &error, facts.fuel_consumed);
        }
        if error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<wasmtime::component::ResourceTableError>(),
                Some(wasmtime::component::ResourceTableError::Full)
            )
        }) {
            // WASI's handles (files, streams, pollables) sit in a table of bounded size.
            return Failure::HostLimit(format!(
                "the guest holds more WASI handles (open files, streams, pollables) than the host allows: {}",
                reason(&error)
            ));
        }
        if error.chain().any(|cause| {
            matches!(
                cause.downcast_ref::<wasmtime_wasi_http::FieldMapError>(),
                Some(
                    wasmtime_wasi_http::FieldMapError::TotalSizeTooBig
                        | wasmtime_wasi_http::FieldMapError::TooManyFields
                )
            )
        }) {
            // wasi:http headers and trailers sit in host memory, bounded per `fields`.
            return Failure::HostLimit(format!(
                "the guest's wasi:http headers or trailers exceed the host's bound ({} bytes per fields): {}",
                crate::limits::HTTP_FIELDS_BYTES,
                reason(&error)
            ));
        }
        let frames = backtrace(&error);
        let Some(&trap) = error.downcast_ref::<Trap>() else {
            // Not a trap, not a failure of ours: wasmtime refused what the guest handed it while
            // lifting or lowering values (invalid UTF-8, a pointer or length out of bounds or
            // misaligned, a bad discriminant or flag bit, a realloc that returned garbage).
            return Failure::Trap(Box::new(TrapInfo {
                entered: true,
                code: "ERR_WASM_GUEST_ABI",
                trap_code: "CanonicalAbi".into(),
                // The root cause is wasmtime's reason; the frames are in `wasmBacktrace`.
                // A core module's WASI calls break the same rules (a bad pointer, a bad flag).
                // Between two components nested in one too: wasmtime's adapters check the same.
                message: format!("the guest broke the canonical ABI of a call: {}", error.root_cause()),
                frames,
                fuel_consumed: facts.fuel_consumed,
                elapsed_ms: None,
                timeout_ms: None,
            }));
        };
        let (mut code, trap_code) = trap::classify(trap);
        let mut message = trap.to_string();
        let (mut elapsed_ms, mut timeout_ms) = (None, None);
        if trap == Trap::Interrupt {
            match facts.interrupt {
                Some(Interrupt::Timeout { timeout_ms: limit }) => {
                    message = format!(
                        "wasm call timed out after {:.0} ms (timeoutMs: {})",
                        facts.elapsed_ms,
                        shown_ms(limit)
                    );
                    elapsed_ms = Some(facts.elapsed_ms);
                    timeout_ms = Some(limit);
                }
                Some(Interrupt::Aborted) => {
                    code = "ABORT_ERR";
                    message = "The operation was aborted".into();
                }
                None => code = "ERR_WASM_TRAP",
            }
        } else if trap == Trap::OutOfFuel
            && let Some(consumed) = facts.fuel_consumed
        {
            message = format!("wasm call ran out of fuel after consuming {consumed} units");
        }
        Failure::Trap(Box::new(TrapInfo {
            entered: true,
            code,
            trap_code,
            message,
            frames,
            fuel_consumed: facts.fuel_consumed,
            elapsed_ms,
            timeout_ms,
        }))
    }

    /// A stop that happened outside wasm (before the call, or while it waited for the host): an
    /// interrupt with no frames. `times` is `(elapsed_ms, timeout_ms)` for a timeout.
    pub fn interrupted(code: &'static str, message: String, times: Option<(f64, f64)>) -> Self {
        Failure::Trap(Box::new(TrapInfo {
            entered: true,
            code,
            trap_code: "Interrupt".into(),
            message,
            frames: Vec::new(),
            fuel_consumed: None,
            elapsed_ms: times.map(|(elapsed, _)| elapsed),
            timeout_ms: times.map(|(_, timeout)| timeout),
        }))
    }

    /// An AbortError for a call whose signal was aborted before its guest was entered (it may be
    /// aborted after the call was queued for a pool thread): nothing ran.
    pub fn aborted_before_entry() -> Self {
        let mut failure = Self::interrupted("ABORT_ERR", "The operation was aborted".into(), None);
        if let Failure::Trap(info) = &mut failure {
            info.entered = false;
        }
        failure
    }

    /// A MemoryLimitError: a growth the limiter denied, in a call or at instantiation.
    fn memory_limit(message: String, error: &wasmtime::Error, fuel_consumed: Option<u64>) -> Self {
        Failure::Trap(Box::new(TrapInfo {
            entered: true,
            code: "ERR_WASM_MEMORY_LIMIT",
            trap_code: "MemoryLimit".into(),
            message,
            frames: backtrace(error),
            fuel_consumed,
            elapsed_ms: None,
            timeout_ms: None,
        }))
    }

    /// A call refused before it entered wasm: the thread has `left` bytes of stack, not `needed`.
    pub fn no_native_stack(left: usize, needed: usize) -> Self {
        Failure::Trap(Box::new(TrapInfo {
            entered: false,
            code: "ERR_WASM_TRAP_STACK_OVERFLOW",
            trap_code: "StackOverflow".into(),
            message: format!(
                "this thread has {} KiB of native stack left, and the guest may need {} KiB \
                 (maxWasmStackBytes and room for host frames): call it from a shallower JS stack, \
                 with call(), or lower maxWasmStackBytes",
                left / 1024,
                needed / 1024
            ),
            frames: Vec::new(),
            fuel_consumed: None,
            elapsed_ms: None,
            timeout_ms: None,
        }))
    }

    /// Whether guest code ran before this failure of an instantiation: start code that trapped
    /// (its frames say so), was stopped by the deadline or an abort, failed in a host function or
    /// exited; not a link error, a limit the instance's own layout broke (an initial memory too
    /// large), or an abort that came first.
    pub fn ran_start(&self) -> bool {
        match self {
            Failure::Trap(info) => {
                info.entered && (!info.frames.is_empty() || matches!(info.code, "ERR_WASM_TIMEOUT" | "ABORT_ERR"))
            }
            Failure::Host { .. } | Failure::Exit(_) => true,
            _ => false,
        }
    }

    /// Whether this failure leaves a component instance unusable (wasmtime refuses re-entry).
    pub fn poisons(&self) -> bool {
        matches!(
            self,
            Failure::Host { .. }
                | Failure::Internal(_)
                | Failure::Exit(_)
                | Failure::ExitBeforeValue
                | Failure::DestructorExit(_)
                | Failure::HostLimit(_)
        ) || matches!(self, Failure::Trap(info) if info.entered)
            || matches!(self, Failure::Started { failure, .. } if failure.poisons())
    }

    fn code(&self) -> &'static str {
        match self {
            Failure::Compile(_) => "ERR_WASM_COMPILE",
            Failure::Link(_) => "ERR_WASM_LINK",
            Failure::Type(_) => "ERR_WASM_TYPE",
            Failure::Options(_) | Failure::OptionAt { .. } => "ERR_WASM_CONFIG",
            Failure::PoolExhausted(_) => "ERR_WASM_POOL_EXHAUSTED",
            Failure::HostLimit(_) => "ERR_WASM_HOST_LIMIT",
            Failure::Trap(info) => info.code,
            Failure::Host { .. } => "ERR_WASM_HOST",
            Failure::Component { .. } => "ERR_WASM_COMPONENT",
            Failure::Exit(_) | Failure::ExitBeforeValue | Failure::DestructorExit(_) => "ERR_WASM_EXIT",
            Failure::Disposed(_) => "ERR_WASM_DISPOSED",
            Failure::Busy(_) => "ERR_WASM_BUSY",
            Failure::Poisoned(_) => "ERR_WASM_INSTANCE_POISONED",
            Failure::Internal(_) => "ERR_WASM_INTERNAL",
            Failure::Started { failure, .. } => failure.code(),
        }
    }

    /// A Rust panic caught at the boundary: a bug of ours, reported instead of ending the process.
    pub fn panicked(payload: Box<dyn Any + Send>) -> Self {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Failure::Internal(format!(
            "internal error in airssys-wasm (a Rust panic, please report it): {detail}"
        ))
    }

    /// Throws the JS error on the JS thread, for a binding that returns the result at once: napi-rs
    /// leaves an exception that is pending as it is. (Handed the error instead, napi-rs reads its
    /// `cause` chain and coerces each to a string, which throws for a Symbol a host function threw.)
    pub fn into_napi(self, js: Js) -> napi::Error {
        js.throw(self.to_js_or_internal(js));
        napi::Error::new(napi::Status::PendingException, String::new())
    }

    /// The JS error for this failure, or a plain internal one if even building it failed.
    pub fn to_js_or_internal(self, js: Js) -> Value {
        self.to_js(js)
            .or_else(|_| js.error("ERR_WASM_INTERNAL", "cannot build the error", false))
            .unwrap_or(std::ptr::null_mut())
    }

    /// Lets go of what this failure holds of JS, unseen: what a host function threw, an err
    /// payload (whose host objects its conversion disposes of), on the JS thread.
    pub fn discard(self, js: Js) {
        match self {
            Failure::Host { cause: Some(cause), .. } => js.release(cause),
            Failure::Component {
                payload: Some(payload), ..
            } => {
                let _ = payload.to_js(js);
            }
            Failure::Started { failure, .. } => failure.discard(js),
            _ => {}
        }
    }

    /// The JS error object for this failure.
    pub fn to_js(self, js: Js) -> napi::Result<Value> {
        let code = self.code();
        match self {
            Failure::Compile(message)
            | Failure::Link(message)
            | Failure::Options(message)
            | Failure::PoolExhausted(message)
            | Failure::HostLimit(message)
            | Failure::Disposed(message)
            | Failure::Busy(message)
            | Failure::Poisoned(message)
            | Failure::Internal(message) => js.error(code, &message, false),
            Failure::Type(message) => js.error(code, &message, true),
            Failure::OptionAt { path, message } => {
                let error = js.error(code, &message, false)?;
                js.set(error, "path", js.string(path)?)?;
                Ok(error)
            }
            Failure::Exit(exit_code) => {
                let message = format!("the guest exited with code {exit_code}");
                exit_error(js, code, &message, exit_code, false)
            }
            Failure::ExitBeforeValue => {
                let message = "the guest exited with code 0 before returning the value its export declares";
                exit_error(js, code, message, 0, true)
            }
            Failure::DestructorExit(exit_code) => {
                let message = format!(
                    "the guest exited with code {exit_code} in the destructor of a resource dropped \
                     earlier (disposed during a call, or collected), which ran first: this call did not run"
                );
                exit_error(js, code, &message, exit_code, true)
            }
            Failure::Trap(info) => {
                let error = js.error(code, &info.message, false)?;
                js.set(error, "trapCode", js.string(&info.trap_code)?)?;
                // For the JS layer only (a sandbox counts a failed start by it): not a field of
                // the error classes.
                if !info.entered {
                    js.set(error, "entered", js.boolean(false)?)?;
                }
                let frames = js.array(info.frames.len())?;
                for (index, frame) in info.frames.iter().enumerate() {
                    js.set_index(frames, index as u32, frame_to_js(js, frame)?)?;
                }
                js.set(error, "wasmBacktrace", frames)?;
                if let Some(fuel) = info.fuel_consumed {
                    js.set(error, "fuelConsumed", js.number(fuel as f64)?)?;
                }
                if let Some(elapsed) = info.elapsed_ms {
                    js.set(error, "elapsedMs", js.number(elapsed)?)?;
                }
                if let Some(timeout) = info.timeout_ms {
                    js.set(error, "timeoutMs", js.number(timeout)?)?;
                }
                Ok(error)
            }
            Failure::Host { message, cause } => {
                let error = js.error(code, &message, false)?;
                if let Some(cause) = cause {
                    let value = js.dereference(&cause);
                    js.release(cause);
                    js.set(error, "cause", value?)?;
                }
                Ok(error)
            }
            Failure::Component { message, payload } => {
                let payload = match payload.map(|payload| payload.to_js(js)) {
                    Some(Ok(payload)) => payload,
                    Some(Err(stopped)) => return stopped.to_js(js),
                    None => js.undefined()?,
                };
                let error = js.error(code, &message, false)?;
                js.set(error, "payload", payload)?;
                Ok(error)
            }
            Failure::Started { failure, left } => {
                let error = failure.to_js(js)?;
                let start = js.object()?;
                js.set(start, "stdout", js.string(&left.stdout)?)?;
                js.set(start, "stderr", js.string(&left.stderr)?)?;
                js.set(start, "peakBytes", js.number(left.peak_bytes as f64)?)?;
                js.set(start, "deniedGrowths", js.number(left.denied_growths as f64)?)?;
                if let Some(fuel) = left.fuel_consumed {
                    js.set(start, "fuelConsumed", js.number(fuel as f64)?)?;
                }
                js.set(error, "failedStart", start)?;
                Ok(error)
            }
        }
    }
}

/// wasmparser's words for a type that needs wasmtime's GC, which this build leaves out.
const NEEDS_GC: &str = "gc types are disallowed";

/// Why `error` refused the bytes, saying what GC is about where wasmparser names only GC: `externref`
/// (reference types, which V8 runs) was refused as "gc types".
pub fn compile_text(error: &wasmtime::Error) -> String {
    let text = without_backtraces(&format!("{error:#}"));
    let text = plain_translation_error(&text).unwrap_or(text);
    // A WAT error points at its line on lines of its own; any other is one line, where a newline
    // can only be a guest's, inside a name it quotes (`duplicate export name`).
    let text = if error.chain().any(|cause| cause.is::<wat::Error>()) {
        text
    } else {
        crate::names::one_line(&text)
    };
    if text.contains(NEEDS_GC) {
        return format!(
            "{text} (externref, and every reference type but funcref, needs wasmtime's garbage collector, which \
             airssys-wasm is built without)"
        );
    }
    text
}

/// Why wasmtime could not compile an input, from the message of a panic it raised doing so (its
/// `unwrap` of an error: the error's debug text, whose backtrace would hold the build's paths).
pub fn compile_panic_text(noun: &str, panic: &str) -> String {
    let panic = panic
        .strip_prefix("called `Result::unwrap()` on an `Err` value: ")
        .unwrap_or(panic);
    let reason = crate::names::one_line(without_backtraces(panic).trim());
    format!("wasmtime cannot compile this {noun} ({reason})")
}

/// A function body that the compiler found invalid, as `validate` says it: `unknown local 5: local
/// index out of bounds (at offset 0x19)`, not within wasmtime's framing, which names its internal
/// indices: Cranelift's `failed to compile: wasm[0]::function[0]: WebAssembly translation error:
/// Invalid input WebAssembly code at offset 25: …` (the offset in decimal), Winch's `failed to
/// compile: wasm[0]::function[0]: Compilation error: … (at offset 0x19)`.
fn plain_translation_error(text: &str) -> Option<String> {
    // A function with a name has it after its index (`function[0]::g`): the guest's text, so the
    // framing is found from the end, after which wasmtime writes only the validator's message.
    let rest = text.strip_prefix("failed to compile: wasm[")?;
    if let Some((_, rest)) =
        rest.rsplit_once(": WebAssembly translation error: Invalid input WebAssembly code at offset ")
    {
        let (offset, message) = rest.split_once(": ")?;
        let offset: u64 = offset.parse().ok()?;
        return Some(format!("{message} (at offset {offset:#x})"));
    }
    let (_, message) = rest.rsplit_once(": Compilation error: ")?;
    // Only a validation error, which ends with its offset: Winch's other errors keep the framing
    // that names the function.
    (message.ends_with(')') && message.contains(" (at offset 0x")).then(|| message.to_string())
}

/// A `timeoutMs` as a message shows it: as JS would write it, not as 330 digits of a tiny one
/// (any number above 0 is a valid deadline).
pub fn shown_ms(ms: f64) -> String {
    if ms != 0.0 && ms.abs() < 1e-3 {
        format!("{ms:e}")
    } else {
        format!("{ms}")
    }
}

/// `text` without the Rust stack backtraces an inner error's debug text brought into it (Winch
/// formats its errors so; with `RUST_BACKTRACE` set they held the build's source paths): each
/// "Stack backtrace:" line and the frame lines after it.
fn without_backtraces(text: &str) -> String {
    let mut kept = Vec::new();
    let mut in_backtrace = false;
    for line in text.split('\n') {
        let trimmed = line.trim_start();
        let frame = trimmed.starts_with("at ")
            || trimmed
                .split_once(": ")
                .is_some_and(|(number, _)| !number.is_empty() && number.bytes().all(|byte| byte.is_ascii_digit()));
        if line == "Stack backtrace:" {
            in_backtrace = true;
        } else if !(in_backtrace && frame) {
            in_backtrace = false;
            kept.push(line);
        }
    }
    kept.join("\n").trim_end().to_owned()
}

/// How wasmtime's backtrace context starts its text (it is a context, not an error type).
const BACKTRACE_CONTEXT: &str = "error while executing at wasm backtrace";

/// The messages of `error`'s chain, without its wasm backtrace (which is in `wasmBacktrace`, and
/// whose function names are the guest's, as long as it likes: formatting it for each check of a
/// message cost 1.2 GB and 2 s for a 16 MiB name); pinned by the long names test in
/// hostile-guests.spec.ts. Every check of wasmtime's wording reads them through here.
fn messages(error: &wasmtime::Error) -> impl Iterator<Item = String> + '_ {
    (error.chain())
        .filter(|cause| !starts_with(cause, BACKTRACE_CONTEXT))
        .map(|cause| cause.to_string())
}

/// `error`'s chain of messages without its wasm backtrace, as `{error:#}` would join them.
fn reason(error: &wasmtime::Error) -> String {
    messages(error).collect::<Vec<_>>().join(": ")
}

/// Whether `value` displays as text starting with `prefix`, formatting no more of it than that.
fn starts_with(value: &dyn std::fmt::Display, prefix: &str) -> bool {
    struct Head<'a> {
        prefix: &'a str,
        seen: usize,
    }
    impl std::fmt::Write for Head<'_> {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            let rest = &self.prefix[self.seen..];
            let take = rest.len().min(text.len());
            if text.as_bytes()[..take] != rest.as_bytes()[..take] {
                return Err(std::fmt::Error);
            }
            self.seen += take;
            // Stop formatting once the prefix is seen (or ruled out).
            if self.seen == self.prefix.len() {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut head = Head { prefix, seen: 0 };
    let _ = std::fmt::write(&mut head, format_args!("{value}"));
    head.seen == prefix.len()
}

/// Missing imports a LinkError names, and the most bytes of each one's text.
const MISSING_LISTED: usize = 20;
const MISSING_TEXT_BYTES: usize = 500;

/// Most bytes of wasmtime's text a LinkError keeps: it names one import and its type.
const LINK_TEXT_BYTES: usize = 2000;

/// Longest function or module name a backtrace frame keeps: names come from the guest's name
/// section, and a trap's 32 frames each had their own copy (a 16 MiB name cost 1.8 GB).
const MAX_FRAME_NAME_BYTES: usize = 1024;

fn frame_name(name: Option<&str>) -> Option<String> {
    name.map(|name| shortened(name, MAX_FRAME_NAME_BYTES).into_owned())
}

fn backtrace(error: &wasmtime::Error) -> Vec<Frame> {
    let Some(trace) = error.downcast_ref::<WasmBacktrace>() else {
        return Vec::new();
    };
    trace
        .frames()
        .iter()
        .map(|frame| Frame {
            func_name: frame_name(frame.func_name()),
            func_index: frame.func_index(),
            module: frame_name(frame.module().name()),
            func_offset: frame.func_offset(),
            module_offset: frame.module_offset(),
        })
        .collect()
}

fn frame_to_js(js: Js, frame: &Frame) -> napi::Result<Value> {
    let object = js.object()?;
    let optional_string = |value: &Option<String>| match value {
        Some(text) => js.string(text),
        None => js.undefined(),
    };
    let optional_number = |value: Option<usize>| match value {
        Some(number) => js.number(number as f64),
        None => js.undefined(),
    };
    js.set(object, "funcName", optional_string(&frame.func_name)?)?;
    js.set(object, "funcIndex", js.number(frame.func_index as f64)?)?;
    js.set(object, "module", optional_string(&frame.module)?)?;
    js.set(object, "funcOffset", optional_number(frame.func_offset)?)?;
    js.set(object, "moduleOffset", optional_number(frame.module_offset)?)?;
    Ok(object)
}

/// `exit(0)` from a WASI guest ends its work successfully: the call returns `success` (for an
/// export that declares a value it is `ExitBeforeValue` by then, see `call.rs`).
pub fn exit_zero_is_success<T>(result: Result<T, Failure>, success: impl FnOnce() -> T) -> Result<T, Failure> {
    match result {
        Err(Failure::Exit(0)) => Ok(success()),
        other => other,
    }
}

/// The failure box, given to the JS layer: a binding that fails sets its `error` to the JS error
/// and returns the box itself, and the JS layer throws the error from JS.
///
/// A binding never throws a guest's failure itself: `napi_throw` throws inside a `v8::TryCatch`
/// of N-API's own, which V8 counts as no handler at all, so under `node
/// --abort-on-uncaught-exception` every trap, timeout or bad argument aborted the process even
/// inside a `try` (an outside probe; any N-API addon that throws does the same). Thrown from JS,
/// the error meets the caller's `try` as any JS error does.
#[napi(js_name = "failureBox", ts_return_type = "{ error: unknown }")]
pub fn failure_box_binding(env: napi::Env) -> napi::Result<crate::js::Raw> {
    crate::js::failure::failure_box(Js(env.raw())).map(crate::js::Raw)
}

/// Hands `failure` to the JS layer: the failure box holding its error (see [`failure_box_binding`]),
/// or, if even that cannot be had, null after throwing the error.
pub fn fail(js: Js, failure: Failure) -> Value {
    let error = failure.to_js_or_internal(js);
    match crate::js::failure::failure_box(js) {
        Ok(target) if js.set(target, "error", error).is_ok() => target,
        _ => {
            js.throw(error);
            std::ptr::null_mut()
        }
    }
}

/// `body`, with a panic caught as a [`Failure`].
pub fn caught<T>(body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| Err(Failure::panicked(panic)))
}

/// The body of a raw N-API callback: its value, or the failure box (see [`fail`]).
pub fn return_or_fail(js: Js, body: impl FnOnce() -> Result<Value, Failure>) -> Value {
    caught(body).unwrap_or_else(|failure| fail(js, failure))
}

/// The body of a binding whose failures a guest or its bytes can cause: its value as JS, or the
/// failure box (see [`fail`]).
pub fn answer<T: napi::bindgen_prelude::ToNapiValue>(
    js: Js,
    body: impl FnOnce() -> Result<T, Failure>,
) -> napi::Result<crate::js::Raw> {
    let value = caught(body).and_then(|value| {
        // SAFETY: on the JS thread, with this binding's environment.
        unsafe { T::to_napi_value(js.0, value) }.map_err(Failure::from)
    });
    Ok(crate::js::Raw(value.unwrap_or_else(|failure| fail(js, failure))))
}

/// The body of a binding no guest can make fail (or one that cannot return the failure box, a
/// constructor): runs `body`, turning a [`Failure`] (or a panic) into a thrown JS error.
pub fn guard<T>(js: Js, body: impl FnOnce() -> Result<T, Failure>) -> napi::Result<T> {
    caught(body).map_err(|failure| failure.into_napi(js))
}

impl From<napi::Error> for Failure {
    /// A failed N-API call: JS threw while we read a value the caller gave (a getter, a proxy),
    /// which is the value's fault; otherwise the environment is broken or shutting down.
    fn from(error: napi::Error) -> Self {
        if error.status == napi::Status::PendingException {
            Failure::Type(error.reason)
        } else {
            Failure::Internal(error.reason)
        }
    }
}

/// The start of wasmtime's message when a call lifts more than its hostcall fuel allows. The
/// error type is private to wasmtime, so this text is the only handle; `limits.spec.ts` runs a
/// real component past the bound, so a wasmtime upgrade that changes the text fails a test.
const HOSTCALL_FUEL_EXHAUSTED: &str = "too much data is being copied between the host and the guest";

/// How wasmtime words a refusal from the limiter's instance, table or memory counts (a plain
/// message, no type); pinned by the memories test in escapes.spec.ts.
const COUNT_LIMIT_EXCEEDED: &str = "resource limit exceeded";

/// How wasmtime words a failed reservation of memory for a new instance (out of address space):
/// the instance that asked gets a HostLimitError, its neighbours are untouched.
const MMAP_FAILED: &str = "mmap failed";

/// How wasmtime words a refusal at its store-wide cap on live component handles (a plain message,
/// no type); pinned by the handle flood test in resources.spec.ts.
const HANDLE_LIMIT_EXCEEDED: &str = "store handle limit exceeded";

/// Whether wasmtime refused a component handle at its store-wide cap ([`crate::limits::store_handles`]).
pub fn handle_limit_hit(error: &wasmtime::Error) -> bool {
    messages(error).any(|text| text.ends_with(HANDLE_LIMIT_EXCEEDED))
}

/// How wasmtime-wasi words its refusal to make more random bytes than its bound (a plain message,
/// no type): `requested len N exceeds limit M`; pinned by the random bytes test in wasi.spec.ts.
const RANDOM_LIMIT_EXCEEDED: (&str, &str) = ("requested len ", " exceeds limit ");

fn asked_too_much_random(error: &wasmtime::Error) -> bool {
    let (start, middle) = RANDOM_LIMIT_EXCEEDED;
    messages(error).any(|text| text.starts_with(start) && text.contains(middle))
}

fn lifted_too_much(error: &wasmtime::Error) -> bool {
    messages(error).any(|text| text.starts_with(HOSTCALL_FUEL_EXHAUSTED))
}

#[cfg(test)]
mod tests {
    use super::{compile_panic_text, frame_name, shown_ms, starts_with, without_backtraces};

    #[test]
    fn a_tiny_timeout_is_shown_short() {
        assert_eq!(shown_ms(5e-324), "5e-324");
        assert_eq!(shown_ms(100.0), "100");
        assert_eq!(shown_ms(0.5), "0.5");
    }

    #[test]
    fn backtraces_inside_a_message_are_cut_and_the_rest_kept() {
        let text = "failed to compile: bad type (at offset 0x17)\nStack backtrace:\n   0: capture\n  15: start_thread\n             at ./nptl/pthread_create.c:442:8\nnext: 1: kept";
        assert_eq!(
            without_backtraces(text),
            "failed to compile: bad type (at offset 0x17)\nnext: 1: kept"
        );
        assert_eq!(without_backtraces("a\n  0: b"), "a\n  0: b");
    }

    #[test]
    fn a_compile_panic_is_its_error_on_one_line_without_the_backtrace() {
        let panic = "called `Result::unwrap()` on an `Err` value: invalid adapter module generated: memories count exceeds limit of 100 (at offset 0x1a84)\n\nStack backtrace:\n   0: wasmtime_internal_core::error::backtrace::capture\n   1: std::rt::lang_start\n             at ./src/main.rs:1:1";
        assert_eq!(
            compile_panic_text("component", panic),
            "wasmtime cannot compile this component (invalid adapter module generated: memories count exceeds limit of 100 (at offset 0x1a84))"
        );
        assert_eq!(
            compile_panic_text("module", "index out of bounds\nsecond"),
            "wasmtime cannot compile this module (index out of bounds\\nsecond)"
        );
    }

    #[test]
    fn starts_with_reads_only_the_prefix_it_compares() {
        struct Pieces(&'static [&'static str]);
        impl std::fmt::Display for Pieces {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                for piece in self.0 {
                    f.write_str(piece)?;
                }
                // A value that formats for ever past its prefix.
                loop {
                    f.write_str("x")?;
                }
            }
        }
        assert!(starts_with(&Pieces(&["error while ", "executing"]), "error while exec"));
        assert!(!starts_with(&Pieces(&["error", " during"]), "error while"));
        assert!(!starts_with(&"short", "shorter"));
        assert!(starts_with(&"same", "same"));
    }

    #[test]
    fn frame_names_are_cut_at_a_character_boundary() {
        assert_eq!(frame_name(Some("f")).as_deref(), Some("f"));
        assert_eq!(frame_name(None), None);
        let long = "é".repeat(1000);
        let cut = frame_name(Some(&long)).unwrap();
        assert!(cut.len() <= 1024 + "…".len());
        assert!(cut.ends_with('…'));
        assert!(long.starts_with(cut.trim_end_matches('…')));
    }
}
