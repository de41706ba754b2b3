//! wasi:http outgoing requests. wasmtime-wasi-http implements the interfaces; the request itself is
//! made by the JS layer's client (one function per instance), so that the network grant, its DNS
//! rules and its limits live in one place for `airssys:host/http` and wasi:http alike. Without a
//! client every request is `http-request-denied`, which the guest sees as an ordinary error.
//!
//! The response reaches the guest as soon as its head arrives; its body is read from the client
//! one piece at a time, only when the guest reads (wasmtime polls the body then), so the host
//! holds at most a piece or so of each body. A request counts against the instance's
//! `maxConcurrentRequests` until its body ends or is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::js::promise::Waiting;
use crate::js::{ElementType, Js, Reference, Value};
use crate::runtime::dispatcher::Dispatcher;
use crate::runtime::host_bridge::{HostBridge, HostFunctions, HttpTarget};
use crate::sync::lock;

/// Most bytes of a request body held in one piece: the guest's writes (64 KiB at most each) are
/// gathered into pieces this large, each handed to the client as it is.
const REQUEST_BODY_PIECE_BYTES: usize = 1 << 20;

/// The bytes of one request body held, counted in the instance's total until dropped.
struct Held {
    bodies: Arc<std::sync::atomic::AtomicUsize>,
    bytes: usize,
}

impl Held {
    /// Counts `more` bytes, unless the instance's request bodies would then pass `max`.
    fn add(&mut self, more: usize, max: usize) -> bool {
        use std::sync::atomic::Ordering;
        let added = self.bodies.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            held.checked_add(more).filter(|&total| total <= max)
        });
        if added.is_ok() {
            self.bytes += more;
        }
        added.is_ok()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.bodies.fetch_sub(self.bytes, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A response's head, read on the JS thread, with the client's functions that read its body.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    source: Source,
}

/// The client's `read` and `cancel` of one response body.
struct Source {
    read: Reference,
    cancel: Reference,
}

impl Source {
    /// Lets the client's functions go, first cancelling the response when it is still open.
    fn close(self, js: Js, cancel: bool) {
        if cancel && let Ok(function) = js.dereference(&self.cancel) {
            let _ = js.call(function, &[]);
        }
        js.release(self.read);
        js.release(self.cancel);
    }
}

type Sent = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Most bytes one write to an outgoing body's stream may carry (and so `check-write` offers).
/// wasmtime-wasi-http's 1 MiB kept up to two such chunks in every body, sent or not: 9,000
/// unsent requests held 2.4 GB for a guest without a grant.
const OUTGOING_BODY_CHUNK_BYTES: usize = 64 * 1024;

impl WasiHttpHooks for HostBridge {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        OUTGOING_BODY_CHUNK_BYTES
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _sent: Sent,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Sent), Error>> + Send> {
        let target = self.http_target();
        Box::new(async move {
            let target = target.map_err(|refusal| match refusal {
                None => Error::HttpRequestDenied,
                Some(reason) => Error::InternalError(Some(reason.into())),
            })?;
            let response = send(target, request, options.unwrap_or_default()).await?;
            Ok((response, Box::new(async { Ok(()) }) as Sent))
        })
    }
}

