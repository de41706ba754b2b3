/**
 * Every option a caller gives is checked here, once, where it enters: the engine's, instantiation's,
 * each call's, the Sandbox's and the capability interfaces'. This module holds the option types,
 * their defaults and one rule per option. Each numeric rule has an upper bound, so no value that
 * passes can overflow what the native side turns it into (a `u32`, a `u64`, a `Duration`); the
 * addon re-checks only what would otherwise panic. A value that breaks its rule is a ConfigError
 * whose `path` names the option, with the `value` and what is `allowed`.
 */
import { availableParallelism } from 'node:os'
import { types } from 'node:util'

import type { ResolvedAddress } from './capabilities/http.js'
import { createPermissions, type Permissions } from './capabilities/permissions.js'
import { createWasiHttpClient, wasiHttpPermissions, type WasiHttp } from './capabilities/wasi-http.js'
import { type CapabilityDeniedError, ConfigError, WasmError } from './errors.js'
import type { NativeEngineOptions, NativeInstanceOptions, NativeWasiOptions } from './native.js'
import { bare, isOptionRecord, NONE, ownOptions } from './util/own.js'
import { shownName } from './util/names.js'
import { quoted } from './util/quoted.js'
import { followed, isAbortSignal, type SignalSource } from './util/signal.js'

/** Options of `new Engine()`; all optional. */
export interface EngineOptions {
  /** Make fuel metering available (per-call `fuel` budgets). Default false. */
  fuel?: boolean | undefined
  /** Granularity of wall-clock deadlines, in ms (a native ticker thread), 1 to 1000. Default 5. */
  epochTickMs?: number | undefined
  /**
   * Pooling instance allocator: preallocated slots for fast instantiation. Default false.
   * `maxInstances` is the number of slots (1 to 4,096; default 256); `maxMemoryBytes` the most
   * bytes *one* linear memory may take (64 KiB to 4 GiB; default 64 MiB), and each slot's tables hold at most 20,000
   * elements. Instance limits above these are accepted, but a growth past the pool's is denied
   * like one past the limit (counted in `deniedGrowths`; a `MemoryLimitError` under
   * `trapOnMemoryDenial`), and `metrics().memory.limitBytes` still shows the instance's limit.
   * A module or component whose memory *starts* larger than `maxMemoryBytes` cannot be compiled
   * on such an engine at all: a `CompileError`.
   */
  pooling?: { maxInstances?: number | undefined; maxMemoryBytes?: number | undefined } | false | undefined
  /**
   * On-disk compiled-code cache directory, created if missing. A compile whose bytes were compiled
   * before by an engine with the same settings loads the stored machine code instead of compiling.
   * Loading runs that code: the directory must be writable only by users you trust.
   */
  cacheDir?: string | undefined
  /** Maximum wasm stack per call, in bytes (64 KiB to 2 MiB). Default 512 KiB. */
  maxWasmStackBytes?: number | undefined
  /**
   * Largest module or component that compile and validate accept, in bytes (WAT text counts as
   * given), 8 bytes to 1 GiB. Beyond it: CompileError, before any parsing. Default 64 MiB.
   */
  maxModuleBytes?: number | undefined
  /**
   * Which compiler turns wasm into machine code. `'cranelift'` (default) optimizes: slower to
   * compile, faster to run. `'winch'` is wasmtime's baseline compiler: one pass, several times
   * faster to compile, slower code; it does not support the tail-call, function-references and
   * relaxed-SIMD proposals (which Cranelift does): a module using them fails to compile with
   * CompileError. Neither compiler takes exceptions, GC types (`externref` among them), threads,
   * custom page sizes or wide arithmetic. Deadlines, limits and the component model work with
   * both; fuel too, but Winch charges a bulk memory or table instruction as one, whatever its size
   * (README, Fuel): give its calls a `timeoutMs` as well.
   */
  compiler?: Compiler | undefined
  /**
   * Compile in a child process bounded in time and memory, for inputs you do not trust: every
   * compile of this engine (sync or async, `loadComponent`'s too) runs in a new Node process that
   * is killed after `timeoutMs` (1 ms to about 24.8 days; default 60,000; the process's start, some
   * 150 ms, counts) or once it holds `memoryBytes` more than when its compile began (16 MiB to
   * 2^48; default 2 GiB), and the compile then throws a `CompileError` saying which. At most
   * `concurrency` (1 to 256; default `os.availableParallelism()`) such processes run at once for
   * the engine's async compiles; the others wait their turn, their deadline starting with their
   * process (a sync compile never waits). A compile answered by `cacheDir` or by the in-process
   * cache starts no process. The memory is read every 5 ms, so a compile may pass the bound by
   * what it allocates in that time. Default: compiles run in this process, unbounded
   * (SECURITY.md, "Bound compiles of untrusted uploads").
   */
  compileLimits?:
    | { timeoutMs?: number | undefined; memoryBytes?: number | undefined; concurrency?: number | undefined }
    | undefined
}

/** The compilers an engine can use (see {@link EngineOptions.compiler}). */
export type Compiler = 'cranelift' | 'winch'

const COMPILERS: readonly Compiler[] = ['cranelift', 'winch']

function isCompiler(value: unknown): value is Compiler {
  return (COMPILERS as readonly unknown[]).includes(value)
}

/** JS functions given to a guest, keyed by import name (see the README on how keys match imports). */
export type Imports = Record<string, unknown>

