/**
 * Error classes, one per meaning, each with a stable `code` (listed in the README). This is the
 * only place that maps a native error's `code` to a class; nothing matches on message text.
 */

import { unbox } from './util/failure.js'
import { escapeText } from './util/quoted.js'

/** One frame of a trap's wasm backtrace. */
export interface WasmFrame {
  /** From the name section, when the module has one. */
  funcName?: string
  funcIndex: number
  /** The module's name (`(module $m ...)`, or a component's core module's), when it has one. */
  module?: string
  /**
   * The byte offsets of the instruction, in the function and in the module: absent where the
   * code has none, as for a stack overflow's innermost frame, stopped by the stack check at the
   * function's entry before any of its instructions.
   */
  funcOffset?: number
  moduleOffset?: number
}

/** The codes of a {@link TrapError}: its own and those of its subclasses. */
export type TrapErrorCode =
  | 'ERR_WASM_TRAP'
  | 'ERR_WASM_TRAP_INDIRECT_CALL'
  | 'ERR_WASM_TRAP_TABLE_OUT_OF_BOUNDS'
  | 'ERR_WASM_TRAP_BAD_SIGNATURE'
  | 'ERR_WASM_MEMORY_LIMIT'
  | 'ERR_WASM_TRAP_OUT_OF_FUEL'
  | 'ERR_WASM_TIMEOUT'
  | 'ERR_WASM_GUEST_ABI'
  | 'ERR_WASM_TRAP_UNREACHABLE'
  | 'ERR_WASM_TRAP_MEMORY_OUT_OF_BOUNDS'
  | ArithmeticTrapCode
  | 'ERR_WASM_TRAP_STACK_OVERFLOW'

/** The codes of an {@link ArithmeticTrapError}, one per kind of arithmetic trap. */
export type ArithmeticTrapCode =
  'ERR_WASM_TRAP_DIVIDE_BY_ZERO' | 'ERR_WASM_TRAP_INTEGER_OVERFLOW' | 'ERR_WASM_TRAP_BAD_CONVERSION'

/**
 * Every `code` an error of airssys-wasm has, so that a `switch` on it can be exhaustive.
 * `ERR_WASM` is only that of a `WasmError` constructed without one.
 */
export type WasmErrorCode =
  | 'ERR_WASM'
  | 'ERR_WASM_INTERNAL'
  | 'ERR_WASM_TYPE'
  | 'ERR_WASM_COMPILE'
  | 'ERR_WASM_CONFIG'
  | 'ERR_WASM_LINK'
  | TrapErrorCode
  | 'ERR_WASM_POOL_EXHAUSTED'
  | 'ERR_WASM_HOST_LIMIT'
  | 'ABORT_ERR'
  | 'ERR_WASM_HOST'
  | 'ERR_WASM_CAPABILITY_DENIED'
  | 'ERR_WASM_COMPONENT'
  | 'ERR_WASM_EXIT'
  | 'ERR_WASM_INSTANCE_POISONED'
  | 'ERR_WASM_DISPOSED'
  | 'ERR_WASM_BUSY'

/** TrapError codes other than the class's own default that a TrapError keeps as thrown. */
const TRAP_CODES_WITH_OWN_CODE: ReadonlySet<string> = new Set<TrapErrorCode>([
  'ERR_WASM_TRAP_INDIRECT_CALL',
  'ERR_WASM_TRAP_TABLE_OUT_OF_BOUNDS',
  'ERR_WASM_TRAP_BAD_SIGNATURE',
])

/**
 * What start code that failed left (a core module's start function or `_initialize`, a component's
 * start functions): the instance it ran in is gone, and these with it otherwise.
 */
export interface FailedStart {
  /** WASI output it piped (empty where the instance's `wasi` option did not pipe it). */
  stdout: string
  stderr: string
  /** The most its linear memories held, in bytes. */
  peakBytes: number
  /** Memory growths the limiter refused it. */
  deniedGrowths: number
  /**
   * The fuel it burnt, on an engine with fuel (a lower bound after a trap raised mid-code, as a
   * call's); absent after a deadline or abort that stopped it inside wasm.
   */
  fuelConsumed?: number
}

