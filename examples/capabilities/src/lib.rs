//! A component that uses the reference host interfaces (`airssys:host@0.1.0`) and returns what the
//! host answered, so a test or a demo can see both grants and denials from the guest's side.

wit_bindgen::generate!({
    world: "airssys:capabilities/capabilities",
    path: ["../../wit/airssys-host", "wit"],
    // The host interfaces live in their own package (wit/airssys-host at the repo root).
    generate_all,
});

use core::sync::atomic::{AtomicU32, Ordering};

use airssys::host::{filesystem, http, time};

struct Capabilities;

static NAPS: AtomicU32 = AtomicU32::new(0);

impl Guest for Capabilities {
    fn read_file(path: String) -> Result<String, String> {
        let bytes = filesystem::read(&path)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn fetch(url: String) -> Result<http::Response, String> {
        http::fetch(&url)
    }

    fn nap(ms: u32) -> u32 {
        time::sleep(ms);
        NAPS.fetch_add(1, Ordering::Relaxed) + 1
    }
}

export!(Capabilities);
