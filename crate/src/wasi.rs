//! WASI for guests: preview 2 for components, preview 1 for core modules, through `wasmtime-wasi`.
//!
//! Locked down unless told otherwise: no env, args, files, stdin or sockets; clocks and random
//! work. Files only through preopens, read-only unless granted writable. Piped output is kept per
//! instance, capped: past the cap the oldest bytes are dropped, or the guest's writes wait for a
//! take to make room, so a chatty guest cannot grow host memory without bound.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use napi_derive::napi;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::errors::Failure;
use crate::sync::lock;
use crate::wasi_stdio::{Inherited, WRITE_PERMIT, permit_left};

/// A component's WASI state: its context, its handles (shared by every WASI interface, wasi:http
/// included) and wasi:http's own settings.
pub struct ComponentWasi {
    pub ctx: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
}

/// WASI options after the TS layer applied defaults.
#[napi(object)]
pub struct NativeWasiOptions {
    /// `inherit`, `pipe` or `ignore`.
    pub stdout: String,
    /// `inherit`, `pipe` or `ignore`.
    pub stderr: String,
    pub env: Vec<Vec<String>>,
    pub args: Vec<String>,
    /// `[hostPath, guestPath]` pairs, opened read-only, or `[hostPath, guestPath, "write"]`,
    /// opened for reading and writing.
    pub preopens: Vec<Vec<String>>,
    /// What the guest reads from stdin, then end of file; `None`: nothing (end of file at once).
    pub stdin_bytes: Option<napi::bindgen_prelude::Uint8Array>,
    /// The guest reads the process's own stdin (waits on it end at the call's deadline).
    pub stdin_inherit: bool,
    /// Cap of each piped stream, in bytes.
    pub output_limit_bytes: u32,
    /// A full pipe makes the guest's writes wait for a take (else its oldest bytes are dropped).
    pub output_waits: bool,
    /// Cap of a wasi:http request body the guest sends, in bytes.
    pub http_max_body_bytes: u32,
    /// Most wasi:http requests in progress at once (a response whose body is open included).
    pub http_max_concurrent_requests: u32,
}

/// What `takeOutput()` returns.
#[napi(object)]
pub struct TakenOutput {
    pub stdout: String,
    pub stderr: String,
}

/// Most WASI handles (files, streams, pollables) one instance may hold at once: a
/// real program holds a handful; without a cap a guest could make the host keep millions.
const MAX_WASI_HANDLES: usize = 10_000;

/// Fewest WASI handles an instance may hold, whatever its memory limit.
const MIN_WASI_HANDLES: usize = 256;

/// Guest memory per WASI handle allowed. A handle can hold host memory that `limits.memoryBytes`
/// does not count (a file stream's pending 64 KiB read, a wasi:http body's buffered chunk, a
/// `fields` of up to 64 KiB): at one handle per 16 KiB, that stays within about 8 times the
/// guest's own limit, where 10,000 handles let a 1 MiB guest make the host hold 2.4 GB.
const MEMORY_PER_WASI_HANDLE: usize = 16 * 1024;

/// The WASI handles an instance whose memories may hold `memory_bytes` may hold at once.
pub fn max_wasi_handles(memory_bytes: usize) -> usize {
    (memory_bytes / MEMORY_PER_WASI_HANDLE).clamp(MIN_WASI_HANDLES, MAX_WASI_HANDLES)
}

/// A guest's WASI state in its store.
pub enum WasiState {
    None,
    Component(Box<ComponentWasi>),
    Module(Box<WasiP1Ctx>),
}

impl WasiState {
    pub fn p1(&mut self) -> &mut WasiP1Ctx {
        match self {
            WasiState::Module(context) => context,
            // Preview 1 is linked only into stores created with a module context.
            _ => panic!("WASI preview 1 used without a preview 1 context"),
        }
    }

    /// wasi:http's settings and the handle table, for the store's `WasiHttpView`.
    pub fn http(&mut self) -> (&mut WasiHttpCtx, &mut ResourceTable) {
        match self {
            WasiState::Component(context) => {
                let ComponentWasi { http, table, .. } = &mut **context;
                (http, table)
            }
            // wasi:http is linked only into stores created with a component context.
            _ => panic!("wasi:http used without a preview 2 context"),
        }
    }

