//! The bridge to JS host functions called from wasm.
//!
//! During `callSync` the guest runs on the JS thread inside our N-API call, so a host function is
//! called directly. During `call` the guest runs on a pool thread: the call is queued to the JS
//! thread through a thread-safe function and the pool thread waits for its outcome (never the
//! other way round: the JS thread never waits for wasm that waits for JS).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread::{Thread, ThreadId};
use std::time::{Duration, Instant};

use super::abort::{self, Abort, ThreadWaker};
use super::dispatcher::{self, Dispatcher, JsJob};
use super::pool::{Blocked, run_now};
use super::spin;
use crate::errors::Failure;
use crate::js::places::{self, Let};
use crate::js::token::TokenTag;
use crate::js::{Js, Reference, Value};
use crate::sync::lock;

/// The JS function that makes a guest's wasi:http request (see `crate::wasi_http`):
/// `(method, url, headers, body, timeouts) => Promise<answer>`, the answer being
/// `{ status, headers, read, cancel }` or `{ error, message }` (`error` a wasi:http error-code case
/// name); the Promise may carry an `abort()` method, called when the guest's call gives up on it.
pub struct HttpClient {
    pub function: Reference,
    /// Cap of a request body the guest writes (the client caps response bodies).
    pub max_body_bytes: usize,
    /// Places for requests in progress (`maxConcurrentRequests`): a request holds one until its
    /// response body ends or is dropped.
    pub in_progress: Arc<tokio::sync::Semaphore>,
    /// Bytes of request bodies held at once, all requests together: at most `max_body_bytes`.
    pub request_bodies: Arc<std::sync::atomic::AtomicUsize>,
}

/// What the JS layer hands over for an instance's wasi:http client.
pub struct HttpClientOptions {
    pub function: Value,
    pub max_body_bytes: usize,
    pub max_concurrent_requests: usize,
}

/// Where a store's wasi:http requests go: the instance's client and its JS thread.
pub type HttpTarget = (Arc<HostFunctions>, Arc<Dispatcher>);

/// The JS functions an instance imports, kept alive by references released on the JS thread.
pub struct HostFunctions {
    js: Js,
    thread: ThreadId,
    functions: Vec<Reference>,
    /// The client of the guest's wasi:http requests.
    http: Option<HttpClient>,
    dispatcher: Option<Arc<Dispatcher>>,
}

// SAFETY: `js` is only used on the thread recorded in `thread`; elsewhere the references are
// handed to the dispatcher, which releases them on the JS thread.
unsafe impl Send for HostFunctions {}
unsafe impl Sync for HostFunctions {}

impl HostFunctions {
    /// Keeps `functions` (and the wasi:http client) alive; creates the dispatcher only when there
    /// is something to call.
    pub fn new(js: Js, functions: Vec<Value>, http: Option<HttpClientOptions>) -> napi::Result<Self> {
        let dispatcher = if functions.is_empty() && http.is_none() {
            None
        } else {
            Some(dispatcher::dispatcher(js)?)
        };
        let http = match http {
            Some(options) => Some(HttpClient {
                function: js.reference(options.function)?,
                max_body_bytes: options.max_body_bytes,
                in_progress: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_requests)),
                request_bodies: Arc::default(),
            }),
            None => None,
        };
        Ok(HostFunctions {
            js,
            thread: std::thread::current().id(),
            functions: functions
                .into_iter()
                .map(|f| js.reference(f))
                .collect::<napi::Result<_>>()?,
            http,
            dispatcher,
        })
    }

    pub fn http(&self) -> Option<&HttpClient> {
        self.http.as_ref()
    }

    /// Releases references on the JS thread (now if this is it, else through the dispatcher).
    /// For host objects whose handle went (`how`), each one's `[Symbol.dispose]` runs first when
    /// that was the last handle to it that calls for one (see [`places`]).
    pub fn release(&self, references: Vec<Reference>, how: Option<Let>) {
        let calls_js = how.is_some();
        let job = move |js: Js| {
            for reference in references {
                match how {
                    Some(how) => let_go(js, reference, how),
                    None => js.release(reference),
                }
            }
        };
        // Counting and disposing call JS, which a garbage collector's finalizer (where an
        // instance's store may go) must not: that waits for the dispatcher. Releasing alone makes
        // no handles.
        let here = std::thread::current().id() == self.thread;
        match &self.dispatcher {
            Some(dispatcher) if calls_js || !here => dispatcher.run(Box::new(job)),
            _ if here => job(self.js),
            _ => {}
        }
    }
}

