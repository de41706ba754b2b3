/**
 * Tells when a call on an instance comes from inside one of that instance's own host functions
 * (including the async work a host function started): such a `call` would queue behind the very
 * call that waits for the host function, a deadlock until the outer deadline. The host functions
 * given to an instance are wrapped to run in an async context that names the instance.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

import type { Imports } from '../options.js'
import { boxed } from './failure.js'

/** Identifies one instance's host functions (the Instance is made after they are linked). */
export type Owner = object

const inside = new AsyncLocalStorage<ReadonlySet<Owner>>()

/** Whether the code running now is (or was started by) a host function of `owner`. */
export function isInsideHostCall(owner: Owner): boolean {
  return inside.getStore()?.has(owner) === true
}

/** `imports` with every function (at the top level and in interface objects) run as `owner`'s. */
export function ownedImports(imports: Imports | undefined, owner: Owner): Imports | undefined {
  if (imports === undefined) return undefined
  const wrap = (value: unknown): unknown => {
    if (typeof value !== 'function' || isClass(value)) return value
    const host = value as (...args: unknown[]) => unknown
    return function (this: unknown, ...args: unknown[]) {
      const owners = new Set(inside.getStore() ?? [])
      owners.add(owner)
      try {
        return inside.run(owners, () => Reflect.apply(host, this, args))
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