    /// The preview 2 view of the store's WASI state (the store's `WasiView`).
    pub fn p2(&mut self) -> WasiCtxView<'_> {
        match self {
            WasiState::Component(context) => {
                let ComponentWasi { ctx, table, .. } = &mut **context;
                WasiCtxView { ctx, table }
            }
            // Preview 2 is linked only into stores created with a component context.
            _ => panic!("WASI preview 2 used without a preview 2 context"),
        }
    }
}

/// Output written by the guest since the last take, per stream.
#[derive(Clone, Default)]
pub struct Output {
    pub stdout: Option<CappedPipe>,
    pub stderr: Option<CappedPipe>,
}

impl Output {
    /// The guest stopped running (a call or its start ended): a character it left unfinished
    /// will not be finished, so the next take gives it (as U+FFFD) rather than keep it back.
    pub fn settle(&self) {
        for pipe in [&self.stdout, &self.stderr].into_iter().flatten() {
            pipe.lock().settled = true;
        }
    }

    pub fn take(&self) -> TakenOutput {
        let take = |pipe: &Option<CappedPipe>| pipe.as_ref().map(CappedPipe::take).unwrap_or_default();
        TakenOutput {
            stdout: take(&self.stdout),
            stderr: take(&self.stderr),
        }
    }
}

/// Builds the WASI context for an instance whose linear memories may hold `memory_bytes`, and the
/// handles to its piped output.
pub fn build(options: &NativeWasiOptions, memory_bytes: usize) -> Result<(WasiCtxBuilder, Output), Failure> {
    let mut builder = WasiCtx::builder();
    builder
        // wasmtime-wasi makes the random bytes a guest asks for (64 MiB at most by default) before
        // it looks where they go: a guest cannot hold more than its memory, so it may not ask for
        // more, and many small guests cannot make the host hold 64 MiB each.
        .max_random_size(random_bytes_bound(memory_bytes))
        // Blocking work (files, stdio) goes to tokio's blocking threads, so the guest's future
        // stays pending and its deadline can end the wait (see runtime/executor.rs).
        .allow_blocking_current_thread(false)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    let limit = options.output_limit_bytes as usize;
    let waits = options.output_waits;
    let output = Output {
        stdout: stream(
            &mut builder,
            "stdout",
            &options.stdout,
            limit,
            waits,
            |builder| builder.stdout(Inherited::Stdout),
            |builder, pipe| builder.stdout(pipe),
        )?,
        stderr: stream(
            &mut builder,
            "stderr",
            &options.stderr,
            limit,
            waits,
            |builder| builder.stderr(Inherited::Stderr),
            |builder, pipe| builder.stderr(pipe),
        )?,
    };
    for pair in &options.env {
        if let [key, value] = pair.as_slice() {
            builder.env(key, value);
        }
    }
    builder.args(&options.args);
    if options.stdin_inherit {
        builder.inherit_stdin();
    } else if let Some(bytes) = &options.stdin_bytes {
        builder.stdin(MemoryInputPipe::new(bytes.to_vec()));
    }
    for preopen in &options.preopens {
        let (host, guest, perms) = match preopen.as_slice() {
            [host, guest] => (host, guest, FsPerms::ReadOnly),
            [host, guest, mode] if mode == "write" => {
                crate::cache::in_use::check_writable_grant(host).map_err(|why| Failure::OptionAt {
                    path: "wasi.preopens",
                    message: format!("wasi.preopens: {host}: {why}"),
                })?;
                (host, guest, FsPerms::ReadWrite)
            }
            _ => {
                return Err(Failure::OptionAt {
                    path: "wasi.preopens",
                    message: "wasi.preopens: expected [host, guest, mode?]".into(),
                });
            }
        };
        builder
            .preopened_dir(host, guest, perms)
            .map_err(|error| Failure::OptionAt {
                path: "wasi.preopens",
                message: format!("wasi.preopens: cannot open {host}: {error:#}"),
            })?;
    }
    Ok((builder, output))
}

/// Most random bytes one WASI call may ask for: what the guest's memories may hold, at most
/// wasmtime-wasi's own default.
pub fn random_bytes_bound(memory_bytes: usize) -> u64 {
    (memory_bytes as u64).min(wasmtime_wasi::random::DEFAULT_MAX_SIZE)
}

type Connect = fn(&mut WasiCtxBuilder) -> &mut WasiCtxBuilder;
type ConnectPipe = fn(&mut WasiCtxBuilder, CappedPipe) -> &mut WasiCtxBuilder;

