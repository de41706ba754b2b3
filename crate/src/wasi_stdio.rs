//! The process's own stdout and stderr, inherited by a guest.
//!
//! On Linux a guest writes them on its own thread, to the descriptor as it is at that write, without
//! waiting: a socket by `send` with MSG_DONTWAIT, a non-blocking pipe or terminal (Node makes its
//! pipes so), a file or a device as they are. wasmtime-wasi's default handed every write to a
//! tokio task, which handed it to a blocking thread, and waited for both: some 90 µs a write.
//! What the descriptor has no room for, and every write to a blocking pipe or terminal (which may
//! wait in the write itself), is queued for the descriptor's own writer thread, in order: a guest
//! waits only when that queue is full, its future pending, so its deadline still ends the call.
//! Elsewhere the default stays.

use std::io;

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::pipe::AsyncWriteStream;
use wasmtime_wasi::p2::{OutputStream, StreamError, StreamResult};

/// Most bytes one write of a guest to its stdout or stderr may bring (piped or inherited): what
/// the host copies out of its memory at a time.
pub const WRITE_PERMIT: usize = 64 * 1024;

/// What a stream's permit leaves after a write of `len` bytes; a write past what `check-write`
/// allowed is the guest's error (piped and inherited streams alike).
pub fn permit_left(len: usize, permit: usize) -> StreamResult<usize> {
    permit.checked_sub(len).ok_or_else(|| {
        StreamError::Trap(wasmtime::Error::msg(
            "write not permitted: more bytes than check-write allowed",
        ))
    })
}

/// The process's stdout or stderr.
#[derive(Clone, Copy)]
pub enum Inherited {
    Stdout,
    Stderr,
}

impl IsTerminal for Inherited {
    fn is_terminal(&self) -> bool {
        match self {
            Inherited::Stdout => std::io::IsTerminal::is_terminal(&io::stdout()),
            Inherited::Stderr => std::io::IsTerminal::is_terminal(&io::stderr()),
        }
    }
}

impl StdoutStream for Inherited {
    /// Written through tokio's blocking threads: a write that blocks (a full pipe nobody reads)
    /// leaves the guest's future pending.
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        match self {
            Inherited::Stdout => Box::new(tokio::io::stdout()),
            Inherited::Stderr => Box::new(tokio::io::stderr()),
        }
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        #[cfg(target_os = "linux")]
        if let Some(stream) = direct::stream(*self) {
            return stream;
        }
        Box::new(AsyncWriteStream::new(8192, Box::into_pin(self.async_stream())))
    }
}

#[cfg(target_os = "linux")]
mod direct {
    use std::collections::VecDeque;
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
    use std::task::{Poll, Waker};
    use std::time::{Duration, Instant};

    use bytes::{Buf, Bytes, BytesMut};
    use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

    use super::{Inherited, WRITE_PERMIT, permit_left};
    use crate::sync::{lock, wait};

    /// Bytes queued for a descriptor (written by guests while it had no room) past which
    /// `check-write` allows no more, for every guest of the process: the streams' own permits
    /// granted before it filled may bring one more [`WRITE_PERMIT`] each.
    const QUEUE_CAP: usize = 1 << 20;

    /// Most bytes the writer thread hands the descriptor at once.
    const CHUNK: usize = 64 * 1024;

    /// Most bytes written at once to a blocking pipe that has room: a pipe with room for a write
    /// has a free page, so a write of at most PIPE_BUF never waits.
    const PIPE_ROOM: usize = libc::PIPE_BUF;

    /// Most bytes written at once to a blocking terminal that has room: it says so only while
    /// fewer than 256 characters wait in it, with more room than that behind them.
    const TERMINAL_ROOM: usize = 256;

    /// How long the writer waits in `poll` for room in a descriptor before it looks at it again
    /// (the host may have moved it meanwhile).
    const ROOM_POLL_MS: i32 = 100;

    /// Wakers of waiting guests kept before all are woken (each one still waiting registers
    /// again): a guest whose deadline ended its wait leaves its waker behind.
    const MOST_WAITING: usize = 256;

