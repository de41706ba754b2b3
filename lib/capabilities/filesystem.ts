/**
 * `airssys:host/filesystem.read(path) -> result<list<u8>, string>`: reads a whole file the
 * permissions grant. The path is resolved against the base directory and made canonical with
 * `realpath` *before* the check, so `..`, absolute paths, and symlinks are judged by where they
 * really lead; then the canonical path, never the guest's spelling, is opened. Nothing is decoded:
 * `%2e%2e` is a name like any other, not `..`.
 */
import { constants } from 'node:fs'
import { open, realpath } from 'node:fs/promises'
import path from 'node:path'

import { positiveInteger } from '../util/options.js'
import type { Permissions } from './permissions.js'

/** Options of {@link createFilesystem}. */
export interface FilesystemOptions {
  /** Largest file `read` returns; a bigger one is an `err` for the guest. Default 1 MiB. */
  maxFileBytes?: number
}

/** The functions of `airssys:host/filesystem@0.1.0`. */
export interface FilesystemInterface {
  /** The file's bytes; throws (an `err` for the guest) when denied, missing or too large. */
  read(path: string): Promise<Uint8Array>
}

const DEFAULT_MAX_FILE_BYTES = 1 << 20
const CHUNK_BYTES = 64 * 1024

/** Why a file could not be read, in words that do not reveal the host's paths. */
const READ_FAILURES: Record<string, string> = {
  ENOENT: 'no such file',
  ENOTDIR: 'no such file',
  EISDIR: 'is a directory',
  EACCES: "the host's own file permissions forbid reading it",
  EPERM: "the host's own file permissions forbid reading it",
  ELOOP: 'it changed into a symlink while being opened',
}

/** A guest-facing failure (its message becomes the guest's `err`). */
function failure(requested: string, code: string | undefined): Error {
  const reason = (code !== undefined && READ_FAILURES[code]) || `cannot be read (${code ?? 'unknown error'})`
  return new Error(`${JSON.stringify(requested)}: ${reason}`)
}

/**
 * Where `absolute` really leads: its realpath, or for a path that does not exist, the realpath of
 * its deepest existing ancestor joined with the missing names (which cannot be symlinks, since
 * they do not exist). Undefined when it cannot be resolved (a symlink loop, no permission).
 */
async function canonical(absolute: string): Promise<{ real: string; exists: boolean } | undefined> {
  const missing: string[] = []
  let current = absolute
  for (;;) {
    try {
      const real = await realpath(current)
      return { real: path.join(real, ...missing.reverse()), exists: missing.length === 0 }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const parent = path.dirname(current)
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current) return undefined
      missing.push(path.basename(current))
      current = parent
    }
  }
}

/**
 * Reads the regular file `file` whole, refusing it once more than `limit` bytes come (so a file
 * that grew since its size was checked, or a special file reporting size 0, is caught too).
 */
async function readCapped(file: string, requested: string, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new Error(`${JSON.stringify(requested)}: larger than the ${limit}-byte cap`)
  // O_NOFOLLOW: `file` had no symlink in it when checked; one swapped in since is refused.
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused as not a file).
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  try {
    const stats = await handle.stat()
    if (stats.isDirectory()) throw failure(requested, 'EISDIR')
    if (!stats.isFile()) throw new Error(`${JSON.stringify(requested)}: not a regular file`)
    if (stats.size > limit) throw tooLarge()
    // One byte more than the size, so the read that finds the end needs no new buffer.
    let buffer = new Uint8Array(Math.min(limit + 1, Math.max(stats.size + 1, CHUNK_BYTES)))
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
  } finally {
    await handle.close()
  }
}

/** `airssys:host/filesystem@0.1.0` checked against `permissions`. */
export function createFilesystem(
  permissions: Permissions,
  options: FilesystemOptions = {},
): FilesystemInterface {
  const maxFileBytes = positiveInteger('maxFileBytes', options.maxFileBytes, DEFAULT_MAX_FILE_BYTES)
  return {
    async read(requested: string): Promise<Uint8Array> {
      const denied = (reason: string) => permissions.deny('filesystem.read', requested, reason)
      const quoted = JSON.stringify(requested)
      if (permissions.baseDir === undefined || permissions.filesystemRead.length === 0) {
        throw denied(`reading files is not granted (asked for ${quoted})`)
      }
      if (requested.includes('\0')) throw denied(`${quoted} contains a NUL character`)
      const resolved = await canonical(path.resolve(permissions.baseDir, requested))
      // Checked before saying whether the file exists, so a denied path tells nothing about it.
      if (resolved === undefined || !(await permissions.allowsRead(resolved.real))) {
        throw denied(`${quoted} is not inside a granted path`)
      }
      if (!resolved.exists) throw failure(requested, 'ENOENT')
      try {
        return await readCapped(resolved.real, requested, maxFileBytes)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        throw code === undefined ? error : failure(requested, code)
      }
    },
  }
}
