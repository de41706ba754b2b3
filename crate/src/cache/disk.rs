//! The on-disk compiled-code cache behind the engine's `cacheDir`.
//!
//! Entries are wasmtime's own serialized artifacts, one file per input, named by the SHA-256 of the
//! input bytes, under a directory named by the engine's precompile-compatibility hash: engines with
//! different settings (fuel, stack size, ...) never read each other's code. Files are written to a
//! temporary name and renamed into place, so a reader sees a whole artifact or none. Each file ends
//! with the SHA-256 of the artifact before it, checked on every load: wasmtime checks only an
//! artifact's header, and a flipped bit in its code or tables (a bad disk, an edit) ran as machine
//! code and crashed the process (an outside probe: 5 of 7 single-bit flips loaded, one SIGSEGV).
//! A file is read into memory, checked, then loaded, never mapped: one edited in place while
//! loaded was a SIGBUS. A file that does not check or load (truncated, damaged, another wasmtime
//! version) is a miss and is replaced. The check is no defence against whoever can write the
//! directory (they can write a matching hash): loading runs its machine code, so they can run code
//! in the process:
//! on Unix we create directories 0700 and files 0600, refuse a directory owned by another user or
//! writable by group or others, and write temporaries with `O_EXCL | O_NOFOLLOW`.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::Module;
use wasmtime::component::Component;

use crate::errors::Failure;

/// What the cache did since the engine was created (`Engine.cacheStats`).
#[derive(Default)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub write_failures: AtomicU64,
}

pub struct DiskCache {
    dir: PathBuf,
    pub counters: CacheCounters,
    temp_serial: AtomicU64,
}

/// Compiled code the cache can hold: a core module or a component (never sharing a file).
pub trait Artifact: Sized {
    /// The file-name prefix of this kind of artifact.
    const KIND: &'static str;
    fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
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

/// Compiles `bytes`, through `cache` when the engine has one.
pub fn compile<T: Artifact>(engine: &Engine, cache: Option<&DiskCache>, bytes: &[u8]) -> Result<T, Failure> {
    let compile = || T::compile(engine, bytes).map_err(|error| Failure::compile(&error));
    match cache {
        Some(cache) => cache.get_or_compile(engine, bytes, compile),
        None => compile(),
    }
}

impl DiskCache {
    /// Creates `<dir>/<engine fingerprint>/`; a directory that cannot be created is a config error.
    pub fn open(dir: &str, engine: &Engine) -> Result<Self, Failure> {
        if dir.is_empty() {
            return Err(Failure::Options(
                "cacheDir: expected a directory path, got an empty string".into(),
            ));
        }
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let root = Path::new(dir);
        private_dir(root)?;
        let dir = root.join(format!("wasmtime-{:016x}", hasher.finish()));
        private_dir(&dir)?;
        Ok(DiskCache {
            dir,
            counters: CacheCounters::default(),
            temp_serial: AtomicU64::new(0),
        })
    }

    /// The cached artifact for `bytes`, or the one `compile` makes (then written for next time).
    /// Cache I/O problems never fail a compile: a failed write is only counted.
    fn get_or_compile<T: Artifact>(
        &self,
        engine: &Engine,
        bytes: &[u8],
        compile: impl FnOnce() -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let path = self.entry_path(T::KIND, bytes);
        if let Some(artifact) = fs::read(&path).ok().as_deref().and_then(checked)
            // SAFETY: the file is in the cache directory, which holds only our own artifacts.
            && let Ok(loaded) = unsafe { T::deserialize(engine, artifact) }
        {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(loaded);
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let compiled = compile()?;
        let written = compiled
            .serialize()
            .map_err(|error| std::io::Error::other(error.to_string()))
            .and_then(|artifact| self.write(&path, &artifact));
        if written.is_err() {
            self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
        }
        Ok(compiled)
    }

    /// The file for `bytes`: named by their SHA-256, because a file outlives the process and a
    /// name collision would load another input's code.
    fn entry_path(&self, prefix: &str, bytes: &[u8]) -> PathBuf {
        let hex: String = Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect();
        self.dir.join(format!("{prefix}-{hex}.cwasm"))
    }

    /// Writes beside the target and renames: concurrent writers (threads or processes) each
    /// replace the file whole, and a reader reads an older file or the new one, never a mix.
    fn write(&self, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
        let serial = self.temp_serial.fetch_add(1, Ordering::Relaxed);
        let temp = path.with_extension(format!("{}-{serial}.tmp", std::process::id()));
        let result = new_private_file(&temp)
            .and_then(|mut file| {
                file.write_all(artifact)?;
                file.write_all(&Sha256::digest(artifact))
            })
            .and_then(|()| fs::rename(&temp, path));
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

/// The artifact in a cache file's contents, if its SHA-256 trailer matches it.
fn checked(contents: &[u8]) -> Option<&[u8]> {
    let (artifact, hash) = contents.split_at_checked(contents.len().checked_sub(32)?)?;
    (Sha256::digest(artifact).as_slice() == hash).then_some(artifact)
}

/// Creates `dir` (owner-only) if it is missing, and refuses one that others could write into.
fn private_dir(dir: &Path) -> Result<(), Failure> {
    let refuse = |why: String| Failure::Options(format!("cacheDir: {}: {why}", dir.display()));
    let cannot_create =
        |error: std::io::Error| Failure::Options(format!("cacheDir: cannot create {}: {error}", dir.display()));
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            builder.recursive(true).create(dir).map_err(cannot_create)?;
        }
        Err(error) => return Err(cannot_create(error)),
    }
    let metadata = fs::metadata(dir).map_err(|error| refuse(error.to_string()))?;
    if !metadata.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if metadata.uid() != me {
            return Err(refuse(format!(
                "owned by user {}, not by this process's user {me}: whoever owns it could run code in this process",
                metadata.uid()
            )));
        }
        if metadata.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "writable by group or others (mode {:o}): anyone who can write it could run code in this process",
                metadata.mode() & 0o777
            )));
        }
    }
    Ok(())
}

/// A new file only the owner can read and write; never follows a symlink, never reuses a file.
fn new_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}