/// Wires one output stream by its mode; the pipe, when piped, is kept for `takeOutput()`.
fn stream(
    builder: &mut WasiCtxBuilder,
    name: &str,
    mode: &str,
    limit: usize,
    waits: bool,
    inherit: Connect,
    pipe_to: ConnectPipe,
) -> Result<Option<CappedPipe>, Failure> {
    match mode {
        "inherit" => {
            inherit(builder);
            Ok(None)
        }
        "pipe" => {
            let pipe = CappedPipe::new(limit, waits);
            pipe_to(builder, pipe.clone());
            Ok(Some(pipe))
        }
        "ignore" => Ok(None),
        other => Err(Failure::Options(format!("wasi.{name}: unknown mode \"{other}\""))),
    }
}

/// Most bytes of text one take returns per stream: V8's longest string (2^29 - 24 UTF-16 units),
/// which V8 also takes as the most bytes of UTF-8 it decodes into one, and which a cap of up to
/// 1 GiB could pass. Invalid bytes count as the U+FFFD each becomes.
const MAX_TAKEN_BYTES: usize = (1 << 29) - 24;

/// An in-memory output stream holding at most `capacity` bytes: past it, the oldest are dropped,
/// or (`waits`) the guest's write waits, as on a full OS pipe, until a take makes room; a reader
/// that prints the output as it comes (the CLI) then gets every byte, and a guest nobody reads
/// waits until its deadline.
#[derive(Clone)]
pub struct CappedPipe {
    kept: Arc<Mutex<Kept>>,
    capacity: usize,
    waits: bool,
}

#[derive(Default)]
struct Kept {
    bytes: VecDeque<u8>,
    /// Older bytes were dropped from the front since the last take, maybe inside a character.
    cut: bool,
    /// No write since the guest stopped running ([`Output::settle`]).
    settled: bool,
    /// Room the guest's streams were allowed by `check-write` and have not written yet
    /// (`waits` only): not room for anyone else, so however many streams ask, what they write
    /// stays within the cap (probe H57: 8,000 streams with a permit each for the same room made a
    /// 1 MiB pipe hold 500 MiB).
    granted: usize,
    /// The writes waiting for room (`waits` only): one per task, which is one per guest unless
    /// a stream's `async_stream` is polled elsewhere.
    writers: Vec<Waker>,
}

impl CappedPipe {
    fn new(capacity: usize, waits: bool) -> Self {
        CappedPipe {
            kept: Arc::new(Mutex::new(Kept::default())),
            // A waiting pipe must hold a whole character: a take leaves the start of one.
            capacity: if waits { capacity.max(4) } else { capacity },
            waits,
        }
    }

    /// The bytes written since the last take, as text, with whole characters only: the rest of
    /// one the cap cut is dropped, and the start of one not yet fully written waits for the next
    /// take (other invalid UTF-8 is replaced). At most [`MAX_TAKEN_BYTES`]: the rest waits too.
    pub fn take(&self) -> String {
        self.take_at_most(MAX_TAKEN_BYTES)
    }

    fn take_at_most(&self, most: usize) -> String {
        let mut kept = self.lock();
        let mut bytes: Vec<u8> = std::mem::take(&mut kept.bytes).into();
        let start = if std::mem::take(&mut kept.cut) {
            bytes.iter().take(3).take_while(|&&byte| is_continuation(byte)).count()
        } else {
            0
        };
        let limit = bytes.len().min(start.saturating_add(most));
        // A character still being written waits for its last bytes, unless the guest stopped.
        let unfinished_waits = limit < bytes.len() || !kept.settled;
        let whole = if unfinished_waits {
            whole_characters(&bytes[..limit])
        } else {
            limit
        };
        let end = start.max(whole);
        // Invalid bytes become U+FFFD, three bytes each: the text must fit `most` too.
        let end = start + lossy_prefix(&bytes[start..end], most);
        kept.bytes.extend(&bytes[end..]);
        if end > 0 {
            kept.writers.drain(..).for_each(Waker::wake);
        }
        bytes.truncate(end);
        bytes.drain(..start);
        String::from_utf8(bytes).unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
    }

    #[cfg(test)]
    fn write(&self, bytes: &[u8]) {
        let mut kept = self.lock();
        self.keep(&mut kept, bytes);
    }

