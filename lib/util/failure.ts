/**
 * How failures cross between the addon and JS without N-API throwing them.
 *
 * N-API throws inside a `v8::TryCatch` of its own, which V8 counts as no handler at all: under
 * `node --abort-on-uncaught-exception` (how services get core dumps) every trap, timeout or bad
 * argument a binding threw aborted the process even inside the caller's `try`, and so did every
 * error a host function threw back into the addon. So neither side throws across the boundary: a
 * failing binding puts its error in the environment's failure box and returns the box, and a host
 * function's wrapper does the same with what the host threw. Each side throws it again (or hands
 * it on) on its own side, where the caller's `try` catches it as any JS error.
 */
import { types } from 'node:util'

import { failureBox } from '../native.js'

/**
 * The environment's failure box: one object, shared by every copy of this package (ESM and
 * CommonJS). Its functions read host values for the addon: here a throwing getter or a revoked
 * `Proxy` meets a `try`, where read through N-API it aborted a process run with
 * `--abort-on-uncaught-exception`. They never throw, for the same reason.
 */
const FAILED = failureBox() as {
  error: unknown
  describe?: (thrown: unknown) => string | undefined
  payload?: (thrown: unknown, wantsMessage: boolean) => unknown
  dispose?: (value: object) => DisposeFailure | Promise<DisposeFailure | undefined> | undefined
  arrayCopy?: (value: unknown, max: number) => unknown[] | string | undefined
}

/**
 * What a HostError says of a value a host function threw: the message of an Error (or of an
 * object with a string `name` and `message`, as a DOMException), else undefined (the addon then
 * names the value's kind).
 */
function describe(thrown: unknown): string | undefined {
  const native = types.isNativeError(thrown)
  try {
    if (native || errorLike(thrown)) {
      const { message } = thrown as { message?: unknown }
      return typeof message === 'string' ? message : ''
    }
  } catch {
    return native ? '' : undefined
  }
  return undefined
}
FAILED.describe = describe

/**
 * The err payload of a value a host function threw for a `result` import: its own `payload` (jco's
 * `ComponentError`; `undefined` too, an option's none), else for a string error type
 * (`wantsMessage`) an error's message, else the value itself. Undefined when a read threw.
 */
export function thrownPayload(thrown: unknown, wantsMessage: boolean): { payload: unknown } | undefined {
  if ((typeof thrown !== 'object' || thrown === null) && typeof thrown !== 'function')
    return { payload: thrown }
  try {
    if (Object.hasOwn(thrown, 'payload')) return { payload: (thrown as { payload?: unknown }).payload }
    if (wantsMessage && (types.isNativeError(thrown) || errorLike(thrown))) {
      return { payload: (thrown as { message?: unknown }).message }
    }
    return { payload: thrown }
  } catch {
    return undefined
  }
}

/** {@link thrownPayload} for the addon: the box itself when a read threw (it then fails the call). */
FAILED.payload = (thrown: unknown, wantsMessage: boolean): unknown => {
  const read = thrownPayload(thrown, wantsMessage)
  return read === undefined ? FAILED : read.payload
}

/**
 * A plain copy of a `Proxy` of an array, for a list or a tuple: N-API sees such a proxy as an
 * object, where `Array.isArray` (and jco) take it as the array it stands for. Undefined for any
 * other value; why it cannot be read when a trap threw, its `length` is no array length or more
 * than `max` (a `length` of 2^32 - 1 with a cheap trap would hold the thread for minutes).
 */
FAILED.arrayCopy = (value: unknown, max: number): unknown[] | string | undefined => {
  if (!types.isProxy(value)) return undefined
  try {
    if (!Array.isArray(value)) return undefined
    const array = value as unknown[]
    const read: unknown = array.length
    const length = typeof read === 'number' ? read : Number(read)
    if (!Number.isSafeInteger(length) || length < 0) {
      return `a proxied array whose length is ${typeof read === 'number' ? String(read) : typeof read}`
    }
    if (length > max) return `an array of ${length} elements is longer than a list argument may be (${max})`
    const copy = new Array<unknown>(length)
    for (let index = 0; index < length; index++) copy[index] = array[index]
    return copy
  } catch (error) {
    return `reading a proxied array threw: ${describe(error) ?? typeof error}`
  }
}

/** What failed in a host resource's `[Symbol.dispose]`, for the addon's process warning. */
interface DisposeFailure {
  did: 'could not be read' | 'is not a function' | 'threw' | 'rejected'
  /** Set when `thrown` is error-like; else the addon names its kind. */
  message: string | undefined
  thrown: unknown
}

/**
 * Runs a host object's `[Symbol.dispose]` (the guest dropped its handle, or its instance went):
 * what failed, a Promise of what failed for an async one (never rejecting), or undefined.
 */
FAILED.dispose = (value: object) => {
  let method: unknown
  try {
    method = (value as { [Symbol.dispose]?: unknown })[Symbol.dispose]
  } catch (error) {
    return disposeFailure('could not be read', error)
  }
  if (method === undefined || method === null) return undefined
  // `using` would throw a TypeError: not silence either.
  if (typeof method !== 'function') return disposeFailure('is not a function', method)
  let returned: unknown
  try {
    returned = Reflect.apply(method, value, [])
  } catch (error) {
    return disposeFailure('threw', error)
  }
  return types.isPromise(returned) ? settled(returned) : undefined
}

/**
 * What a Promise a dispose returned fails with, as a Promise of Promise's own (never rejecting).
 * `then` makes its Promise by the species of the one it is called on: a subclass's may throw (the
 * rejection then went unhandled, which ends a Node process) or make objects whose own `then`
 * throws (the addon could not wait for it, and the failure went silent). For the time of the call
 * the Promise's `constructor` is `Promise`, whose species is itself.
 */
function settled(promise: Promise<unknown>): Promise<DisposeFailure | undefined> | DisposeFailure {
  const own = Object.getOwnPropertyDescriptor(promise, 'constructor')
  try {
    Object.defineProperty(promise, 'constructor', { value: Promise, configurable: true, writable: true })
    return Promise.prototype.then.call(
      promise,
      () => undefined,
      (error: unknown) => disposeFailure('rejected', error),
    ) as Promise<DisposeFailure | undefined>
  } catch (error) {
    return disposeFailure('threw', error)
  } finally {
    try {
      if (own === undefined) Reflect.deleteProperty(promise, 'constructor')
      else Object.defineProperty(promise, 'constructor', own)
    } catch {
      // A Promise that cannot be given its own `constructor` back keeps ours (Promise's).
    }
  }
}

function disposeFailure(did: DisposeFailure['did'], thrown: unknown): DisposeFailure {
  return { did, message: describe(thrown), thrown }
}

/** An object with a string `name` and `message` (a DOMException is one, not a native Error). */
function errorLike(thrown: unknown): boolean {
  if (typeof thrown !== 'object' || thrown === null) return false
  const { name, message } = thrown as { name?: unknown; message?: unknown }
  return typeof name === 'string' && typeof message === 'string'
}

/** What a binding returned, or, when it returned the box, the error it holds thrown (the box emptied). */
export function unbox<T>(returned: T): T {
  if (returned !== FAILED) return returned
  const error = FAILED.error
  FAILED.error = undefined
  throw error
}

/** The box holding `error`, as a host function's wrapper returns it to the addon instead of throwing. */
export function boxed(error: unknown): typeof FAILED {
  FAILED.error = error
  return FAILED
}