async fn send(
    (functions, dispatcher): HttpTarget,
    request: http::Request<WasiBody>,
    options: RequestOptions,
) -> Result<http::Response<WasiBody>, Error> {
    let Some(client) = functions.http() else {
        return Err(Error::HttpRequestDenied);
    };
    // Taken before anything is buffered; held by the response body until it ends or is dropped.
    let permit = client
        .in_progress
        .clone()
        .try_acquire_owned()
        .map_err(|_| Error::ConnectionLimitReached)?;
    let (parts, mut body) = request.into_parts();
    let mut held = Held {
        bodies: client.request_bodies.clone(),
        bytes: 0,
    };
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if !held.add(data.len(), client.max_body_bytes) {
                return Err(Error::HttpRequestBodySize(Some((held.bytes + data.len()) as u64)));
            }
            match pieces.last_mut() {
                Some(piece) if piece.len() + data.len() <= piece.capacity() => piece.extend_from_slice(&data),
                _ if data.is_empty() => {}
                _ => {
                    let mut piece = Vec::with_capacity(REQUEST_BODY_PIECE_BYTES.max(data.len()));
                    piece.extend_from_slice(&data);
                    pieces.push(piece);
                }
            }
        }
    }
    let method = parts.method.as_str().to_string();
    let url = parts.uri.to_string();
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect();

    let (sender, receiver) = tokio::sync::oneshot::channel();
    let pending = Arc::new(Mutex::new(InFlight::default()));
    let kept = pending.clone();
    dispatcher.run(Box::new(move |js| {
        let started = start(js, &functions, &method, &url, &headers, pieces, &options);
        let promise = match started {
            Ok(promise) => promise,
            Err(error) => {
                let _ = sender.send(Err(error));
                return;
            }
        };
        let abort = js
            .get_own(promise, "abort")
            .ok()
            .flatten()
            .and_then(|abort| js.reference(abort).ok());
        let continuation = move |js: Js, settled| {
            // Nobody waits any more (the guest dropped the request as its head came): close it.
            if let Err(Ok(unwanted)) = sender.send(head(js, settled)) {
                unwanted.source.close(js, true);
            }
        };
        let mut in_flight = lock(&kept);
        in_flight.abort = abort;
        // When `then` cannot be attached the continuation is dropped, which closes the channel.
        in_flight.waiting = js.on_settled(promise, Box::new(continuation)).ok();
    }));
    let guard = AbortOnDrop {
        dispatcher: dispatcher.clone(),
        pending,
        finished: false,
    };
    let head = receiver.await.map_err(|_| shut_down());
    let mut guard = guard;
    guard.finished = true;
    let head = head??;
    let body = Streamed {
        dispatcher,
        source: Some(Arc::new(head.source)),
        reading: None,
        ended: false,
        _permit: permit,
        _request_body: held,
    };
    let mut builder = http::Response::builder().status(head.status);
    for (name, value) in &head.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    // A bad status or header drops `body`, which cancels the client's response.
    builder.body(body.boxed_unsync()).map_err(|_| Error::HttpProtocolError)
}

fn shut_down() -> Error {
    Error::InternalError(Some("the JS environment shut down during a request".into()))
}

/// Calls the client; its Promise, or why there is none.
fn start(
    js: Js,
    functions: &HostFunctions,
    method: &str,
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: Vec<Vec<u8>>,
    options: &RequestOptions,
) -> Result<Value, Error> {
    let internal = |error: napi::Error| Error::InternalError(Some(error.to_string()));
    let client = functions.http().ok_or(Error::HttpRequestDenied)?;
    let function = js.dereference(&client.function).map_err(internal)?;
    let made = (|| -> napi::Result<[Value; 5]> {
        let pairs = js.array(headers.len())?;
        for (index, (name, value)) in headers.iter().enumerate() {
            let pair = js.array(2)?;
            js.set_index(pair, 0, js.string(name)?)?;
            js.set_index(pair, 1, js.string(&String::from_utf8_lossy(value))?)?;
            js.set_index(pairs, index as u32, pair)?;
        }
        // The guest's own timeouts; the client caps each by the host's.
        let timeouts = js.object()?;
        for (key, timeout) in [
            ("connectTimeoutMs", options.connect_timeout),
            ("firstByteTimeoutMs", options.first_byte_timeout),
            ("betweenBytesTimeoutMs", options.between_bytes_timeout),
        ] {
            if let Some(timeout) = timeout {
                js.set(timeouts, key, js.number(milliseconds(timeout))?)?;
            }
        }
        // Handed over without a copy: a body may be as large as `maxBodyBytes` (up to 1 GiB), and
        // copying it here held the JS thread for seconds.
        let pieces = js.array(body.len())?;
        for (index, piece) in body.into_iter().enumerate() {
            js.set_index(pieces, index as u32, js.uint8_array_owning(piece)?)?;
        }
        Ok([js.string(method)?, js.string(url)?, pairs, pieces, timeouts])
    })()
    .map_err(internal)?;
    match js.call(function, &made).map_err(internal)? {
        Ok(promise) => Ok(promise),
        Err(thrown) => Err(Error::InternalError(Some(js.describe(thrown)))),
    }
}