impl Drop for HostFunctions {
    fn drop(&mut self) {
        let mut functions = std::mem::take(&mut self.functions);
        functions.extend(self.http.take().map(|client| client.function));
        self.release(functions, None);
    }
}

/// Host-call plumbing of one store.
pub struct HostBridge {
    functions: Arc<HostFunctions>,
    /// Set while a `callSync` runs on the JS thread.
    sync_env: Option<Js>,
    /// Set while a synchronous call runs on a pool thread for a JS thread that waits for it.
    relay: Option<Relay>,
}

// SAFETY: `sync_env` is set and used only on the JS thread, during a `callSync`.
unsafe impl Send for HostBridge {}

impl HostBridge {
    pub fn new(functions: Arc<HostFunctions>) -> Self {
        HostBridge {
            functions,
            sync_env: None,
            relay: None,
        }
    }

    /// Where the guest's wasi:http requests go: `Err(None)` when nothing may be requested,
    /// `Err(Some(reason))` when the call cannot wait for the JS thread that makes them.
    pub fn http_target(&self) -> Result<HttpTarget, Option<&'static str>> {
        let Some(dispatcher) = self
            .functions
            .dispatcher
            .clone()
            .filter(|_| self.functions.http.is_some())
        else {
            return Err(None);
        };
        if self.sync_env.is_some() || self.relay.is_some() {
            return Err(Some(
                "wasi:http requests need call(): callSync blocks the JS thread that makes them",
            ));
        }
        Ok((self.functions.clone(), dispatcher))
    }

    /// Runs `job` on the JS thread without waiting for it: at once during a `callSync`, else
    /// queued (a host object's `[Symbol.dispose]` when the guest drops it).
    pub fn run_js_later(&self, job: JsJob) {
        if let Some(js) = self.sync_env {
            let scope = js.open_scope();
            job(js);
            js.discard_pending_exception();
            js.close_scope(scope);
        } else if let Some(relay) = &self.relay {
            relay.send(job);
        } else if let Some(dispatcher) = &self.functions.dispatcher {
            dispatcher.run(job);
        }
    }

    /// Whether the guest imports any JS function.
    pub fn calls_js(&self) -> bool {
        !self.functions.functions.is_empty()
    }

    /// Marks the start (Some) or end (None) of a call running on the JS thread.
    pub fn set_sync_env(&mut self, env: Option<Js>) {
        self.sync_env = env;
    }

    /// Marks the start (Some) or end (None) of a synchronous call run on a pool thread (see
    /// [`serve_js_while`]): host functions are then called through the waiting JS thread.
    pub fn set_relay(&mut self, relay: Option<Relay>) {
        self.relay = relay;
    }

    /// Calls host function `index` on the JS thread: `call` converts the arguments and calls it
    /// (returning what it returned, or what it threw); `finish` converts that outcome for the
    /// guest. During `call()` a returned Promise is awaited on the JS thread while this pool thread
    /// waits, bounded by the call's deadline and abort signal (epochs cannot fire outside wasm).
    pub fn invoke<R: Send + 'static>(
        &self,
        index: usize,
        label: &str,
        limits: WaitLimits,
        call: impl FnOnce(Js, Value, &WaitLimits) -> Result<Result<Value, Value>, Failure> + Send + 'static,
        finish: impl FnOnce(Js, Result<Value, Value>) -> Result<R, Failure> + Send + 'static,
    ) -> Result<R, Failure> {
        if let Some(js) = self.sync_env {
            let function = js.dereference(&self.functions.functions[index])?;
            let outcome = call(js, function, &limits)?;
            if let Ok(value) = outcome
                && js.is_promise(value).unwrap_or(false)
            {
                return Err(promise_in_sync_call(js, value, label));
            }
            return finish(js, outcome);
        }
        if let Some(relay) = &self.relay {
            let functions = self.functions.clone();
            let owned_label = label.to_string();
            let (reply, receiver) = Reply::channel();
            let stop = limits.clone();
            relay.send(Box::new(move |js| {
                let answer = js
                    .dereference(&functions.functions[index])
                    .map_err(Failure::from)
                    .and_then(|function| call(js, function, &stop))
                    .and_then(|outcome| match outcome {
                        Ok(value) if js.is_promise(value).unwrap_or(false) => {
                            Err(promise_in_sync_call(js, value, &owned_label))
                        }
                        outcome => finish(js, outcome),
                    });
                reply.send(js, answer);
            }));
            return limits.wait(&receiver, label);
        }
        let Some(dispatcher) = &self.functions.dispatcher else {
            return Err(Failure::Internal("no host function dispatcher".into()));
        };
        let functions = self.functions.clone();
        let (reply, receiver) = Reply::channel();
        let lingering = dispatcher.clone();
        let waiting = Arc::new(Mutex::new(None));
        let kept = waiting.clone();
        let stop = limits.clone();
        dispatcher.run(Box::new(move |js| {
            let called = js
                .dereference(&functions.functions[index])
                .map_err(Failure::from)
                .and_then(|function| call(js, function, &stop));
            match called {
                Ok(Ok(value)) if js.is_promise(value).unwrap_or(false) => {
                    let on_settled = move |js: Js, settled| {
                        reply.send(js, finish(js, settled));
                        lingering.expect_next_job();
                        lingering.drain_here(js);
                    };
                    // On failure the continuation is dropped, which wakes the waiter.
                    if let Ok(wait) = js.on_settled(value, Box::new(on_settled)) {
                        *lock(&kept) = Some(wait);
                    }
                }
                Ok(outcome) => {
                    reply.send(js, finish(js, outcome));
                    lingering.expect_next_job();
                }
                Err(failure) => reply.send(js, Err(failure)),
            }
        }));
        let answer = limits.wait(&receiver, label);
        if answer.is_err() {
            // The call gave up (deadline, abort): let go of a Promise that may never settle.
            dispatcher.run(Box::new(move |js| {
                let taken = lock(&waiting).take();
                if let Some(wait) = taken {
                    wait.cancel(js);
                }
            }));
        }
        answer
    }
}

