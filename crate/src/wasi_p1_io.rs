//! Preview 1's `fd_read`, `fd_write` and `fd_pwrite`, moving at most [`MOST_BYTES`] bytes at a time.
//!
//! wasmtime-wasi reads a file into a host buffer as large as the guest's first non-empty iovec,
//! on one of the blocking threads, and a deadline ends the call but not the read, which keeps its
//! buffer until it is done: timed-out reads of a 1 GiB granted file by a guest of 250 MiB held
//! 3.6 GiB of host memory after 16 calls, 5.3 GiB after 40 (probe H61). Preview 2 reads, and
//! preview 1's `fd_pread`, take 64 KiB at a time already. A read may always return fewer bytes
//! than asked for, and a write fewer than given: every libc goes on with the rest.

use wasmtime::{AsContextMut, Caller, Extern, Linker};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self, WasiSnapshotPreview1};
use wiggle::GuestMemory;

use crate::store::HostState;

/// Most bytes one `fd_read` reads, or one `fd_write` or `fd_pwrite` writes: with the 64 blocking
/// threads, what timed-out calls can hold of the host's memory is 64 MiB in all.
pub const MOST_BYTES: u32 = 1 << 20;

/// Bytes of one iovec in guest memory: a pointer and a length, both u32.
const IOVEC_BYTES: usize = 8;

/// Replaces preview 1's `fd_read`, `fd_write` and `fd_pwrite` (on a linker with shadowing
/// allowed) by wasmtime-wasi's own, called with the guest's first non-empty iovec (the only one
/// they use) cut to [`MOST_BYTES`] bytes for the call. A write to a file copied the iovec whole
/// into a host buffer that outlived a timed-out call as a read's did: 40 timed-out writes of 64 MiB
/// held 1.7 GiB (probe H62).
pub fn guard_p1(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        P1,
        "fd_read",
        |mut caller: Caller<'_, HostState>, (fd, iovs, count, done): (i32, i32, i32, i32)| {
            Box::new(async move {
                cut_for_the_call(&mut caller, iovs, count, None, async |wasi, memory| {
                    wasi_snapshot_preview1::fd_read(wasi, memory, fd, iovs, count, done).await
                })
                .await
            })
        },
    )?;
    linker.func_wrap_async(
        P1,
        "fd_write",
        |mut caller: Caller<'_, HostState>, (fd, iovs, count, done): (i32, i32, i32, i32)| {
            Box::new(async move {
                cut_for_the_call(&mut caller, iovs, count, Some(fd), async |wasi, memory| {
                    wasi_snapshot_preview1::fd_write(wasi, memory, fd, iovs, count, done).await
                })
                .await
            })
        },
    )?;
    linker.func_wrap_async(
        P1,
        "fd_pwrite",
        |mut caller: Caller<'_, HostState>, (fd, iovs, count, offset, done): (i32, i32, i32, i64, i32)| {
            Box::new(async move {
                cut_for_the_call(&mut caller, iovs, count, Some(fd), async |wasi, memory| {
                    wasi_snapshot_preview1::fd_pwrite(wasi, memory, fd, iovs, count, offset, done).await
                })
                .await
            })
        },
    )?;
    Ok(())
}

const P1: &str = "wasi_snapshot_preview1";