/// Whole ms, at least 1 (a timer of 0 would not wait at all).
fn milliseconds(duration: Duration) -> f64 {
    (duration.as_millis() as f64).max(1.0)
}

/// The client's answer as a response head, or the wasi:http error it named.
fn head(js: Js, settled: Result<Value, Value>) -> Result<Head, Error> {
    let value = settled.map_err(|thrown| Error::InternalError(Some(js.describe(thrown))))?;
    let read = || -> napi::Result<Result<Head, Error>> {
        if let Some(error) = named_error(js, value)? {
            return Ok(Err(error));
        }
        let status = js.get_f64(js.get(value, "status")?)?;
        let mut headers = Vec::new();
        for pair in js.array_items(js.get(value, "headers")?)?.unwrap_or_default() {
            let name = js.get_string(js.get_index(pair, 0)?)?.unwrap_or_default();
            let text = js.get_string(js.get_index(pair, 1)?)?.unwrap_or_default();
            headers.push((name, text));
        }
        let source = Source {
            read: js.reference(js.get(value, "read")?)?,
            cancel: js.reference(js.get(value, "cancel")?)?,
        };
        Ok(Ok(Head {
            status: if (100.0..=999.0).contains(&status) {
                status as u16
            } else {
                0
            },
            headers,
            source,
        }))
    };
    read().map_err(|error| Error::InternalError(Some(error.to_string())))?
}

/// The wasi:http error an answer `{ error, message }` names, if it is one.
fn named_error(js: Js, value: Value) -> napi::Result<Option<Error>> {
    let Some(code) = js.get_own(value, "error")? else {
        return Ok(None);
    };
    let code = js.get_string(code)?.unwrap_or_default();
    let message = match js.get_own(value, "message")? {
        Some(message) => js.get_string(message)?,
        None => None,
    };
    Ok(Some(error_code(&code, message)))
}

/// One piece of the body as the client's `read` settled: bytes, `None` at the end, or an error.
fn piece(js: Js, settled: Result<Value, Value>) -> Result<Option<Bytes>, Error> {
    let value = settled.map_err(|thrown| Error::InternalError(Some(js.describe(thrown))))?;
    let read = || -> napi::Result<Result<Option<Bytes>, Error>> {
        if js.defined(value).is_none() {
            return Ok(Ok(None));
        }
        match js.typed_array(value)? {
            // SAFETY: the view points at `length` live bytes of a Uint8Array held by `value`.
            Some(view) if matches!(view.element, ElementType::Uint8) && !view.data.is_null() => {
                Ok(Ok(Some(Bytes::copy_from_slice(unsafe {
                    std::slice::from_raw_parts(view.data, view.length)
                }))))
            }
            Some(_) => Ok(Ok(Some(Bytes::new()))),
            None => Ok(Err(named_error(js, value)?.unwrap_or_else(|| {
                Error::InternalError(Some("the client read no bytes".into()))
            }))),
        }
    };
    read().map_err(|error| Error::InternalError(Some(error.to_string())))?
}

/// The wasi:http error for the client's `error` name (kebab-case, as the WIT spells the case).
fn error_code(code: &str, message: Option<String>) -> Error {
    match code {
        "http-request-denied" => Error::HttpRequestDenied,
        "destination-not-found" => Error::DestinationNotFound,
        "destination-ip-prohibited" => Error::DestinationIpProhibited,
        "connection-refused" => Error::ConnectionRefused,
        "connection-terminated" => Error::ConnectionTerminated,
        "connection-timeout" => Error::ConnectionTimeout,
        "connection-read-timeout" => Error::ConnectionReadTimeout,
        "http-response-body-size" => Error::HttpResponseBodySize(None),
        "http-response-timeout" => Error::HttpResponseTimeout,
        "http-request-uri-invalid" => Error::HttpRequestUriInvalid,
        "tls-certificate-error" => Error::TlsCertificateError,
        "tls-protocol-error" => Error::TlsProtocolError,
        "http-protocol-error" => Error::HttpProtocolError,
        "http-response-header-section-size" => Error::HttpResponseHeaderSectionSize(None),
        _ => Error::InternalError(message),
    }
}