/** Options of `instantiate` / `instantiateSync`. */
export interface InstantiateOptions {
  limits: {
    /** Total bytes of all linear memories of the instance, 0 to 2**48. Required. */
    memoryBytes: number
    /** Largest table, in elements, 0 to 10,000,000. Default 10,000. */
    tableElements?: number | undefined
    /** Core instances the store may create (components create several), 0 to 10,000. Default 100. */
    instances?: number | undefined
    /** Tables the store may create, 0 to 10,000. Default 100. */
    tables?: number | undefined
    /**
     * Linear memories the store may create, 0 to 100. Default 4: each reserves 4 GiB of address space, so a
     * guest declaring many memories could otherwise exhaust the process's address space.
     */
    memories?: number | undefined
    /** Trap with MemoryLimitError when growth is denied, instead of `memory.grow` returning -1. */
    trapOnMemoryDenial?: boolean | undefined
    /**
     * Component resource handles the instance may hold at once (the guest's resources JS keeps,
     * and host objects the guest keeps), 0 to 1,000,000; one more fails the call with HostLimitError.
     * Default 10,000.
     */
    resourceHandles?: number | undefined
  }
  /** Default fuel budget per call (needs `new Engine({ fuel: true })`). Omitted: unmetered. */
  fuel?: number | undefined
  /** Default wall-clock deadline per call, in ms (at most 2**31 - 1). Omitted: none. */
  timeoutMs?: number | undefined
  /** Host functions the guest imports. */
  imports?: Imports | undefined
  /**
   * `instantiate` only: aborting stops a start function that is still running (AbortError).
   * Start functions also run under `fuel` and `timeoutMs`.
   */
  signal?: AbortSignal | undefined
  /**
   * WASI (preview 2 for components, preview 1 for core modules), linked when the guest imports it.
   * Omitted: locked down (no env, args, files or sockets; clocks and random; stdout and stderr
   * inherited). `false`: not linked, so a WASI import is a LinkError.
   */
  wasi?: WasiOptions | false | undefined
}

/**
 * What `instantiateSync` takes: `InstantiateOptions` without `signal` (nothing on the JS thread
 * could abort it while it blocks; one passed anyway is a ConfigError).
 */
export type InstantiateSyncOptions = Omit<InstantiateOptions, 'signal'>

/** What a WASI guest gets. Everything not given is denied. */
export interface WasiOptions {
  /** Where the guest's stdout goes; `pipe` keeps it for `Instance.takeOutput`. Default `inherit`. */
  stdout?: 'inherit' | 'pipe' | 'ignore' | undefined
  /** Where the guest's stderr goes. Default `inherit`. */
  stderr?: 'inherit' | 'pipe' | 'ignore' | undefined
  /** Environment variables. Default none. */
  env?: Record<string, string> | undefined
  /** Command-line arguments, `argv[0]` included. Default none. */
  args?: readonly string[] | undefined
  /**
   * Directories the guest sees: guest path -> host path (read-only), or guest path ->
   * `{ host, write: true }` (the guest may create, write, rename and delete inside it; nothing
   * resolves outside it). Default none.
   */
  preopens?: Record<string, string | { host: string; write?: boolean | undefined }> | undefined
  /**
   * What the guest reads from stdin: a string (as UTF-8) or bytes, then end of file; `'inherit'`
   * reads the process's own stdin. Default: empty (end of file at once). Waiting for stdin ends at
   * the call's deadline.
   */
  stdin?: string | Uint8Array | undefined
  /** Cap per piped stream; the oldest bytes are dropped first. Default 1 MiB, at most 1 GiB. */
  outputLimitBytes?: number | undefined
  /**
   * What a piped stream does once it holds `outputLimitBytes`: `'drop'` its oldest bytes (the
   * default), or `'wait'`: the guest's next write waits, as on a full pipe, until
   * `takeOutput()` makes room (for a host that takes output while `call` runs, printing it as it
   * comes; a guest nobody reads waits until its deadline). A waiting stream holds at least 4 bytes.
   */
  outputOverflow?: 'drop' | 'wait' | undefined
  /**
   * wasi:http outgoing requests (linked for every component with WASI). Each request is checked
   * against `allow` (`host:port` patterns, as `[permissions] network.outbound`), with the same DNS
   * rules as `airssys:host/http`; a refused one is the wasi:http error `http-request-denied`.
   * Default: every request refused. Requests are made during `call` only (a `callSync` blocks
   * the JS thread that makes them: they fail with `internal-error`).
   */
  http?: WasiHttpOptions | undefined
}

/** `wasi.http`: what a guest may request over wasi:http. */
export interface WasiHttpOptions {
  /** Granted `host:port` patterns (`'127.0.0.1:8080'`, `'*.example.com:443'`). Default none. */
  allow?: readonly string[] | undefined
  /**
   * Largest request or response body, in bytes; also the most bytes of request bodies an instance
   * holds at once, its requests together, each until its response ends. Default 1 MiB.
   */
  maxBodyBytes?: number | undefined
  /**
   * Longest wait of each step of a request, in ms: connecting (DNS included), then the response's
   * status and headers, then each piece of the body as the guest reads it. Default 30 s. The
   * guest's own `request-options` timeouts may only shorten these; the whole request lasts at
   * most as long as the call that made it.
   */
  timeoutMs?: number | undefined
  /**
   * Most requests in progress at once, a response whose body the guest still holds included;
   * past it a request fails with the wasi:http error `connection-limit-reached`. Default 32,
   * at most 1,000.
   */
  maxConcurrentRequests?: number | undefined
  /** Called with each refusal (a CapabilityDeniedError), e.g. to log it. */
  onDenied?: ((error: CapabilityDeniedError) => void) | undefined
  /** Resolves host names (default: the system resolver), e.g. to pin names in tests. */
  lookup?: ((hostname: string) => Promise<readonly ResolvedAddress[]>) | undefined
}

