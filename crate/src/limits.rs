//! The store's [`ResourceLimiter`]: one memory budget for all linear memories of an instance.
//!
//! wasmtime's own `StoreLimits` caps each memory separately; components usually have several
//! memories (one per core module), so a per-memory cap would let a component take a multiple of
//! its budget. wasmtime asks before every growth and before creating each memory, with that
//! memory's current and desired size, which is enough to keep a running total.

use wasmtime::ResourceLimiter;

/// The limits of one instance, as given to `instantiate`.
#[derive(Clone, Copy, Debug)]
pub struct LimitsConfig {
    pub memory_bytes: usize,
    pub table_elements: usize,
    pub instances: usize,
    pub tables: usize,
    pub memories: usize,
    /// Trap (MemoryLimitError) on a denied `memory.grow` instead of returning -1 to the guest.
    pub trap_on_memory_denial: bool,
}

/// How much data one call may make the host lift from the guest (wasmtime's "hostcall fuel"):
/// each lifted value costs about its size as a `Val` (32 bytes per list element, field names on
/// top), so this bounds the host memory one call can claim at roughly this many bytes, plus the
/// JS objects made from it. Eight times the guest's own memory limit, at least 4 MiB (a 1 MiB
/// byte list always fits), at most 1 GiB.
pub fn hostcall_fuel(memory_bytes: usize) -> usize {
    memory_bytes
        .saturating_mul(HOSTCALL_FUEL_PER_BYTE)
        .clamp(4 << 20, 1 << 30)
}

/// The factor of [`hostcall_fuel`], documented in the README and SECURITY.md.
pub const HOSTCALL_FUEL_PER_BYTE: usize = 8;

/// How many times less a component that passes strings in UTF-16 or latin1 may move in one call
/// (its hostcall fuel is divided by this, see `Kind::lift_ratio`): wasmtime transcodes such a
/// string to UTF-8 whole, before any host code runs and without looking at the deadline, at up
/// to 9 times what a copy of UTF-8 takes (measured: 5.1 ms per MiB of latin1 above 0x7f, 3.6 ms
/// per MiB of UTF-16, 0.55 ms per MiB of UTF-8; latin1 also doubles in size). A sixteenth keeps
/// its worst call below that of a component passing UTF-8 (SECURITY 76).
pub const TRANSCODING_RATIO: usize = 16;

/// The least hostcall fuel a division leaves: a 1 MiB string or byte list always fits.
const DIVIDED_FUEL_FLOOR: usize = 1 << 20;

/// `fuel` divided by a component's `ratio` (see `Kind::lift_ratio`), at least 1 MiB.
pub fn divided_hostcall_fuel(fuel: usize, ratio: usize) -> usize {
    (fuel / ratio.max(1)).max(DIVIDED_FUEL_FLOOR)
}

/// Live component-model handles an instance may hold beyond `limits.resourceHandles`: the guest's
/// handles to its own resources and to WASI's streams and pollables. wasmtime counts every handle
/// of a store against one cap, and `resource.new` needs no host code, so without a cap a guest fills
/// host tables in a loop; with one sized by wasmtime's default alone, the host objects
/// `limits.resourceHandles` allows (up to 1,000,000) would be refused at 100,000.
pub const GUEST_HANDLES: usize = 100_000;

/// wasmtime's store-wide cap on live handles, for an instance allowed `resource_handles`.
pub fn store_handles(resource_handles: usize) -> usize {
    resource_handles.saturating_add(GUEST_HANDLES)
}

/// What a HostLimitError says when wasmtime's store-wide cap (`cap`) refused a handle.
pub fn store_handles_exceeded(cap: usize) -> String {
    format!(
        "the instance would hold more than {cap} resource handles at once (limits.resourceHandles + \
         {GUEST_HANDLES} for the guest's own and WASI's)"
    )
}

/// Most bytes of headers (in wasmtime's in-memory measure) one wasi:http `fields` may hold: a
/// guest could otherwise make the host keep large header maps.
pub const HTTP_FIELDS_BYTES: usize = 64 * 1024;

/// Memory figures for `metrics().memory`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MemoryMetrics {
    pub current_bytes: usize,
    pub peak_bytes: usize,
    pub limit_bytes: usize,
    pub denied_growths: u64,
}

/// The error a denied growth raises when the instance asked for traps instead of -1.
#[derive(Debug, Clone, Copy)]
pub enum MemoryLimitExceeded {
    /// All memories together would exceed `limits.memoryBytes`.
    Total { desired_total: usize, limit: usize },
    /// One memory would not fit a pooling engine's slot (`pooling.maxMemoryBytes`).
    Slot { desired: usize, slot: usize },
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryLimitExceeded::Total { desired_total, limit } => write!(
                f,
                "memory growth to {desired_total} bytes in total denied: limits.memoryBytes is {limit}"
            ),
            MemoryLimitExceeded::Slot { desired, slot } => write!(
                f,
                "memory growth to {desired} bytes denied: the engine's pooling.maxMemoryBytes is {slot}"
            ),
        }
    }
}

impl std::error::Error for MemoryLimitExceeded {}

pub struct Limiter {
    config: LimitsConfig,
    /// A pooling engine's most bytes per memory: the pool fails a larger growth after this
    /// limiter approved it, which would leave pages that never existed in the count.
    memory_slot: Option<usize>,
    metrics: MemoryMetrics,
    /// Table growths refused (`limits.tableElements`), to tell an instantiation that failed so.
    table_denials: u64,
    last_denial: Option<MemoryLimitExceeded>,
}

