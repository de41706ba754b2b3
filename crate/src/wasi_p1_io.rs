//! Preview 1's `fd_read`, `fd_write`, `fd_pwrite` and `random_get`, moving at most
//! [`MOST_BYTES`] bytes at a time, with the call's deadline and abort looked at between pieces.
//!
//! wasmtime-wasi moves the guest's first non-empty iovec whole: a file read into, or a write
//! copied into, a host buffer as large as the iovec, on one of the blocking threads, which goes
//! on after the call's deadline and keeps its buffer until it is done (timed-out reads of a 1 GiB
//! granted file by a guest of 250 MiB held 5.3 GiB of host memory after 40 calls, probe H61;
//! writes of 64 MiB 1.7 GiB, probe H62), and one write to stdout of 1,000 MiB, or 64 MiB of
//! random bytes, ran 0.2–0.7 s past a 20 ms deadline (probe Z55). Preview 2's reads move 64 KiB
//! at a time already; its writes are held in `wasi_p2_writes.rs`. The guest's memory is never
//! used as scratch: each piece goes through a buffer of our own, so the guest sees what
//! wasmtime-wasi's call would have done, in pieces.

use std::ops::Range;

use wasmtime::{AsContextMut, Caller, Extern, Linker};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1};
use wiggle::{GuestMemory, GuestPtr};

use crate::runtime::executor;
use crate::store::HostState;

/// Most bytes one piece moves: with the 64 blocking threads, what timed-out calls can hold of the
/// host's memory is 64 MiB in all, and a deadline is looked at every 1 MiB.
pub const MOST_BYTES: u32 = 1 << 20;

/// Bytes of one iovec in guest memory: a pointer and a length, both u32.
const IOVEC_BYTES: usize = 8;

/// Replaces preview 1's `fd_read`, `fd_write`, `fd_pwrite` and `random_get` (on a linker with
/// shadowing allowed) by wasmtime-wasi's own, called a piece at a time when the guest asks for
/// more than [`MOST_BYTES`]. A read returns one piece (a read may always return fewer bytes than
/// asked for, and every libc reads again); a write and `random_get` go on piece after piece to the
/// end, as the whole call would have, unless the deadline or abort comes first.
pub fn guard_p1(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        P1,
        "fd_read",
        |mut caller: Caller<'_, HostState>, (fd, iovs, count, done): (i32, i32, i32, i32)| {
            Box::new(async move { read(&mut caller, fd, iovs, count, done).await })
        },
    )?;
    linker.func_wrap_async(
        P1,
        "fd_write",
        |mut caller: Caller<'_, HostState>, (fd, iovs, count, done): (i32, i32, i32, i32)| {
            Box::new(async move { write(&mut caller, fd, iovs, count, None, done).await })
        },
    )?;
    linker.func_wrap_async(
        P1,
        "fd_pwrite",
        |mut caller: Caller<'_, HostState>, (fd, iovs, count, offset, done): (i32, i32, i32, i64, i32)| {
            Box::new(async move { write(&mut caller, fd, iovs, count, Some(offset), done).await })
        },
    )?;
    linker.func_wrap_async(
        P1,
        "random_get",
        |mut caller: Caller<'_, HostState>, (at, length): (i32, i32)| {
            Box::new(async move { random(&mut caller, at, length).await })
        },
    )?;
    Ok(())
}

const P1: &str = "wasi_snapshot_preview1";

/// The guest's memory and WASI context, as wasmtime-wasi's own linking gives them to a call: the
/// store's hostcall fuel handed to the context, which charges a call the bytes it will copy.
struct Guest<'a> {
    memory: &'a mut [u8],
    wasi: &'a mut WasiP1Ctx,
    fuel: usize,
    memory_limit: usize,
}

impl<'a> Guest<'a> {
    fn of(caller: &'a mut Caller<'_, HostState>) -> wasmtime::Result<Self> {
        let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
            wasmtime::bail!("missing required memory export");
        };
        let fuel = caller.as_context_mut().hostcall_fuel();
        let (memory, state) = memory.data_and_store_mut(caller);
        let memory_limit = state.limiter.metrics().limit_bytes;
        let wasi = state.wasi.p1();
        wasi.set_hostcall_fuel(fuel);
        Ok(Self {
            memory,
            wasi,
            fuel,
            memory_limit,
        })
    }

    /// Writes a call's count to the guest's `at` as wasmtime-wasi does, last: a bad pointer traps
    /// there, after the work (where it would have returned an errno first, it still does).
    fn set_result(&mut self, at: i32, value: u32) -> wasmtime::Result<()> {
        Ok(GuestMemory::Unshared(self.memory).write(GuestPtr::new(at as u32), value)?)
    }
}

