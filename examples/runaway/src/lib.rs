//! A guest that never returns: `run()` spins forever, as a buggy or hostile component would.
//!
//! The loop is a chain of dependent square roots: each costs one fuel unit but waits many cycles
//! for the one before it, so the loop burns wall-clock time far faster than fuel (its manifest's
//! 100,000,000 units last about 300 ms on a laptop). That makes the manifest's 50 ms deadline,
//! not its fuel budget, the limit that stops it.

use core::hint::black_box;

wit_bindgen::generate!({ world: "runaway", path: "wit" });

struct Runaway;

impl Guest for Runaway {
    fn run() {
        let mut x = black_box(2.0f64);
        loop {
            // Nested roots stay on wasm's operand stack: one fuel unit per `f64.sqrt`, each waiting
            // for the one before it.
            x = (x + 1.0).sqrt().sqrt().sqrt().sqrt().sqrt().sqrt().sqrt().sqrt();
            x = x.sqrt().sqrt().sqrt().sqrt().sqrt().sqrt().sqrt().sqrt();
            // black_box keeps the optimiser from proving the loop useless and deleting it.
            x = black_box(x);
        }
    }
}

export!(Runaway);