type Reading = Pin<Box<dyn Future<Output = Result<Option<Bytes>, Error>> + Send>>;

/// A response body read from the client as the guest reads it. Dropped early (the guest dropped
/// the body or its response, or the instance went away), it cancels the client's response.
struct Streamed {
    dispatcher: Arc<Dispatcher>,
    source: Option<Arc<Source>>,
    /// The read in progress: wasmtime polls again (with a real waker once the guest waits) until
    /// it is done, and a poll must not start a second one.
    reading: Option<Reading>,
    ended: bool,
    /// This request's place among the instance's `maxConcurrentRequests`.
    _permit: OwnedSemaphorePermit,
    /// Its request body, counted in the instance's until the response ends: a server may answer
    /// at once and leave the body unread, still queued in the client (an outside probe held 40
    /// times `maxBodyBytes` so when the count ended with the head).
    _request_body: Held,
}

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let Some(source) = self.source.clone().filter(|_| !self.ended) else {
            return Poll::Ready(None);
        };
        let dispatcher = self.dispatcher.clone();
        let reading = self.reading.get_or_insert_with(|| Box::pin(read(dispatcher, source)));
        let outcome = ready!(reading.as_mut().poll(context));
        self.reading = None;
        match outcome {
            Ok(Some(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            // The client ends its response itself when it ends or fails.
            Ok(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Err(error) => {
                self.ended = true;
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// Asks the client for the next piece (its `read` Promise always settles: a cancelled or
/// aborted response settles it with an error).
async fn read(dispatcher: Arc<Dispatcher>, source: Arc<Source>) -> Result<Option<Bytes>, Error> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    dispatcher.run(Box::new(move |js| {
        let called = js.dereference(&source.read).and_then(|read| js.call(read, &[]));
        match called {
            Ok(Ok(promise)) => {
                let continuation = move |js: Js, settled| {
                    let _ = sender.send(piece(js, settled));
                };
                // When `then` cannot be attached the continuation is dropped, which closes the channel.
                let _ = js.on_settled(promise, Box::new(continuation));
            }
            Ok(Err(thrown)) => {
                let _ = sender.send(Err(Error::InternalError(Some(js.describe(thrown)))));
            }
            Err(error) => {
                let _ = sender.send(Err(Error::InternalError(Some(error.to_string()))));
            }
        }
    }));
    receiver.await.map_err(|_| shut_down())?
}

impl Drop for Streamed {
    fn drop(&mut self) {
        let Some(source) = self.source.take() else { return };
        let ended = self.ended;
        self.dispatcher.run(Box::new(move |js| {
            if !ended && let Ok(cancel) = js.dereference(&source.cancel) {
                let _ = js.call(cancel, &[]);
            }
            // The last holder: jobs run in order, so a read queued before this one has let go.
            if let Some(source) = Arc::into_inner(source) {
                source.close(js, false);
            }
        }));
    }
}

/// The JS side of a request in progress.
#[derive(Default)]
struct InFlight {
    waiting: Option<Waiting>,
    abort: Option<Reference>,
}

/// Given up (the guest's call ended at its deadline or abort, or the guest dropped the response
/// future): stop waiting for the Promise and tell the client to abort the request.
struct AbortOnDrop {
    dispatcher: Arc<Dispatcher>,
    pending: Arc<Mutex<InFlight>>,
    finished: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let pending = self.pending.clone();
        let finished = self.finished;
        self.dispatcher.run(Box::new(move |js| {
            let in_flight = std::mem::take(&mut *lock(&pending));
            if let Some(abort) = in_flight.abort {
                if !finished && let Ok(function) = js.dereference(&abort) {
                    let _ = js.call(function, &[]);
                }
                js.release(abort);
            }
            if !finished && let Some(waiting) = in_flight.waiting {
                waiting.cancel(js);
            }
        }));
    }
}