/// The first non-empty iovec of `count` at `iovs`, when it is longer than [`MOST_BYTES`] and
/// wasmtime-wasi would move it (every pointer valid, within the call's `fuel`): the guest's bytes
/// it names. Nothing otherwise: wasmtime-wasi then does the call, or refuses it, itself.
fn long_iovec(memory: &[u8], iovs: i32, count: i32, fuel: usize) -> Option<Range<usize>> {
    let start = iovs as u32 as usize;
    let array_bytes = (count as u32 as usize).checked_mul(IOVEC_BYTES)?;
    let array = memory.get(start..start.checked_add(array_bytes)?)?;
    if !start.is_multiple_of(4) {
        return None;
    }
    let iovec = array.chunks_exact(IOVEC_BYTES).find(|iovec| iovec[4..8] != [0; 4])?;
    let word = |at: usize| u32::from_le_bytes([iovec[at], iovec[at + 1], iovec[at + 2], iovec[at + 3]]);
    let (buf, length) = (word(0) as usize, word(4));
    let within_fuel = array_bytes.saturating_add(length as usize) <= fuel;
    let bytes = buf..buf.checked_add(length as usize)?;
    (length > MOST_BYTES && within_fuel && bytes.end <= memory.len()).then_some(bytes)
}

/// One piece of guest data in a memory of our own, laid out as wasmtime-wasi's calls want it: an
/// iovec at 0, the call's count at 8, the bytes from 12.
struct Piece(Vec<u8>);

thread_local! {
    /// A piece's memory, kept by the thread between calls: with a fresh MiB for each, reading a
    /// cached 64 MiB file in calls of 16 MiB took 11.0–11.2 ms, with the thread's 9.5–9.9 ms
    /// (`bench/run.ts wasi-io`). A call's future stays on the thread that drives it
    /// (`executor::block_on`), so it is never shared.
    static SPARE: std::cell::Cell<Option<Vec<u8>>> = const { std::cell::Cell::new(None) };
}

impl Drop for Piece {
    fn drop(&mut self) {
        SPARE.set(Some(std::mem::take(&mut self.0)));
    }
}

impl Piece {
    const IOVEC: i32 = 0;
    const COUNT: i32 = 8;
    const BYTES: usize = 12;

    fn new() -> Self {
        Self(
            SPARE
                .take()
                .unwrap_or_else(|| vec![0; Self::BYTES + MOST_BYTES as usize]),
        )
    }

    /// Sets the iovec to `length` bytes at [`Self::BYTES`]; the bytes that the call moves.
    fn sized(&mut self, length: usize) -> &mut [u8] {
        let iovec = [(Self::BYTES as u32).to_le_bytes(), (length as u32).to_le_bytes()].concat();
        self.0[..IOVEC_BYTES].copy_from_slice(&iovec);
        &mut self.0[Self::BYTES..Self::BYTES + length]
    }

    fn count(&self) -> usize {
        let at = Self::COUNT as usize;
        u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]]) as usize
    }

    fn memory(&mut self) -> GuestMemory<'_> {
        GuestMemory::Unshared(&mut self.0)
    }
}

/// `fd_read`: a long iovec gets one piece, read into our buffer and copied to the guest.
async fn read(caller: &mut Caller<'_, HostState>, fd: i32, iovs: i32, count: i32, done: i32) -> wasmtime::Result<i32> {
    let mut guest = Guest::of(caller)?;
    let Some(bytes) = long_iovec(guest.memory, iovs, count, guest.fuel) else {
        return p1::fd_read(
            guest.wasi,
            &mut GuestMemory::Unshared(guest.memory),
            fd,
            iovs,
            count,
            done,
        )
        .await;
    };
    let mut piece = Piece::new();
    piece.sized(MOST_BYTES as usize);
    let errno = p1::fd_read(guest.wasi, &mut piece.memory(), fd, Piece::IOVEC, 1, Piece::COUNT).await?;
    if errno == 0 {
        let got = piece.count().min(MOST_BYTES as usize);
        guest.memory[bytes.start..bytes.start + got].copy_from_slice(&piece.sized(got)[..]);
        guest.set_result(done, got as u32)?;
    }
    Ok(errno)
}

