/**
 * Component.toml (DESIGN §6): parsing with smol-toml, validation of every field against the
 * host's policy, and the typed, frozen manifest that `loadComponent` runs by.
 *
 * The manifest is written by the component's author and the policy by the host: limits come from
 * the manifest but must sit inside the policy's ranges, so a component cannot raise its own limits.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs'
import path from 'node:path'

import { parse, TomlDate, TomlError } from 'smol-toml'

import { ConfigError, type ConfigProblem } from '../errors.js'
import { globBase, globProblem, hostPatternProblem } from '../util/patterns.js'

/** The file `loadManifest` looks for when given a directory. */
export const MANIFEST_FILE = 'Component.toml'

/** An inclusive range of allowed values. */
export interface Range {
  readonly min: number
  readonly max: number
}

/** The host's limits on what a manifest may ask for. */
export interface Policy {
  /** `resources.memory.max_bytes`. Default 512 KiB..4 MiB. */
  readonly memoryBytes: Range
  /** `resources.cpu.max_fuel` (per call). Default 1,000..100,000,000. */
  readonly fuel: Range
  /** `resources.cpu.timeout_ms` (per call); `timeout_seconds` must fit it too. Default 1..300,000. */
  readonly timeoutMs: Range
  /** `resources.memory.max_table_elements`. Default 1..100,000. */
  readonly tableElements: Range
}

/** A policy to apply instead of the default: each bound given widens or narrows that range. */
export type PolicyOptions = { readonly [Key in keyof Policy]?: Partial<Range> }

/** The ranges DESIGN §6 names. */
export const DEFAULT_POLICY: Policy = deepFreeze({
  memoryBytes: { min: 512 * 1024, max: 4 * 1024 * 1024 },
  fuel: { min: 1_000, max: 100_000_000 },
  timeoutMs: { min: 1, max: 300_000 },
  tableElements: { min: 1, max: 100_000 },
})

/** `max_table_elements` when the manifest leaves it out (the instance default), capped by the policy. */
const DEFAULT_TABLE_ELEMENTS = 10_000

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
    readonly filesystem: { readonly read: readonly string[] }
    readonly network: { readonly outbound: readonly string[] }
    readonly time: { readonly sleep: boolean }
  }
}

/** Options of {@link loadManifest}. */
export interface LoadManifestOptions {
  /** The host's policy; omitted ranges and bounds keep {@link DEFAULT_POLICY}'s. */
  policy?: PolicyOptions
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

type Table = Record<string, unknown>

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof TomlDate)
}

/** How a TOML value reads in a message: `string "1MiB"`, `float 1.5`, `a table`. */
function describe(value: unknown): string {
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`
  if (typeof value === 'bigint') return `integer ${value}`
  if (typeof value === 'number') return `float ${value}`
  if (typeof value === 'boolean') return `boolean ${value}`
  if (value instanceof TomlDate) return `date ${value.toISOString()}`
  return Array.isArray(value) ? 'an array' : 'a table'
}

/** TOML integers are parsed as bigint; report them as numbers when that loses nothing. */
function reported(value: unknown): unknown {
  if (typeof value === 'bigint' && value >= Number.MIN_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER) {
    return Number(value)
  }
  return value
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution))
    }
    previous = current
  }
  return previous[b.length] ?? 0
}

/** The known key a typo most likely meant, if any is close enough. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined
  for (const candidate of known) {
    const distance = editDistance(key, candidate)
    const tolerance = Math.max(2, Math.floor(candidate.length / 4))
    if (distance <= tolerance && (best === undefined || distance < best.distance))
      best = { key: candidate, distance }
  }
  return best?.key
}

function join(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}.${key}`
}

function formatBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`
  return `${bytes} bytes`
}

function clamp(value: number, range: Range): number {
  return Math.min(Math.max(value, range.min), range.max)
}

/** Collects problems while walking the parsed TOML, so all of them are reported at once. */
class Validator {
  readonly problems: ConfigProblem[] = []

  constructor(readonly policy: Policy) {}

  report(problem: ConfigProblem): undefined {
    this.problems.push('value' in problem ? { ...problem, value: reported(problem.value) } : problem)
    return undefined
  }

  /** Reports keys of `table` that the schema does not know (a typo must not drop a limit silently). */
  knownKeys(table: Table, prefix: string, known: readonly string[]): void {
    for (const key of Object.keys(table)) {
      if (known.includes(key)) continue
      const closest = closestKey(key, known)
      const hint = closest === undefined ? `known keys: ${known.join(', ')}` : `did you mean "${closest}"?`
      this.report({ path: join(prefix, key), message: `unknown key (${hint})`, allowed: known.join(', ') })
    }
  }

  /** A sub-table; reports it when it is missing (with `snippet`) or not a table. */
  section(parent: Table, prefix: string, key: string, snippet?: string): Table | undefined {
    const value = parent[key]
    const at = join(prefix, key)
    if (value === undefined) {
      if (snippet === undefined) return undefined
      return this.report({ path: at, message: `missing section; add:\n${snippet}`, snippet })
    }
    if (isTable(value)) return value
    return this.report({
      path: at,
      message: `expected a table, got ${describe(value)}`,
      value,
      allowed: 'a table',
    })
  }

  /** A required field: reports it when missing, with a line to paste. */
  required(table: Table, prefix: string, key: string, example: string): unknown {
    const value = table[key]
    if (value !== undefined) return value
    const at = join(prefix, key)
    const snippet = `${key} = ${example}`
    return this.report({ path: at, message: `missing; add \`${snippet}\` under [${prefix}]`, snippet })
  }

  string(value: unknown, at: string, allowed: string): string | undefined {
    if (value === undefined || typeof value === 'string') return value
    return this.report({ path: at, message: `expected a string, got ${describe(value)}`, value, allowed })
  }

  /** An integer inside `range`; TOML floats are refused even when whole, to keep limits exact. */
  integer(value: unknown, at: string, range: Range, unit?: (n: number) => string): number | undefined {
    if (value === undefined) return undefined
    const allowed = `${range.min}..${range.max}`
    if (typeof value !== 'bigint') {
      const message = `expected an integer, got ${describe(value)}`
      return this.report({ path: at, message, value, allowed })
    }
    if (value < BigInt(range.min) || value > BigInt(range.max)) {
      const shown = unit ? ` (${unit(range.min)}..${unit(range.max)})` : ''
      const side = value < BigInt(range.min) ? 'below' : 'above'
      const message = `${value} is ${side} the allowed range ${allowed}${shown}`
      return this.report({ path: at, message, value, allowed })
    }
    return Number(value)
  }

  boolean(value: unknown, at: string): boolean | undefined {
    if (value === undefined || typeof value === 'boolean') return value
    const message = `expected a boolean, got ${describe(value)}`
    return this.report({ path: at, message, value, allowed: 'true or false' })
  }

  /** An array of strings, each checked by `problemOf`. */
  patterns(
    value: unknown,
    at: string,
    allowed: string,
    problemOf: (item: string) => string | undefined,
  ): string[] {
    if (value === undefined) return []
    if (!Array.isArray(value)) {
      this.report({
        path: at,
        message: `expected an array of strings, got ${describe(value)}`,
        value,
        allowed,
      })
      return []
    }
    const accepted: string[] = []
    value.forEach((item: unknown, index) => {
      const itemAt = `${at}[${index}]`
      if (typeof item !== 'string') {
        const message = `expected a string, got ${describe(item)}`
        this.report({ path: itemAt, message, value: item, allowed })
        return
      }
      const problem = problemOf(item)
      if (problem === undefined) accepted.push(item)
      else this.report({ path: itemAt, message: problem, value: item, allowed })
    })
    return accepted
  }
}

