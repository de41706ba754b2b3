/**
 * What a host function runs in: the instance whose function it is, and the guest call it serves.
 * A call on an instance from inside one of that instance's own host functions (including the
 * async work a host function started) would queue behind the very call that waits for the host
 * function, a deadlock until the outer deadline; and a host function's own work (a timer, a
 * fetch) should stop when the call it serves ends. The host functions given to an instance are
 * wrapped to run in an async context that names both.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { types } from 'node:util'

import type { Imports } from '../options.js'
import { BusyError } from '../errors.js'
import { boxed } from './failure.js'

/** The host calls a piece of code serves: of every instance whose host function it runs in. */
export type Callers = ReadonlyMap<Owner, HostCall>

/** A guest call as its host functions see it: the signal they get aborts when it ends. */
class HostCall {
  #controller: AbortController | undefined
  #ended = false

  /**
   * @param callers The host calls the code that made this call served: they wait on it, so its
   *   host functions serve them too.
   */
  constructor(readonly callers: Callers | undefined) {}

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#ended) this.#controller.abort(ended())
    }
    return this.#controller.signal
  }

  /** Whether the call is still running (its host functions' work may outlive it). */
  get running(): boolean {
    return !this.#ended
  }

  end(): void {
    this.#ended = true
    this.#controller?.abort(ended())
  }
}

const ended = () => new DOMException('the guest call this host function served has ended', 'AbortError')

/**
 * One instance's host functions (the Instance is made after they are linked), and the guest call
 * they serve now: made when the first of them runs in it, so that calls that reach no host
 * function cost nothing. An instance runs one call at a time, its instantiation included.
 */
export class Owner {
  #current: HostCall | undefined
  #callers: Callers | undefined

  /** @param callers What the code instantiating it serves, for the host functions its start code calls. */
  constructor(callers?: Callers) {
    this.#callers = callers
  }

  /** The call running now, for a host function starting in it. */
  get current(): HostCall {
    this.#current ??= new HostCall(this.#callers)
    return this.#current
  }

  /**
   * Starts a call made by code that served `callers` (see {@link currentCallers}): an async call
   * reaches its host functions from the addon, outside the context of the code that made it.
   */
  begin(callers: Callers | undefined): void {
    this.#callers = callers
  }

  /** `run()`, as one call for the host functions it reaches: it ends when `run` returns or throws. */
  serve<T>(run: () => T): T {
    try {
      return run()
    } finally {
      this.endCall()
    }
  }

  /** Ends the running call for its host functions: the signal they were given aborts. */
  endCall(): void {
    this.#callers = undefined
    const current = this.#current
    if (current === undefined) return
    this.#current = undefined
    current.end()
  }
}

interface Context {
  /**
   * Every instance whose host function is running, with the call each serves, and every instance
   * whose call waits on those (A's host function awaiting B's call, which reached B's).
   */
  owners: Callers
  call: HostCall
}

const inside = new AsyncLocalStorage<Context>()

/**
 * Whether the code running now is (or was started by) a host function of `owner` whose call is
 * still running. Work a host function left behind may call its instance once that call ended.
 */
export function isInsideHostCall(owner: Owner): boolean {
  return inside.getStore()?.owners.get(owner)?.running === true
}

/**
 * Runs `run` as a call of `owner`'s for the re-entry check, ending it when `run` returns, throws
 * or (for a Promise) settles: the calls and instantiations it makes serve it, so a host function
 * they reach that calls `owner` again is refused. For a sandbox, whose replacement instance does
 * not exist yet while its start code runs.
 */
export function servedAs<T>(owner: Owner, run: () => T): T {
  const call = owner.current
  const owners = new Map(inside.getStore()?.owners)
  owners.set(owner, call)
  let result: T
  try {
    result = inside.run({ owners, call }, run)
  } catch (error) {
    owner.endCall()
    throw error
  }
  if (!types.isPromise(result)) {
    owner.endCall()
    return result
  }
  return result.finally(() => owner.endCall()) as T
}

/**
 * The refusal of a call made by code that the running call of its instance (or sandbox) waits on:
 * one of its own host functions, or one reached through other calls it made. Queued, the call
 * would wait for itself.
 */
export function reentryRefused(what: string, of: 'instance' | 'sandbox'): BusyError {
  return new BusyError(
    `${what} from a host function the ${of}'s running call waits on (its own, or one reached through ` +
      'other calls): it would wait for itself',
  )
}

/**
 * The guest call the code running now serves (inside a host function and the async work it
 * started), to tell whether it still runs; undefined elsewhere.
 */
export function servedCall(): { readonly running: boolean } | undefined {
  return inside.getStore()?.call
}

/** The host calls the code running now serves, for a call it makes to pass on to its host functions. */
export function currentCallers(): Callers | undefined {
  return inside.getStore()?.owners
}

/**
 * Inside a host function (and the async work it started), the AbortSignal of the guest call it
 * serves: aborted when that call ends, whether it returned, failed, timed out or was aborted, so
 * that a timer or a fetch the function started stops with it. Undefined elsewhere.
 */
export function hostCallSignal(): AbortSignal | undefined {
  return inside.getStore()?.call.signal
}

/** `imports` with every function (at the top level and in interface objects) run as `owner`'s. */
export function ownedImports(imports: Imports | undefined, owner: Owner): Imports | undefined {
  if (imports === undefined) return undefined
  const wrap = (value: unknown): unknown => {
    if (typeof value !== 'function' || isClass(value)) return value
    const host = value as (...args: unknown[]) => unknown
    return function (this: unknown, ...args: unknown[]) {
      const call = owner.current
      const owners = new Map(call.callers)
      for (const [other, served] of inside.getStore()?.owners ?? []) owners.set(other, served)
      owners.set(owner, call)
      try {
        return inside.run({ owners, call }, () => Reflect.apply(host, this, args))
      } catch (error) {
        // Handed back, not thrown into the addon (see util/failure.ts).
        return boxed(error)
      }
    }
  }
  // Own properties only, enumerable or not: exactly what the addon links.
  const owned: Imports = {}
  for (const key of Object.getOwnPropertyNames(imports)) {
    const value: unknown = Reflect.get(imports, key)
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const inner: Record<string, unknown> = {}
      for (const name of Object.getOwnPropertyNames(value)) inner[name] = wrap(Reflect.get(value, name))
      owned[key] = inner
    } else {
      owned[key] = wrap(value)
    }
  }
  return owned
}

/** A `class` (a host-implemented resource, not a host function): never wrapped. */
function isClass(value: Function): boolean {
  return /^class[\s{]/.test(Function.prototype.toString.call(value))
}
