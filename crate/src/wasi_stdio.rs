//! The process's own stdout and stderr, inherited by a guest.
//!
//! On Linux a guest writes them on its own thread, to the descriptor as it is at that write, without
//! waiting: a socket by `send` with MSG_DONTWAIT, a non-blocking pipe or terminal (Node makes its
//! pipes so), a file or a device as they are. wasmtime-wasi's default handed every write to a
//! tokio task, which handed it to a blocking thread, and waited for both: some 90 µs a write. A
//! write the pipe or socket has no room for waits, the guest's future pending, so its deadline
//! still ends the call, as it did when a blocking thread held the write. A blocking pipe or
//! terminal keeps that default, as does every descriptor elsewhere: no write to one is sure not to
//! wait in the write itself.

use std::io;

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::OutputStream;
use wasmtime_wasi::p2::pipe::AsyncWriteStream;

/// Most bytes one write of a guest to its stdout or stderr may bring (piped or inherited): what
/// the host copies out of its memory at a time.
pub const WRITE_PERMIT: usize = 64 * 1024;

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
    use std::io;
    use std::os::fd::RawFd;
    use std::sync::{Arc, Condvar, Mutex, OnceLock};
    use std::task::{Poll, Waker};

    use bytes::{Buf, Bytes, BytesMut};
    use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

    use super::{Inherited, WRITE_PERMIT};
    use crate::sync::{lock, wait};

    /// How long the watcher waits for room before it wakes every waiting guest anyway: a guest
    /// that stopped waiting (its deadline ended the call) leaves its waker behind that long at
    /// most.
    const ROOM_POLL_MS: i32 = 100;

    /// Most bytes written at once to a blocking pipe that has room: a pipe with room for a write
    /// has a free page, so a write of at most PIPE_BUF never waits.
    const PIPE_ROOM: usize = libc::PIPE_BUF;

    /// Most bytes written at once to a blocking terminal that has room: it says so only while
    /// fewer than 256 characters wait in it, with more room than that behind them.
    const TERMINAL_ROOM: usize = 256;

    /// The process's stdout or stderr as guests write it: the descriptor number, looked at
    /// afresh for every write as a native program's `write(1, ...)` would (no copy of it is held,
    /// which kept a pipe open after the host had closed its stdout, and a reopened read-only one
    /// writable: probe H56), and the guests waiting for room in it.
    struct Target {
        fd: RawFd,
        /// Wakers of the guests whose writes wait for room, woken by the one watcher thread: a
        /// wait is not a job of its own, so polling a full stream again and again (or many
        /// streams at once) costs the host nothing more (probe H55: a blocking job per poll
        /// queued without bound, 100 MiB a second, and held every blocking thread).
        waiting: Mutex<Vec<Waker>>,
        someone_waits: Condvar,
        /// One guest at a time looks for room in a blocking pipe or terminal and writes into it,
        /// so no other guest's write takes the room it found.
        blocking: Mutex<()>,
    }

    /// The target for `fd`, its watcher started (`None` if no thread could be).
    fn target(fd: RawFd) -> Option<Arc<Target>> {
        let target = Arc::new(Target {
            fd,
            waiting: Mutex::new(Vec::new()),
            someone_waits: Condvar::new(),
            blocking: Mutex::new(()),
        });
        let watched = target.clone();
        std::thread::Builder::new()
            .name("airssys-wasm-stdio".into())
            .spawn(move || watched.watch())
            .ok()?;
        Some(target)
    }

    pub fn stream(which: Inherited) -> Option<Box<dyn OutputStream>> {
        static STDOUT: OnceLock<Option<Arc<Target>>> = OnceLock::new();
        static STDERR: OnceLock<Option<Arc<Target>>> = OnceLock::new();
        let (cell, fd) = match which {
            Inherited::Stdout => (&STDOUT, libc::STDOUT_FILENO),
            Inherited::Stderr => (&STDERR, libc::STDERR_FILENO),
        };
        let target = cell.get_or_init(|| target(fd)).clone()?;
        // A blocking pipe or terminal cannot be written without a chance of waiting in the
        // write itself (another writer may take the room `poll` found; a terminal makes each
        // newline two bytes: probe H57), so a stream made for one is wasmtime-wasi's.
        if matches!(Kind::of(fd), Ok(Kind::Blocking { .. })) {
            return None;
        }
        Some(Box::new(DirectStream {
            target,
            pending: BytesMut::new(),
            failure: None,
            closed: false,
        }))
    }

    /// A guest's stream to the process's stdout or stderr.
    struct DirectStream {
        target: Arc<Target>,
        /// What a write could not place yet (the pipe was full): written before anything else,
        /// and the stream takes no more until it is.
        pending: BytesMut,
        /// A failure met while waiting, for the next operation to report.
        failure: Option<StreamError>,
        closed: bool,
    }

    impl DirectStream {
        /// Writes as much of `bytes` as the target takes without waiting.
        fn write_now(&mut self, bytes: &[u8]) -> StreamResult<usize> {
            if let Some(failure) = self.failure.take() {
                return Err(failure);
            }
            if self.closed {
                return Err(StreamError::Closed);
            }
            let mut written = 0;
            while written < bytes.len() {
                match self.target.write(&bytes[written..]) {
                    Ok(0) => return Err(self.close(StreamError::Closed)),
                    Ok(more) => written += more,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(self.close(StreamError::LastOperationFailed(error.into()))),
                }
            }
            Ok(written)
        }

        fn close(&mut self, error: StreamError) -> StreamError {
            self.pending.clear();
            self.closed = true;
            error
        }

        /// Writes what is pending without waiting; `Ok(true)` once none is left.
        fn push(&mut self) -> StreamResult<bool> {
            let pending = std::mem::take(&mut self.pending);
            let written = self.write_now(&pending)?;
            self.pending = pending;
            self.pending.advance(written);
            Ok(self.pending.is_empty())
        }
    }

    #[wasmtime_wasi::async_trait]
    impl Pollable for DirectStream {
        async fn ready(&mut self) {
            std::future::poll_fn(|cx| match self.push() {
                Ok(true) => Poll::Ready(()),
                Ok(false) => {
                    self.target.wait(cx.waker());
                    Poll::Pending
                }
                // The next operation reports it.
                Err(failure) => {
                    self.failure = Some(failure);
                    Poll::Ready(())
                }
            })
            .await
        }
    }

    impl OutputStream for DirectStream {
        fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
            // Without a permit the pending bytes would grow with every write.
            if !self.pending.is_empty() || bytes.len() > WRITE_PERMIT {
                return Err(StreamError::Trap(wasmtime::Error::msg("write not permitted")));
            }
            let written = self.write_now(&bytes)?;
            self.pending.extend_from_slice(&bytes[written..]);
            Ok(())
        }

        /// A write is done once the pipe or file has it; what a full pipe left pending is written
        /// by `ready`, which a flush's caller awaits.
        fn flush(&mut self) -> StreamResult<()> {
            self.push().map(drop)
        }

        fn check_write(&mut self) -> StreamResult<usize> {
            Ok(if self.push()? { WRITE_PERMIT } else { 0 })
        }
    }

    impl Target {
        /// Wakes `waker` once the target may take a write, or after [`ROOM_POLL_MS`].
        fn wait(&self, waker: &Waker) {
            let mut waiting = lock(&self.waiting);
            if !waiting.iter().any(|known| known.will_wake(waker)) {
                waiting.push(waker.clone());
            }
            self.someone_waits.notify_one();
        }

        /// The watcher: while guests wait, looks for room, then wakes them all (each writes what
        /// it can and waits again if it must).
        fn watch(&self) {
            loop {
                let mut waiting = lock(&self.waiting);
                while waiting.is_empty() {
                    waiting = wait(&self.someone_waits, waiting);
                }
                drop(waiting);
                // Room or not, each waiting guest looks again (one that left stays no longer).
                has_room(self.fd, ROOM_POLL_MS);
                std::mem::take(&mut *lock(&self.waiting))
                    .into_iter()
                    .for_each(Waker::wake);
            }
        }

        /// Writes what the descriptor takes of `bytes` now, as it is now: a full pipe or socket
        /// is `WouldBlock`, a descriptor closed or not open for writing the error a native
        /// program's write would get.
        fn write(&self, bytes: &[u8]) -> io::Result<usize> {
            let fd = self.fd;
            match Kind::of(fd)? {
                Kind::Socket => {
                    // MSG_DONTWAIT: this send only, the socket's own flags as they are.
                    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
                    // SAFETY: `bytes` is valid for its length; `send` only reads it.
                    result(unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), flags) })
                }
                Kind::NeverWaits => raw_write(fd, bytes),
                // Moved here since the stream was made (a stream made for such a descriptor is
                // wasmtime-wasi's, on a blocking thread): written once `poll` finds room, no more
                // than that room surely takes.
                Kind::Blocking { pipe } => {
                    let _alone = lock(&self.blocking);
                    if !has_room(fd, 0) {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    let most = if pipe { PIPE_ROOM } else { TERMINAL_ROOM };
                    raw_write(fd, &bytes[..bytes.len().min(most)])
                }
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
            if kind == libc::S_IFSOCK {
                return Ok(Kind::Socket);
            }
            // SAFETY: F_GETFL reads the descriptor's flags only.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                return Err(io::Error::last_os_error());
            }
            let pipe = kind == libc::S_IFIFO;
            // SAFETY: isatty only asks.
            let waits = pipe || (kind == libc::S_IFCHR && unsafe { libc::isatty(fd) } == 1);
            Ok(if waits && flags & libc::O_NONBLOCK == 0 {
                Kind::Blocking { pipe }
            } else {
                Kind::NeverWaits
            })
        }
    }

    fn raw_write(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: `bytes` is valid for its length; `write` only reads it.
        result(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) })
    }

    fn result(done: isize) -> io::Result<usize> {
        usize::try_from(done).map_err(|_| io::Error::last_os_error())
    }

    /// Whether `fd` takes a write (or reports why not: a hang-up or error is the write's to say),
    /// waiting at most `timeout_ms` for it.
    fn has_room(fd: RawFd, timeout_ms: i32) -> bool {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        unsafe { libc::poll(&mut poll, 1, timeout_ms) == 1 }
    }
}
