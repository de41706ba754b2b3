//! The cache directories this process's engines use, which no writable WASI grant may overlap.
//!
//! A file a guest writes belongs to the host's user, so an entry it planted in a cache, with the
//! hash worked out as the engine works it out, passed every check an entry gets and ran as native
//! code for another input (probe Z56). A grant that is, holds or lies inside a cache directory of
//! an engine of this process is refused; another process's caches cannot be known (SECURITY.md).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use super::dir::CacheDir;

/// What makes two paths the same directory: on Unix its device and inode, the same through
/// symlinks, bind mounts and `/proc/self/fd`; elsewhere its canonical path.
#[cfg(unix)]
type Identity = (u64, u64);
#[cfg(not(unix))]
type Identity = PathBuf;

/// Most parents walked up from a directory: deeper than any real path, short of a loop.
const MOST_DEPTH: usize = 1024;

struct InUse {
    /// The path as the engine was given it, for the refusal.
    path: String,
    /// The same, absolute: where the directory is looked for once no engine holds it.
    at: PathBuf,
    /// What the directory was when an engine opened it.
    identity: Identity,
    /// The settings folders inside it that engines hold open and use: while one lives, the cache
    /// is wherever that folder is now, though renamed, and no other directory can take its inode.
    held: Vec<Weak<CacheDir>>,
}

impl InUse {
    /// The directory not to be granted, then each of its parents, as they are now: the parent of
    /// a held settings folder; else the directory at the path given, if still the same one (once
    /// it is gone, another may take its inode); nothing when neither is there.
    fn lineage_now(&self) -> Option<Vec<Identity>> {
        for settings in self.held.iter().filter_map(Weak::upgrade) {
            if let Ok(mut lineage) = lineage(&settings.path_now()) {
                lineage.remove(0);
                return Some(lineage);
            }
        }
        lineage(&self.at).ok().filter(|lineage| lineage[0] == self.identity)
    }
}

/// Every cache directory an engine of this process opened: entries stay on disk, and a later
/// engine loads them, after the engine that wrote them is closed.
static IN_USE: Mutex<Vec<InUse>> = Mutex::new(Vec::new());

/// The directory at `dir`, then each of its parents up to the root.
#[cfg(unix)]
fn lineage(dir: &Path) -> io::Result<Vec<Identity>> {
    use std::os::unix::fs::MetadataExt;
    let mut lineage: Vec<Identity> = Vec::new();
    let mut at = dir.to_path_buf();
    while lineage.len() < MOST_DEPTH {
        let metadata = std::fs::metadata(&at)?;
        let identity = (metadata.dev(), metadata.ino());
        // The root is its own parent.
        if lineage.last() == Some(&identity) {
            return Ok(lineage);
        }
        lineage.push(identity);
        // `..` of what the path names, not of its text: the kernel resolves the symlinks first.
        at.push("..");
    }
    Err(io::Error::other("nested deeper than any directory should be"))
}

#[cfg(not(unix))]
fn lineage(dir: &Path) -> io::Result<Vec<Identity>> {
    Ok(std::fs::canonicalize(dir)?.ancestors().map(Path::to_path_buf).collect())
}

fn in_use() -> std::sync::MutexGuard<'static, Vec<InUse>> {
    IN_USE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Notes `dir`, which an engine just opened as its cache (shown to users as `path`), and
/// `settings`, the folder in it the engine uses, for as long as the engine holds it.
pub fn remember(dir: &Path, path: &str, settings: &Arc<CacheDir>) {
    let (Ok(at), Some(identity)) = (
        std::path::absolute(dir),
        lineage(dir).ok().and_then(|lineage| lineage.into_iter().next()),
    ) else {
        return;
    };
    let mut caches = in_use();
    caches.retain(|cache| cache.lineage_now().is_some());
    match caches.iter_mut().find(|cache| cache.identity == identity) {
        Some(cache) => cache.held.push(Arc::downgrade(settings)),
        None => caches.push(InUse {
            path: path.to_owned(),
            at,
            identity,
            held: vec![Arc::downgrade(settings)],
        }),
    }
}

/// Refuses a grant of `host` that the guest may write if it is, holds or lies inside a cache
/// directory of this process. A `host` that cannot be read is left to the grant's own opening to
/// report.
pub fn check_writable_grant(host: &str) -> Result<(), String> {
    let caches = in_use();
    if caches.is_empty() || std::fs::metadata(host).is_err() {
        return Ok(());
    }
    let grant = lineage(Path::new(host)).map_err(|error| format!("cannot tell where it lies: {error}"))?;
    let overlaps = |cache: &&InUse| {
        cache
            .lineage_now()
            .is_some_and(|lineage| grant.contains(&lineage[0]) || lineage.contains(&grant[0]))
    };
    match caches.iter().find(overlaps) {
        Some(cache) => Err(format!(
            "the guest could write to the cacheDir {} of an engine in this process (the grant is, holds or lies \
             inside it), and plant code there that an engine would run; grant a directory apart from every cacheDir",
            crate::names::quoted_at_most(&cache.path, 200)
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{CacheDir, check_writable_grant, remember};

    #[cfg(unix)]
    #[test]
    fn a_writable_grant_that_is_holds_or_lies_inside_a_cache_is_refused_and_one_beside_it_is_not() {
        let base = std::env::temp_dir().join(format!("airssys-in-use-{}", std::process::id()));
        let (cache, beside, inside) = (base.join("cache"), base.join("beside"), base.join("cache/settings"));
        std::fs::create_dir_all(&beside).unwrap();
        let settings = Arc::new(CacheDir::open(&inside).unwrap());
        let link = base.join("link");
        std::os::unix::fs::symlink(&cache, &link).unwrap();
        remember(&cache, "cache", &settings);
        let refused = |grant: &std::path::Path| {
            check_writable_grant(grant.to_str().unwrap()).is_err_and(|why| why.contains("cacheDir \"cache\""))
        };
        for overlapping in [&cache, &base, &inside, &link, &link.join("settings")] {
            assert!(refused(overlapping), "{overlapping:?}");
        }
        assert_eq!(check_writable_grant(beside.to_str().unwrap()), Ok(()));
        assert_eq!(check_writable_grant(base.join("missing").to_str().unwrap()), Ok(()));
        // Renamed while an engine holds it (probe H64), it is still the cache where it went.
        let moved = beside.join("moved");
        std::fs::rename(&cache, &moved).unwrap();
        std::fs::create_dir(&cache).unwrap();
        assert!(refused(&moved) && refused(&moved.join("settings")) && refused(&beside));
        assert_eq!(check_writable_grant(cache.to_str().unwrap()), Ok(()));
        // Once no engine holds it and its path names it no more, its inode may name another
        // directory: no longer refused.
        drop(settings);
        assert_eq!(check_writable_grant(moved.to_str().unwrap()), Ok(()));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