/** Fields a native error carries over to its class. */
export interface ErrorFields {
  cause?: unknown
  trapCode?: string
  wasmBacktrace?: WasmFrame[]
  fuelConsumed?: number
  elapsedMs?: number
  timeoutMs?: number
  payload?: unknown
  path?: string
  exitCode?: number
  failedStart?: FailedStart
}

/**
 * The base of every error airssys-wasm throws. Thrown as itself only for `ERR_WASM_INTERNAL`: a
 * failure inside airssys-wasm or wasmtime (a bug, or a panic caught at the boundary), never the
 * guest's doing; the process and other instances are unaffected.
 */
export class WasmError extends Error {
  readonly code: WasmErrorCode = 'ERR_WASM'
  /**
   * What led to it, when something did: for a HostError, what the host function threw. Declared
   * here too, so that a project whose `lib` predates ES2022 can read it.
   */
  declare cause?: unknown
  /**
   * On an error of instantiation (`instantiate`, `instantiateSync`, or a sandbox call that made a
   * replacement) whose start code ran: what it left, gone with the instance.
   */
  declare readonly failedStart?: FailedStart

  constructor(message: string, fields: ErrorFields & { code?: WasmErrorCode } = {}) {
    // Own only: a `cause` Object.prototype holds is no cause of this error. Messages quote text
    // others chose (a guest's names and paths, a manifest's keys and lines): what a log or a
    // terminal would act on in it is escaped here, once for every error.
    super(escapeText(message), Object.hasOwn(fields, 'cause') ? { cause: fields.cause } : undefined)
    this.name = new.target.name
    // Subclasses set their own code; the base keeps the one it was thrown with.
    if (new.target === WasmError && fields.code !== undefined) this.code = fields.code
    if (fields.failedStart !== undefined) this.failedStart = fields.failedStart
  }

  /** `instanceof WasmError` also holds for {@link WasmTypeError}, which extends `TypeError`. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this === WasmError && value instanceof WasmTypeError) return true
    return Function.prototype[Symbol.hasInstance].call(this, value)
  }
}

/** A wrong argument type, count or value for a wasm function (also `instanceof TypeError`). */
export class WasmTypeError extends TypeError {
  readonly code = 'ERR_WASM_TYPE'

  constructor(message: string) {
    super(escapeText(message))
    this.name = 'TypeError'
  }
}

/** Invalid, truncated or unsupported wasm or WAT; the message has wasmtime's reason. */
export class CompileError extends WasmError {
  override readonly code = 'ERR_WASM_COMPILE'
}

/** One problem in a Component.toml or an options object. */
export interface ConfigProblem {
  /** The field, dotted as in the TOML (`resources.cpu.max_fuel`); absent for whole-file problems. */
  path?: string
  message: string
  /** The offending value; absent when the field is missing. */
  value?: unknown
  /** What would be accepted: a range (`1000..100000000`) or a short description. */
  allowed?: string
  /** TOML to paste when a required section or field is missing. */
  snippet?: string
  /** 1-based position of a TOML syntax error. */
  line?: number
  column?: number
}

/**
 * A bad option value, or Component.toml problems. `path` names the field. A manifest reports all
 * its problems at once in `problems`; the other fields describe the first of them.
 */
export class ConfigError extends WasmError {
  override readonly code = 'ERR_WASM_CONFIG'
  readonly path?: string
  readonly value?: unknown
  readonly allowed?: string
  readonly snippet?: string
  readonly line?: number
  readonly column?: number
  readonly problems: readonly ConfigProblem[]

