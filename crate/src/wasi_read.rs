//! Preview 1's `fd_read`, reading at most [`MOST_READ`] bytes at a time.
//!
//! wasmtime-wasi reads a file into a host buffer as large as the guest's first non-empty iovec,
//! on one of the blocking threads, and a deadline ends the call but not the read, which keeps its
//! buffer until it is done: timed-out reads of a 1 GiB granted file by a guest of 250 MiB held
//! 3.6 GiB of host memory after 16 calls, 5.3 GiB after 40 (probe H61). Preview 2 reads, and
//! preview 1's `fd_pread`, take 64 KiB at a time already. A read may always return fewer bytes
//! than asked for, and every libc reads again for the rest.

use wasmtime::{AsContextMut, Caller, Extern, Linker};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self, WasiSnapshotPreview1};
use wiggle::GuestMemory;

use crate::store::HostState;

/// Most bytes one `fd_read` reads: with the 64 blocking threads, what timed-out reads can hold
/// of the host's memory is 64 MiB in all.
pub const MOST_READ: u32 = 1 << 20;

/// Bytes of one iovec in guest memory: a pointer and a length, both u32.
const IOVEC_BYTES: usize = 8;

/// Replaces preview 1's `fd_read` (on a linker with shadowing allowed) by wasmtime-wasi's own,
/// called with the guest's first non-empty iovec cut to [`MOST_READ`] bytes for the call.
pub fn guard_p1(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        "wasi_snapshot_preview1",
        "fd_read",
        |mut caller: Caller<'_, HostState>, (fd, iovs, count, read): (i32, i32, i32, i32)| {
            Box::new(async move {
                let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                    wasmtime::bail!("missing required memory export");
                };
                let cut = cut_first_iovec(memory.data_mut(&mut caller), iovs, count);
                let fuel = caller.as_context_mut().hostcall_fuel();
                let (data, state) = memory.data_and_store_mut(&mut caller);
                let wasi = state.wasi.p1();
                wasi.set_hostcall_fuel(fuel);
                let result =
                    wasi_snapshot_preview1::fd_read(wasi, &mut GuestMemory::Unshared(data), fd, iovs, count, read)
                        .await;
                if let Some((at, length)) = cut {
                    // The guest sees its own iovec again: only this call read less.
                    memory.data_mut(&mut caller)[at..at + 4].copy_from_slice(&length.to_le_bytes());
                }
                result
            })
        },
    )?;
    Ok(())
}

/// Cuts the first non-empty iovec of `count` at `iovs` to [`MOST_READ`] bytes, as wasmtime-wasi
/// reads only that one; returns where its length is and what it was, to put back. Nothing is cut
/// where the array is not in memory: wasmtime-wasi reports that itself.
fn cut_first_iovec(memory: &mut [u8], iovs: i32, count: i32) -> Option<(usize, u32)> {
    let start = iovs as u32 as usize;
    let bytes = (count as u32 as usize).checked_mul(IOVEC_BYTES)?;
    let array = memory.get(start..start.checked_add(bytes)?)?;
    let index = array
        .chunks_exact(IOVEC_BYTES)
        .position(|iovec| iovec[4..8] != [0; 4])?;
    let at = start + index * IOVEC_BYTES + 4;
    let length = u32::from_le_bytes(memory[at..at + 4].try_into().ok()?);
    if length <= MOST_READ {
        return None;
    }
    memory[at..at + 4].copy_from_slice(&MOST_READ.to_le_bytes());
    Some((at, length))
}

#[cfg(test)]
mod tests {
    use super::{MOST_READ, cut_first_iovec};

    fn iovecs(lengths: &[u32]) -> Vec<u8> {
        lengths
            .iter()
            .flat_map(|length| [0u32.to_le_bytes(), length.to_le_bytes()].concat())
            .collect()
    }

    #[test]
    fn only_the_first_non_empty_iovec_is_cut_and_only_when_it_is_long() {
        let mut memory = iovecs(&[0, 5 << 20, 7 << 20]);
        assert_eq!(cut_first_iovec(&mut memory, 0, 3), Some((12, 5 << 20)));
        assert_eq!(memory, iovecs(&[0, MOST_READ, 7 << 20]));
        let mut short = iovecs(&[0, 4096]);
        assert_eq!(cut_first_iovec(&mut short, 0, 2), None);
        assert_eq!(short, iovecs(&[0, 4096]));
        // Out of memory, or a count that overflows: left to wasmtime-wasi.
        assert_eq!(cut_first_iovec(&mut iovecs(&[5 << 20]), 4, 1), None);
        assert_eq!(cut_first_iovec(&mut iovecs(&[5 << 20]), 0, -1), None);
    }
}