    /// How many bytes a write may bring now: unbounded for a pipe that drops (it keeps the
    /// newest), else the room left.
    fn room(&self, kept: &Kept) -> usize {
        if self.waits {
            self.capacity.saturating_sub(kept.bytes.len() + kept.granted)
        } else {
            usize::MAX
        }
    }

    /// [`Self::room`], where none makes `cx`'s task wait for a take.
    fn poll_room(&self, kept: &mut Kept, cx: &Context<'_>) -> Poll<usize> {
        let room = self.room(kept);
        if room > 0 {
            return Poll::Ready(room);
        }
        if !kept.writers.iter().any(|writer| writer.will_wake(cx.waker())) {
            kept.writers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Makes a stream's permit (`held`) `permit`, giving back the room it held (`waits` only).
    fn grant(&self, kept: &mut Kept, held: &mut usize, permit: usize) {
        if self.waits {
            kept.granted = kept.granted - *held + permit;
        }
        *held = permit;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        lock(&self.kept)
    }

    /// Appends `bytes` to `kept`, dropping older bytes past the cap (unless it `waits`: then
    /// writes come only as far as there is room, and nothing is dropped).
    fn keep(&self, kept: &mut Kept, bytes: &[u8]) {
        kept.settled &= bytes.is_empty();
        if self.waits {
            kept.bytes.extend(bytes);
            return;
        }
        let keep = bytes.len().min(self.capacity);
        // Older bytes go first, and the buffer grows by doubling up to the cap, never past it:
        // growing past it, then draining, kept twice the cap.
        let excess = (kept.bytes.len() + keep).saturating_sub(self.capacity);
        let dropped = excess.min(kept.bytes.len());
        kept.bytes.drain(..dropped);
        let needed = kept.bytes.len() + keep;
        if needed > kept.bytes.capacity() {
            let grown = needed.max(kept.bytes.capacity() * 2).min(self.capacity);
            let more = grown - kept.bytes.len();
            kept.bytes.reserve_exact(more);
        }
        kept.bytes.extend(&bytes[bytes.len() - keep..]);
        kept.cut |= excess > 0 || keep < bytes.len();
    }
}

/// How many of `bytes` make at most `most` bytes of text once each invalid sequence is replaced
/// by U+FFFD (as `String::from_utf8_lossy` does), cut between characters.
fn lossy_prefix(bytes: &[u8], most: usize) -> usize {
    const REPLACEMENT_BYTES: usize = '\u{fffd}'.len_utf8();
    let (mut taken, mut made) = (0, 0);
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if made + valid.len() > most {
            let mut cut = most - made;
            while !valid.is_char_boundary(cut) {
                cut -= 1;
            }
            return taken + cut;
        }
        taken += valid.len();
        made += valid.len();
        if !chunk.invalid().is_empty() {
            if made + REPLACEMENT_BYTES > most {
                return taken;
            }
            taken += chunk.invalid().len();
            made += REPLACEMENT_BYTES;
        }
    }
    taken
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// The length of `bytes` without a UTF-8 sequence at its end that is still missing bytes.
fn whole_characters(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for at in (len.saturating_sub(3)..len).rev() {
        let byte = bytes[at];
        if is_continuation(byte) {
            continue;
        }
        let needed = match byte {
            // Not a lead byte: replaced at once.
            0xF8.. => 1,
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if len - at < needed { at } else { len };
    }
    len
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// The guest's stream writes into the pipe on the guest's own thread. wasmtime-wasi's default
    /// handed every write to a tokio task and waited for it to finish: some 20 futex calls a write,
    /// 200,000 small writes 3.7 s.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(PipeStream {
            pipe: self.clone(),
            permit: 0,
        })
    }
}

/// A guest's stdout or stderr stream over a [`CappedPipe`], with what its last `check-write`
/// allowed: a write past that is the guest's error (a waiting pipe dropped the excess, oldest
/// bytes first, though nothing may be dropped there: probe H56).
struct PipeStream {
    pipe: CappedPipe,
    permit: usize,
}

impl Drop for PipeStream {
    fn drop(&mut self) {
        self.pipe.grant(&mut self.pipe.lock(), &mut self.permit, 0);
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PipeStream {
    async fn ready(&mut self) {
        if self.permit > 0 {
            return;
        }
        std::future::poll_fn(|cx| self.pipe.poll_room(&mut self.pipe.lock(), cx).map(drop)).await
    }
}

impl OutputStream for PipeStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let left = permit_left(bytes.len(), self.permit)?;
        let mut kept = self.pipe.lock();
        self.pipe.grant(&mut kept, &mut self.permit, left);
        self.pipe.keep(&mut kept, &bytes);
        Ok(())
    }