const NAME = /^[a-z0-9-]+$/
// Semantic Versioning 2.0.0, built from its grammar: MAJOR.MINOR.PATCH, an optional pre-release
// of dot-separated identifiers (numeric ones without leading zeros) and optional build metadata.
const NUMERIC = '(?:0|[1-9][0-9]*)'
const PRERELEASE_ID = `(?:${NUMERIC}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)`
const BUILD_ID = '[0-9A-Za-z-]+'
const SEMVER = new RegExp(
  `^${NUMERIC}\\.${NUMERIC}\\.${NUMERIC}(?:-${PRERELEASE_ID}(?:\\.${PRERELEASE_ID})*)?(?:\\+${BUILD_ID}(?:\\.${BUILD_ID})*)?$`,
)

/** `candidate` is `root` or inside it (both real paths). */
function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate)
  const leaves = relative === '..' || relative.startsWith(`..${path.sep}`)
  return !leaves && !path.isAbsolute(relative)
}

function realDir(dir: string): string {
  try {
    return realpathSync(dir)
  } catch {
    return path.resolve(dir)
  }
}

/** Checks `component.wasm`: relative, inside the manifest's directory even through symlinks, a file. */
function checkWasmPath(validator: Validator, dir: string, wasm: string): string | undefined {
  const at = 'component.wasm'
  const allowed = "a relative path to a file inside the manifest's directory"
  if (wasm === '') return validator.report({ path: at, message: 'cannot be empty', value: wasm, allowed })
  if (path.isAbsolute(wasm) || path.win32.isAbsolute(wasm)) {
    return validator.report({
      path: at,
      message: `"${wasm}" must be relative, not absolute`,
      value: wasm,
      allowed,
    })
  }
  const resolved = path.resolve(dir, wasm)
  if (!isInside(dir, resolved)) {
    const message = `"${wasm}" leaves the manifest's directory`
    return validator.report({ path: at, message, value: wasm, allowed })
  }
  let real: string
  try {
    real = realpathSync(resolved)
  } catch {
    return validator.report({
      path: at,
      message: `"${wasm}" does not exist (${resolved})`,
      value: wasm,
      allowed,
    })
  }
  if (!isInside(realDir(dir), real)) {
    const message = `"${wasm}" leaves the manifest's directory through a symlink (to ${real})`
    return validator.report({ path: at, message, value: wasm, allowed })
  }
  if (!statSync(real).isFile()) {
    return validator.report({ path: at, message: `"${wasm}" is not a file`, value: wasm, allowed })
  }
  return resolved
}

/** A glob's problem, including a symlink in its literal part that leads outside the directory. */
function filesystemGlobProblem(dir: string, glob: string): string | undefined {
  const problem = globProblem(glob)
  if (problem !== undefined) return problem
  const base = globBase(glob)
  if (base === '') return undefined
  let real: string
  try {
    real = realpathSync(path.resolve(dir, base))
  } catch {
    // Not there yet: the host functions check the real path again on every access.
    return undefined
  }
  return isInside(realDir(dir), real)
    ? undefined
    : `"${base}" leads outside the manifest's directory (to ${real})`
}

function component(
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
    validator.required(table, 'component', 'name', '"my-component"'),
    'component.name',
    nameAllowed,
  )
  if (name !== undefined && !NAME.test(name)) {
    validator.report({
      path: 'component.name',
      message: `"${name}" must match [a-z0-9-]+`,
      value: name,
      allowed: nameAllowed,
    })
    name = undefined
  }

  const versionAllowed = 'a semantic version, such as 0.1.0'
  const versionAt = 'component.version'
  let version = validator.string(
    validator.required(table, 'component', 'version', '"0.1.0"'),
    versionAt,
    versionAllowed,
  )
  if (version !== undefined && !SEMVER.test(version)) {
    const message = `"${version}" is not a semantic version (MAJOR.MINOR.PATCH, such as 0.1.0)`
    validator.report({ path: versionAt, message, value: version, allowed: versionAllowed })
    version = undefined
  }

  const wasmAllowed = "a relative path to a file inside the manifest's directory"
  const written = validator.string(table.wasm, 'component.wasm', wasmAllowed)
  // Without a valid name there is no default file name to check.
  const wasm = written ?? (name === undefined || table.wasm !== undefined ? undefined : `${name}.wasm`)
  const wasmPath = wasm === undefined ? undefined : checkWasmPath(validator, dir, wasm)
  return { fields: { name: name ?? '', version: version ?? '', wasm: wasm ?? '' }, wasmPath }
}