    /// Failures of the writer kept for the streams whose bytes they dropped, each with a range of
    /// positions: a stream asks at its next operation.
    const MOST_FAILURES: usize = 16;

    /// How long the process's exit waits for a writer thread that writes nothing (a reader that
    /// stopped reading): guests' bytes must not hold the host's exit for ever.
    const EXIT_IDLE: Duration = Duration::from_secs(2);

    /// The process's stdout or stderr as guests write it: the descriptor number, looked at afresh
    /// for every write as a native program's `write(1, ...)` would (no copy of it is held, which
    /// kept a pipe open after the host had closed its stdout, and a reopened read-only one
    /// writable: probe H56), and what guests wrote that it has not taken yet.
    struct Target {
        fd: RawFd,
        queue: Mutex<Queue>,
        /// Signalled when the queue gets bytes, for the writer thread.
        work: Condvar,
    }

    /// What guests wrote to a descriptor that it had no room for, in the order written, for the
    /// target's one writer thread. It belongs to the descriptor, not to a stream, so a stream
    /// dropped with bytes still unwritten loses none (probe H58: they were dropped with the
    /// stream, 99.6% of a guest's output), and a descriptor that blocks (a pipe nobody reads, a
    /// terminal) holds one thread, not one of the 64 WASI file work shares per stream (one guest
    /// with 100 streams held them all, and other guests' file reads failed at their deadlines).
    #[derive(Default)]
    struct Queue {
        bytes: BytesMut,
        /// The guests waiting for room in the queue.
        waiting: Vec<Waker>,
        /// The writer's latest failures, for the streams whose bytes they dropped.
        failures: VecDeque<Dropped>,
        /// Bytes ever taken out (written, or dropped on a failure): a stream is flushed once it
        /// reaches [`Queue::end`] as it was after the stream's last write.
        taken: u64,
        /// `taken` when the writer last woke the waiting guests.
        woken_at: u64,
    }

    /// What the writer dropped when a write failed (a reader gone, the descriptor closed): the
    /// queue's bytes from `from` to `to`, in its order. Each stream with bytes among them gets the
    /// error at its next operation, as a native program gets the error of its own write; a stream
    /// with none goes on (a failure of another guest's bytes does not close it).
    struct Dropped {
        error: io::ErrorKind,
        os_error: Option<i32>,
        from: u64,
        to: u64,
    }

    impl Dropped {
        fn hits(&self, queued_until: u64) -> bool {
            (self.from + 1..=self.to).contains(&queued_until)
        }

        fn error(&self) -> io::Error {
            self.os_error
                .map_or_else(|| self.error.into(), io::Error::from_raw_os_error)
        }
    }

    impl Queue {
        /// Where in the queue's order its last byte is: bytes ever queued.
        fn end(&self) -> u64 {
            self.taken + self.bytes.len() as u64
        }

        /// The failure that dropped the byte before `queued_until`, if one did.
        fn dropped(&self, queued_until: u64) -> Option<&Dropped> {
            self.failures.iter().find(|dropped| dropped.hits(queued_until))
        }

        /// Records a failure. One right after another (nothing written between) extends it; of
        /// the others the latest [`MOST_FAILURES`] are kept: a stream whose bytes an earlier one
        /// dropped is still told after a later one (one record was replaced by the next).
        fn record_failure(&mut self, dropped: Dropped) {
            match self.failures.back_mut() {
                Some(last) if last.to == dropped.from => last.to = dropped.to,
                _ => {
                    if self.failures.len() == MOST_FAILURES {
                        self.failures.pop_front();
                    }
                    self.failures.push_back(dropped);
                }
            }
        }

        /// Wakes `waker` at the writer thread's next progress.
        fn wake_later(&mut self, waker: &Waker) {
            if self.waiting.len() >= MOST_WAITING {
                self.waiting.drain(..).for_each(Waker::wake);
            }
            if !self.waiting.iter().any(|known| known.will_wake(waker)) {
                self.waiting.push(waker.clone());
            }
        }
    }

    /// The target for `fd`, its writer thread started (`None` if no thread could be).
    fn target(fd: RawFd) -> Option<Arc<Target>> {
        let target = Arc::new(Target {
            fd,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
        });
        let writer = target.clone();
        std::thread::Builder::new()
            .name("airssys-wasm-stdio".into())
            .spawn(move || writer.drain())
            .ok()?;
        Some(target)
    }

