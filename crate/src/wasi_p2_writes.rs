//! Preview 2's writes, held to what preview 1's are: `output-stream.write` to what `check-write`
//! can have allowed, `descriptor.write` to 1 MiB pieces.
//!
//! WASI says a write of more than the stream's last `check-write` permit traps. Our stdout and
//! stderr and wasi:http bodies check it, but wasmtime-wasi's file streams take any write whole
//! and hand it to a blocking thread: a 16 MiB guest with many streams on one file made the host
//! hold 1.4 GB, kept past its call and `dispose()` (probe Z57). Its `descriptor.write` hands a
//! blocking thread the whole buffer too, which goes on writing after the call's deadline: 16
//! timed-out writes of 240 MiB left the process holding 2.4 GB (probe H65).

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView, WasiFilesystemView};
use wasmtime_wasi::p2::DynOutputStream;
use wasmtime_wasi::p2::bindings::filesystem::types::{self, HostDescriptor};
use wasmtime_wasi::p2::bindings::io::streams::{self, HostOutputStream};

use crate::runtime::executor;
use crate::store::HostState;
use crate::wasi_p1_io::{MOST_BYTES, piece_offset};
use crate::wasi_stdio::{WRITE_PERMIT, permit_left};

/// The most any stream of ours permits one write: wasmtime-wasi's files, pipes and sockets offer
/// 64 KiB or less, as do our stdout and stderr ([`WRITE_PERMIT`]) and wasi:http bodies. A write
/// above it was never permitted, whatever stream it goes to.
const MOST_PERMITTED: usize = WRITE_PERMIT;

/// Replaces preview 2's `output-stream.write` and `descriptor.write` (on a linker with shadowing
/// allowed): the first traps on a write of more than [`MOST_PERMITTED`] bytes, as our own streams
/// trap on one of more than their permit; the second goes a piece at a time; both hand the work to
/// wasmtime-wasi.
pub fn guard(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // At the version wasmtime-wasi defines them (imports of older 0.2 versions resolve to it).
    let version = crate::component::wasi_served::VERSION;
    linker
        .instance(&format!("wasi:filesystem/types@{version}"))?
        .func_wrap_async(
            "[method]descriptor.write",
            |mut store: StoreContextMut<'_, HostState>, (fd, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
                Box::new(async move {
                    let mut view = store.data_mut().filesystem();
                    match write_in_pieces(&mut view, fd, buffer, offset).await {
                        Ok(written) => Ok((Ok(written),)),
                        Err(error) => Ok((Err(types::Host::convert_error_code(&mut view, error)?),)),
                    }
                })
            },
        )?;
    linker.instance(&format!("wasi:io/streams@{version}"))?.func_wrap(
        "[method]output-stream.write",
        |mut store: StoreContextMut<'_, HostState>, (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let table = store.data_mut().ctx().table;
            let written = permit_left(bytes.len(), MOST_PERMITTED)
                .and_then(|_| HostOutputStream::write(&mut *table, stream, bytes));
            match written {
                Ok(()) => Ok((Ok(()),)),
                Err(error) => Ok((Err(streams::Host::convert_stream_error(table, error)?),)),
            }
        },
    )
}

/// `descriptor.write` of `buffer` at `offset`, at most [`MOST_BYTES`] at a time, each piece
/// written before the next is copied, the deadline and abort looked at between pieces: what a
/// timed-out write leaves a blocking thread is one piece. It ends when all is written, a piece is
/// written short, or one fails (then what was written before it is the result; a failure of the
/// first is the call's).
async fn write_in_pieces(
    view: &mut WasiFilesystemCtxView<'_>,
    fd: Resource<Descriptor>,
    buffer: Vec<u8>,
    offset: u64,
) -> wasmtime_wasi::p2::FsResult<u64> {
    let most = MOST_BYTES as usize;
    if buffer.len() <= most {
        return HostDescriptor::write(view, fd, buffer, offset).await;
    }
    let mut written = 0;
    for piece in buffer.chunks(most) {
        let at = piece_offset(offset, written, buffer.len(), piece.len());
        let borrowed = Resource::new_borrow(fd.rep());
        let wrote = match HostDescriptor::write(view, borrowed, piece.to_vec(), at).await {
            Ok(wrote) => wrote as usize,
            Err(error) if written == 0 => return Err(error),
            Err(_) => break,
        };
        written += wrote;
        if wrote < piece.len() || written == buffer.len() {
            break;
        }
        executor::let_deadline_in().await;
    }
    Ok(written as u64)
}
