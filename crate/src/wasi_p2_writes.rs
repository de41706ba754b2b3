//! Preview 2's `output-stream.write`, held to what `check-write` can have allowed.
//!
//! WASI says a write of more than the stream's last `check-write` permit traps. Our stdout and
//! stderr and wasi:http bodies check it, but wasmtime-wasi's file streams take any write whole
//! and hand it to a blocking thread: a 16 MiB guest with many streams on one file made the host
//! hold 1.4 GB, kept past its call and `dispose()` (probe Z57).

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::DynOutputStream;
use wasmtime_wasi::p2::bindings::io::streams::{self, HostOutputStream};

use crate::store::HostState;
use crate::wasi_stdio::{WRITE_PERMIT, permit_left};

/// The most any stream of ours permits one write: wasmtime-wasi's files, pipes and sockets offer
/// 64 KiB or less, as do our stdout and stderr ([`WRITE_PERMIT`]) and wasi:http bodies. A write
/// above it was never permitted, whatever stream it goes to.
const MOST_PERMITTED: usize = WRITE_PERMIT;

/// Replaces preview 2's `output-stream.write` (on a linker with shadowing allowed) by one that
/// traps on a write of more than [`MOST_PERMITTED`] bytes, as our own streams trap on one of more
/// than their permit, and hands the rest to wasmtime-wasi.
pub fn guard(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // At the version wasmtime-wasi defines it (imports of older 0.2 versions resolve to it).
    let interface = format!("wasi:io/streams@{}", crate::component::wasi_served::VERSION);
    linker.instance(&interface)?.func_wrap(
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
