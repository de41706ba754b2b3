/**
 * The manifest's paths stay inside its directory. The wasm file is checked at validation (lexically,
 * then one name at a time: no symlink in any component) and read by `readComponentWasm`, which
 * opens it below the manifest's directory following no symlink, so the file compiled is the file
 * that was checked even if a directory on its path is swapped for a symlink in between. The
 * literal part of each filesystem grant is checked lexically and through its real path.
 */
import { type Dir, lstatSync, opendirSync, realpathSync, type Stats } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'

import { ConfigError } from '../errors.js'
import { openBeneath, readBounded } from '../util/open-beneath.js'
import { quoted } from '../util/quoted.js'
import { globBase, globProblem, isGlobSegment } from '../util/patterns.js'
import { formatBytes, reported } from './messages.js'
import type { Manifest } from './schema.js'
import type { Validator } from './validator.js'

/** The file `loadManifest` looks for when given a directory. */
export const MANIFEST_FILE = 'Component.toml'

const WASM_AT = 'component.wasm'
/** What `component.wasm` may be, as validation errors say it. */
export const WASM_ALLOWED = "a relative path to a file inside the manifest's directory, through no symlink"

/** `candidate` is `root` or inside it (both real paths). */
function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate)
  const leaves = relative === '..' || relative.startsWith(`..${path.sep}`)
  return !leaves && !path.isAbsolute(relative)
}

/** The real path of `dir` (any path), or, where it cannot be resolved, its absolute path. */
export function realPath(dir: string): string {
  try {
    return realpathSync(dir)
  } catch {
    return path.resolve(dir)
  }
}

/** The names below `dir` that lead to `resolved` (already known to be inside it, lexically). */
function namesBelow(dir: string, resolved: string): string[] {
  const relative = path.relative(dir, resolved)
  return relative === '' ? [] : relative.split(path.sep)
}

/**
 * Whether `directory` holds a plugin's manifest. A manifest's wasm file or write grant inside
 * another plugin's directory is refused: that plugin's own write grants could reach it (a plugin
 * granted `./data` nested inside another whose wasm is in `data`, or the other way round).
 */
function holdsManifest(directory: string): boolean {
  return lstatSync(path.join(directory, MANIFEST_FILE), { throwIfNoEntry: false }) !== undefined
}

/**
 * Why a plugin's manifest or wasm file with more than one name is refused: its other names may be
 * in another plugin's writable directory (an archive extracted later can make such a link), whose
 * guest would then rewrite this plugin's code or grants for its next load.
 */
export function hardLinkProblem(links: number | bigint): string {
  return (
    `has ${links} names (hard links): a plugin whose write grant holds another of them could rewrite ` +
    "it for this plugin's next load; copy the plugin's files rather than link them"
  )
}

/** Why a path inside another plugin's directory (`nested`, which holds its manifest) is refused. */
function nestedProblem(written: string, dir: string, nested: string, what: string): string {
  return (
    `${quoted(written)} lies inside another plugin's directory (${quoted(path.relative(dir, path.join(nested, MANIFEST_FILE)))}), ` +
    `whose guest, or this one, could then rewrite ${what}`
  )
}

/** One name on the way below a directory, as the disk has it now (`info`: none when missing). */
interface Step {
  name: string
  prefix: string
  info: Stats | undefined
  last: boolean
}

/**
 * `names` below `dir`, one at a time, each with what `lstat` says of the path so far (no symlink
 * is followed); the walk ends at the first name that does not exist.
 */
function* stepsBelow(dir: string, names: readonly string[]): Generator<Step> {
  for (const [index, name] of names.entries()) {
    const prefix = path.join(dir, ...names.slice(0, index + 1))
    let info: Stats | undefined
    try {
      info = lstatSync(prefix)
    } catch {
      info = undefined
    }
    yield { name, prefix, info, last: index === names.length - 1 }
    if (info === undefined) return
  }
}

/** Most characters of a host path a message shows: it holds the manifest's own text. */
const SHOWN_PATH_CHARS = 300

/** A host path (where a manifest's path leads) as a message shows it: quoted, escaped and cut. */
function shownPath(hostPath: string): string {
  return quoted(hostPath, SHOWN_PATH_CHARS)
}

/**
 * Why `written` is refused when `link`, the name `name` on its way below `dir`, is a symlink: none
 * is followed, and one that leads out of the directory says where to.
 */
