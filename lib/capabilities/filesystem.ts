/**
 * `airssys:host/filesystem.read(path) -> result<list<u8>, string>`: reads a whole file the
 * permissions grant, in two steps. First the guest's path is judged from its text alone (see
 * `guestPath` in ./permissions.ts): absolute, UNC, drive and escaping paths are refused before
 * anything on disk is touched, so a guest cannot make the host stat an SMB share or an automount.
 * Then the file is opened below the base directory one name at a time, following no symlink in
 * any component, so the path that was checked is the path that is opened. Nothing is decoded:
 * `%2e%2e` is a name like any other, not `..`.
 */
import type { FileHandle } from 'node:fs/promises'

import { openBeneath, readBounded } from '../util/open-beneath.js'
import { capabilityOptions, knownKeys, positiveInteger } from '../util/options.js'
import { guestPath, type Permissions } from './permissions.js'
import { quoted } from '../util/quoted.js'

/** @internal Re-exported for the tests, which force its fallback. */
export { openBeneath } from '../util/open-beneath.js'

/** Options of {@link createFilesystem}. */
export interface FilesystemOptions {
  /** Largest file `read` returns; a bigger one is an `err` for the guest. Default 1 MiB. */
  maxFileBytes?: number | undefined
}

/** The functions of `airssys:host/filesystem@0.1.0`. */
export interface FilesystemInterface {
  /** The file's bytes; throws (an `err` for the guest) when denied, missing or too large. */
  read(path: string): Promise<Uint8Array>
}

const DEFAULT_MAX_FILE_BYTES = 1 << 20

/** Why a file could not be read, in words that do not reveal the host's paths. */
const READ_FAILURES: Record<string, string> = {
  ENOENT: 'no such file',
  ENOTDIR: 'no such file',
  EISDIR: 'is a directory',
  EACCES: "the host's own file permissions forbid reading it",
  EPERM: "the host's own file permissions forbid reading it",
}

/** A guest-facing failure (its message becomes the guest's `err`). */
function failure(requested: string, code: string | undefined): Error {
  const reason = (code !== undefined && READ_FAILURES[code]) || `cannot be read (${code ?? 'unknown error'})`
  return new Error(`${quoted(requested)}: ${reason}`)
}

/**
 * Reads the open regular file whole, refusing it once more than `limit` bytes come (so a file
 * that grew since its size was checked, or a special file reporting size 0, is caught too).
 */
async function readCapped(handle: FileHandle, requested: string, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new Error(`${quoted(requested)}: larger than the ${limit}-byte cap`)
  const stats = await handle.stat()
  if (stats.isDirectory()) throw failure(requested, 'EISDIR')
  if (!stats.isFile()) throw new Error(`${quoted(requested)}: not a regular file`)
  if (stats.size > limit) throw tooLarge()
  return readBounded(handle, stats.size, limit, tooLarge)
}

/** The keys of {@link FilesystemOptions}. */
export const FILESYSTEM_OPTIONS: ReadonlySet<string> = new Set(['maxFileBytes'])

/** `airssys:host/filesystem@0.1.0` checked against `permissions`. */
export function createFilesystem(
  permissions: Permissions,
  options: FilesystemOptions = {},
): FilesystemInterface {
  const own = capabilityOptions(options)
  knownKeys('createFilesystem', own, FILESYSTEM_OPTIONS)
  const { maxFileBytes: given } = own
  const maxFileBytes = positiveInteger('maxFileBytes', given, DEFAULT_MAX_FILE_BYTES)
  return {
    async read(requested: string): Promise<Uint8Array> {
      const denied = (reason: string) => permissions.deny('filesystem.read', requested, reason)
      const shown = quoted(requested)
      const { baseDir } = permissions
      if (baseDir === undefined || permissions.filesystemRead.length === 0) {
        throw denied(`reading files is not granted (asked for ${shown})`)
      }
      // Both checks are lexical and come before any file access, so a denied path tells nothing
      // about what exists there and costs the host no lookup.
      const { relative, problem } = guestPath(requested)
      if (problem !== undefined) throw denied(`${shown} ${problem}`)
      const refused = permissions.readProblem(relative)
      if (refused !== undefined) throw denied(`${shown} ${refused}`)
      let handle: FileHandle
      try {
        handle = await openBeneath(baseDir, relative === '' ? [] : relative.split('/'))
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === 'ELOOP') throw denied(`${shown} passes through a symbolic link, which is not followed`)
        throw failure(requested, code)
      }
      try {
        return await readCapped(handle, requested, maxFileBytes)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        throw code === undefined ? error : failure(requested, code)
      } finally {
        await handle.close()
      }
    },
  }
}