    /// The process's stdout and stderr, once a guest has inherited them.
    static TARGETS: [OnceLock<Option<Arc<Target>>>; 2] = [OnceLock::new(), OnceLock::new()];

    pub fn stream(which: Inherited) -> Option<Box<dyn OutputStream>> {
        let (cell, fd) = match which {
            Inherited::Stdout => (&TARGETS[0], libc::STDOUT_FILENO),
            Inherited::Stderr => (&TARGETS[1], libc::STDERR_FILENO),
        };
        let target = cell
            .get_or_init(|| {
                static AT_EXIT: Once = Once::new();
                // SAFETY: `written_at_exit` is a plain function of this library, which Node never
                // unloads.
                AT_EXIT.call_once(|| unsafe {
                    libc::atexit(written_at_exit);
                });
                target(fd)
            })
            .clone()?;
        Some(Box::new(DirectStream {
            target,
            state: StreamState::default(),
        }))
    }

    /// At the process's exit (`process.exit()`, or its event loop done): what guests queued and
    /// did not flush is written first, as Node writes its own stdout to a pipe or file before it
    /// exits (probe H59: 65,536 of 1,048,576 bytes behind a late reader were lost), while the
    /// writer makes progress.
    extern "C" fn written_at_exit() {
        for target in TARGETS.iter().filter_map(OnceLock::get).flatten() {
            target.wait_written(EXIT_IDLE);
        }
    }

    /// A guest's stream to the process's stdout or stderr, with what its last `check-write`
    /// allowed: a write past that is the guest's error.
    struct DirectStream {
        target: Arc<Target>,
        state: StreamState,
    }

    #[derive(Default)]
    struct StreamState {
        permit: usize,
        closed: bool,
        /// Where in the queue's order this stream's last queued byte is.
        queued_until: u64,
        /// A flush was asked for: `check-write` allows nothing, and `ready` waits, until the
        /// writer thread has taken the stream's bytes (as wasmtime-wasi's stream waits for its
        /// write): a call that printed ends with its output in the descriptor, not in a queue
        /// that the host's exit would drop.
        flushing: bool,
    }

    impl StreamState {
        /// Fails an operation, and every later one, with `error`.
        fn close(&mut self, error: StreamError) -> StreamError {
            self.closed = true;
            self.permit = 0;
            error
        }

        /// The failure the writer thread met writing this stream's bytes, if any.
        fn failed(&mut self, queue: &Queue) -> StreamResult<()> {
            if self.closed {
                return Err(StreamError::Closed);
            }
            match queue.dropped(self.queued_until) {
                Some(dropped) => Err(self.close(StreamError::LastOperationFailed(dropped.error().into()))),
                _ => Ok(()),
            }
        }
    }

    #[wasmtime_wasi::async_trait]
    impl Pollable for DirectStream {
        async fn ready(&mut self) {
            if self.state.closed || (self.state.permit > 0 && !self.state.flushing) {
                return;
            }
            std::future::poll_fn(|cx| {
                let mut queue = lock(&self.target.queue);
                let flushed = !self.state.flushing || queue.taken >= self.state.queued_until;
                let room = queue.bytes.len() < QUEUE_CAP;
                let dropped = queue.dropped(self.state.queued_until).is_some();
                if dropped || (flushed && (room || self.state.permit > 0)) {
                    return Poll::Ready(());
                }
                queue.wake_later(cx.waker());
                Poll::Pending
            })
            .await
        }
    }

    impl OutputStream for DirectStream {
        fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
            self.state.permit = permit_left(bytes.len(), self.state.permit)?;
            let mut queue = lock(&self.target.queue);
            self.state.failed(&queue)?;
            match self.target.put(&mut queue, &bytes) {
                Ok(true) => self.state.queued_until = queue.end(),
                Ok(false) => {}
                Err(error) => return Err(self.state.close(StreamError::LastOperationFailed(error.into()))),
            }
            Ok(())
        }