/// The failure of a host function that returned `promise` to a synchronous call, which cannot
/// wait for it; the Promise's rejection, if it comes, is ignored.
fn promise_in_sync_call(js: Js, promise: Value, label: &str) -> Failure {
    // Best effort: had it failed, `then` itself threw, and nothing more can be done here.
    let _ = js.ignore_settlement(promise);
    Failure::Host {
        // The store does not tell a call from start code here: the message names both.
        message: format!(
            "host function {label} returned a Promise on the JS thread (callSync, instantiateSync): async host \
             functions need call() or instantiate()"
        ),
        cause: None,
    }
}

/// The way from a pool thread to a JS thread that is blocked waiting for it (see
/// [`serve_js_while`]).
#[derive(Clone)]
pub struct Relay(mpsc::Sender<RelayMessage>);

enum RelayMessage {
    Job(JsJob),
    Done,
}

impl Relay {
    fn send(&self, job: JsJob) {
        // A closed channel means the JS side stopped waiting: dropping the job wakes our waiter.
        let _ = self.0.send(RelayMessage::Job(job));
    }
}

/// Runs `work` on a pool thread while this JS thread runs the JS jobs it relays (host function
/// calls), and returns what it returned: a synchronous call whose guest may wait in WASI, which
/// must not run as a future on the JS thread (its fiber stack is no place to call into V8).
pub fn serve_js_while<R: Send + 'static>(js: Js, work: impl FnOnce(Relay) -> R + Send + 'static) -> Result<R, Failure> {
    let (sender, receiver) = mpsc::channel();
    let result = Arc::new(Mutex::new(None));
    let stored = result.clone();
    let relay = Relay(sender);
    run_now(move || {
        let done = relay.0.clone();
        let output = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(relay)));
        *lock(&stored) = Some(output);
        let _ = done.send(RelayMessage::Done);
    });
    loop {
        let job = match receiver.recv_timeout(ABORT_POLL) {
            Ok(RelayMessage::Job(job)) => job,
            Ok(RelayMessage::Done) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A worker terminated meanwhile: the call on the pool sees its flag and ends.
                abort::probe_termination();
                continue;
            }
        };
        let scope = js.open_scope();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(js)));
        js.discard_pending_exception();
        js.close_scope(scope);
    }
    let output = lock(&result).take();
    match output {
        Some(Ok(output)) => Ok(output),
        Some(Err(panic)) => Err(Failure::panicked(panic)),
        None => Err(Failure::Internal(
            "a synchronous call on the pool ended without a result".into(),
        )),
    }
}