/** Per-call options. */
export interface CallOptions {
  /** Fuel budget for this call (overrides the instance default). */
  fuel?: number | undefined
  /** Wall-clock deadline for this call, in ms (overrides the instance default; at most 2**31 - 1). */
  timeoutMs?: number | undefined
}

/** Per-call options of the async `call`. */
export interface AsyncCallOptions extends CallOptions {
  /** Aborting stops the running guest (at the next epoch tick) and rejects with AbortError. */
  signal?: AbortSignal | undefined
}

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

/**
 * The longest deadline or host timeout, in ms (about 24.8 days): the most Node's own timers accept
 * (`setTimeout` fires at once beyond it, `AbortSignal.timeout` throws beyond 2**32 - 1), so one
 * bound serves both sides. The addon adds the deadline to the current time; a far larger value
 * (`1e300`) overflowed that and ended the process.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1

/** An integer from `min` to `max`, both included. */
interface IntegerRule {
  readonly kind: 'integer'
  readonly min: number
  readonly max: number
}

/** A duration in ms above 0 and at most `max`; fractions allowed. */
interface MillisecondsRule {
  readonly kind: 'milliseconds'
  readonly max: number
}

type Rule = IntegerRule | MillisecondsRule

const integer = (min: number, max: number): IntegerRule => ({ kind: 'integer', min, max })

/**
 * One rule per option, by name. The bounds are far above any real use and far below what the
 * native side can hold: every integer is exact in a double and fits the Rust type it becomes.
 */
export const RULES = {
  // Engine.
  /** A deadline is checked once per tick, so a longer tick makes every timeout late by that much. */
  epochTickMs: integer(1, 1000),
  /** The native pool threads' stacks are sized for 2 MiB of wasm stack (and host frames). */
  maxWasmStackBytes: integer(64 * KiB, 2 * MiB),
  /** Each slot reserves its memories' address space up front. */
  'pooling.maxInstances': integer(1, 4_096),
  /** A wasm32 memory holds at most 4 GiB. */
  'pooling.maxMemoryBytes': integer(64 * KiB, 4 * GiB),
  /** The addon refuses more than 1 GiB: one input must not hold a compile thread for minutes. */
  maxModuleBytes: integer(8, GiB),
  /** As long as a Node timer waits. */
  'compileLimits.timeoutMs': integer(1, MAX_TIMEOUT_MS),
  /** Below 16 MiB no real compile fits; above 2^48, no machine's memory. */
  'compileLimits.memoryBytes': integer(16 * MiB, 2 ** 48),
  /** Each is a process. */
  'compileLimits.concurrency': integer(1, 256),

  // Instances and calls.
  /** More than a 48-bit address space can map: beyond it a limit means nothing. */
  'limits.memoryBytes': integer(0, 2 ** 48),
  /** The JS API's largest table. */
  'limits.tableElements': integer(0, 10_000_000),
  'limits.instances': integer(0, 10_000),
  'limits.tables': integer(0, 10_000),
  /** Each linear memory reserves 4 GiB of address space (no bounds checks in compiled code). */
  'limits.memories': integer(0, 100),
  'limits.resourceHandles': integer(0, 1_000_000),
  /** Exact in a double, and within the u64 wasmtime counts fuel in. */
  fuel: integer(0, Number.MAX_SAFE_INTEGER),
  timeoutMs: { kind: 'milliseconds', max: MAX_TIMEOUT_MS } as MillisecondsRule,
  /** Kept in host memory, per piped stream. */
  'wasi.outputLimitBytes': integer(0, GiB),
  'wasi.http.maxBodyBytes': integer(1, GiB),
  'wasi.http.timeoutMs': integer(1, MAX_TIMEOUT_MS),
  /** Each one is a socket: a process has a few thousand file descriptors in all. */
  'wasi.http.maxConcurrentRequests': integer(1, 1_000),

  // Capability interfaces.
  /** A capability's own timeout (`http.fetch`): whole ms, as `AbortSignal.timeout` takes them. */
  hostTimeoutMs: integer(1, MAX_TIMEOUT_MS),
  maxBodyBytes: integer(1, GiB),
  maxFileBytes: integer(1, GiB),
  /** As many as fetch follows. */
  maxRedirects: integer(0, 20),
} as const satisfies Record<string, Rule>

/** An option with a rule in {@link RULES}. */
export type OptionName = keyof typeof RULES

/**
 * A value as a message shows it: never whole (a string is cut after 80 characters) and never by
 * running the caller's code (`[5]` and `new Number(5)` printed as an in-range 5 through their
 * `toString`, and a string of ten million characters made a message as long). Never throws.
 */
export function shown(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `string ${quoted(value, 80)}`
    case 'bigint':
      return `${value}n`
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value)
    case 'symbol':
      return 'a symbol'
    case 'function':
      return 'a function'
  }
  if (value === null) return 'null'
  if (types.isBoxedPrimitive(value)) return 'a boxed primitive'
  try {
    if (Array.isArray(value)) return 'an array'
  } catch {
    // A revoked proxy.
  }
  return 'an object'
}