        /// A write the descriptor took whole needs none; one queued waits for the writer thread.
        fn flush(&mut self) -> StreamResult<()> {
            let queue = lock(&self.target.queue);
            self.state.failed(&queue)?;
            self.state.flushing = queue.taken < self.state.queued_until;
            Ok(())
        }

        fn check_write(&mut self) -> StreamResult<usize> {
            let queue = lock(&self.target.queue);
            self.state.failed(&queue)?;
            self.state.flushing &= queue.taken < self.state.queued_until;
            self.state.permit = if self.state.flushing {
                0
            } else {
                QUEUE_CAP.saturating_sub(queue.bytes.len()).min(WRITE_PERMIT)
            };
            Ok(self.state.permit)
        }
    }

    impl Target {
        /// Writes what the descriptor takes of `bytes` now without waiting, unless bytes are
        /// queued before them or it is a blocking pipe or terminal (whose write may wait in the
        /// write itself: a terminal makes each newline two bytes, and another writer may take the
        /// room `poll` found: probe H57); queues the rest for the writer thread. Its error is the
        /// one a native write would get (a closed descriptor, one not open for writing); `true`
        /// when some were queued.
        fn put(&self, queue: &mut Queue, bytes: &[u8]) -> io::Result<bool> {
            let mut written = 0;
            if queue.bytes.is_empty() {
                let kind = Kind::of(self.fd)?;
                while written < bytes.len() && !matches!(kind, Kind::Blocking { .. }) {
                    match kind.write_now(self.fd, &bytes[written..]) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(more) => written += more,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                        Err(error) => return Err(error),
                    }
                }
                if written < bytes.len() {
                    self.work.notify_one();
                }
            }
            queue.bytes.extend_from_slice(&bytes[written..]);
            Ok(written < bytes.len())
        }

        /// Waits until the writer thread has taken what is queued now, or has taken nothing for
        /// `idle`. Not until the queue is empty: a guest still running on a pool thread could keep
        /// it filled, and the exit waiting, for ever.
        fn wait_written(&self, idle: Duration) {
            let until = lock(&self.queue).end();
            let mut progress = (u64::MAX, Instant::now());
            loop {
                let taken = lock(&self.queue).taken;
                if taken >= until {
                    return;
                }
                if taken != progress.0 {
                    progress = (taken, Instant::now());
                } else if progress.1.elapsed() >= idle {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }

        /// The writer thread: writes what is queued, in order, to the descriptor as it is at each
        /// write, and wakes the guests waiting for room or a flush as it goes.
        fn drain(&self) {
            let mut chunk = Vec::with_capacity(CHUNK);
            loop {
                let kind = {
                    let mut queue = lock(&self.queue);
                    while queue.bytes.is_empty() {
                        queue = wait(&self.work, queue);
                    }
                    let kind = Kind::of(self.fd);
                    // No more than one write takes (a blocking pipe 4 KiB at a time): copying
                    // 64 KiB, byte by byte, for each made a full queue cost 21 µs of CPU a write
                    // (probe H60).
                    let most = kind.as_ref().map_or(CHUNK, Kind::most);
                    let take = most.min(queue.bytes.len());
                    chunk.clear();
                    chunk.extend_from_slice(&queue.bytes[..take]);
                    kind
                };
                let outcome = kind.and_then(|kind| kind.write_waiting(self.fd, &chunk));
                let mut queue = lock(&self.queue);
                match outcome {
                    Ok(0) => continue,
                    Ok(written) => {
                        queue.bytes.advance(written);
                        queue.taken += written as u64;
                        // Permits granted before the queue filled may have grown it far past its
                        // cap once: its memory goes back once it is all written.
                        if queue.bytes.is_empty() {
                            queue.bytes = BytesMut::new();
                        }
                        // Waiting guests are woken once half the queue is free, or half a queue's
                        // worth has been written since they last were (for a flush): woken for
                        // every 4 KiB a blocking pipe takes, each wait cost two threads' wake-ups,
                        // 40 MB/s and a core busy (probe H60).
                        let progress = queue.taken - queue.woken_at;
                        if queue.bytes.len() > QUEUE_CAP / 2 && progress < (QUEUE_CAP / 2) as u64 {
                            continue;
                        }
                    }
                    Err(error) => {
                        let (from, to) = (queue.taken, queue.end());
                        queue.taken = to;
                        queue.bytes.clear();
                        queue.record_failure(Dropped {
                            error: error.kind(),
                            os_error: error.raw_os_error(),
                            from,
                            to,
                        });
                    }
                }
                queue.woken_at = queue.taken;
                queue.waiting.drain(..).for_each(Waker::wake);
            }
        }
    }

    /// How a write to a descriptor may wait.
    enum Kind {
        Socket,
        /// A regular file, a device that is not a terminal, or a pipe or terminal whose
        /// description is non-blocking (Node makes its pipes so): a write returns at once.
        NeverWaits,
        /// A blocking pipe, or terminal: a write may wait for a reader (or flow control) for ever.
        Blocking {
            pipe: bool,
        },
    }

    impl Kind {
        /// `fd` as it is now; its error is the one a native write would get (a closed fd).
        fn of(fd: RawFd) -> io::Result<Kind> {
            // SAFETY: fstat writes only the `stat` it is given.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstat(fd, &mut stat) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let kind = stat.st_mode & libc::S_IFMT;
            // A socket is open for both ways: no flag of it changes how a write goes.
            if kind == libc::S_IFSOCK {
                return Ok(Kind::Socket);
            }
            // SAFETY: F_GETFL reads the descriptor's flags only.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                return Err(io::Error::last_os_error());
            }
            // Refused before anything is queued, as a native write is: the writer thread would
            // find it only after the guest's write had returned.
            if flags & libc::O_ACCMODE == libc::O_RDONLY {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            // SAFETY: isatty only asks.
            let waits = kind == libc::S_IFIFO || (kind == libc::S_IFCHR && unsafe { libc::isatty(fd) } == 1);
            Ok(if waits && flags & libc::O_NONBLOCK == 0 {
                Kind::Blocking {
                    pipe: kind == libc::S_IFIFO,
                }
            } else {
                Kind::NeverWaits
            })
        }

        /// One write that does not wait (`WouldBlock` if it would; a `Blocking` one is written only
        /// by the writer thread, after `poll`).
        fn write_now(&self, fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
            match self {
                // MSG_DONTWAIT: this send only, the socket's own flags as they are.
                Kind::Socket => send(fd, bytes, libc::MSG_DONTWAIT),
                _ => raw_write(fd, bytes),
            }
        }

        /// Most bytes one write of the writer thread hands the descriptor.
        fn most(&self) -> usize {
            match self {
                Kind::Blocking { pipe: true } => PIPE_ROOM,
                Kind::Blocking { pipe: false } => TERMINAL_ROOM,
                _ => CHUNK,
            }
        }

        /// One write of at most [`Kind::most`] bytes, on the writer thread, once `poll` finds room
        /// (`Ok(0)` when it found none in [`ROOM_POLL_MS`]: the caller looks at the descriptor
        /// again).
        fn write_waiting(&self, fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
            let done = match self {
                // Only once `poll` finds room, and no more than that room surely takes, so that
                // the writer looks at the descriptor again within ROOM_POLL_MS though nobody reads
                // (probe H59: blocked in write(2) on a pipe nobody read, it stayed there after the
                // host moved fd 1, and every guest's flush waited behind it). Another writer
                // taking the room first, or a terminal's newlines, can still hold the writer in
                // the write, and the writer alone.
                Kind::Blocking { .. } => {
                    if !has_room(fd, ROOM_POLL_MS) {
                        return Ok(0);
                    }
                    raw_write(fd, bytes)
                }
                _ => self.write_now(fd, bytes),
            };
            match done {
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    has_room(fd, ROOM_POLL_MS);
                    Ok(0)
                }
                Ok(0) if !bytes.is_empty() => Err(io::ErrorKind::WriteZero.into()),
                done => done,
            }
        }
    }

    /// Whether `fd` takes a write (or has a hang-up or error for the write to report), waiting at
    /// most `timeout_ms` for it.
    fn has_room(fd: RawFd, timeout_ms: i32) -> bool {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        unsafe { libc::poll(&mut poll, 1, timeout_ms) == 1 }
    }

    /// `send` with MSG_NOSIGNAL: a reader gone is EPIPE, as a write to a pipe is where SIGPIPE
    /// is ignored (Node ignores it).
    fn send(fd: RawFd, bytes: &[u8], flags: libc::c_int) -> io::Result<usize> {
        // SAFETY: `bytes` is valid for its length; `send` only reads it.
        result(unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), flags | libc::MSG_NOSIGNAL) })
    }

    fn raw_write(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: `bytes` is valid for its length; `write` only reads it.
        result(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })
    }

    fn result(done: isize) -> io::Result<usize> {
        usize::try_from(done).map_err(|_| io::Error::last_os_error())
    }

    #[cfg(test)]
    mod tests {
        use std::io::Read;
        use std::os::fd::{FromRawFd, RawFd};
        use std::time::{Duration, Instant};

        use bytes::Bytes;
        use wasmtime_wasi::p2::OutputStream;

        use std::sync::Arc;

        use super::{DirectStream, Dropped, MOST_FAILURES, Queue, StreamState, Target, target};
        use crate::sync::lock;

        /// A pipe whose write end is non-blocking, as Node makes its pipes.
        fn pipe() -> (std::fs::File, RawFd) {
            let mut fds = [0; 2];
            // SAFETY: two descriptors written into `fds`.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) }, 0);
            // SAFETY: the read end is ours alone.
            let reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
            (reader, fds[1])
        }

        /// A stream to `target`, as each `get-stdout` makes one.
        fn stream(target: &Arc<Target>) -> DirectStream {
            DirectStream {
                target: target.clone(),
                state: StreamState::default(),
            }
        }

        /// Reads until `wanted` bytes came, or 10 s passed.
        fn read_all(reader: &mut std::fs::File, wanted: usize) -> Vec<u8> {
            let mut read = Vec::new();
            let mut buffer = [0; 65536];
            let started = Instant::now();
            while read.len() < wanted && started.elapsed() < Duration::from_secs(10) {
                match reader.read(&mut buffer) {
                    Ok(count) => read.extend_from_slice(&buffer[..count]),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            read
        }

        #[test]
        fn what_streams_queued_outlives_them_and_arrives_in_order() {
            let (mut reader, fd) = pipe();
            let target = target(fd).expect("a writer thread");
            let mut written = Vec::new();
            for round in 0..8u8 {
                let mut stream = stream(&target);
                let permit = stream.check_write().unwrap();
                assert_eq!(permit, 64 * 1024, "a queue with room allows a whole permit");
                let bytes = vec![b'a' + round; permit];
                written.extend_from_slice(&bytes);
                stream.write(Bytes::from(bytes)).unwrap();
                // Dropped unflushed: a pipe of 64 KiB cannot have taken all of it.
            }
            let read = read_all(&mut reader, written.len());
            assert_eq!(read.len(), written.len());
            assert!(read == written, "in the order written");
        }

        #[test]
        fn a_flush_holds_check_write_until_the_writer_took_the_bytes() {
            let (mut reader, fd) = pipe();
            let mut stream = stream(&target(fd).expect("a writer thread"));
            let mut written = 0;
            // Fill the pipe and queue past it.
            for _ in 0..4 {
                let permit = stream.check_write().unwrap();
                stream.write(Bytes::from(vec![b'x'; permit])).unwrap();
                written += permit;
            }
            stream.flush().unwrap();
            assert_eq!(stream.check_write().unwrap(), 0, "a flush not yet done allows nothing");
            assert_eq!(read_all(&mut reader, written).len(), written);
            let started = Instant::now();
            while stream.check_write().unwrap() == 0 && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(
                stream.check_write().unwrap(),
                64 * 1024,
                "the flush ended once all was written"
            );
        }

        #[test]
        fn a_failed_write_is_the_error_of_the_streams_whose_bytes_it_dropped_only() {
            let (reader, fd) = pipe();
            let target = target(fd).expect("a writer thread");
            let (mut writer, mut bystander) = (stream(&target), stream(&target));
            for _ in 0..2 {
                let permit = writer.check_write().unwrap();
                writer.write(Bytes::from(vec![b'w'; permit])).unwrap();
            }
            assert!(bystander.check_write().unwrap() > 0);
            // The reader goes: the writer thread's next write is EPIPE, and drops what is queued.
            drop(reader);
            let started = Instant::now();
            while lock(&target.queue).failures.is_empty() && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // The bystander asks first: the failure is not the first asker's.
            assert!(bystander.check_write().is_ok(), "a stream with none queued goes on");
            assert!(
                writer.check_write().is_err(),
                "the stream whose bytes were dropped is told"
            );
        }

        #[test]
        fn the_exit_waits_for_queued_bytes_while_the_reader_reads_and_not_for_one_who_stopped() {
            let (mut reader, fd) = pipe();
            let target = target(fd).expect("a writer thread");
            let mut stream = stream(&target);
            let mut written = 0;
            for _ in 0..4 {
                let permit = stream.check_write().unwrap();
                stream.write(Bytes::from(vec![b'x'; permit])).unwrap();
                written += permit;
            }
            // Nobody reads: the wait ends after the writer has been idle that long, bytes queued.
            let started = Instant::now();
            target.wait_written(Duration::from_millis(200));
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(5));
            assert!(!lock(&target.queue).bytes.is_empty());
            // A reader that starts late, and reads slowly: the wait ends with everything written.
            let late = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                read_all(&mut reader, written).len()
            });
            target.wait_written(Duration::from_secs(5));
            assert!(lock(&target.queue).bytes.is_empty());
            assert_eq!(late.join().unwrap(), written);
        }

        #[test]
        fn the_exit_does_not_wait_for_what_a_guest_goes_on_writing() {
            let (mut reader, fd) = pipe();
            let target = target(fd).expect("a writer thread");
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            // A slow reader (4 KiB a millisecond), and a writer that keeps the queue full for 3 s.
            let reading = {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0; 4096];
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = reader.read(&mut buffer);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            };
            let writing = {
                let target = target.clone();
                std::thread::spawn(move || {
                    let mut stream = stream(&target);
                    let started = Instant::now();
                    while started.elapsed() < Duration::from_secs(3) {
                        let permit = stream.check_write().unwrap();
                        if permit > 0 {
                            stream.write(Bytes::from(vec![b'y'; permit])).unwrap();
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            };
            std::thread::sleep(Duration::from_millis(200));
            let started = Instant::now();
            target.wait_written(Duration::from_secs(1));
            let waited = started.elapsed();
            writing.join().unwrap();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            reading.join().unwrap();
            assert!(waited < Duration::from_secs(2), "waited {waited:?}");
        }

        #[test]
        fn a_stream_is_told_of_a_failure_that_dropped_its_bytes_though_later_ones_came_after() {
            let dropped = |from, to| Dropped {
                error: std::io::ErrorKind::BrokenPipe,
                os_error: Some(libc::EPIPE),
                from,
                to,
            };
            let mut queue = Queue::default();
            queue.record_failure(dropped(0, 100));
            // Bytes 100..200 were written; then two failures with nothing written between.
            queue.record_failure(dropped(200, 300));
            queue.record_failure(dropped(300, 400));
            assert_eq!(queue.failures.len(), 2, "failures one right after another are one");
            assert!(queue.dropped(50).is_some(), "the first failure's bytes are still known");
            assert!(queue.dropped(350).is_some());
            assert!(queue.dropped(150).is_none(), "written bytes were not dropped");
            assert!(queue.dropped(0).is_none(), "a stream that never queued was not");
            for failure in 0..MOST_FAILURES as u64 {
                queue.record_failure(dropped(1000 + 10 * failure, 1005 + 10 * failure));
            }
            assert_eq!(queue.failures.len(), MOST_FAILURES, "the oldest are forgotten");
        }

        #[test]
        fn a_descriptor_open_only_for_reading_is_refused_at_the_write() {
            let (reader, _fd) = pipe();
            use std::os::fd::AsRawFd;
            let mut stream = stream(&target(reader.as_raw_fd()).expect("a writer thread"));
            stream.check_write().unwrap();
            assert!(stream.write(Bytes::from_static(b"x")).is_err());
        }
    }
}