  constructor(
    message: string,
    fields: ErrorFields & Omit<ConfigProblem, 'message'> & { problems?: readonly ConfigProblem[] } = {},
  ) {
    super(message, fields)
    const own: ConfigProblem = { message: this.message }
    if (fields.path !== undefined) this.path = own.path = escapeText(fields.path)
    if (fields.value !== undefined) this.value = own.value = fields.value
    if (fields.allowed !== undefined) this.allowed = own.allowed = fields.allowed
    if (fields.snippet !== undefined) this.snippet = own.snippet = fields.snippet
    if (fields.line !== undefined) this.line = own.line = fields.line
    if (fields.column !== undefined) this.column = own.column = fields.column
    this.problems = fields.problems?.map((problem) => ({
      ...problem,
      message: escapeText(problem.message),
      ...(problem.path === undefined ? {} : { path: escapeText(problem.path) }),
    })) ?? [own]
  }
}

/** A missing or mismatched import at instantiation; the message names the import. */
export class LinkError extends WasmError {
  override readonly code = 'ERR_WASM_LINK'
}

/**
 * The guest trapped. `trapCode` is wasmtime's `Trap` variant name, or one of ours for what wasmtime
 * has none: `MemoryLimit` (a {@link MemoryLimitError}), `CanonicalAbi` (a {@link GuestAbiError}).
 */
export class TrapError extends WasmError {
  override readonly code: TrapErrorCode = 'ERR_WASM_TRAP'
  readonly trapCode: string
  readonly wasmBacktrace: WasmFrame[]
  /**
   * On a metered call, the fuel it used: exact for `unreachable`, a stack overflow or a host
   * function's failure, the budget for out of fuel; for a trap an instruction raised mid-code
   * (out-of-bounds memory, division by zero, ...), what the guest wrote back at its last call or
   * return, a lower bound.
   */
  readonly fuelConsumed?: number

  constructor(message: string, fields: ErrorFields & { code?: TrapErrorCode } = {}) {
    super(message, fields)
    // The table and indirect-call traps have no class of their own: a TrapError keeps their code.
    if (new.target === TrapError && fields.code !== undefined && TRAP_CODES_WITH_OWN_CODE.has(fields.code)) {
      this.code = fields.code
    }
    this.trapCode = fields.trapCode ?? 'Unknown'
    this.wasmBacktrace = fields.wasmBacktrace ?? []
    if (fields.fuelConsumed !== undefined) this.fuelConsumed = fields.fuelConsumed
  }
}

/** Instantiation or a trapping growth went beyond `limits.memoryBytes`. */
export class MemoryLimitError extends TrapError {
  override readonly code = 'ERR_WASM_MEMORY_LIMIT'
}

/** Every instance slot of a pooling engine is in use; dispose instances or raise `pooling.maxInstances`. */
export class PoolExhaustedError extends WasmError {
  override readonly code = 'ERR_WASM_POOL_EXHAUSTED'
}

/**
 * A guest asked the host for more than its limits allow outside its own memory: a value too large
 * to hand to JS (a huge list or string lifted from the guest), or address space the process
 * cannot reserve. The instance that asked fails; the process and other instances are unaffected.
 */
export class HostLimitError extends WasmError {
  override readonly code = 'ERR_WASM_HOST_LIMIT'
}

/** The call's fuel budget ran out; `fuelConsumed` is always set (the whole budget). */
export class OutOfFuelError extends TrapError {
  override readonly code = 'ERR_WASM_TRAP_OUT_OF_FUEL'
  declare readonly fuelConsumed: number
}

/**
 * The call's wall-clock deadline passed (epoch interruption stopped the guest). `fuelConsumed` is
 * set on a metered call stopped while its guest waited on a host function or in WASI; one stopped
 * inside wasm has none (the count is not observable there).
 */
export class TimeoutError extends TrapError {
  override readonly code = 'ERR_WASM_TIMEOUT'
  readonly elapsedMs: number
  readonly timeoutMs: number

  constructor(message: string, fields: ErrorFields = {}) {
    super(message, fields)
    this.elapsedMs = fields.elapsedMs ?? Number.NaN
    this.timeoutMs = fields.timeoutMs ?? Number.NaN
  }
}

/**
 * The guest broke the component model's calling convention (the canonical ABI): a string that is
 * not valid UTF-8, a pointer or length outside its memory, a bad `realloc` result, an invalid
 * enum or variant discriminant, a call back into itself, an import called from its `realloc` or
 * post-return. A trap of the guest's own making.
 */
export class GuestAbiError extends TrapError {
  override readonly code = 'ERR_WASM_GUEST_ABI'
}

/** The guest executed `unreachable`. */
export class UnreachableError extends TrapError {
  override readonly code = 'ERR_WASM_TRAP_UNREACHABLE'
}

/** An out-of-bounds linear memory access. */
export class MemoryOutOfBoundsError extends TrapError {
  override readonly code = 'ERR_WASM_TRAP_MEMORY_OUT_OF_BOUNDS'
}

/** Division by zero, integer overflow or a bad float-to-int conversion; `trapCode` tells which. */
export class ArithmeticTrapError extends TrapError {
  override readonly code: ArithmeticTrapCode

