//! A guest that wants all the memory it can get: `hog(pages)` grows linear memory one 64 KiB page
//! at a time until it has `pages` more pages or the host denies a growth.

use core::arch::wasm32::memory_grow;

wit_bindgen::generate!({ world: "memory-hog", path: "wit" });

struct MemoryHog;

impl Guest for MemoryHog {
    fn hog(pages: u32) -> u32 {
        let mut granted = 0;
        while granted < pages {
            // `memory.grow` returns usize::MAX (-1) when the host's limiter refuses the growth.
            if memory_grow(0, 1) == usize::MAX {
                break;
            }
            granted += 1;
        }
        granted
    }
}

export!(MemoryHog);