function symlinkProblem(dir: string, written: string, name: string, link: string): string {
  let real: string | undefined
  try {
    real = realpathSync(link)
  } catch {
    real = undefined
  }
  return real !== undefined && !isInside(realPath(dir), real)
    ? `${quoted(written)} leaves the manifest's directory through a symlink (${quoted(name)}, to ${shownPath(real)})`
    : `${quoted(written)} passes through a symlink (${quoted(name)}), which is not followed`
}

/**
 * Checks `component.wasm`: relative, inside the manifest's directory, a file, and reached through
 * no symlink (even one that stays inside: `readComponentWasm` follows none, so accepting one here
 * would only defer the refusal).
 */
export function checkWasmPath(validator: Validator, dir: string, wasm: string): string | undefined {
  const report = (message: string) =>
    validator.report({ path: WASM_AT, message, value: wasm, allowed: WASM_ALLOWED })
  // The path as the manifest wrote it, cut after 200 characters (where it leads: `shownPath`).
  const shown = quoted(wasm)
  if (wasm === '') return report('cannot be empty')
  if (path.isAbsolute(wasm) || path.win32.isAbsolute(wasm)) {
    return report(`${shown} must be relative, not absolute`)
  }
  const resolved = path.resolve(dir, wasm)
  if (!isInside(dir, resolved)) return report(`${shown} leaves the manifest's directory`)
  let info: Stats | undefined
  for (const step of stepsBelow(dir, namesBelow(dir, resolved))) {
    info = step.info
    if (info === undefined) return report(`${shown} does not exist (${shownPath(resolved)})`)
    if (info.isSymbolicLink()) return report(symlinkProblem(dir, wasm, step.name, step.prefix))
    if (!step.last && !info.isDirectory()) return report(`${shown} does not exist (${shownPath(resolved)})`)
    if (!step.last && holdsManifest(step.prefix)) {
      return report(nestedProblem(wasm, dir, step.prefix, 'the wasm file'))
    }
  }
  if (info === undefined || !info.isFile()) return report(`${shown} is not a file`)
  if (info.nlink > 1) return report(`${shown} ${hardLinkProblem(info.nlink)}`)
  return resolved
}

/** A ConfigError about `component.wasm`, shaped like the manifest's validation errors. */
function wasmError(manifest: Manifest, message: string, cause?: unknown): ConfigError {
  const { wasm } = manifest.component
  const problem = {
    path: WASM_AT,
    message: `${quoted(wasm)} ${message}`,
    value: reported(wasm),
    allowed: WASM_ALLOWED,
  }
  return new ConfigError(`${manifest.file}: ${WASM_AT}: ${problem.message}`, {
    ...problem,
    problems: [problem],
    ...(cause === undefined ? {} : { cause }),
  })
}

/**
 * The bytes of the manifest's wasm file, read from one open file: it is opened below
 * `manifest.dir` one name at a time following no symlink (`openBeneath`), so what is read is
 * what `checkWasmPath` approved, whatever was swapped since. A file larger than `maxBytes` (the
 * engine's `maxModuleBytes`) is refused before its bytes are held, and so is one that grows past
 * it while being read. Every refusal is a ConfigError whose `path` is `component.wasm`.
 */
export async function readComponentWasm(manifest: Manifest, maxBytes: number): Promise<Uint8Array> {
  const { dir, wasmPath } = manifest
  // Checked again because a Manifest can be built by hand; loadManifest's are already inside.
  if (wasmPath === '' || !isInside(dir, wasmPath)) {
    throw wasmError(manifest, "leaves the manifest's directory")
  }
  let handle: FileHandle
  try {
    handle = await openBeneath(dir, namesBelow(dir, wasmPath))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ELOOP') throw wasmError(manifest, 'passes through a symlink, which is not followed', error)
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw wasmError(manifest, `does not exist (${wasmPath})`, error)
    }
    throw wasmError(manifest, `cannot be read (${code ?? String(error)})`, error)
  }
  try {
    const stats = await handle.stat()
    if (!stats.isFile()) throw wasmError(manifest, 'is not a file')
    if (stats.nlink > 1) throw wasmError(manifest, hardLinkProblem(stats.nlink))
    const tooLarge = () =>
      wasmError(manifest, `is larger than ${formatBytes(maxBytes)}, the engine's maxModuleBytes`)
    if (stats.size > maxBytes) throw tooLarge()
    return await readBounded(handle, stats.size, maxBytes, tooLarge)
  } finally {
    await handle.close()
  }
}