/// The way a host function's answer goes back to the pool thread waiting for it: a channel, and
/// an unpark of that thread, which sleeps in [`WaitLimits::wait`] until answered or aborted.
struct Reply<R> {
    sender: Option<mpsc::SyncSender<Result<R, Failure>>>,
    waiter: Thread,
}

impl<R> Reply<R> {
    /// A reply to the calling thread, and the receiver it waits on.
    fn channel() -> (Self, mpsc::Receiver<Result<R, Failure>>) {
        let (sender, receiver) = mpsc::sync_channel(1);
        let reply = Reply {
            sender: Some(sender),
            waiter: std::thread::current(),
        };
        (reply, receiver)
    }

    /// Sends on the JS thread (`js`). The receiver is gone when the call already gave up (its
    /// deadline, an abort): nothing to tell, but what a failure holds of JS (what the host function
    /// threw) is released here, or it would be held for the life of the process.
    fn send(self, js: Js, answer: Result<R, Failure>) {
        if let Some(sender) = &self.sender
            && let Err(mpsc::SendError(Err(failure))) = sender.send(answer)
        {
            failure.discard(js);
        }
    }
}

impl<R> Drop for Reply<R> {
    /// Unparks after the sender is gone, so a reply dropped unanswered (the environment shut
    /// down, a Promise that can never settle) is seen as a closed channel.
    fn drop(&mut self) {
        drop(self.sender.take());
        self.waiter.unpark();
    }
}

/// The deadline and abort flag of a call: the one in progress, for waiting on a host function and
/// converting its arguments, or the one that just returned, for converting its result. The
/// default has neither.
#[derive(Clone, Default)]
pub struct WaitLimits {
    pub deadline: Option<(Instant, f64)>,
    pub abort: Abort,
}

/// How long a pool thread spins for a host function's answer before it sleeps.
const HOST_SPIN: Duration = Duration::from_micros(100);

/// How often a waiting pool thread looks at the abort flag.
const ABORT_POLL: Duration = Duration::from_millis(5);