    /// The pipe is where the bytes go: a write is done when it returns.
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        let mut kept = self.pipe.lock();
        self.pipe.grant(&mut kept, &mut self.permit, 0);
        let permit = self.pipe.room(&kept).min(WRITE_PERMIT);
        self.pipe.grant(&mut kept, &mut self.permit, permit);
        Ok(permit)
    }
}

impl AsyncWrite for CappedPipe {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        if bytes.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut kept = self.lock();
        self.poll_room(&mut kept, cx).map(|room| {
            let accepted = bytes.len().min(room);
            self.keep(&mut kept, &bytes[..accepted]);
            Ok(accepted)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use bytes::Bytes;
    use tokio::io::AsyncWrite;
    use wasmtime_wasi::cli::StdoutStream;

    use super::CappedPipe;

    struct Woken(AtomicBool);

    impl Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_pipe_takes_what_fits_then_waits_for_a_take() {
        let woken = Arc::new(Woken(AtomicBool::new(false)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut pipe = CappedPipe::new(5, true);
        let mut write = |bytes: &[u8]| Pin::new(&mut pipe).poll_write(&mut cx, bytes).map(Result::unwrap);
        assert_eq!(write(b"abc"), Poll::Ready(3));
        assert_eq!(write(b"defg"), Poll::Ready(2), "as much as there is room for");
        assert_eq!(write(b"fg"), Poll::Pending, "full: the writer waits");
        assert!(!woken.0.load(Ordering::SeqCst));
        assert_eq!(pipe.take(), "abcde", "nothing dropped");
        assert!(woken.0.load(Ordering::SeqCst), "a take wakes the waiting writer");
        let mut write = |bytes: &[u8]| Pin::new(&mut pipe).poll_write(&mut cx, bytes).map(Result::unwrap);
        assert_eq!(write(b"fg"), Poll::Ready(2));
        assert_eq!(pipe.take(), "fg");
    }

    #[test]
    fn a_guest_stream_writes_into_the_pipe_at_once_and_waits_only_when_it_is_full() {
        let woken = Arc::new(Woken(AtomicBool::new(false)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let pipe = CappedPipe::new(5, true);
        let mut stream = pipe.p2_stream();
        assert_eq!(stream.check_write().unwrap(), 5);
        stream.write(Bytes::from_static(b"abc")).unwrap();
        stream.flush().unwrap();
        assert_eq!(
            stream.check_write().unwrap(),
            2,
            "the bytes are in the pipe, no task between"
        );
        stream.write(Bytes::from_static(b"de")).unwrap();
        assert_eq!(stream.check_write().unwrap(), 0);
        assert_eq!(
            stream.ready().as_mut().poll(&mut cx),
            Poll::Pending,
            "full: the guest waits"
        );
        assert_eq!(pipe.take(), "abcde");
        assert!(woken.0.load(Ordering::SeqCst), "a take wakes the waiting guest");
        assert_eq!(stream.ready().as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(stream.check_write().unwrap(), 5);

        let mut dropping = CappedPipe::new(5, false).p2_stream();
        assert_eq!(
            dropping.check_write().unwrap(),
            crate::wasi_stdio::WRITE_PERMIT,
            "a pipe that drops never waits"
        );
    }

    #[test]
    fn streams_sharing_a_waiting_pipe_share_its_room_and_a_write_past_its_permit_is_refused() {
        // A permit is room no other stream is given: what several streams write stays within the
        // cap (probe H57), and a permit given back (asked again, or the stream dropped) is room again.
        let pipe = CappedPipe::new(5, true);
        let (mut first, mut second) = (pipe.p2_stream(), pipe.p2_stream());
        assert_eq!(first.check_write().unwrap(), 5);
        assert_eq!(second.check_write().unwrap(), 0, "all of it is the first stream's");
        first.write(Bytes::from_static(b"ab")).unwrap();
        assert_eq!(second.check_write().unwrap(), 0, "the first still holds 3");
        assert_eq!(first.check_write().unwrap(), 3);
        drop(first);
        assert_eq!(
            second.check_write().unwrap(),
            3,
            "a dropped stream's permit is room again"
        );
        second.write(Bytes::from_static(b"cde")).unwrap();
        assert_eq!(pipe.lock().bytes.len(), 5);
        assert_eq!(pipe.take(), "abcde", "nothing dropped");
        let mut first = pipe.p2_stream();
        // A write without a permit, or past it, was kept by dropping the oldest bytes (probe H56).
        assert!(
            first.write(Bytes::from_static(b"x")).is_err(),
            "a stream not given a permit yet"
        );
        assert_eq!(first.check_write().unwrap(), 5);
        assert!(first.write(Bytes::from_static(b"klmnop")).is_err(), "past the permit");
        assert!(first.write(Bytes::from_static(b"klm")).is_ok());
        assert_eq!(pipe.take(), "klm");
        let mut dropping = CappedPipe::new(5, false).p2_stream();
        assert!(
            dropping.write(Bytes::from_static(b"x")).is_err(),
            "without a permit, whatever the mode"
        );
    }

    #[test]
    fn a_capped_pipe_keeps_the_newest_bytes() {
        let pipe = CappedPipe::new(5, false);
        pipe.write(b"abc");
        pipe.write(b"defg");
        assert_eq!(pipe.take(), "cdefg");
        assert_eq!(pipe.take(), "", "a take empties the pipe");
        pipe.write(b"0123456789");
        assert_eq!(pipe.take(), "56789");
    }

    #[test]
    fn the_cap_and_a_take_never_split_a_character() {
        let pipe = CappedPipe::new(8, false);
        pipe.write("ab€€€".as_bytes());
        assert_eq!(pipe.take(), "€€", "the rest of a character cut by the cap is dropped");
        let euro = "€".as_bytes();
        pipe.write(&euro[..2]);
        assert_eq!(pipe.take(), "", "half a character waits");
        pipe.write(&euro[2..]);
        assert_eq!(pipe.take(), "€");
        pipe.write(b"ok\xff");
        assert_eq!(pipe.take(), "ok\u{fffd}", "other invalid bytes are replaced");
    }

    #[test]
    fn a_character_left_unfinished_waits_while_the_guest_runs_and_is_replaced_once_it_stops() {
        let pipe = CappedPipe::new(64, false);
        let output = super::Output {
            stdout: Some(pipe.clone()),
            stderr: None,
        };
        pipe.write(b"A\xf0\x9f");
        assert_eq!(pipe.take(), "A", "the guest may still finish it");
        output.settle();
        assert_eq!(pipe.take(), "\u{fffd}", "it stopped: it never will");
        assert_eq!(pipe.take(), "");
        pipe.write(b"\xf0\x9f");
        assert_eq!(pipe.take(), "", "a write after the guest stopped runs again");
    }

    #[test]
    fn a_take_returns_at_most_its_bound_and_leaves_the_rest_whole() {
        let pipe = CappedPipe::new(64, false);
        pipe.write("abc€€d".as_bytes());
        assert_eq!(pipe.take_at_most(4), "abc", "a character the bound cuts waits");
        assert_eq!(pipe.take_at_most(4), "€");
        assert_eq!(pipe.take_at_most(100), "€d");
    }

    #[test]
    fn a_take_of_invalid_bytes_makes_text_within_its_bound() {
        // Each 0xFF becomes U+FFFD, three bytes: V8 refuses UTF-8 input past its longest string
        // whatever the text decodes to, and a take of 600 MiB of 0xFF threw a bare Error.
        let pipe = CappedPipe::new(64, false);
        pipe.write(&[0xff; 10]);
        let taken = pipe.take_at_most(7);
        assert_eq!(taken, "\u{fffd}\u{fffd}");
        assert_eq!(pipe.take_at_most(100).chars().count(), 8, "the rest waits, none lost");
        pipe.write("ab\u{fffd}".as_bytes());
        assert_eq!(pipe.take_at_most(4), "ab", "a valid character is not cut either");
    }

    #[test]
    fn a_capped_pipe_holds_no_more_than_its_cap() {
        let pipe = CappedPipe::new(1000, false);
        for _ in 0..100 {
            pipe.write(&[b'x'; 300]);
        }
        let kept = pipe.kept.lock().unwrap();
        assert_eq!(kept.bytes.len(), 1000);
        assert_eq!(kept.bytes.capacity(), 1000, "grown by doubling, up to the cap only");
    }
}