/**
 * A glob's problem, including a symlink in its literal part, even one that stays inside: neither
 * filesystem.read nor the WASI preopen of a `dir/**` grant follows one, so the grant could only
 * fail later.
 */
export function filesystemGlobProblem(dir: string, glob: string): string | undefined {
  const problem = globProblem(glob)
  if (problem !== undefined) return problem
  const base = globBase(glob)
  for (const { name, prefix, info, last } of stepsBelow(dir, namesBelow(dir, path.resolve(dir, base)))) {
    // Not there yet. filesystem.read opens the file below the manifest's directory one name at a
    // time and follows no symlink, so one made later cannot lead out either.
    if (info === undefined) return undefined
    if (info.isSymbolicLink()) return symlinkProblem(dir, base, name, prefix)
    // Nothing below a file can match (and a `dir/**` grant could not be preopened).
    if (last && !info.isDirectory()) return `${quoted(base)} is not a directory`
  }
  return undefined
}

/**
 * Why writes to `writable` (absolute directories) must be refused for a file there with a name
 * outside them, or `undefined`. Through such a hard link a guest writing its scratch file
 * rewrites a file elsewhere: its own Component.toml or wasm, or another plugin's (a plugin archive
 * can ship the link). Names are counted per inode, so links whose every name is in the writable
 * directories (which a guest may make with WASI's `link`) are no reason to refuse. A
 * Component.toml there is refused too: it is another plugin's, which a host loading it (through a
 * symlink the archive ships, or finding plugins below one another) would load as the guest wrote
 * it. Stops at {@link MAX_WRITABLE_ENTRIES}.
 */
export function unsafeToWrite(writable: readonly string[], base: string): string | undefined {
  /**
   * Per inode with a second name: its link count, how many of its names are here and the first.
   * Counted, not kept: each directory is walked once, so no name is met twice.
   */
  const linked = new Map<string, { links: bigint; found: bigint; first: string }>()
  // Each directory once, by inode: a grant given twice, or one inside another, would count a name
  // twice and pass it off as the link's other name.
  const walked = new Set<string>()
  const unchecked = (at: string, error: unknown) =>
    `${quoted(path.relative(base, at))} in a writable directory cannot be checked for hard links ` +
    `(${(error as NodeJS.ErrnoException).code ?? String(error)})`
  const tooDeep = `the writable directories are nested too deep to check for hard links`
  let seen = 0
  let directories = 0
  // What the lstat calls cost the JS thread: the bytes of their paths and the names resolved.
  let pathBytes = 0
  let lookups = 0
  const pending = writable.map((directory) => ({ directory, depth: directory.split(path.sep).length }))
  while (pending.length > 0) {
    const { directory, depth } = pending.pop()!
    let entries: Dir
    try {
      const stats = lstatSync(directory, { bigint: true })
      const inode = `${stats.dev}:${stats.ino}`
      if (walked.has(inode)) continue
      walked.add(inode)
      // Read an entry at a time: a directory of a million names would be read whole first.
      entries = opendirSync(directory)
    } catch (error) {
      // Missing: reported where the grant is checked (or removed meanwhile). Anything else, such
      // as a path past PATH_MAX, would leave what is below unchecked.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue
      return unchecked(directory, error)
    }
    try {
      for (let entry = entries.readSync(); entry !== null; entry = entries.readSync()) {
        if (++seen > MAX_WRITABLE_ENTRIES) {
          return `the writable directories hold more than ${MAX_WRITABLE_ENTRIES} entries, too many to check for hard links`
        }
        const entryPath = path.join(directory, entry.name)
        pathBytes += entryPath.length
        lookups += depth + 1
        if (pathBytes > MAX_WALKED_PATH_BYTES || lookups > MAX_WALKED_LOOKUPS) return tooDeep
        if (entry.isDirectory()) {
          // Opening a directory costs the JS thread some 30 µs: 100,000 empty ones took 4 s.
          if (++directories > MAX_WRITABLE_DIRECTORIES) {
            return `the writable directories hold more than ${MAX_WRITABLE_DIRECTORIES} directories, too many to check for hard links`
          }
          pending.push({ directory: entryPath, depth: depth + 1 })
          continue
        }
        if (entry.isSymbolicLink()) continue
        if (entry.name === MANIFEST_FILE) {
          return (
            `${quoted(path.relative(base, entryPath))} in a writable directory is a plugin's manifest, which ` +
            'the guest could rewrite before that plugin is loaded: grant writes to a directory that holds none'
          )
        }
        const stats = lstatSync(entryPath, { throwIfNoEntry: false, bigint: true })
        if (stats === undefined || stats.nlink < 2n) continue
        const inode = `${stats.dev}:${stats.ino}`
        const known = linked.get(inode)
        if (known === undefined) linked.set(inode, { links: stats.nlink, found: 1n, first: entryPath })
        else known.found++
      }
    } catch (error) {
      return unchecked(directory, error)
    } finally {
      entries.closeSync()
    }
  }
  for (const { links, found, first } of linked.values()) {
    if (found < links) {
      return (
        `${quoted(path.relative(base, first))} in a writable directory has a second name outside the ` +
        'writable directories (a hard link), through which the guest could rewrite a file elsewhere: copy ' +
        'the plugin without its links to grant writes'
      )
    }
  }
  return undefined
}