impl Limiter {
    pub fn new(config: LimitsConfig, memory_slot: Option<usize>) -> Self {
        Limiter {
            config,
            memory_slot,
            metrics: MemoryMetrics {
                limit_bytes: config.memory_bytes,
                ..MemoryMetrics::default()
            },
            table_denials: 0,
            last_denial: None,
        }
    }

    pub fn table_denials(&self) -> u64 {
        self.table_denials
    }

    /// Refuses a growth: -1 for the guest, or the trap it asked for.
    fn deny(&mut self, exceeded: MemoryLimitExceeded) -> wasmtime::Result<bool> {
        self.metrics.denied_growths += 1;
        self.last_denial = Some(exceeded);
        if self.config.trap_on_memory_denial {
            return Err(wasmtime::Error::new(exceeded));
        }
        Ok(false)
    }

    pub fn metrics(&self) -> MemoryMetrics {
        self.metrics
    }

    /// Why the last denied growth was denied: wasmtime's own error for a memory it could not
    /// make says only that it exceeds "memory limits".
    pub fn last_denial(&self) -> Option<MemoryLimitExceeded> {
        self.last_denial
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        // wasmtime would refuse this growth after asking us; refusing it here keeps an approved
        // growth from failing later, which is what would leave our count wrong.
        if maximum.is_some_and(|maximum| desired > maximum) {
            return Ok(false);
        }
        if let Some(slot) = self.memory_slot
            && desired > slot
        {
            return self.deny(MemoryLimitExceeded::Slot { desired, slot });
        }
        let growth = desired.saturating_sub(current);
        let desired_total = self.metrics.current_bytes.saturating_add(growth);
        if desired_total > self.config.memory_bytes {
            let limit = self.config.memory_bytes;
            return self.deny(MemoryLimitExceeded::Total { desired_total, limit });
        }
        self.metrics.current_bytes = desired_total;
        self.metrics.peak_bytes = self.metrics.peak_bytes.max(desired_total);
        Ok(true)
    }

    /// Nothing is given back: wasmtime also calls this for a growth it refused before asking
    /// [`Self::memory_growing`] (beyond what the memory's type can address), so there is no way to
    /// tell which approved growth, if any, failed. Undoing the last approval there would let a
    /// guest alternate one small and one impossible growth and grow without bound; keeping the
    /// count errs on the safe side (a failed approved growth, an mmap failure, stays counted).
    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.config.table_elements;
        self.table_denials += u64::from(!allowed);
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.config.instances
    }

    fn tables(&self) -> usize {
        self.config.tables
    }

    fn memories(&self) -> usize {
        self.config.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(memory_bytes: usize, trap: bool) -> Limiter {
        Limiter::new(
            LimitsConfig {
                memory_bytes,
                table_elements: 10,
                instances: 10,
                tables: 10,
                memories: 10,
                trap_on_memory_denial: trap,
            },
            None,
        )
    }

    #[test]
    fn counts_all_memories_against_one_budget() {
        let mut limits = limiter(100, false);
        assert!(limits.memory_growing(0, 60, None).unwrap());
        assert!(
            !limits.memory_growing(0, 60, None).unwrap(),
            "a second memory may not take the rest"
        );
        assert!(limits.memory_growing(0, 40, None).unwrap());
        let metrics = limits.metrics();
        assert_eq!(
            (metrics.current_bytes, metrics.peak_bytes, metrics.denied_growths),
            (100, 100, 1)
        );
    }

    #[test]
    fn a_failure_reported_without_a_growth_gives_nothing_back() {
        // wasmtime reports "growth exceeds memory type's limits" without asking first: an
        // earlier approved growth must stay counted, or alternating growths escape the limit.
        let mut limits = limiter(100, false);
        for _ in 0..10 {
            if limits.memory_growing(0, 20, None).unwrap() {
                limits
                    .memory_grow_failed(wasmtime::Error::msg("memory growth exceeds memory type's limits"))
                    .unwrap();
            }
        }
        let metrics = limits.metrics();
        assert_eq!((metrics.current_bytes, metrics.denied_growths), (100, 5));
    }

    #[test]
    fn a_growth_past_the_memory_maximum_is_refused_before_it_is_counted() {
        let mut limits = limiter(100, false);
        assert!(!limits.memory_growing(0, 50, Some(40)).unwrap());
        assert_eq!(limits.metrics().current_bytes, 0);
        assert!(limits.memory_growing(0, 40, Some(40)).unwrap());
    }

    #[test]
    fn a_growth_past_a_pool_slot_is_denied_and_not_counted() {
        let mut limits = limiter(100, false);
        limits.memory_slot = Some(30);
        assert!(!limits.memory_growing(0, 40, None).unwrap());
        assert!(limits.memory_growing(0, 30, None).unwrap());
        let metrics = limits.metrics();
        assert_eq!((metrics.current_bytes, metrics.denied_growths), (30, 1));
    }

    #[test]
    fn traps_instead_of_denying_when_asked() {
        let mut limits = limiter(10, true);
        let error = limits.memory_growing(0, 11, None).unwrap_err();
        assert!(error.downcast_ref::<MemoryLimitExceeded>().is_some());
    }
}
