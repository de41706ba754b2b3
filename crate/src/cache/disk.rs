//! The on-disk compiled-code cache behind the engine's `cacheDir`.
//!
//! Entries are wasmtime's own serialized artifacts, one file per input, named by the kind and the
//! SHA-256 of the input bytes, under a directory named by the engine's precompile-compatibility
//! hash: engines with different settings (fuel, stack size, ...) never read each other's code.
//! Files are written to a temporary name and renamed into place, so a reader sees a whole artifact
//! or none. Each file ends with the SHA-256 of its own name and the artifact before it, checked on
//! every load: wasmtime checks only an artifact's header, and a flipped bit in its code or tables
//! (a bad disk, an edit) ran as machine code and crashed the process (an outside probe: 5 of 7
//! single-bit flips loaded, one SIGSEGV); and an entry renamed, copied or linked to another
//! input's name (a restored backup, a careless sync) ran for that input (a later probe). A file is
//! read into memory, checked, then loaded, never mapped: one edited in place while loaded was a
//! SIGBUS. A file that does not check or load (truncated, damaged, another wasmtime version) is a
//! miss and is replaced. The check is no defence against whoever can write the directory (they
//! can write a matching hash): loading runs its machine code, so they can run code in the process.
//! How the directories are checked and held is in `dir.rs`.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::Module;
use wasmtime::component::Component;

use crate::bulk_chunks;
use crate::cache::dir::CacheDir;
use crate::errors::Failure;

/// What the cache did since the engine was created (`Engine.cacheStats`).
#[derive(Default)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub write_failures: AtomicU64,
}

pub struct DiskCache {
    /// Shared with `in_use`, which keeps guests' grants out of it while it lives.
    dir: Arc<CacheDir>,
    pub counters: CacheCounters,
    temp_serial: AtomicU64,
}

/// Compiled code the cache can hold: a core module or a component (never sharing a file).
pub trait Artifact: Sized {
    /// The file-name prefix of this kind of artifact.
    const KIND: &'static str;
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    /// Why `bytes` are not valid for `engine`, without compiling them.
    fn validate(engine: &Engine, bytes: &[u8]) -> Result<(), String>;
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// # Safety
    /// Runs `bytes` as machine code: they must be our own `serialize` output (documented on
    /// `deserializeModule`: never untrusted input); wasmtime checks version and settings.
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    /// Bytes of machine code this artifact keeps mapped (reported to V8 as external memory).
    fn code_bytes(&self) -> usize;
}

impl Artifact for Module {
    const KIND: &'static str = "module";
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, bytes)
    }
    fn validate(engine: &Engine, bytes: &[u8]) -> Result<(), String> {
        Module::validate(engine, bytes).map_err(|error| crate::errors::compile_text(&error))
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract (see the trait).
        unsafe { Module::deserialize(engine, bytes) }
    }
    fn code_bytes(&self) -> usize {
        let code = self.image_range();
        code.end as usize - code.start as usize
    }
}

impl Artifact for Component {
    const KIND: &'static str = "component";
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, bytes)
    }
    fn validate(engine: &Engine, bytes: &[u8]) -> Result<(), String> {
        crate::binary::validate_component(bytes, |module| {
            Module::validate(engine, module).map_err(|error| crate::errors::compile_text(&error))
        })
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: the caller's contract (see the trait).
        unsafe { Component::deserialize(engine, bytes) }
    }
    fn code_bytes(&self) -> usize {
        let code = self.image_range();
        code.end as usize - code.start as usize
    }
}