function resources(validator: Validator, root: Table): Manifest['resources'] {
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
    const maxBytes = validator.required(memory, 'resources.memory', 'max_bytes', memoryExample)
    result.memory.maxBytes =
      validator.integer(maxBytes, 'resources.memory.max_bytes', policy.memoryBytes, formatBytes) ?? 0
    const tableAt = 'resources.memory.max_table_elements'
    result.memory.maxTableElements =
      validator.integer(memory.max_table_elements, tableAt, policy.tableElements) ??
      clamp(DEFAULT_TABLE_ELEMENTS, policy.tableElements)
  }

  const cpu = validator.section(table, 'resources', 'cpu', cpuSnippet)
  if (cpu !== undefined) {
    validator.knownKeys(cpu, 'resources.cpu', ['max_fuel', 'timeout_seconds', 'timeout_ms'])
    const maxFuel = validator.required(cpu, 'resources.cpu', 'max_fuel', fuelExample)
    result.cpu.maxFuel = validator.integer(maxFuel, 'resources.cpu.max_fuel', policy.fuel) ?? 0
    if (cpu.timeout_seconds !== undefined && cpu.timeout_ms !== undefined) {
      const message = 'give either timeout_seconds or timeout_ms, not both'
      validator.report({ path: 'resources.cpu.timeout_ms', message, value: cpu.timeout_ms })
    } else if (cpu.timeout_ms !== undefined) {
      result.cpu.timeoutMs =
        validator.integer(cpu.timeout_ms, 'resources.cpu.timeout_ms', policy.timeoutMs) ?? 0
    } else if (cpu.timeout_seconds !== undefined) {
      const timeoutSeconds = validator.integer(cpu.timeout_seconds, 'resources.cpu.timeout_seconds', seconds)
      result.cpu.timeoutMs = (timeoutSeconds ?? 0) * 1000
    } else {
      const message = `a timeout is required; add \`${timeoutLine}\` (or timeout_ms for finer steps) under [resources.cpu]`
      validator.report({ path: 'resources.cpu.timeout_seconds', message, snippet: timeoutLine })
    }
  }
  return result
}

