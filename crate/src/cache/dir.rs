//! The cache's directories, checked once and then held open.
//!
//! On Unix a directory is opened, checked through its descriptor (owned by this process's user,
//! writable by no one else) and every entry is then reached relative to that descriptor, never by
//! path: a directory renamed and replaced by another (or by a symlink to one) after the check
//! would otherwise have been read from and written to as if it had passed it. Entries are opened
//! without following symlinks and without blocking (a FIFO planted as an entry hung a compile for
//! ever), and only a regular file of this user's, writable by no one else, under a size bound, is
//! read. Elsewhere the directory is used by path, without those checks.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// Why a directory may not hold the cache.
pub type Refusal = String;

#[cfg(unix)]
pub use unix::CacheDir;

#[cfg(not(unix))]
pub use portable::CacheDir;

/// Reads all of `file`, refusing one longer than `max_bytes`.
fn read_bounded(mut file: File, max_bytes: u64) -> io::Result<Vec<u8>> {
    let length = file.metadata()?.len();
    if length > max_bytes {
        return Err(io::Error::other("cache entry larger than its bound"));
    }
    let mut contents = Vec::with_capacity(length as usize);
    (&mut file).take(max_bytes + 1).read_to_end(&mut contents)?;
    if contents.len() as u64 > max_bytes {
        return Err(io::Error::other("cache entry grew past its bound while read"));
    }
    Ok(contents)
}

/// Creates `dir` (owner-only, with its parents) unless it exists.
fn create_private(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => builder.recursive(true).create(dir),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(unix)]
mod unix {
    use std::ffi::CString;
    use std::fs::{self, File, Metadata};
    use std::io::{self, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{Refusal, create_private, read_bounded};

    pub struct CacheDir {
        fd: OwnedFd,
    }

    fn c_name(name: &str) -> io::Result<CString> {
        CString::new(name).map_err(io::Error::other)
    }

    /// Takes ownership of a descriptor a libc call returned, or its error.
    fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned open by the kernel and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn status(result: libc::c_int) -> io::Result<()> {
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Why a directory or file with `metadata` may not be trusted, if it may not.
    fn untrusted(metadata: &Metadata) -> Option<Refusal> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if metadata.uid() != me {
            return Some(format!(
                "owned by user {}, not by this process's user {me}: whoever owns it could run code in this process",
                metadata.uid()
            ));
        }
        if metadata.mode() & 0o022 != 0 {
            return Some(format!(
                "writable by group or others (mode {:o}): anyone who can write it could run code in this process",
                metadata.mode() & 0o777
            ));
        }
        None
    }

    impl CacheDir {
        fn checked(fd: OwnedFd) -> Result<Self, Refusal> {
            let metadata = File::from(fd.try_clone().map_err(|error| error.to_string())?)
                .metadata()
                .map_err(|error| error.to_string())?;
            if !metadata.is_dir() {
                return Err("not a directory".into());
            }
            match untrusted(&metadata) {
                Some(refusal) => Err(refusal),
                None => Ok(CacheDir { fd }),
            }
        }

        /// `dir`, created owner-only if missing, opened and checked.
        pub fn open(dir: &Path) -> Result<Self, Refusal> {
            create_private(dir).map_err(|error| format!("cannot create it: {error}"))?;
            let path = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|error| error.to_string())?;
            // SAFETY: a valid NUL-terminated path; the result is checked by `owned`.
            let fd = owned(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) })
                .map_err(|error| error.to_string())?;
            Self::checked(fd)
        }

        /// A path naming this directory wherever it is now, though renamed: its descriptor's, on
        /// Linux (elsewhere the path fails to resolve, and callers fall back on the one given).
        pub fn path_now(&self) -> PathBuf {
            PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
        }

        /// The subdirectory `name`, created owner-only if missing; a symlink is refused.
        pub fn child(&self, name: &str) -> Result<Self, Refusal> {
            let name = c_name(name).map_err(|error| error.to_string())?;
            // SAFETY: a directory descriptor we own and a NUL-terminated name.
            let made = status(unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.as_ptr(), 0o700) });
            if let Err(error) = made
                && error.kind() != io::ErrorKind::AlreadyExists
            {
                return Err(format!("cannot create it: {error}"));
            }
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: as above; the result is checked by `owned`.
            let fd = owned(unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags) })
                .map_err(|error| error.to_string())?;
            Self::checked(fd)
        }

        /// The contents of entry `name`, if it is a regular file this user alone can write, of at
        /// most `max_bytes`.
        pub fn read(&self, name: &str, max_bytes: u64) -> io::Result<Vec<u8>> {
            let name = c_name(name)?;
            let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
            // SAFETY: a directory descriptor we own and a NUL-terminated name.
            let file = File::from(owned(unsafe {
                libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags)
            })?);
            let metadata = file.metadata()?;
            if !metadata.is_file() {
                return Err(io::Error::other("cache entry is not a regular file"));
            }
            if let Some(refusal) = untrusted(&metadata) {
                return Err(io::Error::other(refusal));
            }
            read_bounded(file, max_bytes)
        }

        /// Writes `parts` to the new entry `name`, owner-only; never follows a symlink, never
        /// reuses a file. `created` tells whether the file is ours (to remove on a failure).
        pub fn write_new(&self, name: &str, parts: &[&[u8]], created: &mut bool) -> io::Result<()> {
            let name = c_name(name)?;
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            let mode: libc::c_uint = 0o600;
            // SAFETY: a directory descriptor we own and a NUL-terminated name.
            let mut file = File::from(owned(unsafe {
                libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags, mode)
            })?);
            *created = true;
            parts.iter().try_for_each(|part| file.write_all(part))
        }

        pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            let (from, to) = (c_name(from)?, c_name(to)?);
            let fd = self.fd.as_raw_fd();
            // SAFETY: a directory descriptor we own and NUL-terminated names.
            status(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) })
        }

        pub fn remove(&self, name: &str) -> io::Result<()> {
            let name = c_name(name)?;
            // SAFETY: a directory descriptor we own and a NUL-terminated name.
            status(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) })
        }

        /// The names of the entries `pick` picks, given each name and its modification time,
        /// among the regular files of this user alone. Listed through `/proc` (an error without
        /// it), so that the held directory is listed, never the path.
        pub fn entries_where(&self, mut pick: impl FnMut(&str, SystemTime) -> bool) -> io::Result<Vec<String>> {
            let listing = fs::read_dir(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))?;
            let mut picked = Vec::new();
            for entry in listing.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Ok(c_entry) = c_name(&name) else { continue };
                // SAFETY: a zeroed stat is a valid out-parameter for fstatat.
                let mut stat: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: a directory descriptor we own, a NUL-terminated name, a stat to fill.
                let found = status(unsafe {
                    libc::fstatat(
                        self.fd.as_raw_fd(),
                        c_entry.as_ptr(),
                        &mut stat,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                });
                // SAFETY: geteuid has no preconditions and cannot fail.
                let mine = stat.st_uid == unsafe { libc::geteuid() } && stat.st_mode & 0o022 == 0;
                if found.is_err() || stat.st_mode & libc::S_IFMT != libc::S_IFREG || !mine {
                    continue;
                }
                let modified = UNIX_EPOCH + Duration::from_secs(stat.st_mtime.max(0) as u64);
                if pick(&name, modified) {
                    picked.push(name);
                }
            }
            Ok(picked)
        }
    }
}