/** What a rule accepts, as `allowed` says it. */
function allowed(rule: Rule): string {
  return rule.kind === 'integer' ? `${rule.min}..${rule.max}` : `0 < ms <= ${rule.max}`
}

/**
 * `value` when it keeps `name`'s rule, `fallback` when it is undefined, else a ConfigError naming
 * `path` (the option as the caller spelled it; `name` by default). The one numeric check.
 */
export function checkOption(name: OptionName, value: unknown, fallback: number, path: string = name): number {
  if (value === undefined) return fallback
  const rule: Rule = RULES[name]
  if (typeof value === 'number') {
    if (
      rule.kind === 'integer'
        ? Number.isSafeInteger(value) && value >= rule.min && value <= rule.max
        : value > 0 && value <= rule.max
    ) {
      return value
    }
  }
  const expected =
    rule.kind === 'integer'
      ? `an integer from ${rule.min} to ${rule.max}`
      : `a number of milliseconds above 0 and at most ${rule.max}`
  throw new ConfigError(`${path}: expected ${expected}, got ${shown(value)}`, {
    path,
    value,
    allowed: allowed(rule),
  })
}

/** `checkOption` for an option without a default: undefined stays undefined. */
function optional(name: OptionName, value: unknown, path: string = name): number | undefined {
  return value === undefined ? undefined : checkOption(name, value, 0, path)
}

/** Throws unless `value` is a plain object (not null, not an array). */
function object(what: string, value: unknown, path?: string): asserts value is Record<string, unknown> {
  if (!isOptionRecord(value)) {
    throw new ConfigError(`${what} must be an object`, path === undefined ? {} : { path, value })
  }
}

/**
 * Checks host code given by import name: an object whose entries are functions (a root function
 * of a component) or objects of them. A Map or a Date there read as nothing given, which the
 * instantiation then reported as missing imports.
 */
function importTables(path: string, value: unknown): void {
  object(path, value, path)
  for (const [name, entry] of Object.entries(value)) {
    if (typeof entry === 'object' && entry !== null && !isOptionRecord(entry)) {
      throw new ConfigError(`${path}["${name}"]: expected an object of functions, got ${shown(entry)}`, {
        path: `${path}.${name}`,
      })
    }
  }
}

/** Throws on the first key of `options` that is not in `known`; `prefix` leads the error's path. */
export function knownKeys(what: string, options: object, known: ReadonlySet<string>, prefix = ''): void {
  if (!isOptionRecord(options)) {
    const at = prefix === '' ? what : prefix.slice(0, -1)
    throw new ConfigError(`${at}: expected an options object, got ${shown(options)}`, {
      path: at,
      value: options,
    })
  }
  for (const key of Object.keys(options)) {
    if (!known.has(key)) unknownKey(what, key, known, prefix)
  }
}

function unknownKey(what: string, key: string, known: ReadonlySet<string>, prefix = ''): never {
  // A key of more than 128 characters by its length only (one of a megabyte was repeated whole).
  throw new ConfigError(`unknown ${what} option "${shownName(key)}" (known: ${[...known].join(', ')})`, {
    path: `${prefix}${shownName(key)}`,
  })
}

function boolean(path: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value
  throw new ConfigError(`${path}: expected a boolean, got ${shown(value)}`, { path, value })
}

/**
 * `value` when it is a function returning an AbortSignal or undefined; an AbortSignal is followed
 * by one of ours (see {@link followed}), so the caller's object is read once, here; anything
 * else, or a signal whose own code throws as it is read, is a ConfigError.
 */
export function signalSource(path: string, value: unknown): SignalSource | undefined {
  if (value === undefined || typeof value === 'function') return value as SignalSource | undefined
  // Listening to it throws our ConfigError (util/signal.ts); any other throw is the caller's trap.
  const signal = reading(path, () => (isAbortSignal(value) ? followed(value) : undefined))
  if (signal !== undefined) return signal
  throw new ConfigError(`${path}: expected an AbortSignal or a function returning one`, { path, value })
}

/** Defaults of the engine and instance options (nowhere else: the addon takes them as given). */
export const DEFAULTS = {
  fuel: false,
  epochTickMs: 5,
  maxWasmStackBytes: 512 * KiB,
  poolingMaxInstances: 256,
  poolingMaxMemoryBytes: 64 * MiB,
  tableElements: 10_000,
  instances: 100,
  tables: 100,
  memories: 4,
  resourceHandles: 10_000,
  maxModuleBytes: 64 * MiB,
  compiler: 'cranelift',
  compileTimeoutMs: 60_000,
  compileMemoryBytes: 2 * GiB,
  outputLimitBytes: MiB,
  httpMaxBodyBytes: MiB,
  httpTimeoutMs: 30_000,
  httpMaxConcurrentRequests: 32,
} as const

const ENGINE_OPTIONS = new Set([
  'fuel',
  'epochTickMs',
  'pooling',
  'cacheDir',
  'maxWasmStackBytes',
  'maxModuleBytes',
  'compiler',
  'compileLimits',
])

const COMPILE_LIMITS = new Set(['timeoutMs', 'memoryBytes', 'concurrency'])

/** How long a compile in a child process may take, and how much memory (checked; see isolated-compile.ts). */
export interface ResolvedCompileLimits {
  timeoutMs: number
  memoryBytes: number
  concurrency: number
}

/** The checked options of an engine: the addon's, and how compiles are bounded (if they are). */
export interface ResolvedEngineOptions {
  native: NativeEngineOptions
  compileLimits: ResolvedCompileLimits | undefined
}

