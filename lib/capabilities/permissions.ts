/**
 * What a guest may ask the host for (Component.toml's `[permissions]`), and the record of what it
 * was refused. Built from a manifest or from plain options, so the reference host interfaces work
 * with or without a Component.toml. A denial is a CapabilityDeniedError handed to `onDenied` and
 * counted; the host function turns it into an `err` for the guest and does nothing else.
 */
import { capabilityOptions } from '../util/options.js'
import path from 'node:path'
import { inspect } from 'node:util'

import type { Manifest } from '../sandbox/manifest.js'
import { CapabilityDeniedError, ConfigError, type Capability } from '../errors.js'
import { globMatcher, type GlobMatcher } from '../util/glob.js'
import { globProblem, hostPatternProblem } from '../util/patterns.js'
import { isOptionRecord } from '../util/own.js'

/** Grants, as plain options (the same meaning as a manifest's `[permissions]`). */
export interface PermissionOptions {
  /**
   * Globs of the files `filesystem.read` may return, relative to `baseDir` (`"./data/**"`). They
   * are matched against the guest's path as written, once `.` and `..` are resolved lexically;
   * absolute paths and paths leading out of `baseDir` grant nothing, and `filesystem.read` follows
   * no symlink below `baseDir`. Default none.
   */
  filesystemRead?: readonly string[] | undefined
  /** The directory that the globs and the guest's relative paths start from. Required with `filesystemRead`. */
  baseDir?: string | undefined
  /** `host:port` patterns `http.fetch` may connect to (`"127.0.0.1:8080"`, `"*.example.com:443"`). Default none. */
  networkOutbound?: readonly string[] | undefined
  /** Whether `time.sleep` waits. Default false. */
  timeSleep?: boolean | undefined
}

/** Observers of a {@link Permissions} object. */
export interface PermissionHooks {
  /**
   * Called with each denial, after it is counted and before the guest receives its `err`. What it
   * throws or rejects with becomes a process warning (`AIRSSYS_ONDENIED_FAILED`), never the guest's.
   */
  onDenied?: ((error: CapabilityDeniedError) => void | Promise<void>) | undefined
}

/** A `network.outbound` pattern, parsed once. */
interface HostPattern {
  /** The canonical host name or address, or for `*.example.com` the suffix `.example.com`. */
  host: string
  wildcard: boolean
  port: number | '*'
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 }

/** Least time between two AIRSSYS_ONDENIED_FAILED warnings of one set of permissions. */
const WARNING_INTERVAL_MS = 1000

/** The host the WHATWG URL parser makes of `host` (lowercase, IPv4 normalised, IDN as punycode). */
function canonicalHost(host: string): string {
  return new URL(`http://${host}/`).hostname
}

function parseHostPattern(pattern: string): HostPattern {
  const colon = pattern.lastIndexOf(':')
  const host = pattern.slice(0, colon)
  const port = pattern.slice(colon + 1)
  const wildcard = host.startsWith('*.')
  return {
    host: wildcard ? `.${canonicalHost(host.slice(2))}` : canonicalHost(host),
    wildcard,
    port: port === '*' ? '*' : Number(port),
  }
}

/** A guest's file path made relative to `baseDir`, or why it is refused. */
export type GuestPath = { relative: string; problem?: undefined } | { relative?: undefined; problem: string }

/**
 * The guest's `requested` path as `/`-separated names below `baseDir` (`data/a.txt`; `''` for
 * `baseDir` itself), decided from the text alone: nothing here touches the filesystem, so a path
 * naming an SMB share, an automount or a hanging network mount is refused before the host goes
 * near it. `.` and `..` are resolved lexically, which is sound because `filesystem.read` follows
 * no symlink below `baseDir`. Refused: NUL, any `\` (a separator on Windows and part of every
 * UNC and device path there, so it is not accepted as a name character anywhere), absolute and
 * `//server/share` paths, drive paths (`C:\`, `C:x`), on Windows any `:` (alternate data
 * streams), and `..` leading above `baseDir`.
 */
export function guestPath(requested: string): GuestPath {
  // Checked first: the rest is linear in the path, on the JS thread, and a guest's memory is the
  // only other bound (an outside probe's 23 MiB path blocked the event loop for 5 s).
  if (requested.length > MAX_PATH_CHARS) return { problem: `is longer than ${MAX_PATH_CHARS} characters` }
  if (requested.includes('\0')) return { problem: 'contains a NUL character' }
  if (requested.includes('\\')) return { problem: 'contains "\\": use "/" as the separator' }
  if (requested.startsWith('/'))
    return { problem: "is absolute: paths are relative to the component's directory" }
  if (/^[A-Za-z]:/.test(requested) || (process.platform === 'win32' && requested.includes(':'))) {
    return { problem: "names a drive: paths are relative to the component's directory" }
  }
  const names: string[] = []
  for (const name of requested.split('/')) {
    if (name === '' || name === '.') continue
    if (name !== '..') names.push(name)
    else if (names.pop() === undefined) return { problem: "leads out of the component's directory" }
  }
  return { relative: names.join('/') }
}