  constructor(message: string, fields: ErrorFields & { code?: ArithmeticTrapCode } = {}) {
    super(message, fields)
    this.code = fields.code ?? 'ERR_WASM_TRAP_DIVIDE_BY_ZERO'
  }
}

/** The guest exhausted its wasm stack; the host is unaffected. */
export class StackOverflowError extends TrapError {
  override readonly code = 'ERR_WASM_TRAP_STACK_OVERFLOW'
}

/**
 * The call's AbortSignal fired; the guest was really stopped. `fuelConsumed` is set on a metered
 * call stopped while its guest waited on a host function, as for a {@link TimeoutError}.
 */
export class AbortError extends WasmError {
  override readonly code = 'ABORT_ERR'
  readonly fuelConsumed?: number

  constructor(message: string, fields: ErrorFields = {}) {
    super(message, fields)
    if (fields.fuelConsumed !== undefined) this.fuelConsumed = fields.fuelConsumed
  }
}

/** A JS host function threw; `cause` is the thrown value. */
export class HostError extends WasmError {
  override readonly code = 'ERR_WASM_HOST'
}

/** The permission a {@link CapabilityDeniedError} was about (the Component.toml key). */
export type Capability = 'filesystem.read' | 'network.outbound' | 'time.sleep'

/**
 * A host capability that the manifest or options did not grant. The guest received an `err` (or,
 * for a sleep, no wait); this error goes to the host's `onDenied` hook and counts in metrics.
 */
export class CapabilityDeniedError extends WasmError {
  override readonly code = 'ERR_WASM_CAPABILITY_DENIED'
  /** The permission that was missing. */
  readonly capability?: Capability
  /** What the guest asked for, as it asked: a path, a URL (or redirect target), a duration. */
  readonly request?: string

  constructor(message: string, fields: ErrorFields & { capability?: Capability; request?: string } = {}) {
    super(message, fields)
    if (fields.capability !== undefined) this.capability = fields.capability
    if (fields.request !== undefined) this.request = fields.request
  }
}

/** An export returned `result::err`; `payload` is the error value (or undefined). */
export class ComponentError extends WasmError {
  override readonly code = 'ERR_WASM_COMPONENT'
  readonly payload: unknown

  constructor(message: string, fields: ErrorFields = {}) {
    super(message, fields)
    this.payload = fields.payload
  }
}

/**
 * A WASI guest called `exit(n)` with n != 0, or `exit(0)` in a call of an export that declares a
 * value (which it never gave), or any `exit` in a resource destructor that a call ran first (the
 * call did not run).
 */
export class WasiExitError extends WasmError {
  override readonly code = 'ERR_WASM_EXIT'
  readonly exitCode: number