/**
 * Runs `read` over options the caller gave: what their own code throws while they are read (a
 * getter, a proxy trap) becomes a ConfigError with it as cause; our own errors pass unchanged.
 */
export function reading<T>(what: string, read: () => T): T {
  try {
    return read()
  } catch (error) {
    if (error instanceof WasmError) throw error
    const reason = error instanceof Error ? error.message : String(error)
    throw new ConfigError(`${what}: reading them threw: ${reason}`, { path: what, cause: error })
  }
}

/** `new Engine(options)`'s options, checked, with defaults. */
export function engineOptions(options: EngineOptions): ResolvedEngineOptions {
  return reading('options', () => checkedEngineOptions(ownOptions(options)))
}

function checkedEngineOptions(options: EngineOptions): ResolvedEngineOptions {
  object('Engine options', options)
  knownKeys('Engine', options, ENGINE_OPTIONS)
  const given: unknown = options.pooling === undefined ? false : options.pooling
  if (given !== false && !isOptionRecord(given)) {
    throw new ConfigError('pooling: expected an object or false', { path: 'pooling', value: given })
  }
  const pooling = given as { maxInstances?: unknown; maxMemoryBytes?: unknown } | false
  if (pooling !== false) knownKeys('pooling', pooling, POOLING_OPTIONS, 'pooling.')
  if (options.cacheDir !== undefined && (typeof options.cacheDir !== 'string' || options.cacheDir === '')) {
    throw new ConfigError(`cacheDir: expected a directory path, got ${shown(options.cacheDir)}`, {
      path: 'cacheDir',
      value: options.cacheDir,
    })
  }
  const compiler: unknown = options.compiler === undefined ? DEFAULTS.compiler : options.compiler
  if (!isCompiler(compiler)) {
    const expected = COMPILERS.map((name) => `'${name}'`).join(' or ')
    throw new ConfigError(`compiler: expected ${expected}, got ${shown(compiler)}`, {
      path: 'compiler',
      value: compiler,
    })
  }
  const limits: unknown = options.compileLimits
  if (limits !== undefined && !isOptionRecord(limits)) {
    throw new ConfigError(`compileLimits: expected an object, got ${shown(limits)}`, {
      path: 'compileLimits',
      value: limits,
    })
  }
  const bounds = limits as { timeoutMs?: unknown; memoryBytes?: unknown; concurrency?: unknown } | undefined
  if (bounds !== undefined) knownKeys('compileLimits', bounds, COMPILE_LIMITS, 'compileLimits.')
  const compileLimits =
    bounds === undefined
      ? undefined
      : {
          timeoutMs: checkOption('compileLimits.timeoutMs', bounds.timeoutMs, DEFAULTS.compileTimeoutMs),
          memoryBytes: checkOption(
            'compileLimits.memoryBytes',
            bounds.memoryBytes,
            DEFAULTS.compileMemoryBytes,
          ),
          concurrency: checkOption('compileLimits.concurrency', bounds.concurrency, availableParallelism()),
        }
  const native = bare({
    fuel: boolean('fuel', options.fuel) ?? DEFAULTS.fuel,
    epochTickMs: checkOption('epochTickMs', options.epochTickMs, DEFAULTS.epochTickMs),
    maxWasmStackBytes: checkOption(
      'maxWasmStackBytes',
      options.maxWasmStackBytes,
      DEFAULTS.maxWasmStackBytes,
    ),
    poolingMaxInstances:
      pooling === false
        ? undefined
        : checkOption('pooling.maxInstances', pooling.maxInstances, DEFAULTS.poolingMaxInstances),
    poolingMaxMemoryBytes:
      pooling === false
        ? undefined
        : checkOption('pooling.maxMemoryBytes', pooling.maxMemoryBytes, DEFAULTS.poolingMaxMemoryBytes),
    cacheDir: options.cacheDir,
    maxModuleBytes: checkOption('maxModuleBytes', options.maxModuleBytes, DEFAULTS.maxModuleBytes),
    compiler,
  })
  return { native, compileLimits }
}

const INSTANTIATE_OPTIONS = new Set(['limits', 'fuel', 'timeoutMs', 'imports', 'wasi', 'signal'])
/** Options that are host code, kept as given: the addon reads imports by their own properties. */
const HOST_CODE: ReadonlySet<string> = new Set(['imports', 'hostFunctions'])
const LIMITS = new Set([
  'memoryBytes',
  'tableElements',
  'instances',
  'tables',
  'memories',
  'resourceHandles',
  'trapOnMemoryDenial',
])

/**
 * `instantiate(options)`'s options, checked, with defaults; `sync` for `instantiateSync`, which
 * blocks the JS thread, so that no abort could reach it.
 */
export function instantiateOptions(options: InstantiateOptions, sync = false): InstantiateSettings {
  return reading('options', () => checkedInstantiateOptions(ownOptions(options, HOST_CODE), sync))
}

/** What {@link instantiateOptions} gives. */
interface InstantiateSettings {
  native: NativeInstanceOptions
  imports: Imports | undefined
  signal: AbortSignal | undefined
  /** The wasi:http client and its grants (none without WASI). */
  http: WasiHttp | undefined
}