/** The longest path a guest may ask to read: Linux's PATH_MAX. */
export const MAX_PATH_CHARS = 4096

/**
 * Most steps matching one path against the read grants may take (a state visited, or a range of a
 * `[...]` class tested; a step costs some 30 ns): a grant of `./data/**` then `*.json` walks a 4 KB
 * path in some 21,000, and grants whose literal start differs from the path's in a step or two.
 * The budget is shared by the grants in their order: six such grants of one literal start fit a
 * path of `PATH_MAX`.
 */
export const MAX_GLOB_STEPS = 1 << 17

/** Checks one list option and its patterns, naming the first bad entry. */
function patternList(
  name: string,
  value: unknown,
  problemOf: (pattern: string) => string | undefined,
): readonly string[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) {
    throw new ConfigError(`${name}: expected an array of strings`, { path: name, value })
  }
  value.forEach((pattern: unknown, index) => {
    const at = `${name}[${index}]`
    if (typeof pattern !== 'string')
      throw new ConfigError(`${at}: expected a string`, { path: at, value: pattern })
    const problem = problemOf(pattern)
    if (problem !== undefined) throw new ConfigError(`${at}: ${problem}`, { path: at, value: pattern })
  })
  return Object.freeze([...(value as string[])])
}

/**
 * The grants of one component (or one set of host interfaces) and the count of what it was
 * refused. Create it with {@link createPermissions} or {@link permissionsFromManifest}.
 */
export class Permissions {
  /** Absolute directory that filesystem globs and relative paths start from (undefined: no filesystem grants). */
  readonly baseDir: string | undefined
  /** Granted `filesystem.read` globs, relative to `baseDir`. */
  readonly filesystemRead: readonly string[]
  /** Granted `network.outbound` `host:port` patterns. */
  readonly networkOutbound: readonly string[]
  /** Whether `time.sleep` is granted. */
  readonly timeSleep: boolean
  readonly #readGrants: readonly GlobMatcher[]
  readonly #hostPatterns: readonly HostPattern[]
  readonly #onDenied: PermissionHooks['onDenied']
  #deniedCount = 0
  /** When the last AIRSSYS_ONDENIED_FAILED warning was emitted, and the failures since. */
  #lastWarning = Number.NEGATIVE_INFINITY
  #unwarned = 0

  /** @internal Use {@link createPermissions} or {@link permissionsFromManifest}. */
  constructor(
    grants: Required<Omit<PermissionOptions, 'baseDir'>> & { baseDir?: string },
    hooks: PermissionHooks,
  ) {
    this.baseDir = grants.baseDir
    this.filesystemRead = grants.filesystemRead
    this.networkOutbound = grants.networkOutbound
    this.timeSleep = grants.timeSleep
    this.#readGrants = grants.filesystemRead.map(globMatcher)
    this.#hostPatterns = grants.networkOutbound.map(parseHostPattern)
    this.#onDenied = hooks.onDenied
  }

  /** How many requests were denied so far. */
  get deniedCount(): number {
    return this.#deniedCount
  }

  /**
   * Whether a guest may read `requested` (a path relative to `baseDir`, as the guest wrote it),
   * judged from the text alone (see `guestPath` in this module): nothing is resolved on disk. It is the
   * first half of the rule; the second is `filesystem.read` opening the file below `baseDir`
   * without following any symlink, so the path checked is the path opened.
   */
  allowsRead(requested: string): boolean {
    return this.readProblem(requested) === undefined
  }

  /**
   * Why a guest may not read `requested` (see {@link allowsRead}), or `undefined`. Matching runs on
   * the JS thread, its work growing with the path's length times each glob's states (a class's
   * ranges each count): a read whose matching would take more than 131,072 steps in all is refused
   * unmatched (512 characters of `*a*a…` against a 4 KB path took 100–145 ms a read, and a guest
   * reading in a loop held the event loop most of its call). A grant whose literal start differs
   * from the path's costs a step or two.
   */
  readProblem(requested: string): string | undefined {
    if (this.baseDir === undefined) return 'is not inside a granted path (no filesystem.read grant)'
    const { relative, problem } = guestPath(requested)
    if (problem !== undefined) return problem
    let spent = 0
    for (const matches of this.#readGrants) {
      const matched = matches(relative, MAX_GLOB_STEPS - spent)
      if (matched === true) return undefined
      spent += matches.visits
      if (matched === undefined || spent > MAX_GLOB_STEPS) {
        return `is too long to check against the granted globs (${relative.length} characters: more than ${MAX_GLOB_STEPS} steps)`
      }
    }
    return 'is not inside a granted path'
  }