function permissions(validator: Validator, root: Table, dir: string): Manifest['permissions'] {
  const result = {
    filesystem: { read: [] as string[] },
    network: { outbound: [] as string[] },
    time: { sleep: false },
  }
  const table = validator.section(root, '', 'permissions')
  if (table === undefined) return result
  validator.knownKeys(table, 'permissions', ['filesystem', 'network', 'time'])

  const filesystem = validator.section(table, 'permissions', 'filesystem')
  if (filesystem !== undefined) {
    validator.knownKeys(filesystem, 'permissions.filesystem', ['read'])
    const allowed = 'relative globs inside the manifest\'s directory, such as "./data/**"'
    result.filesystem.read = validator.patterns(
      filesystem.read,
      'permissions.filesystem.read',
      allowed,
      (glob) => filesystemGlobProblem(dir, glob),
    )
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

/** Checks a policy option and fills in the default bounds. */
export function resolvePolicy(options: PolicyOptions = {}): Policy {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('policy: expected an object', { path: 'policy', value: options })
  }
  const resolved: Record<string, Range> = {}
  const names = Object.keys(DEFAULT_POLICY)
  for (const key of Object.keys(options)) {
    if (!names.includes(key)) {
      throw new ConfigError(`policy.${key}: unknown policy range (known: ${names.join(', ')})`, {
        path: `policy.${key}`,
        allowed: names.join(', '),
      })
    }
  }
  for (const key of names as (keyof Policy)[]) {
    const given: unknown = options[key] ?? {}
    const at = `policy.${key}`
    if (
      typeof given !== 'object' ||
      given === null ||
      Object.keys(given).some((bound) => !['min', 'max'].includes(bound))
    ) {
      throw new ConfigError(`${at}: expected { min?, max? }, got ${JSON.stringify(given)}`, {
        path: at,
        value: given,
      })
    }
    const range = { ...DEFAULT_POLICY[key], ...given }
    for (const bound of ['min', 'max'] as const) {
      const value = range[bound]
      if (!Number.isSafeInteger(value) || value < 0) {
        const at = `policy.${key}.${bound}`
        throw new ConfigError(`${at}: expected a non-negative integer, got ${String(value)}`, {
          path: at,
          value,
        })
      }
    }
    if (range.min > range.max) {
      throw new ConfigError(`${at}: min ${range.min} is above max ${range.max}`, { path: at, value: range })
    }
    resolved[key] = range
  }
  return deepFreeze(resolved as unknown as Policy)
}

/** Renders one problem as a line (plus its snippet, indented) of an error message. */
function render(problem: ConfigProblem): string {
  const where = problem.path === undefined ? '' : `${problem.path}: `
  return `${where}${problem.message}`.replaceAll('\n', '\n    ')
}

function fail(file: string, problems: ConfigProblem[]): never {
  const [first] = problems
  if (first === undefined) throw new Error('fail() needs a problem')
  const message =
    problems.length === 1
      ? `${file}: ${render(first)}`
      : `${file} has ${problems.length} problems:\n${problems.map((problem) => `  - ${render(problem)}`).join('\n')}`
  throw new ConfigError(message, {
    path: first.path,
    value: first.value,
    allowed: first.allowed,
    snippet: first.snippet,
    problems,
  })
}

function manifestFile(dirOrFile: string): string {
  const resolved = path.resolve(dirOrFile)
  let isDirectory: boolean
  try {
    isDirectory = statSync(resolved).isDirectory()
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error)
    throw new ConfigError(`cannot read ${resolved}: ${reason}`, { cause: error })
  }
  return isDirectory ? path.join(resolved, MANIFEST_FILE) : resolved
}

function readToml(file: string): Table {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const reason =
      code === 'ENOENT'
        ? `no ${path.basename(file)} in ${path.dirname(file)}`
        : `cannot read ${file}: ${code}`
    throw new ConfigError(reason, { cause: error })
  }
  try {
    // Integers as bigint tell `1` from `1.0` and keep huge values exact for the range checks.
    return parse(text.replace(/^\uFEFF/, ''), { integersAsBigInt: true })
  } catch (error) {
    if (!(error instanceof TomlError)) throw error
    const reason = error.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? error.message
    const message = `${file}:${error.line}:${error.column}: TOML syntax error: ${reason}\n${error.codeblock}`
    throw new ConfigError(message.trimEnd(), { line: error.line, column: error.column, cause: error })
  }
}

/**
 * Reads and validates a Component.toml: `dirOrFile` is its directory or the file itself. Every
 * field of DESIGN §6 is checked (types, ranges from `policy`, the wasm path, permission patterns,
 * unknown keys), and all problems are thrown together as one ConfigError whose `problems` lists
 * each with its `path`, `value`, `allowed` and, for a missing section, a `snippet` to paste.
 * A TOML syntax error is a ConfigError with `line` and `column`.
 */
export function loadManifest(dirOrFile: string, options: LoadManifestOptions = {}): Manifest {
  const policy = resolvePolicy(options.policy)
  const file = manifestFile(dirOrFile)
  const dir = path.dirname(file)
  const root = readToml(file)
  const validator = new Validator(policy)
  validator.knownKeys(root, '', ['component', 'resources', 'permissions'])
  const { fields, wasmPath } = component(validator, root, dir)
  const manifest = {
    file,
    dir,
    wasmPath: wasmPath ?? '',
    component: fields,
    resources: resources(validator, root),
    permissions: permissions(validator, root, dir),
  }
  if (validator.problems.length > 0) fail(file, validator.problems)
  return deepFreeze(manifest)
}