#[cfg(not(unix))]
mod portable {
    use std::fs::{self, File};
    use std::io::{self, Write};
    use std::path::{Path, PathBuf};
    use std::time::SystemTime;

    use super::{Refusal, create_private, read_bounded};

    pub struct CacheDir {
        path: PathBuf,
    }

    impl CacheDir {
        pub fn open(dir: &Path) -> Result<Self, Refusal> {
            create_private(dir).map_err(|error| format!("cannot create it: {error}"))?;
            match fs::metadata(dir) {
                Ok(metadata) if metadata.is_dir() => Ok(CacheDir {
                    path: dir.to_path_buf(),
                }),
                Ok(_) => Err("not a directory".into()),
                Err(error) => Err(error.to_string()),
            }
        }

        pub fn path_now(&self) -> PathBuf {
            self.path.clone()
        }

        pub fn child(&self, name: &str) -> Result<Self, Refusal> {
            Self::open(&self.path.join(name))
        }

        pub fn read(&self, name: &str, max_bytes: u64) -> io::Result<Vec<u8>> {
            let path = self.path.join(name);
            if !fs::symlink_metadata(&path)?.is_file() {
                return Err(io::Error::other("cache entry is not a regular file"));
            }
            read_bounded(File::open(path)?, max_bytes)
        }

        pub fn write_new(&self, name: &str, parts: &[&[u8]], created: &mut bool) -> io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.path.join(name))?;
            *created = true;
            parts.iter().try_for_each(|part| file.write_all(part))
        }

        pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            fs::rename(self.path.join(from), self.path.join(to))
        }

        pub fn remove(&self, name: &str) -> io::Result<()> {
            fs::remove_file(self.path.join(name))
        }

        pub fn entries_where(&self, mut pick: impl FnMut(&str, SystemTime) -> bool) -> io::Result<Vec<String>> {
            let mut picked = Vec::new();
            for entry in fs::read_dir(&self.path)?.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Ok(metadata) = fs::symlink_metadata(entry.path()) else {
                    continue;
                };
                if metadata.is_file()
                    && let Ok(modified) = metadata.modified()
                    && pick(&name, modified)
                {
                    picked.push(name);
                }
            }
            Ok(picked)
        }
    }
}