  /** Whether a connection to `url`'s host and port (80/443 when the URL has none) is granted. */
  allowsConnection(url: URL): boolean {
    const port = url.port === '' ? DEFAULT_PORTS[url.protocol] : Number(url.port)
    if (port === undefined) return false
    const host = url.hostname
    return this.#hostPatterns.some(
      (pattern) =>
        (pattern.port === '*' || pattern.port === port) &&
        (pattern.wildcard
          ? host.endsWith(pattern.host) && host.length > pattern.host.length
          : host === pattern.host),
    )
  }

  /**
   * Records a denial: counts it, hands it to `onDenied`, and returns it for the host function to
   * throw (its message becomes the guest's `err`, so it names only what the guest asked for).
   */
  deny(capability: Capability, request: string, reason: string): CapabilityDeniedError {
    const error = new CapabilityDeniedError(`${capability} denied: ${reason}`, { capability, request })
    this.#deniedCount++
    // A guest can cause denials at will: a hook that throws or rejects must not end the process
    // (an uncaught exception) nor change what the guest gets. It becomes a process warning.
    // At most one a second: a guest making thousands of denials a second would otherwise fill the
    // host's log with as many stack traces (a probe's 2,000 in 0.5 s). The next one counts the rest.
    const warn = (hookError: unknown) => {
      const now = Date.now()
      if (now - this.#lastWarning < WARNING_INTERVAL_MS) {
        this.#unwarned++
        return
      }
      const more = this.#unwarned === 0 ? '' : ` (and ${this.#unwarned} more failures since the last warning)`
      this.#lastWarning = now
      this.#unwarned = 0
      process.emitWarning(`onDenied failed for a ${capability} denial: ${inspect(hookError)}${more}`, {
        type: 'AirssysWasmWarning',
        code: 'AIRSSYS_ONDENIED_FAILED',
      })
    }
    try {
      const returned: unknown = this.#onDenied?.(error)
      // A thenable too; `warn` itself never throws (inspect shows any value).
      if (returned !== null && typeof returned === 'object' && 'then' in returned) {
        Promise.resolve(returned).catch(warn)
      }
    } catch (hookError) {
      warn(hookError)
    }
    return error
  }
}

/**
 * Permissions from plain options, without a manifest. Patterns are checked with the manifest's
 * rules (a bad one is a ConfigError naming it, e.g. `filesystemRead[1]`).
 */
export function createPermissions(
  given: PermissionOptions = {},
  givenHooks: PermissionHooks = {},
): Permissions {
  const options = capabilityOptions(given)
  const hooks = capabilityOptions(givenHooks)
  if (!isOptionRecord(options)) {
    throw new ConfigError('permissions: expected an object', { path: 'permissions', value: options })
  }
  if (!isOptionRecord(hooks)) {
    throw new ConfigError('permission hooks: expected an object', { path: 'hooks', value: hooks })
  }
  const known = ['filesystemRead', 'baseDir', 'networkOutbound', 'timeSleep']
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new ConfigError(`unknown permission option "${key}" (known: ${known.join(', ')})`, { path: key })
    }
  }
  const filesystemRead = patternList('filesystemRead', options.filesystemRead, globProblem)
  const networkOutbound = patternList('networkOutbound', options.networkOutbound, hostPatternProblem)
  const { baseDir, timeSleep = false } = options
  if (baseDir !== undefined && typeof baseDir !== 'string') {
    throw new ConfigError('baseDir: expected a directory path', { path: 'baseDir', value: baseDir })
  }
  if (filesystemRead.length > 0 && baseDir === undefined) {
    throw new ConfigError('baseDir is required with filesystemRead: the globs are relative to it', {
      path: 'baseDir',
    })
  }
  if (typeof timeSleep !== 'boolean') {
    throw new ConfigError('timeSleep: expected a boolean', { path: 'timeSleep', value: timeSleep })
  }
  if (hooks.onDenied !== undefined && typeof hooks.onDenied !== 'function') {
    throw new ConfigError('onDenied: expected a function', { path: 'onDenied', value: hooks.onDenied })
  }
  return new Permissions(
    {
      filesystemRead,
      baseDir: baseDir === undefined ? undefined : path.resolve(baseDir),
      networkOutbound,
      timeSleep,
    },
    hooks,
  )
}

/** Permissions from a validated manifest's `[permissions]`; paths are relative to its directory. */
export function permissionsFromManifest(manifest: Manifest, hooks: PermissionHooks = {}): Permissions {
  const { filesystem, network, time } = manifest.permissions
  return createPermissions(
    {
      filesystemRead: filesystem.read,
      baseDir: manifest.dir,
      networkOutbound: network.outbound,
      timeSleep: time.sleep,
    },
    hooks,
  )
}