/// Runs `call` (wasmtime-wasi's function) with the first non-empty iovec of `count` at `iovs`
/// cut to [`MOST_BYTES`] bytes, and puts its length back after: the guest sees its own iovec, and
/// only this call did less. A write (`written_to`) is cut only to a file: one to stdout or stderr
/// goes to a stream that takes it a permit at a time, and a guest that wrote megabytes in one
/// `fd_write` and never looked at the count (a test's, some toolchains') would lose the rest.
async fn cut_for_the_call(
    caller: &mut Caller<'_, HostState>,
    iovs: i32,
    count: i32,
    written_to: Option<i32>,
    call: impl AsyncFnOnce(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> wasmtime::Result<i32>,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        wasmtime::bail!("missing required memory export");
    };
    let long = long_first_iovec(memory.data(&*caller), iovs, count);
    let fuel = caller.as_context_mut().hostcall_fuel();
    let (data, state) = memory.data_and_store_mut(&mut *caller);
    let wasi = state.wasi.p1();
    wasi.set_hostcall_fuel(fuel);
    let cut = match (long, written_to) {
        (Some(_), Some(fd)) if !is_file(wasi, data, fd, iovs).await => None,
        (long, _) => long,
    };
    if let Some((at, _)) = cut {
        data[at..at + 4].copy_from_slice(&MOST_BYTES.to_le_bytes());
    }
    let result = call(wasi, &mut GuestMemory::Unshared(data)).await;
    if let Some((at, length)) = cut {
        data[at..at + 4].copy_from_slice(&length.to_le_bytes());
    }
    result
}

/// Whether `fd` is a file (not stdio, which preview 1 calls an unknown or character device), by
/// `fd_fdstat_get` into 24 bytes of the guest's memory near `near`, put back after.
async fn is_file(wasi: &mut WasiP1Ctx, data: &mut [u8], fd: i32, near: i32) -> bool {
    const FDSTAT_BYTES: usize = 24;
    let Some(at) = [near as u32 as usize, 0]
        .into_iter()
        .find(|at| at.checked_add(FDSTAT_BYTES).is_some_and(|end| end <= data.len()))
    else {
        return false;
    };
    let mut saved = [0; FDSTAT_BYTES];
    saved.copy_from_slice(&data[at..at + FDSTAT_BYTES]);
    let errno = wasi_snapshot_preview1::fd_fdstat_get(wasi, &mut GuestMemory::Unshared(data), fd, at as i32).await;
    let filetype = data[at];
    data[at..at + FDSTAT_BYTES].copy_from_slice(&saved);
    // Unknown (0) and character device (2) are what stdio is.
    matches!(errno, Ok(0)) && !matches!(filetype, 0 | 2)
}

/// Where the length of the first non-empty iovec of `count` at `iovs` is, and what it is, when it
/// is more than [`MOST_BYTES`] (wasmtime-wasi moves only that one). Nothing where the array is not
/// in memory: wasmtime-wasi reports that itself.
fn long_first_iovec(memory: &[u8], iovs: i32, count: i32) -> Option<(usize, u32)> {
    let start = iovs as u32 as usize;
    let bytes = (count as u32 as usize).checked_mul(IOVEC_BYTES)?;
    let array = memory.get(start..start.checked_add(bytes)?)?;
    let index = array
        .chunks_exact(IOVEC_BYTES)
        .position(|iovec| iovec[4..8] != [0; 4])?;
    let at = start + index * IOVEC_BYTES + 4;
    let length = u32::from_le_bytes(memory[at..at + 4].try_into().ok()?);
    (length > MOST_BYTES).then_some((at, length))
}

#[cfg(test)]
mod tests {
    use super::{MOST_BYTES, long_first_iovec};

    fn iovecs(lengths: &[u32]) -> Vec<u8> {
        lengths
            .iter()
            .flat_map(|length| [0u32.to_le_bytes(), length.to_le_bytes()].concat())
            .collect()
    }

    #[test]
    fn only_the_first_non_empty_iovec_counts_and_only_when_it_is_long() {
        assert_eq!(
            long_first_iovec(&iovecs(&[0, 5 << 20, 7 << 20]), 0, 3),
            Some((12, 5 << 20))
        );
        assert_eq!(long_first_iovec(&iovecs(&[0, 4096, 7 << 20]), 0, 3), None);
        assert_eq!(long_first_iovec(&iovecs(&[0, MOST_BYTES]), 0, 2), None);
        // Out of memory, or a count that overflows: left to wasmtime-wasi.
        assert_eq!(long_first_iovec(&iovecs(&[5 << 20]), 4, 1), None);
        assert_eq!(long_first_iovec(&iovecs(&[5 << 20]), 0, -1), None);
    }
}