function checkedInstantiateOptions(options: InstantiateOptions, sync: boolean): InstantiateSettings {
  if (!isOptionRecord(options)) {
    throw new ConfigError('instantiate options are required: { limits: { memoryBytes } }', { path: 'limits' })
  }
  knownKeys('instantiate', options, INSTANTIATE_OPTIONS)
  if (sync && options.signal !== undefined) {
    throw new ConfigError(
      'signal: instantiateSync blocks the JS thread, where no abort can reach it; use instantiate({ signal })',
      { path: 'signal' },
    )
  }
  const limits = options.limits
  const required = () =>
    new ConfigError('limits.memoryBytes is required: the memory limit has no default', {
      path: 'limits.memoryBytes',
    })
  if (limits === undefined) throw required()
  // A `limits` of the wrong kind is named as such, not taken for a missing one.
  object('limits', limits, 'limits')
  if (limits.memoryBytes === undefined) throw required()
  // A typo (`tableElement`) must not drop a limit silently.
  knownKeys('limits', limits, LIMITS, 'limits.')
  const imports = options.imports
  if (imports !== undefined) importTables('imports', imports)
  return {
    native: bare({
      memoryBytes: checkOption('limits.memoryBytes', limits.memoryBytes, 0),
      tableElements: checkOption('limits.tableElements', limits.tableElements, DEFAULTS.tableElements),
      instances: checkOption('limits.instances', limits.instances, DEFAULTS.instances),
      tables: checkOption('limits.tables', limits.tables, DEFAULTS.tables),
      memories: checkOption('limits.memories', limits.memories, DEFAULTS.memories),
      resourceHandles: checkOption(
        'limits.resourceHandles',
        limits.resourceHandles,
        DEFAULTS.resourceHandles,
      ),
      trapOnMemoryDenial: boolean('limits.trapOnMemoryDenial', limits.trapOnMemoryDenial) ?? false,
      fuel: optional('fuel', options.fuel),
      timeoutMs: optional('timeoutMs', options.timeoutMs),
      wasi: wasiOptions(options.wasi),
    }),
    imports,
    signal: abortSignal(options.signal),
    http: wasiHttp(options.wasi),
  }
}

const OUTPUT_MODES = new Set(['inherit', 'pipe', 'ignore'])
const WASI_KEYS = new Set([
  'stdout',
  'stderr',
  'env',
  'args',
  'preopens',
  'stdin',
  'outputLimitBytes',
  'outputOverflow',
  'http',
])

function wasiOptions(wasi: WasiOptions | false | undefined): NativeWasiOptions | undefined {
  if (wasi === false) return undefined
  const options = wasi === undefined ? NONE : wasi
  if (!isOptionRecord(options)) {
    throw new ConfigError('wasi: expected an object or false', { path: 'wasi', value: options })
  }
  // A typo (`outputLimitByte`, `preopen`) must not drop a cap or a grant silently.
  knownKeys('wasi', options, WASI_KEYS, 'wasi.')
  for (const stream of ['stdout', 'stderr'] as const) {
    const mode = options[stream]
    if (mode !== undefined && !OUTPUT_MODES.has(mode)) {
      throw new ConfigError(`wasi.${stream}: expected 'inherit', 'pipe' or 'ignore', got ${shown(mode)}`, {
        path: `wasi.${stream}`,
        value: mode,
      })
    }
  }
  const strings = (path: string, value: unknown): [string, string][] => {
    if (value === undefined) return []
    if (!isOptionRecord(value)) {
      throw new ConfigError(`${path}: expected an object of strings`, { path })
    }
    return Object.entries(value).map(([key, item]) => {
      if (typeof item !== 'string')
        throw new ConfigError(`${path}.${key}: expected a string`, { path: `${path}.${key}` })
      // A guest reads its environment as NAME=value C strings: `=` in a name, or a NUL anywhere,
      // would hand it a different variable than the host meant.
      if (key === '' || key.includes('=') || key.includes('\0') || item.includes('\0')) {
        throw new ConfigError(
          `${path}: ${JSON.stringify(key)}: a name must be non-empty without "=" or NUL, a value without NUL`,
          { path: `${path}.${key}`, value: item },
        )
      }
      return [key, item]
    })
  }
  const args = options.args === undefined ? [] : options.args
  // A loop, not `some`: a hole is no string either.
  let allStrings = Array.isArray(args)
  for (let index = 0; allStrings && index < args.length; index++) allStrings = typeof args[index] === 'string'
  if (!allStrings) throw new ConfigError('wasi.args: expected an array of strings', { path: 'wasi.args' })
  const nul = (args as string[]).findIndex((arg) => arg.includes('\0'))
  if (nul >= 0) {
    // A guest reads each argument as a C string, which a NUL would cut short.
    throw new ConfigError(`wasi.args[${nul}]: an argument may not hold a NUL character`, {
      path: `wasi.args[${nul}]`,
      value: args[nul],
    })
  }
  const overflow = options.outputOverflow
  if (overflow !== undefined && overflow !== 'drop' && overflow !== 'wait') {
    throw new ConfigError(`wasi.outputOverflow: expected 'drop' or 'wait', got ${shown(overflow)}`, {
      path: 'wasi.outputOverflow',
      value: overflow,
    })
  }
  const stdin = options.stdin
  // Any realm's Uint8Array (a `vm` context's too), but no Proxy of one, whose bytes the addon
  // could not read.
  const bytes = types.isUint8Array(stdin)
  if (stdin !== undefined && typeof stdin !== 'string' && !bytes) {
    throw new ConfigError(`wasi.stdin: expected a string, a Uint8Array or 'inherit', got ${shown(stdin)}`, {
      path: 'wasi.stdin',
      value: stdin,
    })
  }
  return bare({
    stdout: options.stdout ?? 'inherit',
    stderr: options.stderr ?? 'inherit',
    env: strings('wasi.env', options.env),
    args: [...(args as readonly string[])],
    preopens: preopenList(options.preopens),
    stdinInherit: stdin === 'inherit',
    stdinBytes:
      stdin === undefined || stdin === 'inherit'
        ? undefined
        : typeof stdin === 'string'
          ? new TextEncoder().encode(stdin)
          : stdin,
    outputLimitBytes: checkOption(
      'wasi.outputLimitBytes',
      options.outputLimitBytes,
      DEFAULTS.outputLimitBytes,
    ),
    outputWaits: overflow === 'wait',
    httpMaxBodyBytes: checkOption(
      'wasi.http.maxBodyBytes',
      options.http?.maxBodyBytes,
      DEFAULTS.httpMaxBodyBytes,
    ),
    httpMaxConcurrentRequests: checkOption(
      'wasi.http.maxConcurrentRequests',
      options.http?.maxConcurrentRequests,
      DEFAULTS.httpMaxConcurrentRequests,
    ),
  })
}

