/**
 * The AbortSignal a host function should honour: a fixed signal, or a function asked on every host
 * call (the sandbox's per-call signal, aborted when the guest's call ends), plus an optional
 * timeout of the host function's own.
 */

import events from 'node:events'

import { AbortError, ConfigError } from '../errors.js'
import { NativeAbortHandle } from '../native.js'

/** A signal, or a function returning the signal of the call in progress (or undefined). */
export type SignalSource = AbortSignal | (() => AbortSignal | undefined)

// A signal's state is read through AbortSignal's own accessors and methods, never through the
// signal object: an own `aborted`, `reason` or `addEventListener` defined on it (that throws, or
// lies) must neither throw out of `call()` nor hide an abort.
const abortedGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get!
const reasonGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'reason')!.get!
const addListener = EventTarget.prototype.addEventListener

/**
 * Calls `fire` once `signal` aborts. Node's `addAbortListener` (Node 20.5 and later) registers it
 * so that an earlier listener's `stopImmediatePropagation()` cannot skip it, which would leave a
 * guest running to its deadline; it reads the signal's own `aborted` and `addEventListener`,
 * though, so a signal that defines its own gets EventTarget's method instead.
 */
function listen(signal: AbortSignal, fire: () => void): void {
  try {
    const own = (key: string) => Object.prototype.hasOwnProperty.call(signal, key)
    if (typeof events.addAbortListener === 'function' && !own('aborted') && !own('addEventListener')) {
      events.addAbortListener(signal, fire)
    } else {
      addListener.call(signal, 'abort', fire, { once: true })
    }
  } catch (error) {
    // A Proxy of a signal whose trap throws: the caller's own code, as in any option it gives.
    const reason = error instanceof Error ? error.message : String(error)
    throw new ConfigError(`signal: listening for its abort threw: ${reason}`, {
      path: 'signal',
      cause: error,
    })
  }
}

/** Whether `signal` (a real AbortSignal, see {@link isAbortSignal}) has aborted; false for none. */
export function isAborted(
  signal: AbortSignal | undefined,
): signal is AbortSignal & { readonly aborted: true } {
  return signal !== undefined && (abortedGetter.call(signal) as boolean)
}

/**
 * Why `signal` aborted (undefined while it has not). A Proxy of a signal whose trap throws as the
 * reason is read gives what it threw as the reason: read in an abort listener, a throw would be
 * an uncaught exception that ends the process.
 */
export function abortReason(signal: AbortSignal): unknown {
  try {
    return reasonGetter.call(signal)
  } catch (error) {
    return error
  }
}

/** The AbortError of a call stopped by `signal`, its reason as `cause`. */
export function abortedBy(signal: AbortSignal): AbortError {
  return new AbortError('The operation was aborted', { cause: abortReason(signal) })
}

/**
 * Whether `value` is a real AbortSignal: `instanceof` also holds for `Object.create(
 * AbortSignal.prototype)`, on which Node's own methods throw a bare TypeError later.
 */
export function isAbortSignal(value: unknown): value is AbortSignal {
  if (!(value instanceof AbortSignal)) return false
  try {
    abortedGetter.call(value)
    return true
  } catch {
    return false
  }
}

/** What waits on each signal, behind its one listener (see {@link onAbort}). */
const waiting = new WeakMap<AbortSignal, Set<() => void>>()

/**
 * Calls `callback` once `signal` aborts, until the returned function is called. Every wait on one
 * signal shares one listener: a listener per call made Node warn of a leak
 * (`MaxListenersExceededWarning`) once 11 calls waited on a signal the host shares.
 */
export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  let callbacks = waiting.get(signal)
  if (callbacks === undefined) {
    const registered = new Set<() => void>()
    // Listening first: a signal that cannot be listened to leaves no set waiting on it.
    listen(signal, () => {
      waiting.delete(signal)
      for (const waiter of registered) waiter()
    })
    callbacks = registered
    waiting.set(signal, registered)
  }
  const entry = () => callback()
  callbacks.add(entry)
  return () => callbacks.delete(entry)
}

/**
 * A signal of our own that aborts when `signal` does: kept in place of a caller's signal, so that
 * what its object may do when read (a Proxy's traps) happens once, where it is given, and never
 * in the work it later bounds.
 */
export function followed(signal: AbortSignal): AbortSignal {
  const controller = new AbortController()
  if (isAborted(signal)) controller.abort(abortReason(signal))
  else onAbort(signal, () => controller.abort(abortReason(signal)))
  return controller.signal
}

/**
 * The signal `source` stands for right now. What a function gives is checked each time (it is
 * the caller's code): anything but an AbortSignal or undefined, or a throw, is a ConfigError.
 */
export function currentSignal(source: SignalSource | undefined): AbortSignal | undefined {
  if (typeof source !== 'function') return source
  let given: unknown
  try {
    given = source()
    if (given === undefined || isAbortSignal(given)) return given
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new ConfigError(`signal: the function that gives it threw: ${reason}`, {
      path: 'signal',
      cause: error,
    })
  }
  throw new ConfigError('signal: the function that gives it returned something other than an AbortSignal', {
    path: 'signal',
    value: given,
  })
}

/**
 * `source`'s current signal, combined with a timeout of `timeoutMs` when given. Node's timeout
 * signals never keep the process alive.
 */
export function signalWithTimeout(
  source: SignalSource | undefined,
  timeoutMs: number | undefined,
): AbortSignal | undefined {
  const signal = currentSignal(source)
  if (timeoutMs === undefined) return signal
  const timeout = AbortSignal.timeout(timeoutMs)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}

/**
 * Runs a native operation that takes an abort handle, aborting it when `signal` fires (an
 * already aborted signal rejects at once with AbortError, the operation never starting).
 */
export async function withAbort<T>(
  signal: AbortSignal | undefined,
  run: (handle: NativeAbortHandle | undefined) => Promise<T>,
): Promise<T> {
  if (isAborted(signal)) throw abortedBy(signal)
  const handle = signal ? new NativeAbortHandle() : undefined
  const stop = signal && handle ? onAbort(signal, () => handle.abort()) : undefined
  try {
    return await run(handle)
  } catch (error) {
    // The addon's AbortError knows nothing of the signal: its reason is the cause here too, as
    // for a call refused before it ran.
    if (error instanceof AbortError && error.cause === undefined && isAborted(signal)) {
      Object.defineProperty(error, 'cause', {
        value: abortReason(signal),
        writable: true,
        configurable: true,
      })
    }
    throw error
  } finally {
    stop?.()
  }
}