/// Compiles `bytes`, through `cache` when the engine has one, with their large bulk memory
/// instructions in chunks (`bulk_chunks.rs`); the cache keys the bytes as given. `check` runs
/// first, on what compiles (a rewrite makes code larger), when they are compiled, not when the
/// cache has them (they passed it when they were compiled).
pub fn compile<T: Artifact>(
    engine: &Engine,
    cache: Option<&DiskCache>,
    bytes: &[u8],
    check: impl FnOnce(&[u8]) -> Result<(), Failure>,
) -> Result<T, Failure> {
    if let Some(hit) = cached(engine, cache, bytes) {
        return Ok(hit);
    }
    let compiled = match bulk_chunks::chunked(bytes) {
        Ok(None) => {
            check(bytes)?;
            T::compile(engine, bytes)
        }
        Ok(Some(rewritten)) => {
            check(&rewritten)?;
            T::compile(engine, &rewritten).map_err(|error| original_error::<T>(engine, bytes, error))
        }
        // What the rewrite cannot read runs nowhere; the compiler says what is wrong with it, in
        // its own words (it compiles only what passed the checks).
        Err(bulk_chunks::Unreadable) => {
            check(bytes)?;
            match T::compile(engine, bytes) {
                Err(error) => Err(error),
                Ok(_) => Err(wasmtime::Error::msg(
                    "its code could not be read to compile its bulk memory instructions in chunks",
                )),
            }
        }
    };
    let compiled = compiled.map_err(|error| Failure::compile(&error))?;
    if let Some(cache) = cache {
        // Cache I/O problems never fail a compile: a failed write is only counted.
        match compiled.serialize() {
            Ok(artifact) => cache.store(T::KIND, bytes, &artifact),
            Err(_) => {
                cache.counters.write_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(compiled)
}

/// Why `bytes` do not compile, when their rewrite did not (`error`): the input's own invalidity,
/// whose offsets are the input's. Only validated, never compiled: the compile checks passed for the
/// rewrite, not for the input. If it is valid, the rewrite was at fault.
fn original_error<T: Artifact>(engine: &Engine, bytes: &[u8], error: wasmtime::Error) -> wasmtime::Error {
    match T::validate(engine, bytes) {
        Err(invalid) => wasmtime::Error::msg(invalid),
        Ok(()) => error.context("compiling its bulk memory instructions in chunks failed"),
    }
}

/// The code `cache` holds for `bytes`, if any; without one, or when it has none, `None`, and the
/// compile that follows counts as a miss.
pub fn cached<T: Artifact>(engine: &Engine, cache: Option<&DiskCache>, bytes: &[u8]) -> Option<T> {
    let cache = cache?;
    let name = entry_name(T::KIND, bytes);
    if let Ok(contents) = cache.dir.read(&name, max_entry_bytes(bytes.len()))
        && let Some(artifact) = checked(&name, &contents)
        // SAFETY: the file is in the cache directory, which holds only our own artifacts.
        && let Ok(loaded) = unsafe { T::deserialize(engine, artifact) }
    {
        cache.counters.hits.fetch_add(1, Ordering::Relaxed);
        return Some(loaded);
    }
    cache.counters.misses.fetch_add(1, Ordering::Relaxed);
    None
}

/// Loads `artifact`, which this addon compiled from `bytes` in a child process (see
/// `lib/compile-child.ts`), and stores it in `cache` as a compile of its own would have.
pub fn adopt<T: Artifact>(
    engine: &Engine,
    cache: Option<&DiskCache>,
    bytes: &[u8],
    artifact: &[u8],
) -> Result<T, Failure> {
    // SAFETY: our own child's `serialize` output, made by this addon for an engine of these
    // settings (wasmtime checks the header), never bytes from anyone else.
    let loaded = unsafe { T::deserialize(engine, artifact) }
        .map_err(|error| Failure::Internal(format!("the compiling process's code did not load: {error:#}")))?;
    if let Some(cache) = cache {
        cache.store(T::KIND, bytes, artifact);
    }
    Ok(loaded)
}

/// The longest `cacheDir` path a message repeats: Linux's PATH_MAX.
const SHOWN_PATH_CHARS: usize = 4096;

impl DiskCache {
    /// Creates `<dir>/<engine fingerprint>/`; a directory that cannot be created is a config error.
    pub fn open(dir: &str, engine: &Engine) -> Result<Self, Failure> {
        if dir.is_empty() {
            return Err(Failure::OptionAt {
                path: "cacheDir",
                message: "cacheDir: expected a directory path, got an empty string".into(),
            });
        }
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        // Code compiled before bulk instructions were chunked must not load.
        bulk_chunks::CHUNK.hash(&mut hasher);
        // The path as given, up to a length any real one keeps (a 100,000-character one was
        // repeated whole).
        let refuse = |dir: &str, why: String| Failure::OptionAt {
            path: "cacheDir",
            message: format!(
                "cacheDir: {}: {why}",
                crate::names::quoted_at_most(dir, SHOWN_PATH_CHARS)
            ),
        };
        let root = CacheDir::open(Path::new(dir)).map_err(|why| refuse(dir, why))?;
        let name = format!("wasmtime-{:016x}", hasher.finish());
        let sub = Arc::new(root.child(&name).map_err(|why| refuse(&format!("{dir}/{name}"), why))?);
        super::in_use::remember(Path::new(dir), dir, &sub);
        remove_stale_temporaries(&sub);
        Ok(DiskCache {
            dir: sub,
            counters: CacheCounters::default(),
            temp_serial: AtomicU64::new(0),
        })
    }

    /// Writes `artifact`, compiled from `bytes`, for next time; a failure is only counted.
    fn store(&self, kind: &str, bytes: &[u8], artifact: &[u8]) {
        // One no engine would load (see `max_entry_bytes`) is not written: every process would
        // compile again and rewrite it, and only the count says so.
        let written = if fits(artifact.len(), bytes.len()) {
            self.write(&entry_name(kind, bytes), artifact)
        } else {
            Err(std::io::Error::other("the entry would be larger than any load reads"))
        };
        if written.is_err() {
            self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes beside the target and renames: concurrent writers (threads or processes) each
    /// replace the file whole, and a reader reads an older file or the new one, never a mix.
    fn write(&self, name: &str, artifact: &[u8]) -> std::io::Result<()> {
        let serial = self.temp_serial.fetch_add(1, Ordering::Relaxed);
        // The clock's nanoseconds besides the pid: in containers, pids repeat across processes
        // sharing one directory.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let temp = format!("{name}.{}-{serial}-{nanos:08x}{TEMPORARY}", std::process::id());
        // Removed only once created here: a name another writer holds stays its own.
        let mut created = false;
        let result = self
            .dir
            .write_new(&temp, &[artifact, &seal(name, artifact)], &mut created)
            .and_then(|()| self.dir.rename(&temp, name));
        if result.is_err() && created {
            let _ = self.dir.remove(&temp);
        }
        result
    }
}

/// How a writer's temporary name ends (see [`DiskCache::write`]).
const TEMPORARY: &str = ".tmp";

/// How old a writer's temporary is before it counts as left by a writer killed mid-write: a write
/// takes well under a second (the compile before it is not part of it).
const STALE_TEMPORARY: Duration = Duration::from_secs(10 * 60);

/// Removes the temporaries (see [`DiskCache::write`]) that writers killed mid-write left in `dir`:
/// nothing else would, and each holds a whole artifact. Best effort: what cannot be listed or
/// removed stays.
fn remove_stale_temporaries(dir: &CacheDir) {
    let now = SystemTime::now();
    let stale = dir.entries_where(|name, modified| {
        // Named as `write` names them: an entry's name (see `entry_name`), then the temporary's.
        let ours = [Module::KIND, Component::KIND]
            .iter()
            .any(|kind| name.strip_prefix(kind).is_some_and(|rest| rest.starts_with('-')))
            && name.ends_with(TEMPORARY);
        ours && now.duration_since(modified).is_ok_and(|age| age >= STALE_TEMPORARY)
    });
    for name in stale.unwrap_or_default() {
        let _ = dir.remove(&name);
    }
}

/// The file for `bytes`: named by their SHA-256, because a file outlives the process and a name
/// collision would load another input's code.
fn entry_name(kind: &str, bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{kind}-{hex}.cwasm")
}

/// The most a cache file for an input of `input_bytes` is read: above what wasmtime writes for
/// real inputs, so a sparse or padded file planted there is refused, not read whole. (A dense
/// input of small functions with fuel can expand 95 times: past about 3.6 MiB its entry would not
/// fit, and is not written.)
fn max_entry_bytes(input_bytes: usize) -> u64 {
    64 * 1024 * 1024 + 32 * input_bytes as u64
}

/// Whether the entry of an artifact of `artifact_bytes` (and its 32-byte seal) for an input of
/// `input_bytes` is one a load reads.
fn fits(artifact_bytes: usize, input_bytes: usize) -> bool {
    artifact_bytes as u64 + 32 <= max_entry_bytes(input_bytes)
}

/// The trailer of the entry `name` holding `artifact`: binds the artifact to the input it was
/// compiled from, as well as to its own bytes.
fn seal(name: &str, artifact: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((name.len() as u64).to_le_bytes());
    hasher.update(name.as_bytes());
    hasher.update(artifact);
    hasher.finalize().into()
}

/// The artifact in the contents of the cache file `name`, if its trailer matches.
fn checked<'a>(name: &str, contents: &'a [u8]) -> Option<&'a [u8]> {
    let (artifact, trailer) = contents.split_at_checked(contents.len().checked_sub(32)?)?;
    (seal(name, artifact).as_slice() == trailer).then_some(artifact)
}

#[cfg(test)]
mod tests {
    use super::{fits, max_entry_bytes};

    #[test]
    fn an_entry_is_written_only_if_a_load_would_read_it() {
        let limit = max_entry_bytes(1_000) as usize;
        assert!(fits(limit - 32, 1_000));
        assert!(!fits(limit - 31, 1_000));
        assert_eq!(limit, 64 * 1024 * 1024 + 32_000);
    }
}
