//! Symlinks a guest creates in a writable preopen. wasmtime-wasi refuses absolute targets but
//! creates relative ones that climb out (`../secret`, `..`): inside WASI they do not resolve, but
//! the host, or a later instance given a directory below as a preopen, follows them out of the
//! grant. A target here may not be absolute nor have a `..` component (nor a backslash-separated
//! one or a drive, as Windows reads them), so a link resolves at or below its own directory,
//! which is inside the preopen; a chain of such links stays inside too.
//! (A lexical depth check would allow `sub/up -> ../x`, but is unsound: the link's parent may
//! itself be a link to a shallower directory.) Preview 1 modules make no links at all (below).

use wasmtime::component::Resource;
use wasmtime::{Linker, StoreContextMut};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{self, ErrorCode, HostDescriptor};

use crate::store::HostState;

const P1: &str = "wasi_snapshot_preview1";
/// Preview 1's errno `perm`.
const ERRNO_PERM: i32 = 63;

/// Whether a link to `target` could resolve outside the directory holding it, on any host: a
/// backslash separates names on Windows and a colon names a drive there (`C:x`, `\\server`), so
/// both count, whatever the host.
pub fn escapes(target: &str) -> bool {
    target.starts_with(['/', '\\']) || target.contains(':') || target.split(['/', '\\']).any(|part| part == "..")
}

/// Replaces preview 2's `symlink-at` (on a linker with shadowing allowed) by one that refuses
/// escaping targets with `not-permitted` and hands the rest to wasmtime-wasi.
pub fn guard_p2(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    // At the version wasmtime-wasi defines it (imports of older 0.2 versions resolve to it).
    let types = format!("wasi:filesystem/types@{}", crate::component::wasi_served::VERSION);
    linker.instance(&types)?.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, HostState>, (fd, target, link): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                if escapes(&target) {
                    return Ok((Err(ErrorCode::NotPermitted),));
                }
                let mut view = store.data_mut().filesystem();
                match HostDescriptor::symlink_at(&mut view, fd, target, link).await {
                    Ok(()) => Ok((Ok(()),)),
                    Err(error) => Ok((Err(types::Host::convert_error_code(&mut view, error)?),)),
                }
            })
        },
    )
}

/// Replaces preview 1's `path_symlink` (on a linker with shadowing allowed) by one that refuses
/// every link with `EPERM`. The check above would need wasmtime-wasi's implementation for the
/// links it allows, and that is not public: calling it through a `Func` from a host function
/// finds no guest memory to read the paths from.
pub fn guard_p1(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(P1, "path_symlink", |_: i32, _: i32, _: i32, _: i32, _: i32| ERRNO_PERM)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::escapes;

    #[test]
    fn targets_that_climb_or_start_at_the_root_escape() {
        let windows = [
            "..\\x",
            "a\\..\\..\\x",
            "\\x",
            "\\\\server\\share",
            "C:x",
            "C:\\x",
            "a/..\\x",
        ];
        for target in ["/etc/passwd", "/", "..", "../x", "a/../../x", "a/..", "./..", "a//../b"]
            .into_iter()
            .chain(windows)
        {
            assert!(escapes(target), "{target}");
        }
        for target in ["x", "a/b", "./x", "a/./b", "...", "..x", "x..", "", "a//b"] {
            assert!(!escapes(target), "{target}");
        }
    }
}
