//! Shrinks the guest's shadow stack from Rust's default 1 MiB to 64 KiB, so the whole component
//! starts in a few pages and fits the default policy's smallest memory limit (512 KiB).

fn main() {
    println!("cargo:rustc-link-arg=-zstack-size=65536");
    // Without this, cargo reruns the script (and relinks) whenever any file in the crate changes,
    // including the .wasm that build.mjs writes next to it.
    println!("cargo:rerun-if-changed=build.rs");
}
