import {
  BusyError,
  DisposedError,
  fromNative,
  translate,
  WasmError,
  translateAsync,
  WasmTypeError,
} from './errors.js'
import type { WasiHttp } from './capabilities/wasi-http.js'
import type { ComponentItem, WitFuncType } from './component.js'
import { holdsResources, InstanceResources, jcoExports, type HostClasses, type Lowered } from './resources.js'
import type { NativeComponentInstance, NativeInstance } from './native.js'
import { asyncCallOptions, callOptions, type AsyncCallOptions, type CallOptions } from './options.js'
import { SerialQueue } from './util/serial-queue.js'
import { type Callers, currentCallers, isInsideHostCall, type Owner, reentryRefused } from './util/reentry.js'
import { withAbort } from './util/signal.js'
import { unbox } from './util/failure.js'
import { exportPaths, shownName } from './util/names.js'
import {
  decodeFlat,
  flatArgs,
  flatResult,
  flatScratch,
  type Read,
  type Stop,
  type WriteArgs,
} from './wire.js'

export type {
  AsyncCallOptions,
  CallOptions,
  Imports,
  InstantiateOptions,
  InstantiateSyncOptions,
  WasiHttpOptions,
  WasiOptions,
} from './options.js'

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
  /**
   * Fuel the last call used. 0 when a deadline or abort stopped it while its guest ran wasm (the
   * count is not observable then); one stopped while the guest waited on a host function or in
   * WASI has it. After a trap an instruction raised mid-code (out-of-bounds memory, division by
   * zero, ...), only what the guest wrote back at its last call or return: a lower bound. At most
   * the budget (a sandbox's call that made a replacement instance counts its start too): a call
   * may run past it by the straight-line code left in the frames on its stack (fuel is checked
   * at function entries and loop heads, not at returns) and reports the budget then.
   */
  lastCallConsumed: number
  /** Fuel of all calls so far whose figure is known, and of the start functions run at instantiation. */
  totalConsumed: number
}

/** What `metrics()` reports, as of the last finished call. */
export interface Metrics {
  memory: MemoryMetrics
  fuel: FuelMetrics
  /**
   * Calls that ran the guest, failed ones included (a trap, a deadline, fuel, a host function's
   * failure). A call refused before the guest runs is not counted: wrong arguments, a signal
   * already aborted, an instance poisoned by an earlier trap, busy or disposed.
   */
  calls: number
  /** Calls that failed in wasm or in what it handed the host (traps, host failures, timeouts, aborts, host limits). */
  traps: number
  /** Requests the guest was refused by its grants (wasi:http). */
  capabilityDenials: number
}

/** A native function handle: throws native errors, which {@link fromNative} turns into ours. */
type NativeFunction = (...args: unknown[]) => unknown

/**
 * A function handle and, for an export whose structured result comes back in its flat form, the
 * decoder of that form (see wire.ts).
 */
interface Handle {
  native: NativeFunction
  flat: Read | undefined
  /** Where decoding the flat form stops: the deadline of the call that returned it. */
  stop: Stop
  /**
   * For an export with a structured parameter (on handles without a per-call budget): the writer
   * of its arguments' flat form, and the native function that takes them so.
   */
  flatArgs?: { write: WriteArgs; native: NativeFunction }
}

/** The writer of an export's arguments and the reader of its result in their flat form, where they have one. */
interface FlatForms {
  args?: WriteArgs | undefined
  result?: Read | undefined
}

/** Calls a handle: with the arguments in their flat form when they take it, else as they are. */
function apply(handle: Handle, args: readonly unknown[]): unknown {
  let returned: unknown
  const length = handle.flatArgs === undefined ? -1 : handle.flatArgs.write(args)
  if (length >= 0) returned = handle.flatArgs!.native.call(flatScratch(), length)
  else if (handle.flat === undefined) returned = callWith(handle.native, args)
  else returned = Reflect.apply(handle.native, flatScratch(), args)
  const value = unbox(returned)
  return handle.flat === undefined ? value : decodeFlat(value, handle.flat, handle.stop)
}

/**
 * `native(...args)`. Short lists are passed as plain arguments: V8 calls a function with a known
 * argument count faster than it applies one to an array.
 */
