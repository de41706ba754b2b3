/**
 * The Component.toml schema: its sections and fields, the rules of each (names, semantic versions,
 * ranges from the policy, permission patterns) and the typed manifest they produce.
 */
import path from 'node:path'

import { DEFAULTS } from '../options.js'
import { hostPatternProblem } from '../util/patterns.js'
import { quoted } from '../util/quoted.js'
import { formatBytes } from './messages.js'
import {
  checkWasmPath,
  filesystemGlobProblem,
  unsafeToWrite,
  WASM_ALLOWED,
  WRITE_ALLOWED,
  writeDirectory,
} from './paths.js'
import { clamp } from './policy.js'
import { rangeText, type Table, type Validator } from './validator.js'

/** A validated Component.toml. Frozen all the way down. */
export interface Manifest {
  /** Absolute path of the Component.toml. */
  readonly file: string
  /** Absolute directory that the manifest's relative paths start from. */
  readonly dir: string
  /** Absolute path of the component's wasm file (inside `dir`). */
  readonly wasmPath: string
  readonly component: {
    readonly name: string
    readonly version: string
    /** As written, relative to `dir`; `<name>.wasm` when the manifest leaves it out. */
    readonly wasm: string
  }
  readonly resources: {
    readonly memory: { readonly maxBytes: number; readonly maxTableElements: number }
    /** Per-call budgets; `timeoutMs` also holds a `timeout_seconds` value, converted. */
    readonly cpu: { readonly maxFuel: number; readonly timeoutMs: number }
  }
  /** What the component may use; nothing unless granted. Enforced by the host functions. */
  readonly permissions: {
    /**
     * `read`: globs of readable files (a `dir/**` grant is also the read-only WASI preopen `/dir`).
     * `write`: directories, as written, that a WASI guest may write inside (`./scratch` is the
     * writable preopen `/scratch`).
     */
    readonly filesystem: { readonly read: readonly string[]; readonly write: readonly string[] }
    readonly network: { readonly outbound: readonly string[] }
    readonly time: { readonly sleep: boolean }
  }
}

/** The top-level sections. */
export const SECTIONS = ['component', 'resources', 'permissions'] as const

const NAME = /^[a-z0-9-]+$/
// Semantic Versioning 2.0.0, built from its grammar: MAJOR.MINOR.PATCH, an optional pre-release
// of dot-separated identifiers (numeric ones without leading zeros) and optional build metadata.
const NUMERIC = '(?:0|[1-9][0-9]*)'
const PRERELEASE_ID = `(?:${NUMERIC}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)`
const BUILD_ID = '[0-9A-Za-z-]+'
const SEMVER = new RegExp(
  `^${NUMERIC}\\.${NUMERIC}\\.${NUMERIC}(?:-${PRERELEASE_ID}(?:\\.${PRERELEASE_ID})*)?(?:\\+${BUILD_ID}(?:\\.${BUILD_ID})*)?$`,
)

/** `[component]`: name, version and the wasm file. */
export function component(
  validator: Validator,
  root: Table,
  dir: string,
): { fields: Manifest['component']; wasmPath?: string } {
  const snippet = '[component]\nname = "my-component"\nversion = "0.1.0"'
  const table = validator.section(root, '', 'component', snippet)
  if (table === undefined) return { fields: { name: '', version: '', wasm: '' } }
  validator.knownKeys(table, 'component', ['name', 'version', 'wasm'])

  const nameAllowed = 'lowercase letters, digits and "-" ([a-z0-9-]+)'
  let name = validator.string(
    validator.required(table, 'component', 'name', '"my-component"', nameAllowed),
    'component.name',
    nameAllowed,
  )
  if (name !== undefined && !NAME.test(name)) {
    validator.report({
      path: 'component.name',
      message: `${quoted(name)} must match [a-z0-9-]+`,
      value: name,
      allowed: nameAllowed,
    })
    name = undefined
  }

  const versionAllowed = 'a semantic version, such as 0.1.0'
  const versionAt = 'component.version'
  let version = validator.string(
    validator.required(table, 'component', 'version', '"0.1.0"', versionAllowed),
    versionAt,
    versionAllowed,
  )
  if (version !== undefined && !SEMVER.test(version)) {
    const message = `${quoted(version)} is not a semantic version (MAJOR.MINOR.PATCH, such as 0.1.0)`
    validator.report({ path: versionAt, message, value: version, allowed: versionAllowed })
    version = undefined
  }

  const written = validator.string(table.wasm, 'component.wasm', WASM_ALLOWED)
  // Without a valid name there is no default file name to check.
  const wasm = written ?? (name === undefined || table.wasm !== undefined ? undefined : `${name}.wasm`)
  const wasmPath = wasm === undefined ? undefined : checkWasmPath(validator, dir, wasm)
  return { fields: { name: name ?? '', version: version ?? '', wasm: wasm ?? '' }, wasmPath }
}