const WASI_HTTP_KEYS = new Set([
  'allow',
  'maxBodyBytes',
  'timeoutMs',
  'maxConcurrentRequests',
  'onDenied',
  'lookup',
])

/**
 * The wasi:http client and the grants it checks: `wasi.http.allow`, or the grants of the sandbox
 * that instantiates (under {@link wasiHttpPermissions}, so its denials count with its others).
 */
function wasiHttp(wasi: WasiOptions | false | undefined): WasiHttp | undefined {
  if (wasi === false) return undefined
  const given: unknown = wasi?.http === undefined ? NONE : wasi.http
  if (!isOptionRecord(given)) {
    throw new ConfigError('wasi.http: expected an object', { path: 'wasi.http', value: given })
  }
  knownKeys('wasi.http', given, WASI_HTTP_KEYS, 'wasi.http.')
  const options = given as WasiHttpOptions
  for (const hook of ['onDenied', 'lookup'] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== 'function') {
      throw new ConfigError(`wasi.http.${hook}: expected a function`, { path: `wasi.http.${hook}` })
    }
  }
  let permissions = (wasi as { [wasiHttpPermissions]?: Permissions } | undefined)?.[wasiHttpPermissions]
  if (permissions === undefined) {
    try {
      permissions = createPermissions(
        { networkOutbound: options.allow === undefined ? [] : options.allow },
        { onDenied: options.onDenied },
      )
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      const path = `wasi.http.allow${String(error.path ?? '').replace(/^networkOutbound/, '')}`
      throw new ConfigError(error.message.replace(/^networkOutbound/, 'wasi.http.allow'), { path })
    }
  }
  const client = createWasiHttpClient(permissions, {
    maxBodyBytes: checkOption('wasi.http.maxBodyBytes', options.maxBodyBytes, DEFAULTS.httpMaxBodyBytes),
    timeoutMs: checkOption('wasi.http.timeoutMs', options.timeoutMs, DEFAULTS.httpTimeoutMs),
    ...(options.lookup === undefined ? {} : { lookup: options.lookup }),
  })
  return { client, permissions }
}

/** `wasi.preopens` as `[host, guest]` (read-only) and `[host, guest, 'write']` entries. */
function preopenList(preopens: unknown): string[][] {
  if (preopens === undefined) return []
  if (!isOptionRecord(preopens)) {
    throw new ConfigError('wasi.preopens: expected an object of guest path -> host path', {
      path: 'wasi.preopens',
    })
  }
  return Object.entries(preopens).map(([guest, given]) => {
    const path = `wasi.preopens.${guest}`
    if (typeof given === 'string') return [given, guest]
    if (isOptionRecord(given)) {
      knownKeys(path, given, PREOPEN_KEYS, `${path}.`)
      const { host, write } = given as { host?: unknown; write?: unknown }
      if (typeof host !== 'string')
        throw new ConfigError(`${path}.host: expected a string`, { path: `${path}.host` })
      return boolean(`${path}.write`, write) === true ? [host, guest, 'write'] : [host, guest]
    }
    throw new ConfigError(`${path}: expected a host path or { host, write }`, { path, value: given })
  })
}

const PREOPEN_KEYS = new Set(['host', 'write'])

/**
 * A call's budget, checked (undefined: the instance's default). Read by {@link callFields}: own
 * properties only, so that no field a call omits comes from `Object.prototype`.
 */
export function callOptions(options: CallOptions | undefined): { fuel?: number; timeoutMs?: number } {
  if (options === undefined) return { fuel: undefined, timeoutMs: undefined }
  return reading('options', () => {
    const { fuel, timeoutMs } = callFields(options, CALL_OPTIONS)
    return { fuel: optional('fuel', fuel), timeoutMs: optional('timeoutMs', timeoutMs) }
  })
}

/** An async call's budget and signal, checked. */
export function asyncCallOptions(options: AsyncCallOptions | undefined): {
  fuel?: number
  timeoutMs?: number
  signal?: AbortSignal
} {
  if (options === undefined) return { fuel: undefined, timeoutMs: undefined, signal: undefined }
  return reading('options', () => {
    const { fuel, timeoutMs, signal } = callFields(options, ASYNC_CALL_OPTIONS)
    return {
      fuel: optional('fuel', fuel),
      timeoutMs: optional('timeoutMs', timeoutMs),
      signal: abortSignal(signal),
    }
  })
}