function callWith(native: NativeFunction, args: readonly unknown[]): unknown {
  switch (args.length) {
    case 0:
      return native()
    case 1:
      return native(args[0])
    case 2:
      return native(args[0], args[1])
    case 3:
      return native(args[0], args[1], args[2])
    default:
      return Reflect.apply(native, undefined, args)
  }
}

/** A core module's exported function: its name and how many parameters it takes. */
export interface CoreFunction {
  name: string
  params: number
}

/**
 * A core module's exported functions by name, each made into its {@link Instance.function} handle
 * at its first call (a module may export thousands). The names are the guest's: they are defined
 * as own properties, so `__proto__` is a function like any other and not the object's prototype.
 */
function coreExports(
  functions: readonly CoreFunction[],
  handle: (name: string) => (...args: unknown[]) => unknown,
): Record<string, unknown> {
  const exports: Record<string, unknown> = {}
  for (const { name, params } of functions) {
    let call: ((...args: unknown[]) => unknown) | undefined
    const value = named((...args: unknown[]) => (call ??= handle(name))(...args), name, params)
    Object.defineProperty(exports, name, { value, enumerable: true })
  }
  // Shared by every user of the instance, and frozen as WebAssembly.Instance's exports are.
  return Object.freeze(exports)
}

/**
 * `fn` named by the export it calls and sized by its parameter count, as `WebAssembly.Instance`'s
 * export functions are (an arrow function would be named "" and sized 0 by its rest parameter).
 */
function named<F extends (...args: unknown[]) => unknown>(fn: F, name: string, params: number): F {
  Object.defineProperty(fn, 'name', { value: name })
  Object.defineProperty(fn, 'length', { value: params })
  return fn
}

/**
 * `error` as a call reports it: ours as they are; anything else was thrown by the caller's own
 * code while its arguments were read (a getter, a proxy trap), a WasmTypeError with it as cause.
 */
function typed(name: string, error: unknown): unknown {
  if (error instanceof WasmError) return error
  const reason = error instanceof Error ? error.message : String(error)
  return Object.assign(new WasmTypeError(`${shownName(name)}: reading the arguments threw: ${reason}`), {
    cause: error,
  })
}

/**
 * What a synchronous call meets while a `call` of the same instance runs or waits its turn: it
 * would overtake it; or, once the instance was disposed, it never runs again (a caller that
 * retries a BusyError would only learn that later).
 */
function syncCallRefused(native: { readonly disposed: boolean }): WasmError {
  if (native.disposed) return new DisposedError('the instance was disposed')
  return new BusyError(
    'another call is running or queued on this instance: a synchronous call would overtake it',
  )
}

/** More arguments than any export takes (the addon refuses more too). */
const MAX_ARGUMENTS = 1000

/**
 * The elements of `args` as a call reads them: each index up to its `length`, read once (a hole
 * is `undefined`), as applying a function to it reads them (`callSync`), not as `slice` does.
 */
function copiedArguments(args: readonly unknown[]): unknown[] {
  const { length } = args
  const copy = new Array<unknown>(length)
  for (let index = 0; index < length; index++) copy[index] = args[index]
  return copy
}

/**
 * Refuses what is not an argument list, and one longer than any export takes before any element
 * is read: V8 refuses to apply a function to a huge array (a RangeError, not ours), and copying
 * one whose `length` is 2^32 - 1 held the JS thread for minutes. A string or an array-like would
 * be spread into arguments.
 */
function checkArgumentList(name: string, args: unknown): asserts args is readonly unknown[] {
  if (!Array.isArray(args)) throw new WasmTypeError(`${shownName(name)}: arguments must be an array`)
  if (args.length > MAX_ARGUMENTS) {
    throw new WasmTypeError(
      `${shownName(name)}: expected its arguments, got an array of ${args.length} elements`,
    )
  }
}

/**
 * A live instance of a component or a core module, in its own store. One call runs at a time:
 * `call`s queue in order; `callSync` while a `call` runs throws BusyError. `E` is the type of
 * {@link Instance.exports}: the `Exports` that `airssys-wasm types` writes for a component.
 */