/** `[resources]`: memory and per-call cpu limits, inside the policy's ranges. */
export function resources(validator: Validator, root: Table): Manifest['resources'] {
  const { policy } = validator
  const memoryExample = String(clamp(1024 * 1024, policy.memoryBytes))
  const fuelExample = String(clamp(10_000_000, policy.fuel))
  const seconds = {
    min: Math.ceil(policy.timeoutMs.min / 1000),
    max: Math.floor(policy.timeoutMs.max / 1000),
  }
  const timeoutLine =
    seconds.min <= seconds.max
      ? `timeout_seconds = ${clamp(5, seconds)}`
      : `timeout_ms = ${clamp(1000, policy.timeoutMs)}`
  const memorySnippet = `[resources.memory]\nmax_bytes = ${memoryExample}`
  const cpuSnippet = `[resources.cpu]\nmax_fuel = ${fuelExample}\n${timeoutLine}`
  const result = { memory: { maxBytes: 0, maxTableElements: 0 }, cpu: { maxFuel: 0, timeoutMs: 0 } }

  const table = validator.section(root, '', 'resources', `${memorySnippet}\n\n${cpuSnippet}`)
  if (table === undefined) return result
  validator.knownKeys(table, 'resources', ['memory', 'cpu'])

  const memory = validator.section(table, 'resources', 'memory', memorySnippet)
  if (memory !== undefined) {
    validator.knownKeys(memory, 'resources.memory', ['max_bytes', 'max_table_elements'])
    const maxBytes = validator.required(
      memory,
      'resources.memory',
      'max_bytes',
      memoryExample,
      rangeText(policy.memoryBytes, formatBytes),
    )
    result.memory.maxBytes =
      validator.integer(maxBytes, 'resources.memory.max_bytes', policy.memoryBytes, formatBytes) ?? 0
    // Left out: the instance default, inside the policy's range.
    const tableAt = 'resources.memory.max_table_elements'
    result.memory.maxTableElements =
      validator.integer(memory.max_table_elements, tableAt, policy.tableElements) ??
      clamp(DEFAULTS.tableElements, policy.tableElements)
  }

  const cpu = validator.section(table, 'resources', 'cpu', cpuSnippet)
  if (cpu !== undefined) {
    validator.knownKeys(cpu, 'resources.cpu', ['max_fuel', 'timeout_seconds', 'timeout_ms'])
    const maxFuel = validator.required(cpu, 'resources.cpu', 'max_fuel', fuelExample, rangeText(policy.fuel))
    result.cpu.maxFuel = validator.integer(maxFuel, 'resources.cpu.max_fuel', policy.fuel) ?? 0
    const given = { seconds: cpu.timeout_seconds !== undefined, ms: cpu.timeout_ms !== undefined }
    const timeouts: number[] = []
    if (given.ms) {
      const ms = validator.integer(cpu.timeout_ms, 'resources.cpu.timeout_ms', policy.timeoutMs)
      if (ms !== undefined) timeouts.push(ms)
    }
    if (given.seconds && seconds.min > seconds.max) {
      // A policy range inside one second (1..500 ms) holds no whole second: an empty range such as
      // 1..0 would read as nonsense, so name the field that can express it.
      const { min, max } = policy.timeoutMs
      validator.report({
        path: 'resources.cpu.timeout_seconds',
        message: `no whole number of seconds fits the policy's timeout of ${min}..${max} ms; use timeout_ms (${min}..${max}) instead`,
        value: cpu.timeout_seconds,
        allowed: `no whole number of seconds; timeout_ms ${min}..${max}`,
      })
    } else if (given.seconds) {
      const timeoutSeconds = validator.integer(cpu.timeout_seconds, 'resources.cpu.timeout_seconds', seconds)
      if (timeoutSeconds !== undefined) timeouts.push(timeoutSeconds * 1000)
    }
    if (!given.seconds && !given.ms) {
      const inMs = `timeout_ms ${rangeText(policy.timeoutMs)}`
      const allowed = seconds.min <= seconds.max ? `timeout_seconds ${rangeText(seconds)} or ${inMs}` : inMs
      const message = `a timeout is required (allowed: ${allowed}); add \`${timeoutLine}\` (or timeout_ms for finer steps) under [resources.cpu]`
      validator.report({ path: 'resources.cpu.timeout_seconds', message, allowed, snippet: timeoutLine })
    }
    // Both may be given (timeout_ms as the finer alternative): the shorter applies, so that
    // neither lengthens the other.
    result.cpu.timeoutMs = timeouts.length > 0 ? Math.min(...timeouts) : 0
  }
  return result
}

