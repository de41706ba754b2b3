/**
 * Opening a file below a directory without following a symlink in any path component, and reading
 * it whole with a size cap. The one owner of this for the package: `filesystem.read` opens guest
 * paths through it, and `loadComponent` and the CLI read the manifest's wasm through it, so a
 * directory swapped for a symlink after a path was checked cannot redirect the open.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type BigIntStats, type Stats } from 'node:fs'
import { lstat, open, stat, type FileHandle } from 'node:fs/promises'
import path from 'node:path'

const CHUNK_BYTES = 64 * 1024

// Undefined on Windows, where they mean nothing to libuv's open; 0 leaves them out.
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0
const O_DIRECTORY = constants.O_DIRECTORY ?? 0
// Opening a FIFO must not wait for a writer (it is then refused as not a regular file).
const O_NONBLOCK = constants.O_NONBLOCK ?? 0

/** An error with an errno-style `code`, as `open` would throw it. */
function errno(code: 'ELOOP' | 'ENOTDIR', what: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${what}`), { code })
}

/**
 * Whether `/proc/self/fd/N/name` looks `name` up in the directory open as `N`: true on Linux with
 * /proc mounted. Checked once, by comparing what that path leads to with the directory itself.
 */
let procfsWorks: Promise<boolean> | undefined
export function procfsAvailable(): Promise<boolean> {
  procfsWorks ??= (async () => {
    if (process.platform !== 'linux') return false
    const directory = await open('/', constants.O_RDONLY | O_DIRECTORY).catch(() => undefined)
    if (directory === undefined) return false
    try {
      const [itself, throughProc] = await Promise.all([
        directory.stat({ bigint: true }),
        lstat(`/proc/self/fd/${directory.fd}/.`, { bigint: true }),
      ])
      return itself.dev === throughProc.dev && itself.ino === throughProc.ino
    } catch {
      return false
    } finally {
      await directory.close()
    }
  })()
  return procfsWorks
}

/**
 * Opens `names` below the directory `root` without following a symlink in any of them (`root`
 * itself is the host's choice and may be reached through symlinks). A symlink anywhere is ELOOP.
 *
 * On Linux each name is opened relative to the directory opened before it, through
 * `/proc/self/fd/N/name` (Node has no `openat`): every lookup is one name in a directory already
 * held open with `O_NOFOLLOW`, so swapping a checked directory for a symlink cannot redirect the
 * open, the way `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` would guarantee.
 *
 * Elsewhere (`procfs: false`), each component is lstat-ed, the file is opened by its full path
 * with `O_NOFOLLOW`, and afterwards every component is checked again to still be no symlink and
 * the file at the path to be the one opened (same device and inode). Residual race: a process
 * that can write below `root` could swap a directory for a symlink just before the open and back
 * again before the check after it; the open then reaches a file outside `root` (opening it has no
 * further effect, and it is refused only if still swapped). Linux has no such window.
 *
 * `procfs` is for the tests, which force the fallback.
 */
export async function openBeneath(
  root: string,
  names: readonly string[],
  { procfs = undefined as boolean | undefined } = {},
): Promise<FileHandle> {
  if (procfs ?? (await procfsAvailable())) return openThroughDirectoryHandles(root, names)
  return openByCheckedPath(root, names)
}

async function openThroughDirectoryHandles(root: string, names: readonly string[]): Promise<FileHandle> {
  let directory = await open(root, constants.O_RDONLY | O_DIRECTORY)
  // No names: the root itself, which the caller reports as a directory.
  if (names.length === 0) return directory
  try {
    for (const name of names.slice(0, -1)) {
      const inDirectory = `/proc/self/fd/${directory.fd}/${name}`
      const next = await open(inDirectory, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_DIRECTORY).catch(
        async (error: NodeJS.ErrnoException) => {
          // With O_DIRECTORY, Linux reports a symlink as ENOTDIR: say which it was.
          const isLink = error.code === 'ENOTDIR' && (await lstat(inDirectory)).isSymbolicLink()
          throw isLink ? errno('ELOOP', 'a component is a symbolic link') : error
        },
      )
      await directory.close()
      directory = next
    }
    return await open(
      `/proc/self/fd/${directory.fd}/${names.at(-1)}`,
      constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
    )
  } finally {
    await directory.close()
  }
}

async function openByCheckedPath(root: string, names: readonly string[]): Promise<FileHandle> {
  const prefixes = names.map((_, index) => path.join(root, ...names.slice(0, index + 1)))
  const checkComponents = async (): Promise<BigIntStats | undefined> => {
    let info: BigIntStats | undefined
    for (const [index, prefix] of prefixes.entries()) {
      info = await lstat(prefix, { bigint: true })
      if (info.isSymbolicLink()) throw errno('ELOOP', 'a component is a symbolic link')
      if (index < prefixes.length - 1 && !info.isDirectory())
        throw errno('ENOTDIR', 'a component is no directory')
    }
    return info
  }
  await checkComponents()
  const handle = await open(prefixes.at(-1) ?? root, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  try {
    const opened = await handle.stat({ bigint: true })
    const atPath = (await checkComponents()) ?? (await stat(root, { bigint: true }))
    if (atPath.dev !== opened.dev || atPath.ino !== opened.ino) {
      throw errno('ELOOP', 'the path changed while the file was opened')
    }
    return handle
  } catch (error) {
    await handle.close()
    throw error
  }
}

/**
 * Reads the open file whole, starting from `size` (its size when checked) and throwing
 * `tooLarge()` once more than `limit` bytes come, so a file that grew since its size was checked,
 * or a special file reporting size 0, is caught too. The caller checks the file's type and size.
 */
export async function readBounded(
  handle: FileHandle,
  size: number,
  limit: number,
  tooLarge: () => Error,
): Promise<Uint8Array> {
  // One byte more than the size, so the read that finds the end needs no new buffer.
  let buffer = new Uint8Array(Math.min(limit + 1, Math.max(size + 1, CHUNK_BYTES)))
  let length = 0
  for (;;) {
    if (length === buffer.length) {
      const grown = new Uint8Array(Math.min(limit + 1, buffer.length * 2))
      grown.set(buffer)
      buffer = grown
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null)
    if (bytesRead === 0) return buffer.subarray(0, length)
    length += bytesRead
    if (length > limit) throw tooLarge()
  }
}

/** {@link readBounded} for a file descriptor, on the calling thread. */
export function readBoundedSync(fd: number, size: number, limit: number, tooLarge: () => Error): Uint8Array {
  // One byte more than the size, so the read that finds the end needs no new buffer.
  let buffer = new Uint8Array(Math.min(limit + 1, size + 1))
  let length = 0
  for (;;) {
    if (length === buffer.length) {
      const grown = new Uint8Array(Math.min(limit + 1, buffer.length * 2))
      grown.set(buffer)
      buffer = grown
    }
    const read = readSync(fd, buffer, length, buffer.length - length, null)
    if (read === 0) return buffer.subarray(0, length)
    length += read
    if (length > limit) throw tooLarge()
  }
}

/**
 * Reads `file` whole on the calling thread, for a small file read before anything runs (a
 * Component.toml): its last name is not followed if it is a symlink (`open` fails with ELOOP), a
 * FIFO is not waited on, the open file is `refused` as its `fstat` says (the caller's error, or
 * `undefined` to read it), and more than `limit` bytes are `tooLarge()` (also for a file that
 * grows while it is read). Other failures are `open`'s.
 */
export function readFileBoundedSync(
  file: string,
  limit: number,
  refused: (stats: Stats) => Error | undefined,
  tooLarge: () => Error,
): Uint8Array {
  const fd = openSync(file, constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  try {
    const stats = fstatSync(fd)
    const refusal = refused(stats)
    if (refusal !== undefined) throw refusal
    if (stats.size > limit) throw tooLarge()
    return readBoundedSync(fd, stats.size, limit, tooLarge)
  } finally {
    closeSync(fd)
  }
}
