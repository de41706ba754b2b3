import { AbortError, ConfigError, fromNative, translate, translateAsync } from './errors.js'
import {
  NativeAbortHandle,
  type NativeWasiOptions,
  type NativeComponentInstance,
  type NativeInstance,
  type NativeInstanceOptions,
} from './native.js'
import { SerialQueue } from './util/serial-queue.js'

/** JS functions given to a guest: see DESIGN §3 for how keys match imports. */
export type Imports = Record<string, unknown>

/** Options of `instantiate` / `instantiateSync`. */
export interface InstantiateOptions {
  limits: {
    /** Total bytes of all linear memories of the instance. Required. */
    memoryBytes: number
    /** Largest table, in elements. Default 10,000. */
    tableElements?: number
    /** Core instances the store may create (components create several). Default 100. */
    instances?: number
    /** Tables the store may create. Default 100. */
    tables?: number
    /** Linear memories the store may create. Default 100. */
    memories?: number
    /** Trap with MemoryLimitError when growth is denied, instead of `memory.grow` returning -1. */
    trapOnMemoryDenial?: boolean
  }
  /** Default fuel budget per call (needs `new Engine({ fuel: true })`). Omitted: unmetered. */
  fuel?: number
  /** Default wall-clock deadline per call, in ms. Omitted: none. */
  timeoutMs?: number
  /** Host functions the guest imports. */
  imports?: Imports
  /**
   * WASI (preview 2 for components, preview 1 for core modules), linked when the guest imports it.
   * Omitted: locked down (no env, args, files or sockets; clocks and random; stdout and stderr
   * inherited). `false`: not linked, so a WASI import is a LinkError.
   */
  wasi?: WasiOptions | false
}

/** What a WASI guest gets. Everything not given is denied. */
export interface WasiOptions {
  /** Where the guest's stdout goes; `pipe` keeps it for {@link Instance.takeOutput}. Default `inherit`. */
  stdout?: 'inherit' | 'pipe' | 'ignore'
  /** Where the guest's stderr goes. Default `inherit`. */
  stderr?: 'inherit' | 'pipe' | 'ignore'
  /** Environment variables. Default none. */
  env?: Record<string, string>
  /** Command-line arguments, `argv[0]` included. Default none. */
  args?: string[]
  /** Read-only directories: guest path -> host path. Default none. */
  preopens?: Record<string, string>
  /** Cap per piped stream; the oldest bytes are dropped first. Default 1 MiB. */
  outputLimitBytes?: number
}

/** Per-call options. */
export interface CallOptions {
  /** Fuel budget for this call (overrides the instance default). */
  fuel?: number
  /** Wall-clock deadline for this call, in ms (overrides the instance default). */
  timeoutMs?: number
}

/** Per-call options of the async `call`. */
export interface AsyncCallOptions extends CallOptions {
  /** Aborting stops the running guest (at the next epoch tick) and rejects with AbortError. */
  signal?: AbortSignal
}

/** Memory figures, taken from the instance's resource limiter. */
export interface MemoryMetrics {
  /** Bytes of all linear memories now. */
  currentBytes: number
  /** The most `currentBytes` has been. */
  peakBytes: number
  /** `limits.memoryBytes`. */
  limitBytes: number
  /** Growths the limiter refused. */
  deniedGrowths: number
}

/** Fuel figures (zero on an engine without fuel metering). */
export interface FuelMetrics {
  /** Fuel the last call used (0 when a deadline or abort stopped it: the count is not observable). */
  lastCallConsumed: number
  /** Fuel of all calls so far. */
  totalConsumed: number
}

/** What `metrics()` reports, as of the last finished call. */
export interface Metrics {
  memory: MemoryMetrics
  fuel: FuelMetrics
  /** Calls made, failed ones included. */
  calls: number
  /** Calls that failed in wasm (traps, host failures, timeouts, aborts). */
  traps: number
}

const LIMIT_DEFAULTS = { tableElements: 10_000, instances: 100, tables: 100, memories: 100 }
const KNOWN_OPTIONS = new Set(['limits', 'fuel', 'timeoutMs', 'imports', 'wasi'])