export class Instance<E = Record<string, unknown>> {
  readonly #native: NativeComponentInstance | NativeInstance
  readonly #calls = new SerialQueue()
  readonly #plain = new Map<string, Handle>()
  /** The export `callSync` called last without options, and its handle: a loop skips the `Map`. */
  #lastName: string | undefined
  #lastHandle: Handle | undefined
  readonly #budgeted = new Map<string, Handle>()
  readonly #functions = new Map<string, (...args: unknown[]) => unknown>()

  readonly #owner: Owner
  readonly #http: WasiHttp | undefined

  readonly #resources: InstanceResources | undefined
  readonly #exportItems: readonly ComponentItem[]
  /** A core module's exported function names (none for a component). */
  readonly #coreFunctions: readonly CoreFunction[]
  #funcTypesByPath: Map<string, WitFuncType> | undefined
  readonly #flatFormsByPath = new Map<string, FlatForms>()
  #exports: E | undefined
  /** Throws the last call's TimeoutError once its deadline has passed (only components return flat results). */
  readonly #resultStop: Stop = () => {
    const native = this.#native
    if ('resultStopped' in native) translate(() => native.resultStopped())
  }

  /** @internal */
  constructor(
    native: NativeComponentInstance | NativeInstance,
    owner: Owner,
    http?: WasiHttp,
    exports: readonly ComponentItem[] = [],
    coreFunctions: readonly CoreFunction[] = [],
    hostClasses?: HostClasses,
  ) {
    this.#native = native
    this.#owner = owner
    this.#http = http
    this.#exportItems = exports
    this.#coreFunctions = coreFunctions
    const self = this
    const takesResources = (item: ComponentItem) =>
      item.kind === 'resource' ||
      (item.func !== undefined &&
        (item.func.params.some((param) => holdsResources(param.type)) || holdsResources(item.func.result)))
    const hasResources = exports.some(
      (item) => takesResources(item) || (item.exports ?? []).some(takesResources),
    )
    this.#resources =
      hasResources && 'dropResource' in native
        ? new InstanceResources(
            {
              callSync: (path, args) => this.callSync(path, args),
              // A guest destructor runs here: its trap is ours to type, like a call's. While a
              // `call` is queued or running it waits for the next call, as one made from a host
              // function during a call does: run now, it would race that call for the instance.
              dropResource: (token) => translate(() => native.dropResource(token, this.#calls.pending > 0)),
              dropLater: (token) => translate(() => native.dropResource(token, true)),
              holds: (token) => native.holdsResource(token),
              get disposed() {
                return self.disposed
              },
            },
            exports,
            hostClasses,
          )
        : undefined
  }

  /**
   * The exports as jco's generated bindings would give them, bound to this instance: root
   * functions in lowerCamelCase, each exported interface as an object (by its full name, and by
   * its short lowerCamelCase name when no other interface has it) holding its functions and its
   * resource classes (`new api.Counter(5)`, `c.increment(1)`, `api.Counter.split(10, 3)`). For a
   * core module, each exported function by its own name, as `WebAssembly.Instance` has them. They
   * run on the JS thread with the instance's defaults, like `callSync`.
   */
  get exports(): E {
    // The object is built from the component's or module's own listings; `E` is the caller's word
    // for it.
    this.#exports ??= (
      this.#coreFunctions.length > 0
        ? coreExports(this.#coreFunctions, (name) => this.function(name))
        : jcoExports(this.#exportItems, this.#resources, (path, args) => this.callSync(path, args))
    ) as E
    return this.#exports
  }

  /**
   * Calls an export on the JS thread: the lowest overhead, but it blocks the event loop while the
   * guest runs (deadlines still apply: they do not rely on JS timers).
   */
  callSync(name: string, args: readonly unknown[] = [], options?: CallOptions): unknown {
    // The native function is applied to the caller's array directly: no wrapper, no spread.
    let handle: Handle
    let all: readonly unknown[] = args
    let resources: InstanceResources | undefined
    let lowered: Lowered | undefined
    if (this.#calls.pending > 0) throw syncCallRefused(this.#native)
    try {
      checkArgumentList(name, args)
      resources = this.#resources?.converts(name) === true ? this.#resources : undefined
      if (resources !== undefined) {
        lowered = resources.lower(name, args)
        all = lowered.args
      }
    } catch (error) {
      throw typed(name, error)
    }
    try {
      if (options === undefined) {
        if (name === this.#lastName && this.#lastHandle !== undefined) {
          handle = this.#lastHandle
        } else {
          handle = this.#handle(this.#plain, name, false)
          this.#lastName = name
          this.#lastHandle = handle
        }
      } else {
        const { fuel, timeoutMs } = callOptions(options)
        handle = this.#handle(this.#budgeted, name, true)
        try {
          all = [fuel, timeoutMs, ...all]
        } catch (error) {
          throw typed(name, error)
        }
      }
    } catch (error) {
      // Refused before the guest ran: the resources it was given stay JS's, free to drop.
      lowered?.commit()
      throw error
    }
    let result: unknown
    try {
      result = apply(handle, all)
    } catch (error) {
      const failure = typed(name, fromNative(error))
      throw resources === undefined ? failure : resources.liftFailure(name, failure)
    } finally {
      lowered?.commit()
      this.#owner.endCall()
    }
    return resources === undefined ? result : resources.lift(name, result)
  }

  /**
   * The export as a plain function: `inst.function('add')(2, 3)` is `callSync('add', [2, 3])`
   * with the instance's default budget, minus the name lookup: the lowest-overhead way to call.
   */
  function(name: string): (...args: unknown[]) => unknown {
    let wrapped = this.#functions.get(name)
    if (wrapped === undefined && this.#resources?.converts(name) === true) {
      wrapped = (...args: unknown[]) => this.callSync(name, args)
      this.#functions.set(name, named(wrapped, name, this.#paramCount(name)))
    }
    if (wrapped === undefined) {
      const handle = this.#handle(this.#plain, name, false)
      const { native } = handle
      const calls = this.#calls
      const owner = this.#owner
      const instance = this.#native
      wrapped =
        handle.flat === undefined && handle.flatArgs === undefined
          ? (...args: unknown[]) => {
              if (calls.pending > 0) throw syncCallRefused(instance)
              try {
                return unbox(native(...args))
              } catch (error) {
                throw typed(name, fromNative(error))
              } finally {
                owner.endCall()
              }
            }
          : (...args: unknown[]) => {
              if (calls.pending > 0) throw syncCallRefused(instance)
              try {
                return apply(handle, args)
              } catch (error) {
                throw typed(name, fromNative(error))
              } finally {
                owner.endCall()
              }
            }
      this.#functions.set(name, named(wrapped, name, this.#paramCount(name)))
    }
    return wrapped
  }

  /** How many parameters the export at `path` takes, as its function is sized (0 when unknown). */
  #paramCount(path: string): number {
    const core = this.#coreFunctions.find((func) => func.name === path)
    return core?.params ?? this.#funcTypes().get(path)?.params.length ?? 0
  }

  /** The native function for `name` (taking `(fuel, timeoutMs, ...args)` when `budgeted`), cached. */
  #handle(cache: Map<string, Handle>, name: string, budgeted: boolean): Handle {
    let handle = cache.get(name)
    if (handle === undefined) {
      const forms = this.#flatForms(name)
      const flat = forms.result
      const native = translate(() => this.#native.function(name, budgeted, flat !== undefined))
      handle = { native, flat, stop: this.#resultStop }
      if (forms.args !== undefined && !budgeted) {
        const write = forms.args
        handle.flatArgs = {
          write,
          native: translate(() => this.#native.function(name, false, flat !== undefined, true)),
        }
      }
      cache.set(name, handle)
    }
    return handle
  }

  /** How the arguments and result of the export at `path` may cross in their flat form. */
  #flatForms(path: string): FlatForms {
    let forms = this.#flatFormsByPath.get(path)
    if (forms === undefined) {
      const func = this.#funcTypes().get(path)
      // Only an export's forms are kept: a service may call what its requests name.
      if (func === undefined) return { args: undefined, result: undefined }
      forms = { args: flatArgs(func), result: flatResult(func) }
      this.#flatFormsByPath.set(path, forms)
    }
    return forms
  }

  /** The component's function types by every path an export answers to (none for a module). */
  #funcTypes(): Map<string, WitFuncType> {
    if (this.#funcTypesByPath === undefined) {
      this.#funcTypesByPath = new Map()
      const add = (interfaceName: string | undefined, item: ComponentItem) => {
        if (item.kind !== 'func' || item.func === undefined) return
        // The first a path names keeps it (see the addon's export table).
        for (const path of exportPaths(interfaceName, item.name)) {
          if (!this.#funcTypesByPath!.has(path)) this.#funcTypesByPath!.set(path, item.func)
        }
      }
      for (const item of this.#exportItems) {
        add(undefined, item)
        for (const member of item.exports ?? []) add(item.name, member)
      }
    }
    return this.#funcTypesByPath
  }

  /** Calls an export off the JS thread, on airssys-wasm's own thread pool. */
  call(name: string, args: readonly unknown[] = [], options?: AsyncCallOptions): Promise<unknown> {
    // Checked now, not at its turn: waiting, it would wait for the running call (or for itself).
    if (this.disposed) return Promise.reject(new DisposedError('the instance was disposed'))
    if (isInsideHostCall(this.#owner)) return Promise.reject(reentryRefused('call()', 'instance'))
    let parsed: ReturnType<typeof asyncCallOptions>
    try {
      parsed = asyncCallOptions(options)
    } catch (error) {
      return Promise.reject(error)
    }
    // The array as it is now: a call that waits its turn must not see later changes to it. (The
    // values in it are read when the call starts, at once on an idle instance.)
    let snapshot: readonly unknown[]
    try {
      checkArgumentList(name, args)
      snapshot = copiedArguments(args)
    } catch (error) {
      return Promise.reject(typed(name, error))
    }
    const callers = currentCallers()
    // Waiting behind another call, an abort rejects it at once, and it never starts.
    return this.#calls.run(() => this.#callNow(name, snapshot, parsed, callers), parsed.signal)
  }

  async #callNow(
    name: string,
    args: readonly unknown[],
    { fuel, timeoutMs, signal }: ReturnType<typeof asyncCallOptions>,
    callers: Callers | undefined,
  ): Promise<unknown> {
    const resources = this.#resources?.converts(name) === true ? this.#resources : undefined
    let lowered: Lowered | undefined
    let values = args
    try {
      lowered = resources?.lower(name, args)
      if (lowered !== undefined) values = lowered.args
    } catch (error) {
      throw typed(name, error)
    }
    const forms = this.#flatForms(name)
    const flatResult = forms.result !== undefined
    this.#owner.begin(callers)
    try {
      const returned = await withAbort(signal, (handle) => {
        // Written and read by the addon before anything else can use the scratch buffer.
        const length = forms.args === undefined ? -1 : forms.args(values)
        return translateAsync(
          translate(() =>
            length >= 0
              ? this.#native.call(name, length, fuel, timeoutMs, handle, flatScratch(), flatResult)
              : this.#native.call(name, values, fuel, timeoutMs, handle, undefined, flatResult),
          ) as Promise<unknown>,
        )
      })
      const result =
        forms.result === undefined ? returned : decodeFlat(returned, forms.result, this.#resultStop)
      return resources === undefined ? result : resources.lift(name, result)
    } catch (error) {
      const failure = typed(name, error)
      throw resources === undefined ? failure : resources.liftFailure(name, failure)
    } finally {
      lowered?.commit()
      // A wasi:http request, and the response body it opened, lives no longer than the call that
      // made it (one stopped at its deadline leaves its requests behind); so does what the host
      // functions it reached started, if they listen to hostCallSignal().
      this.#http?.client.abortAll()
      this.#owner.endCall()
    }
  }

  /** WASI output piped since the last take (with `wasi: { stdout: 'pipe' }` and/or `stderr`). */
  takeOutput(): { stdout: string; stderr: string } {
    return this.#native.takeOutput()
  }

  /** Memory (from the resource limiter), fuel and call counters, as of the last finished call. */
  metrics(): Metrics {
    return { ...this.#native.metrics(), capabilityDenials: this.#http?.permissions.deniedCount ?? 0 }
  }

  /** Frees the instance's store now (or when a running call ends); later calls throw DisposedError. */
  dispose(): void {
    this.#native.dispose()
    this.#calls.abandonWaiting(() => new DisposedError('the instance was disposed'))
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