/**
 * `[permissions]`: what the component may use (nothing unless granted). `wasmPath` is the checked
 * wasm file, which no write grant may hold.
 */
/**
 * Most characters of `filesystem.read` globs in all. Each read matches the guest's path (up to
 * 4096 characters) against every glob, in time path × glob on the JS thread: a probe's 40 globs of
 * 4,000 characters took 20 s a read. Real manifests hold a few short globs.
 */
const MAX_READ_GLOB_CHARS = 512

/** Most `filesystem.write` directories: each is a preopen, and real manifests grant one or two. */
const MAX_WRITE_GRANTS = 64

export function permissions(
  validator: Validator,
  root: Table,
  file: string,
  wasmPath: string | undefined,
): Manifest['permissions'] {
  const dir = path.dirname(file)
  const result = {
    filesystem: { read: [] as string[], write: [] as string[] },
    network: { outbound: [] as string[] },
    time: { sleep: false },
  }
  const table = validator.section(root, '', 'permissions')
  if (table === undefined) return result
  validator.knownKeys(table, 'permissions', ['filesystem', 'network', 'time'])

  const filesystem = validator.section(table, 'permissions', 'filesystem')
  if (filesystem !== undefined) {
    validator.knownKeys(filesystem, 'permissions.filesystem', ['read', 'write'])
    const allowed = 'relative globs inside the manifest\'s directory, such as "./data/**"'
    // Counted before each glob is checked against the file system: 250,000 one-character globs
    // (1 MB) took 3 s to check, then were refused by their total.
    const globs: unknown[] = Array.isArray(filesystem.read) ? filesystem.read : []
    const globChars = globs.reduce<number>(
      (total, glob) => total + (typeof glob === 'string' ? glob.length : 0),
      0,
    )
    if (globChars > MAX_READ_GLOB_CHARS) {
      validator.report({
        path: 'permissions.filesystem.read',
        message: `the globs hold ${globChars} characters, more than ${MAX_READ_GLOB_CHARS} in all`,
        value: globs,
        allowed,
      })
    } else {
      result.filesystem.read = validator.patterns(
        filesystem.read,
        'permissions.filesystem.read',
        allowed,
        (glob) => filesystemGlobProblem(dir, glob),
      )
    }
    result.filesystem.write = validator.patterns(
      filesystem.write,
      'permissions.filesystem.write',
      WRITE_ALLOWED,
      (written) => writeDirectory(dir, written, wasmPath).problem,
      MAX_WRITE_GRANTS,
    )
    const twice = result.filesystem.write.find(
      (written, index, all) =>
        all.findIndex((other) => path.resolve(dir, other) === path.resolve(dir, written)) < index,
    )
    if (twice !== undefined) {
      validator.report({
        path: 'permissions.filesystem.write',
        message: `${quoted(twice)} is granted twice`,
        value: result.filesystem.write,
        allowed: WRITE_ALLOWED,
      })
    }
    if (result.filesystem.write.length > 0) {
      const problem = unsafeToWrite(
        result.filesystem.write.map((written) => path.resolve(dir, written)),
        dir,
      )
      if (problem !== undefined) {
        validator.report({
          path: 'permissions.filesystem.write',
          message: problem,
          value: result.filesystem.write,
          allowed: WRITE_ALLOWED,
        })
      }
    }
  }
  const network = validator.section(table, 'permissions', 'network')
  if (network !== undefined) {
    validator.knownKeys(network, 'permissions.network', ['outbound'])
    const allowed = 'host:port patterns, such as "api.example.com:443" or "*.example.com:443"'
    result.network.outbound = validator.patterns(
      network.outbound,
      'permissions.network.outbound',
      allowed,
      hostPatternProblem,
    )
  }
  const time = validator.section(table, 'permissions', 'time')
  if (time !== undefined) {
    validator.knownKeys(time, 'permissions.time', ['sleep'])
    result.time.sleep = validator.boolean(time.sleep, 'permissions.time.sleep') ?? false
  }
  return result
}