  constructor(message: string, fields: ErrorFields = {}) {
    super(message, fields)
    this.exitCode = fields.exitCode ?? 1
  }
}

/** A call on a component instance that trapped before (component instances cannot be re-entered). */
export class InstancePoisonedError extends WasmError {
  override readonly code = 'ERR_WASM_INSTANCE_POISONED'
}

/** Use of an instance after `dispose()`, or of an engine after `close()`. */
export class DisposedError extends WasmError {
  override readonly code = 'ERR_WASM_DISPOSED'
}

/** `callSync` while another call runs on the same instance (`call`s queue instead). */
export class BusyError extends WasmError {
  override readonly code = 'ERR_WASM_BUSY'
}

/** A class the table maps a code to; the classes that keep several codes read theirs from `fields`. */
type ErrorClass = new (message: string, fields: ErrorFields) => Error

const BY_CODE: Partial<Record<string, ErrorClass>> = {
  ERR_WASM_COMPILE: CompileError,
  ERR_WASM_CONFIG: ConfigError,
  ERR_WASM_LINK: LinkError,
  ERR_WASM_MEMORY_LIMIT: MemoryLimitError,
  ERR_WASM_POOL_EXHAUSTED: PoolExhaustedError,
  ERR_WASM_HOST_LIMIT: HostLimitError,
  ERR_WASM_GUEST_ABI: GuestAbiError,
  ERR_WASM_TRAP_OUT_OF_FUEL: OutOfFuelError,
  ERR_WASM_TIMEOUT: TimeoutError,
  ABORT_ERR: AbortError,
  ERR_WASM_TRAP_UNREACHABLE: UnreachableError,
  ERR_WASM_TRAP_MEMORY_OUT_OF_BOUNDS: MemoryOutOfBoundsError,
  ERR_WASM_TRAP_DIVIDE_BY_ZERO: ArithmeticTrapError,
  ERR_WASM_TRAP_INTEGER_OVERFLOW: ArithmeticTrapError,
  ERR_WASM_TRAP_BAD_CONVERSION: ArithmeticTrapError,
  ERR_WASM_TRAP_STACK_OVERFLOW: StackOverflowError,
  ERR_WASM_TRAP: TrapError,
  ERR_WASM_TRAP_INDIRECT_CALL: TrapError,
  ERR_WASM_TRAP_TABLE_OUT_OF_BOUNDS: TrapError,
  ERR_WASM_TRAP_BAD_SIGNATURE: TrapError,
  ERR_WASM_HOST: HostError,
  ERR_WASM_CAPABILITY_DENIED: CapabilityDeniedError,
  ERR_WASM_COMPONENT: ComponentError,
  ERR_WASM_EXIT: WasiExitError,
  ERR_WASM_INSTANCE_POISONED: InstancePoisonedError,
  ERR_WASM_DISPOSED: DisposedError,
  ERR_WASM_BUSY: BusyError,
}

/** Errors that ended a guest while it ran (see {@link stoppedGuest}). */
const stoppedGuests = new WeakSet<Error>()

/**
 * Whether `error` ended a guest that was running: a trap, a deadline or abort that came once it
 * was entered (an abort that came first ran nothing), a failure of a host function it called, or
 * its `exit(n)`. What a sandbox counts as a trap of a failed start, as an instance's metrics count
 * one of a call.
 */
export function stoppedGuest(error: unknown): boolean {
  return error instanceof Error && stoppedGuests.has(error)
}

/**
 * Turns an error thrown by the native binding into the matching class. Anything that is not a
 * native error with one of our codes is returned unchanged.
 */
export function fromNative(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof WasmError) return error
  const native = error as Error & ErrorFields & { code?: unknown }
  const code = typeof native.code === 'string' ? native.code : undefined
  if (code === 'ERR_WASM_TYPE') return new WasmTypeError(native.message)
  if (code === 'ERR_WASM_INTERNAL') return new WasmError(native.message, { code })
  if (code === undefined) return error
  const Class = BY_CODE[code]
  if (Class === undefined) {
    // napi-rs's own argument checks (InvalidArg, NumberExpected, ...) are type errors.
    return /Expected|InvalidArg/.test(code) ? new WasmTypeError(native.message) : error
  }
  const fields: ErrorFields & { code?: string } = { code }
  for (const key of [
    'cause',
    'trapCode',
    'wasmBacktrace',
    'fuelConsumed',
    'elapsedMs',
    'timeoutMs',
    'payload',
    'path',
    'exitCode',
    'failedStart',
  ] as const) {
    // Own only: the addon sets them; what Object.prototype holds is no field of this error.
    if (Object.hasOwn(native, key)) (fields as Record<string, unknown>)[key] = native[key]
  }
  const typed = new Class(native.message, fields)
  const entered = Object.hasOwn(native, 'trapCode') && (native as { entered?: unknown }).entered !== false
  // exit(0) is how a command succeeds (README, WASI): it stopped nothing, as the instance's metrics
  // say; but not in a call of an export that declares a value, which it never gave, nor in a
  // destructor the call ran first, before it could run itself (`failedCall`).
  const failedExit =
    Class === WasiExitError &&
    ((native as { exitCode?: unknown }).exitCode !== 0 ||
      (native as { failedCall?: unknown }).failedCall === true)
  if (entered || Class === HostError || failedExit) stoppedGuests.add(typed)
  return typed
}

/** Runs `body`, throwing native errors (thrown, or returned in the failure box) as their classes. */
export function translate<T>(body: () => T): T {
  try {
    return unbox(body())
  } catch (error) {
    throw fromNative(error)
  }
}

/** Awaits `promise`, rejecting with native errors as their classes. */
export async function translateAsync<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise
  } catch (error) {
    throw fromNative(error)
  }
}
