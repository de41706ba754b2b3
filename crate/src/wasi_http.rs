//! wasi:http outgoing requests. wasmtime-wasi-http implements the interfaces; the request itself is
//! made by the JS layer's client (one function per instance), so that the network grant, its DNS
//! rules and its limits live in one place for `airssys:host/http` and wasi:http alike. Without a
//! client every request is `http-request-denied`, which the guest sees as an ordinary error.

use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, WasiBody, WasiHttpHooks};

use crate::js::promise::Waiting;
use crate::js::{ElementType, Js, Reference, Value};
use crate::runtime::dispatcher::Dispatcher;
use crate::runtime::host_bridge::{HostBridge, HostFunctions, HttpTarget};

/// What a request resolved to, read on the JS thread.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

type Sent = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for HostBridge {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _sent: Sent,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Sent), Error>> + Send> {
        let target = self.http_target();
        Box::new(async move {
            let target = target.map_err(|refusal| match refusal {
                None => Error::HttpRequestDenied,
                Some(reason) => Error::InternalError(Some(reason.into())),
            })?;
            let response = send(target, request).await?;
            Ok((response, Box::new(async { Ok(()) }) as Sent))
        })
    }
}

async fn send(
    (functions, dispatcher): HttpTarget,
    request: http::Request<WasiBody>,
) -> Result<http::Response<WasiBody>, Error> {
    let Some(client) = functions.http() else {
        return Err(Error::HttpRequestDenied);
    };
    let (parts, mut body) = request.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if bytes.len() + data.len() > client.max_body_bytes {
                return Err(Error::HttpRequestBodySize(Some((bytes.len() + data.len()) as u64)));
            }
            bytes.extend_from_slice(&data);
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
        let started = start(js, &functions, &method, &url, &headers, &bytes);
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
            let _ = sender.send(answer(js, settled));
        };
        let mut in_flight = kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        in_flight.abort = abort;
        // When `then` cannot be attached the continuation is dropped, which closes the channel.
        in_flight.waiting = js.on_settled(promise, Box::new(continuation)).ok();
    }));
    let guard = AbortOnDrop {
        dispatcher: dispatcher.clone(),
        pending,
        finished: false,
    };
    let answer = receiver
        .await
        .map_err(|_| Error::InternalError(Some("the JS environment shut down during a request".into())));
    let mut guard = guard;
    guard.finished = true;
    response(answer??)
}

/// Calls the client; its Promise, or why there is none.
fn start(
    js: Js,
    functions: &HostFunctions,
    method: &str,
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Result<Value, Error> {
    let internal = |error: napi::Error| Error::InternalError(Some(error.to_string()));
    let client = functions.http().ok_or(Error::HttpRequestDenied)?;
    let function = js.dereference(&client.function).map_err(internal)?;
    let made = (|| -> napi::Result<[Value; 4]> {
        let pairs = js.array(headers.len())?;
        for (index, (name, value)) in headers.iter().enumerate() {
            let pair = js.array(2)?;
            js.set_index(pair, 0, js.string(name)?)?;
            js.set_index(pair, 1, js.string(&String::from_utf8_lossy(value))?)?;
            js.set_index(pairs, index as u32, pair)?;
        }
        Ok([
            js.string(method)?,
            js.string(url)?,
            pairs,
            js.typed_array_from(ElementType::Uint8, body.len(), body)?,
        ])
    })()
    .map_err(internal)?;
    match js.call(function, &made).map_err(internal)? {
        Ok(promise) => Ok(promise),
        Err(thrown) => Err(Error::InternalError(Some(js.describe(thrown)))),
    }
}

/// The client's answer as a response, or the wasi:http error it named.
fn answer(js: Js, settled: Result<Value, Value>) -> Result<Answer, Error> {
    let value = settled.map_err(|thrown| Error::InternalError(Some(js.describe(thrown))))?;
    let read = || -> napi::Result<Result<Answer, Error>> {
        if let Some(code) = js.get_own(value, "error")? {
            let code = js.get_string(code)?.unwrap_or_default();
            let message = match js.get_own(value, "message")? {
                Some(message) => js.get_string(message)?,
                None => None,
            };
            return Ok(Err(error_code(&code, message)));
        }
        let status = js.get_f64(js.get(value, "status")?)?;
        let mut headers = Vec::new();
        for pair in js.array_items(js.get(value, "headers")?)?.unwrap_or_default() {
            let name = js.get_string(js.get_index(pair, 0)?)?.unwrap_or_default();
            let text = js.get_string(js.get_index(pair, 1)?)?.unwrap_or_default();
            headers.push((name, text));
        }
        let body = match js.typed_array(js.get(value, "body")?)? {
            // SAFETY: the view points at `length` live bytes of a Uint8Array held by `value`.
            Some(view) if matches!(view.element, ElementType::Uint8) && !view.data.is_null() => {
                unsafe { std::slice::from_raw_parts(view.data, view.length) }.to_vec()
            }
            _ => Vec::new(),
        };
        Ok(Ok(Answer {
            status: if (100.0..=999.0).contains(&status) {
                status as u16
            } else {
                0
            },
            headers,
            body,
        }))
    };
    read().map_err(|error| Error::InternalError(Some(error.to_string())))?
}

fn response(answer: Answer) -> Result<http::Response<WasiBody>, Error> {
    let mut builder = http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = Full::new(Bytes::from(answer.body))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder.body(body).map_err(|_| Error::HttpProtocolError)
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
        "http-response-body-size" => Error::HttpResponseBodySize(None),
        "http-response-timeout" => Error::HttpResponseTimeout,
        "http-request-uri-invalid" => Error::HttpRequestUriInvalid,
        "tls-certificate-error" => Error::TlsCertificateError,
        _ => Error::InternalError(message),
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
            let in_flight = std::mem::take(&mut *pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
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
