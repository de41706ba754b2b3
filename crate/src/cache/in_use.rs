//! The cache directories this process's engines use, which no writable WASI grant may overlap.
//!
//! A file a guest writes belongs to the host's user, so an entry it planted in a cache, with the
//! hash worked out as the engine works it out, passed every check an entry gets and ran as native
//! code for another input (probe Z56). A grant that is, holds or lies inside a cache directory of
//! an engine of this process is refused; another process's caches cannot be known (SECURITY.md).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    /// The same, absolute: where the directory is looked for again at each check.
    at: PathBuf,
    /// The directory, then each of its parents to the root.
    lineage: Vec<Identity>,
}

impl InUse {
    /// Whether the directory is still where it was: once it is gone, another may take its inode.
    fn still_there(&self) -> bool {
        lineage(&self.at).is_ok_and(|lineage| lineage[0] == self.lineage[0])
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

/// Notes `dir`, which an engine just opened as its cache.
pub fn remember(dir: &Path, path: &str) {
    let (Ok(at), Ok(lineage)) = (std::path::absolute(dir), lineage(dir)) else {
        return;
    };
    let mut caches = in_use();
    caches.retain(|cache| cache.lineage[0] != lineage[0] && cache.still_there());
    caches.push(InUse {
        path: path.to_owned(),
        at,
        lineage,
    });
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
    let overlaps = |cache: &&InUse| grant.contains(&cache.lineage[0]) || cache.lineage.contains(&grant[0]);
    match caches.iter().filter(overlaps).find(|cache| cache.still_there()) {
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
    use super::{check_writable_grant, remember};

    #[cfg(unix)]
    #[test]
    fn a_writable_grant_that_is_holds_or_lies_inside_a_cache_is_refused_and_one_beside_it_is_not() {
        let base = std::env::temp_dir().join(format!("airssys-in-use-{}", std::process::id()));
        let (cache, beside, inside) = (base.join("cache"), base.join("beside"), base.join("cache/sub"));
        for dir in [&inside, &beside] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let link = base.join("link");
        std::os::unix::fs::symlink(&cache, &link).unwrap();
        remember(&cache, "cache");
        for overlapping in [&cache, &base, &inside, &link, &link.join("sub")] {
            let refusal = check_writable_grant(overlapping.to_str().unwrap());
            assert!(
                refusal.is_err_and(|why| why.contains("cacheDir \"cache\"")),
                "{overlapping:?}"
            );
        }
        assert_eq!(check_writable_grant(beside.to_str().unwrap()), Ok(()));
        assert_eq!(check_writable_grant(base.join("missing").to_str().unwrap()), Ok(()));
        // Once the cache is gone, its inode may name another directory: no longer refused.
        std::fs::remove_dir_all(&cache).unwrap();
        assert_eq!(check_writable_grant(base.to_str().unwrap()), Ok(()));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