function count(path: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new ConfigError(`${path}: expected a non-negative integer, got ${String(value)}`, { path })
  }
  return value
}

function optionalNumber(path: string, value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(`${path}: expected a positive number, got ${String(value)}`, { path })
  }
  return value
}

/** Checks instantiate options and fills in defaults (the one place that holds them). */
export function nativeInstanceOptions(options: InstantiateOptions): {
  native: NativeInstanceOptions
  imports: Imports | undefined
} {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('instantiate options are required: { limits: { memoryBytes } }', { path: 'limits' })
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw new ConfigError(`unknown instantiate option "${key}"`, { path: key })
  }
  const limits = options.limits
  if (typeof limits !== 'object' || limits === null || limits.memoryBytes === undefined) {
    throw new ConfigError('limits.memoryBytes is required: the memory limit has no default', {
      path: 'limits.memoryBytes',
    })
  }
  const imports = options.imports
  if (imports !== undefined && (typeof imports !== 'object' || imports === null)) {
    throw new ConfigError('imports: expected an object', { path: 'imports' })
  }
  const trap = limits.trapOnMemoryDenial
  if (trap !== undefined && typeof trap !== 'boolean') {
    throw new ConfigError('limits.trapOnMemoryDenial: expected a boolean', {
      path: 'limits.trapOnMemoryDenial',
    })
  }
  return {
    native: {
      memoryBytes: count('limits.memoryBytes', limits.memoryBytes, 0),
      tableElements: count('limits.tableElements', limits.tableElements, LIMIT_DEFAULTS.tableElements),
      instances: count('limits.instances', limits.instances, LIMIT_DEFAULTS.instances),
      tables: count('limits.tables', limits.tables, LIMIT_DEFAULTS.tables),
      memories: count('limits.memories', limits.memories, LIMIT_DEFAULTS.memories),
      trapOnMemoryDenial: trap ?? false,
      fuel: options.fuel === undefined ? undefined : count('fuel', options.fuel, 0),
      timeoutMs: optionalNumber('timeoutMs', options.timeoutMs),
      wasi: wasiOptions(options.wasi),
    },
    imports,
  }
}

const OUTPUT_MODES = new Set(['inherit', 'pipe', 'ignore'])

function wasiOptions(wasi: WasiOptions | false | undefined): NativeWasiOptions | undefined {
  if (wasi === false) return undefined
  const options = wasi ?? {}
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('wasi: expected an object or false', { path: 'wasi' })
  }
  for (const stream of ['stdout', 'stderr'] as const) {
    const mode = options[stream]
    if (mode !== undefined && !OUTPUT_MODES.has(mode)) {
      throw new ConfigError(`wasi.${stream}: expected 'inherit', 'pipe' or 'ignore', got ${String(mode)}`, {
        path: `wasi.${stream}`,
      })
    }
  }
  const strings = (path: string, value: unknown): [string, string][] => {
    if (value === undefined) return []
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ConfigError(`${path}: expected an object of strings`, { path })
    }
    return Object.entries(value).map(([key, item]) => {
      if (typeof item !== 'string')
        throw new ConfigError(`${path}.${key}: expected a string`, { path: `${path}.${key}` })
      return [key, item]
    })
  }
  const args = options.args ?? []
  if (!Array.isArray(args) || args.some((arg) => typeof arg !== 'string')) {
    throw new ConfigError('wasi.args: expected an array of strings', { path: 'wasi.args' })
  }
  return {
    stdout: options.stdout ?? 'inherit',
    stderr: options.stderr ?? 'inherit',
    env: strings('wasi.env', options.env),
    args,
    preopens: strings('wasi.preopens', options.preopens).map(([guest, host]) => [host, guest]),
    outputLimitBytes: count('wasi.outputLimitBytes', options.outputLimitBytes, 1 << 20),
  }
}

/** A native function handle: throws native errors, which {@link fromNative} turns into ours. */
type NativeFunction = (...args: unknown[]) => unknown

function callOptions(options: CallOptions | undefined): { fuel?: number; timeoutMs?: number } {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null) throw new ConfigError('call options must be an object')
  return {
    fuel: options.fuel === undefined ? undefined : count('fuel', options.fuel, 0),
    timeoutMs: optionalNumber('timeoutMs', options.timeoutMs),
  }
}

