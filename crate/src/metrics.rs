//! An instance's counters (`metrics()`), and the copy of them that other threads read while a
//! call runs.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::limits::MemoryMetrics;

/// What `metrics()` reports.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Metrics {
    pub calls: u64,
    pub traps: u64,
    pub last_call_fuel: u64,
    pub total_fuel: u64,
    pub memory: MemoryMetrics,
}

const FIELDS: usize = 8;

impl Metrics {
    fn to_words(self) -> [u64; FIELDS] {
        let memory = self.memory;
        [
            self.calls,
            self.traps,
            self.last_call_fuel,
            self.total_fuel,
            memory.current_bytes as u64,
            memory.peak_bytes as u64,
            memory.limit_bytes as u64,
            memory.denied_growths,
        ]
    }

    fn from_words(words: [u64; FIELDS]) -> Self {
        let [
            calls,
            traps,
            last_call_fuel,
            total_fuel,
            current,
            peak,
            limit,
            denied_growths,
        ] = words;
        Metrics {
            calls,
            traps,
            last_call_fuel,
            total_fuel,
            memory: MemoryMetrics {
                current_bytes: current as usize,
                peak_bytes: peak as usize,
                limit_bytes: limit as usize,
                denied_growths,
            },
        }
    }
}

/// The metrics as of the last finished call, published without a lock: every call writes them
/// and a mutex here cost two locked instructions per call, about a tenth of a `callSync` of a
/// tiny export. A sequence lock: one writer at a time (the caller holding the instance), readers
/// retry while a write is in progress, so a reader never sees half of one call's update.
pub struct PublishedMetrics {
    /// Even when stable, odd while a write is in progress.
    sequence: AtomicU64,
    words: [AtomicU64; FIELDS],
}

impl PublishedMetrics {
    pub fn new(metrics: Metrics) -> Self {
        PublishedMetrics {
            sequence: AtomicU64::new(0),
            words: metrics.to_words().map(AtomicU64::new),
        }
    }

    /// Publishes `metrics`. Callers are serialized by the instance's lock.
    pub fn store(&self, metrics: Metrics) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence.store(sequence.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (word, value) in self.words.iter().zip(metrics.to_words()) {
            word.store(value, Ordering::Relaxed);
        }
        self.sequence.store(sequence.wrapping_add(2), Ordering::Release);
    }

    pub fn load(&self) -> Metrics {
        loop {
            let before = self.sequence.load(Ordering::Acquire);
            let words = std::array::from_fn(|index| self.words[index].load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            let after = self.sequence.load(Ordering::Relaxed);
            if before == after && before.is_multiple_of(2) {
                return Metrics::from_words(words);
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Metrics, PublishedMetrics};
    use crate::limits::MemoryMetrics;

    fn numbered(n: u64) -> Metrics {
        Metrics {
            calls: n,
            traps: n,
            last_call_fuel: n,
            total_fuel: n,
            memory: MemoryMetrics {
                current_bytes: n as usize,
                peak_bytes: n as usize,
                limit_bytes: n as usize,
                denied_growths: n,
            },
        }
    }

    #[test]
    fn a_stored_value_reads_back_whole() {
        let published = PublishedMetrics::new(Metrics::default());
        assert_eq!(published.load(), Metrics::default());
        published.store(numbered(7));
        assert_eq!(published.load(), numbered(7));
    }

    /// Every field of one store carries the same number: a reader that mixed two updates would
    /// see two different numbers in one snapshot.
    #[test]
    fn readers_never_see_half_an_update() {
        let published = Arc::new(PublishedMetrics::new(numbered(0)));
        let writer = {
            let published = published.clone();
            std::thread::spawn(move || {
                for n in 1..=200_000 {
                    published.store(numbered(n));
                }
            })
        };
        let mut last = 0;
        while !writer.is_finished() || last < 200_000 {
            let seen = published.load();
            assert_eq!(seen, numbered(seen.calls), "a torn read");
            assert!(seen.calls >= last, "went backwards");
            last = seen.calls;
        }
        writer.join().unwrap();
    }
}