/** Most entries {@link unsafeToWrite} looks at in a manifest's writable directories. */
const MAX_WRITABLE_ENTRIES = 100_000

/** Most directories {@link unsafeToWrite} opens below them. */
const MAX_WRITABLE_DIRECTORIES = 10_000

/**
 * What {@link unsafeToWrite} may cost the JS thread, each lstat walking its whole path: in all, the
 * characters of the paths and the names they resolve. 100,000 entries of ordinary depth fit; a
 * guest nesting files 15 directories of 240 characters deep, or 2,000 directories deep, made one
 * load block the JS thread for seconds.
 */
const MAX_WALKED_PATH_BYTES = 32 << 20
const MAX_WALKED_LOOKUPS = 2_000_000

/** What a `filesystem.write` entry may be, as validation errors say it. */
export const WRITE_ALLOWED =
  'relative paths of existing directories inside the manifest\'s directory, through no symlink, such as "./scratch"'

/** A `filesystem.write` grant: the names below the manifest's directory, or why it is refused. */
export type WriteDirectory = { names: string[]; problem?: undefined } | { names?: undefined; problem: string }

/**
 * Checks a `filesystem.write` entry: a relative path (no glob) to a directory that exists inside
 * the manifest's directory and is reached through no symlink, not even one that stays inside (a
 * guest that may write there must not reach anything else by a link the host swaps in). Neither
 * the manifest's directory itself (where Component.toml is) nor a directory holding the wasm file
 * may be granted: the guest could rewrite its own limits or code for the next load.
 */
export function writeDirectory(dir: string, written: string, wasmPath: string | undefined): WriteDirectory {
  const refuse = (problem: string): WriteDirectory => ({ problem })
  if (written === '') return refuse('cannot be empty')
  if (written.includes('\0')) return refuse('must not contain NUL')
  if (written.includes('\\')) return refuse(`${quoted(written)}: use "/" as the separator`)
  if (path.isAbsolute(written) || path.win32.isAbsolute(written)) {
    return refuse(`${quoted(written)} must be relative, not absolute`)
  }
  if (isGlobSegment(written)) {
    return refuse(`${quoted(written)} is a pattern; filesystem.write takes directories, such as "./scratch"`)
  }
  const resolved = path.resolve(dir, written)
  if (!isInside(dir, resolved)) return refuse(`${quoted(written)} leaves the manifest's directory`)
  const names = namesBelow(dir, resolved)
  if (names.length === 0) {
    return refuse(
      `${quoted(written)} is the manifest's own directory (with Component.toml): grant a subdirectory`,
    )
  }
  for (const { name, prefix, info, last } of stepsBelow(dir, names)) {
    if (info === undefined) return refuse(`${quoted(written)} does not exist (${shownPath(resolved)})`)
    if (info.isSymbolicLink()) return refuse(symlinkProblem(dir, written, name, prefix))
    if (!info.isDirectory()) {
      return refuse(
        last
          ? `${quoted(written)} is not a directory`
          : `${quoted(written)} does not exist (${shownPath(resolved)})`,
      )
    }
    // The writable directory itself is walked for manifests (unsafeToWrite).
    if (!last && holdsManifest(prefix))
      return refuse(nestedProblem(written, dir, prefix, "that plugin's files"))
  }
  if (wasmPath !== undefined && wasmPath !== '' && isInside(resolved, wasmPath)) {
    return refuse(`${quoted(written)} holds the component's wasm file, which the guest could then replace`)
  }
  return { names }
}