/**
 * A live instance of a component or a core module, in its own store. One call runs at a time:
 * `call`s queue in order; `callSync` while a `call` runs throws BusyError.
 */
export class Instance {
  readonly #native: NativeComponentInstance | NativeInstance
  readonly #calls = new SerialQueue()
  readonly #plain = new Map<string, NativeFunction>()
  readonly #budgeted = new Map<string, NativeFunction>()
  readonly #functions = new Map<string, (...args: unknown[]) => unknown>()

  /** @internal */
  constructor(native: NativeComponentInstance | NativeInstance) {
    this.#native = native
  }

  /**
   * Calls an export on the JS thread: the lowest overhead, but it blocks the event loop while the
   * guest runs (deadlines still apply: they do not rely on JS timers).
   */
  callSync(name: string, args: readonly unknown[] = [], options?: CallOptions): unknown {
    // The native function is applied to the caller's array directly: no wrapper, no spread.
    let native: NativeFunction
    let all: readonly unknown[] = args
    if (options === undefined) {
      native = this.#handle(this.#plain, name, false)
    } else {
      const { fuel, timeoutMs } = callOptions(options)
      native = this.#handle(this.#budgeted, name, true)
      all = [fuel, timeoutMs, ...args]
    }
    try {
      return Reflect.apply(native, undefined, all)
    } catch (error) {
      throw fromNative(error)
    }
  }

  /**
   * The export as a plain function: `inst.function('add')(2, 3)` is `callSync('add', [2, 3])`
   * with the instance's default budget, minus the name lookup: the lowest-overhead way to call.
   */
  function(name: string): (...args: unknown[]) => unknown {
    let wrapped = this.#functions.get(name)
    if (wrapped === undefined) {
      const native = this.#handle(this.#plain, name, false)
      wrapped = (...args: unknown[]) => {
        try {
          return native(...args)
        } catch (error) {
          throw fromNative(error)
        }
      }
      this.#functions.set(name, wrapped)
    }
    return wrapped
  }

  /** The native function for `name` (taking `(fuel, timeoutMs, ...args)` when `budgeted`), cached. */
  #handle(cache: Map<string, NativeFunction>, name: string, budgeted: boolean): NativeFunction {
    let native = cache.get(name)
    if (native === undefined) {
      native = translate(() => this.#native.function(name, budgeted))
      cache.set(name, native)
    }
    return native
  }

  /** Calls an export off the JS thread, on airssys-wasm's own thread pool. */
  call(name: string, args: readonly unknown[] = [], options?: AsyncCallOptions): Promise<unknown> {
    return this.#calls.run(() => this.#callNow(name, args, options))
  }

  async #callNow(
    name: string,
    args: readonly unknown[],
    options: AsyncCallOptions | undefined,
  ): Promise<unknown> {
    const { fuel, timeoutMs } = callOptions(options)
    const signal = options?.signal
    if (signal?.aborted) throw new AbortError('The operation was aborted', { cause: signal.reason })
    const handle = signal ? new NativeAbortHandle() : undefined
    const onAbort = () => handle?.abort()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return await translateAsync(
        translate(() => this.#native.call(name, args, fuel, timeoutMs, handle)) as Promise<unknown>,
      )
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** WASI output piped since the last take (with `wasi: { stdout: 'pipe' }` and/or `stderr`). */
  takeOutput(): { stdout: string; stderr: string } {
    return this.#native.takeOutput()
  }

  /** Memory (from the resource limiter), fuel and call counters, as of the last finished call. */
  metrics(): Metrics {
    return this.#native.metrics()
  }

  /** Frees the instance's store now (or when a running call ends); later calls throw DisposedError. */
  dispose(): void {
    this.#native.dispose()
  }

  /**
   * Whether a trap (or a failed host call) left this component instance unusable: later calls
   * throw InstancePoisonedError. Core instances never become poisoned.
   */
  get poisoned(): boolean {
    return this.#native.poisoned
  }

  /** Whether {@link Instance.dispose} was called. */
  get disposed(): boolean {
    return this.#native.disposed
  }

  [Symbol.dispose](): void {
    this.dispose()
  }
}
