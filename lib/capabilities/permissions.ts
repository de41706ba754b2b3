/**
 * What a guest may ask the host for (DESIGN §6 `[permissions]`), and the record of what it was
 * refused. Built from a manifest or from plain options, so the reference host interfaces work with
 * or without a Component.toml. A denial is a CapabilityDeniedError handed to `onDenied` and
 * counted; the host function turns it into an `err` for the guest and does nothing else.
 */
import { realpath } from 'node:fs/promises'
import path from 'node:path'

import type { Manifest } from '../sandbox/manifest.js'
import { CapabilityDeniedError, ConfigError, type Capability } from '../errors.js'
import { globMatcher } from '../util/glob.js'
import { globBase, globProblem, hostPatternProblem } from '../util/patterns.js'

/** Grants, as plain options (the same meaning as a manifest's `[permissions]`). */
export interface PermissionOptions {
  /**
   * Globs of the files `filesystem.read` may return, relative to `baseDir` (`"./data/**"`). They
   * are matched against real paths: `..` and symlinks are resolved before the check. Default none.
   */
  filesystemRead?: readonly string[]
  /** The directory that the globs and the guest's relative paths start from. Required with `filesystemRead`. */
  baseDir?: string
  /** `host:port` patterns `http.fetch` may connect to (`"127.0.0.1:8080"`, `"*.example.com:443"`). Default none. */
  networkOutbound?: readonly string[]
  /** Whether `time.sleep` waits. Default false. */
  timeSleep?: boolean
}

/** Observers of a {@link Permissions} object. */
export interface PermissionHooks {
  /**
   * Called with each denial, after it is counted and before the guest receives its `err`. An
   * exception it throws is rethrown on the next tick (as an uncaught exception), never to the guest.
   */
  onDenied?: (error: CapabilityDeniedError) => void
}

/** A `network.outbound` pattern, parsed once. */
interface HostPattern {
  /** The canonical host name or address, or for `*.example.com` the suffix `.example.com`. */
  host: string
  wildcard: boolean
  port: number | '*'
}

/** A `filesystem.read` glob: its literal leading directories and a test for the rest. */
interface ReadGrant {
  literal: string
  /** Undefined when the glob has no wildcard: it grants exactly the file it names. */
  matches: ((relativePath: string) => boolean) | undefined
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 }

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

function parseGlob(glob: string): ReadGrant {
  const literal = globBase(glob)
  const rest = glob.split('/').slice(literal === '' ? 0 : literal.split('/').length)
  return { literal, matches: rest.length === 0 ? undefined : globMatcher(rest.join('/')) }
}

/** Whether `child` is `parent` or lies below it (both absolute and normalised). */
function isWithin(parent: string, child: string): boolean {
  const relative = path.relative(parent, child)
  return (
    relative === '' ||
    (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative))
  )
}

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
  readonly #readGrants: readonly ReadGrant[]
  readonly #hostPatterns: readonly HostPattern[]
  readonly #onDenied: PermissionHooks['onDenied']
  #deniedCount = 0

  /** @internal Use {@link createPermissions} or {@link permissionsFromManifest}. */
  constructor(
    grants: Required<Omit<PermissionOptions, 'baseDir'>> & { baseDir?: string },
    hooks: PermissionHooks,
  ) {
    this.baseDir = grants.baseDir
    this.filesystemRead = grants.filesystemRead
    this.networkOutbound = grants.networkOutbound
    this.timeSleep = grants.timeSleep
    this.#readGrants = grants.filesystemRead.map(parseGlob)
    this.#hostPatterns = grants.networkOutbound.map(parseHostPattern)
    this.#onDenied = hooks.onDenied
  }

  /** How many requests were denied so far. */
  get deniedCount(): number {
    return this.#deniedCount
  }

  /**
   * Whether the file at `realPath` may be read. `realPath` must be canonical (the result of
   * `realpath`, or for a missing file its real parent joined with the missing names): it is
   * matched against the globs with their literal directories canonicalised the same way, and a
   * glob whose directory leads outside `baseDir` (through a symlink) grants nothing.
   */
  async allowsRead(realPath: string): Promise<boolean> {
    if (this.baseDir === undefined || this.#readGrants.length === 0) return false
    const base = await realpath(this.baseDir).catch(() => undefined)
    if (base === undefined) return false
    for (const grant of this.#readGrants) {
      const lexical = path.resolve(base, grant.literal)
      // A directory that does not exist yet holds nothing real, so its lexical path serves.
      const root = await realpath(lexical).catch(() => lexical)
      if (!isWithin(base, root) || !isWithin(root, realPath)) continue
      const relative = path.relative(root, realPath).split(path.sep).join('/')
      if (grant.matches === undefined ? relative === '' : grant.matches(relative)) return true
    }
    return false
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
    try {
      this.#onDenied?.(error)
    } catch (hookError) {
      process.nextTick(() => {
        throw hookError
      })
    }
    return error
  }
}

/**
 * Permissions from plain options, without a manifest. Patterns are checked with the manifest's
 * rules (a bad one is a ConfigError naming it, e.g. `filesystemRead[1]`).
 */
export function createPermissions(options: PermissionOptions = {}, hooks: PermissionHooks = {}): Permissions {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('permissions: expected an object', { path: 'permissions', value: options })
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