/// `fd_write` (`at` nothing) and `fd_pwrite` (`at` the offset): a long iovec goes a piece at a
/// time until all of it is written, a piece is written short, or one fails (then what was written
/// before it is the result, as a partial POSIX write; a failure of the first is the call's).
async fn write(
    caller: &mut Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    count: i32,
    at: Option<i64>,
    done: i32,
) -> wasmtime::Result<i32> {
    let mut guest = Guest::of(caller)?;
    let Some(bytes) = long_iovec(guest.memory, iovs, count, guest.fuel) else {
        let mut memory = GuestMemory::Unshared(guest.memory);
        return match at {
            None => p1::fd_write(guest.wasi, &mut memory, fd, iovs, count, done).await,
            Some(offset) => p1::fd_pwrite(guest.wasi, &mut memory, fd, iovs, count, offset, done).await,
        };
    };
    let mut piece = Piece::new();
    if at.is_none() && ends_past_the_largest_offset(guest.wasi, fd, bytes.len(), &mut piece).await? {
        return Ok(ERRNO_INVAL);
    }
    let mut written = 0;
    while written < bytes.len() {
        let length = (bytes.len() - written).min(MOST_BYTES as usize);
        let from = bytes.start + written;
        piece.sized(length).copy_from_slice(&guest.memory[from..from + length]);
        // Each piece is charged its own bytes, as the whole call was charged all of them.
        guest.wasi.set_hostcall_fuel(guest.fuel);
        let errno = match at {
            None => p1::fd_write(guest.wasi, &mut piece.memory(), fd, Piece::IOVEC, 1, Piece::COUNT).await?,
            Some(offset) => {
                let offset = piece_offset(offset as u64, written, bytes.len(), length) as i64;
                p1::fd_pwrite(
                    guest.wasi,
                    &mut piece.memory(),
                    fd,
                    Piece::IOVEC,
                    1,
                    offset,
                    Piece::COUNT,
                )
                .await?
            }
        };
        if errno != 0 {
            if written == 0 {
                return Ok(errno);
            }
            break;
        }
        let wrote = piece.count().min(length);
        written += wrote;
        if wrote < length {
            break;
        }
        if written < bytes.len() {
            executor::let_deadline_in().await;
        }
    }
    guest.set_result(done, written as u32)?;
    Ok(0)
}

/// Preview 1's errno `inval`.
const ERRNO_INVAL: i32 = 28;

/// Whether an `fd_write` of `total` bytes to `fd` would end past the largest file offset, which
/// the kernel refuses whole (`EINVAL`) where pieces would write those that fit (probe H65): a file
/// whose position (`fd_tell`) is that near, not opened to append (which writes at the end, wherever
/// the position is: `fd_fdstat_get`). Both are asked in the piece's memory, never the guest's.
async fn ends_past_the_largest_offset(
    wasi: &mut WasiP1Ctx,
    fd: i32,
    total: usize,
    piece: &mut Piece,
) -> wasmtime::Result<bool> {
    // Where the two answers go, aligned as preview 1 wants them; the append flag's bit.
    const POSITION: usize = 16;
    const FDSTAT: usize = 24;
    const APPEND: u16 = 1;
    if p1::fd_tell(wasi, &mut piece.memory(), fd, POSITION as i32)? != 0 {
        return Ok(false);
    }
    let position = u64::from_le_bytes(piece.0[POSITION..POSITION + 8].try_into()?);
    if !passes_the_largest_offset(position, total) {
        return Ok(false);
    }
    if p1::fd_fdstat_get(wasi, &mut piece.memory(), fd, FDSTAT as i32).await? != 0 {
        return Ok(false);
    }
    let flags = u16::from_le_bytes([piece.0[FDSTAT + 2], piece.0[FDSTAT + 3]]);
    Ok(flags & APPEND == 0)
}

/// Where the piece `written` bytes into a positioned write of `total` bytes at `offset` goes
/// (preview 1's `fd_pwrite`, preview 2's `descriptor.write`). The kernel refuses a write whose end
/// passes the largest file offset whole, before writing anything (`EINVAL`), where pieces would
/// write those that fit (probe H64): such a write's first piece is sent where it passes that
/// offset too, so it is refused as the whole was, or, where the offset does not count (a file
/// opened to append), written as it would have been.
pub fn piece_offset(offset: u64, written: usize, total: usize, length: usize) -> u64 {
    if written == 0 && passes_the_largest_offset(offset, total) {
        return offset.clamp(LARGEST_OFFSET - length as u64 + 1, LARGEST_OFFSET.max(offset));
    }
    offset.wrapping_add(written as u64)
}

/// The largest file offset the kernel takes.
const LARGEST_OFFSET: u64 = i64::MAX as u64;

/// Whether a write of `total` bytes at `start` would end past [`LARGEST_OFFSET`]: such a write
/// the kernel refuses whole, before writing anything (`EINVAL`).
fn passes_the_largest_offset(start: u64, total: usize) -> bool {
    start.checked_add(total as u64).is_none_or(|end| end > LARGEST_OFFSET)
}

