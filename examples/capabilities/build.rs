//! A 64 KiB shadow stack instead of Rust's default 1 MiB: the guest then starts in a few pages,
//! leaving most of the manifest's memory for the files and response bodies it receives.

fn main() {
    println!("cargo:rustc-link-arg=-zstack-size=65536");
    // Only this script's own changes need a rerun (not the .wasm that build.mjs writes beside it).
    println!("cargo:rerun-if-changed=build.rs");
}