impl WaitLimits {
    /// Waits for a host function's answer. An abort or a deadline that came while it ran ends
    /// the call even when the answer is there too: the guest would otherwise run on to its next
    /// epoch check, and finish if it returned first, whichever the host function's timing.
    fn wait<R>(&self, receiver: &mpsc::Receiver<Result<R, Failure>>, label: &str) -> Result<R, Failure> {
        let shut_down = || Failure::Internal("the JS environment shut down during a host call".into());
        // Most host functions answer within microseconds; sleeping on the channel would add a
        // thread wake-up (tens of microseconds here) to every host call.
        let mut early = None;
        spin::wait_until(HOST_SPIN, || {
            early = match receiver.try_recv() {
                Ok(outcome) => Some(outcome),
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => Some(Err(shut_down())),
            };
            early.is_some()
        });
        if let Some(outcome) = early {
            return self.stopped(|| waiting(label)).map_or(outcome, Err);
        }
        let _blocked = Blocked::enter();
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let _woken_on_abort = self.abort.subscribe(&waker);
        loop {
            match receiver.try_recv() {
                Ok(outcome) => return self.stopped(|| waiting(label)).map_or(outcome, Err),
                Err(mpsc::TryRecvError::Disconnected) => return Err(shut_down()),
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if let Some(stopped) = self.stopped(|| waiting(label)) {
                return Err(stopped);
            }
            let mut slice = if self.abort.needs_polling() {
                ABORT_POLL
            } else {
                Duration::from_secs(3600)
            };
            if let Some((at, _)) = self.deadline {
                slice = slice.min(at.saturating_duration_since(Instant::now()));
            }
            // Woken by the answer (see `Reply`), an abort, or the slice's end.
            std::thread::park_timeout(slice);
        }
    }

    /// The call's abort or timeout, if either is due; `during` says what the call was doing.
    pub fn stopped(&self, during: impl FnOnce() -> String) -> Option<Failure> {
        if self.abort.is_set() {
            return Some(Failure::interrupted(
                "ABORT_ERR",
                "The operation was aborted".into(),
                None,
            ));
        }
        let (at, timeout_ms) = self.deadline?;
        let now = Instant::now();
        if now < at {
            return None;
        }
        let elapsed_ms = timeout_ms + now.duration_since(at).as_secs_f64() * 1000.0;
        Some(Failure::interrupted(
            "ERR_WASM_TIMEOUT",
            format!(
                "wasm call timed out after {elapsed_ms:.0} ms (timeoutMs: {}) while {}",
                crate::errors::shown_ms(timeout_ms),
                during()
            ),
            Some((elapsed_ms, timeout_ms)),
        ))
    }
}

/// What a call waiting for host function `label` was doing, for its timeout's message.
pub fn waiting(label: &str) -> String {
    format!("waiting for host function {label}")
}

/// What a call converting `what` of the guest's (its result) to JS was doing, for its timeout's
/// message.
pub fn converting(what: &str) -> String {
    format!("converting {what} to JS values")
}

/// The failure for a host function that threw `thrown`: HostError with the value as `cause`.
pub fn thrown(js: Js, label: &str, thrown: Value) -> Failure {
    let detail = match crate::js::failure::thrown_message(js, thrown) {
        Some(Some(message)) => match js.string_units(message) {
            // Its start would cost as much as all of it: V8 flattens a concatenated string whole
            // to read any of it (256 MiB, 0.2 s).
            Ok(Some(units)) if units > MAX_QUOTED_MESSAGE_UNITS => {
                format!("(a message of {units} UTF-16 units, whole on the cause)")
            }
            // More than is shown (a pair cut in two loses a unit), so that the cut says it cut.
            _ => js.message_text(message, MAX_THROWN_TEXT + 2).unwrap_or_default(),
        },
        // Not error-like, or no JS layer to ask (the binding used on its own): its kind.
        Some(None) | None => js.describe(thrown),
    };
    // The whole text stays on `cause`: a host's message may carry a guest's input.
    Failure::Host {
        message: format!(
            "host function {label} threw: {}",
            crate::names::shortened(&detail, MAX_THROWN_TEXT)
        ),
        cause: js.reference(thrown).ok(),
    }
}

/// The most of a thrown error's message a HostError repeats, in bytes.
const MAX_THROWN_TEXT: usize = 1024;

/// The longest thrown message a HostError quotes the start of, in UTF-16 units.
const MAX_QUOTED_MESSAGE_UNITS: usize = 64 * 1024;

/// Marks an error thrown by the JS layer's checks around a host function: it fails the call as a
/// HostError even where the function returns a `result` (whose throws are otherwise its `err`).
const HOST_FAILURE_TAG: TokenTag = TokenTag(napi::sys::napi_type_tag {
    lower: 0x6169_7273_7379_7332,
    upper: 0x686f_7374_6661_696c,
});

/// Marks `error` (an object) as a host failure (see [`is_host_failure`]) and returns it.
#[napi_derive::napi(js_name = "hostFailure")]
pub fn host_failure(
    env: napi::Env,
    error: napi::bindgen_prelude::Object,
) -> napi::Result<napi::bindgen_prelude::Object> {
    use napi::JsValue;
    let js = Js(env.raw());
    js.tag(error.raw(), &HOST_FAILURE_TAG)?;
    Ok(error)
}

/// On the JS thread: releases a host object one of whose handles went `how`, after its
/// `[Symbol.dispose]` when that was the last handle to it that calls for one (see [`places`]).
pub fn let_go(js: Js, object: Reference, how: Let) {
    if let Ok(value) = js.dereference(&object)
        && places::unplace(js, value, how)
    {
        dispose_given_up(js, value);
    }
    js.release(object);
}

/// Runs the `[Symbol.dispose]` of a host object the host gave up that the guest never got: what
/// it throws becomes the `AIRSSYS_DISPOSE_FAILED` warning (see [`Js::dispose`]), never the caller's.
fn dispose_given_up(js: Js, value: Value) {
    let _ = js.dispose(value);
    js.discard_pending_exception();
}

/// [`dispose_given_up`] for the JS layer, which refuses a value a host function returned that
/// holds something not of the host's class before the addon sees it: the host's objects beside
/// it are disposed as those of a value the addon refuses are.
#[napi_derive::napi(js_name = "disposeGivenUp")]
pub fn dispose_given_up_binding(env: napi::Env, object: napi::bindgen_prelude::Unknown) {
    use napi::JsValue;
    let js = Js(env.raw());
    // Not while a handle still holds it: the guest may have it from an earlier call.
    if places::unplace(js, object.raw(), Let::GivenUp) {
        dispose_given_up(js, object.raw());
    }
}

/// Whether a host function threw an error marked by [`host_failure`].
pub fn is_host_failure(js: Js, thrown: Value) -> bool {
    js.has_tag(thrown, &HOST_FAILURE_TAG).unwrap_or(false)
}