/// `random_get`: more than a piece is made a piece at a time, straight into the guest's memory
/// (wasmtime-wasi makes all the bytes first, then copies them). Asked for more than the guest may
/// hold, or out of bounds, it is wasmtime-wasi's to refuse.
async fn random(caller: &mut Caller<'_, HostState>, at: i32, length: i32) -> wasmtime::Result<i32> {
    let guest = Guest::of(caller)?;
    let (start, length) = (at as u32 as usize, length as u32 as usize);
    let in_bounds = start.checked_add(length).is_some_and(|end| end <= guest.memory.len());
    let allowed = length as u64 <= crate::wasi::random_bytes_bound(guest.memory_limit);
    let mut memory = GuestMemory::Unshared(guest.memory);
    if length <= MOST_BYTES as usize || !in_bounds || !allowed {
        return p1::random_get(guest.wasi, &mut memory, at, length as i32);
    }
    for offset in (0..length).step_by(MOST_BYTES as usize) {
        let piece = (length - offset).min(MOST_BYTES as usize);
        let errno = p1::random_get(guest.wasi, &mut memory, (start + offset) as i32, piece as i32)?;
        if errno != 0 {
            return Ok(errno);
        }
        if offset + piece < length {
            executor::let_deadline_in().await;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::{IOVEC_BYTES, MOST_BYTES, Piece, long_iovec, piece_offset};

    fn iovecs(iovecs: &[(u32, u32)]) -> Vec<u8> {
        let mut memory: Vec<u8> = iovecs
            .iter()
            .flat_map(|(at, length)| [at.to_le_bytes(), length.to_le_bytes()].concat())
            .collect();
        memory.resize(16 << 20, 0);
        memory
    }

    #[test]
    fn only_the_first_non_empty_iovec_counts_and_only_when_wasmtime_wasi_would_move_it_whole() {
        let fuel = 64 << 20;
        let memory = iovecs(&[(0, 0), (64, 5 << 20), (0, 7 << 20)]);
        assert_eq!(long_iovec(&memory, 0, 3, fuel), Some(64..64 + (5 << 20)));
        assert_eq!(
            long_iovec(&iovecs(&[(0, 0), (64, 4096), (0, 7 << 20)]), 0, 3, fuel),
            None
        );
        assert_eq!(long_iovec(&iovecs(&[(0, MOST_BYTES)]), 0, 1, fuel), None);
        // Past the memory's end, beyond the call's fuel, a misaligned or out-of-bounds array, a
        // count that overflows: wasmtime-wasi's to refuse.
        assert_eq!(long_iovec(&iovecs(&[(12 << 20, 5 << 20)]), 0, 1, fuel), None);
        assert_eq!(long_iovec(&memory, 0, 3, 5 << 20), None);
        assert_eq!(long_iovec(&memory, 2, 1, fuel), None);
        assert_eq!(long_iovec(&memory, (16 << 20) - 4, 1, fuel), None);
        assert_eq!(long_iovec(&memory, 0, -1, fuel), None);
    }

    #[test]
    fn a_pwrite_whose_end_passes_the_largest_offset_sends_its_first_piece_past_it_too() {
        let (mib, total, largest) = (MOST_BYTES as usize, 8 << 20, i64::MAX as u64);
        assert_eq!(piece_offset(5, 0, total, mib), 5);
        assert_eq!(piece_offset(5, 3 * mib, total, mib), 5 + 3 * mib as u64);
        let near = largest - mib as u64 - 5;
        let first = piece_offset(near, 0, total, mib);
        assert!(first >= near && first + mib as u64 > largest);
        // Offsets past the largest (negative in preview 1) stay where they were: refused there.
        assert_eq!(piece_offset(u64::MAX, 0, total, mib), u64::MAX);
        assert_eq!(piece_offset(largest + 1, 0, total, mib), largest + 1);
        // Ending at the largest offset exactly still goes where it was sent.
        assert_eq!(
            piece_offset(largest - total as u64, 0, total, mib),
            largest - total as u64
        );
    }

    #[test]
    fn a_piece_names_its_own_bytes_and_reads_back_its_count() {
        let mut piece = Piece::new();
        piece.sized(5).copy_from_slice(b"hello");
        assert_eq!(&piece.0[..IOVEC_BYTES], &[12, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(&piece.0[12..17], b"hello");
        piece.0[8..12].copy_from_slice(&MOST_BYTES.to_le_bytes());
        assert_eq!(piece.count(), MOST_BYTES as usize);
    }
}