/**
 * A sandbox call's options: its signal checked, its budget read but not checked, since the sandbox
 * checks it against its own limits ({@link loweredLimit}) and one rule must say what is allowed.
 */
export function sandboxCallOptions(
  options: AsyncCallOptions | undefined,
  sync: boolean,
): { fuel?: unknown; timeoutMs?: unknown; signal?: AbortSignal | undefined } {
  if (options === undefined) return { fuel: undefined, timeoutMs: undefined, signal: undefined }
  return reading('options', () => {
    const { fuel, timeoutMs, signal } = callFields(options, sync ? CALL_OPTIONS : ASYNC_CALL_OPTIONS)
    return { fuel, timeoutMs, signal: abortSignal(signal) }
  })
}

const CALL_OPTIONS = new Set(['fuel', 'timeoutMs'])
const ASYNC_CALL_OPTIONS = new Set(['fuel', 'timeoutMs', 'signal'])

/**
 * A call's options, read in one pass over their own keys (each getter once), unchecked. Every
 * call with options comes through here, so it copies nothing: `ownOptions` made a prototype-less
 * copy V8 keeps in dictionary mode, which doubled what options cost a call.
 */
function callFields(
  options: unknown,
  known: ReadonlySet<string>,
): { fuel?: unknown; timeoutMs?: unknown; signal?: unknown } {
  object('call options', options)
  let fuel: unknown, timeoutMs: unknown, signal: unknown
  for (const key of Object.keys(options)) {
    // A typo (`timeOutMs`) must not drop a deadline silently.
    if (!known.has(key)) unknownKey('call', key, known)
    const value = options[key]
    if (key === 'fuel') fuel = value
    else if (key === 'timeoutMs') timeoutMs = value
    else signal = value
  }
  return { fuel, timeoutMs, signal }
}

/** `signal` when it is an AbortSignal or undefined; else a ConfigError. */
function abortSignal(signal: unknown): AbortSignal | undefined {
  if (signal !== undefined && !isAbortSignal(signal)) {
    throw new ConfigError('signal: expected an AbortSignal', { path: 'signal', value: signal })
  }
  return signal
}

/**
 * A limit a host sets below the manifest's `ceiling` (a Sandbox may lower its limits, never raise
 * them): `requested` when it keeps `name`'s rule, is above 0 and at most `ceiling`; `ceiling` when
 * undefined. `manifestField` names the manifest's own limit in the message.
 */
export function loweredLimit(
  name: 'fuel' | 'timeoutMs' | 'limits.memoryBytes',
  path: string,
  requested: unknown,
  ceiling: number,
  manifestField: string,
): number {
  if (requested === undefined) return ceiling
  const rule = RULES[name]
  const positive =
    typeof requested === 'number' &&
    requested > 0 &&
    (rule.kind !== 'integer' || Number.isSafeInteger(requested))
  if (!positive) {
    // One message for 0 and for -1 (they were told "positive" and "from 0" apart).
    const expected =
      rule.kind === 'integer'
        ? `an integer from 1 to ${ceiling}`
        : `a number of milliseconds above 0 and at most ${ceiling}`
    throw new ConfigError(`${path}: expected ${expected}, got ${shown(requested)}`, {
      path,
      value: requested,
      allowed: rule.kind === 'integer' ? `1..${ceiling}` : `0 < ms <= ${ceiling}`,
    })
  }
  if (requested > ceiling) {
    throw new ConfigError(
      `${path}: ${requested} is above the manifest's ${manifestField} (${ceiling}); limits may only be lowered`,
      { path, value: requested, allowed: `1..${ceiling}` },
    )
  }
  // Within the manifest's limit, which keeps the option's own rule.
  return checkOption(name, requested, ceiling, path)
}

const LOAD_COMPONENT_OPTIONS = new Set([
  'engine',
  'hostFunctions',
  'onDenied',
  'policy',
  'limits',
  'wasi',
  'signal',
])
const SANDBOX_LIMITS = new Set(['memoryBytes', 'fuel', 'timeoutMs'])
const POOLING_OPTIONS = new Set(['maxInstances', 'maxMemoryBytes'])

/**
 * `loadComponent`'s options, own properties only, their shape checked (their values are checked
 * where they are used).
 */
export function loadComponentOptions<T extends object>(options: T): T {
  return reading('options', () => checkedLoadComponentOptions(ownOptions(options, LOAD_COMPONENT_OPAQUE)))
}

/** `loadComponent`'s options kept as given: host code, and the Engine (whose identity counts). */
const LOAD_COMPONENT_OPAQUE: ReadonlySet<string> = new Set([...HOST_CODE, 'engine'])

function checkedLoadComponentOptions<T extends object>(options: T): T {
  object('loadComponent options', options)
  knownKeys('loadComponent', options, LOAD_COMPONENT_OPTIONS)
  const { limits, onDenied, hostFunctions, signal } = options as Record<string, unknown>
  abortSignal(signal)
  if (limits !== undefined) {
    object('limits', limits, 'limits')
    // A typo would leave the manifest's limit in place of the one the host meant to lower.
    knownKeys('limits', limits as object, SANDBOX_LIMITS, 'limits.')
  }
  if (hostFunctions !== undefined) importTables('hostFunctions', hostFunctions)
  if (onDenied !== undefined && typeof onDenied !== 'function') {
    throw new ConfigError('onDenied: expected a function', { path: 'onDenied', value: onDenied })
  }
  return options
}
