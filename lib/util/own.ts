/**
 * Options as the caller wrote them, and nothing they inherit. A host whose `Object.prototype` was
 * polluted (a deep merge of JSON holding `"__proto__"`) would otherwise hand every omitted option
 * the attacker's value: preopens, env, args, network grants, deadlines, fuel. So each public entry
 * point reads its options through {@link ownOptions}, and the objects it builds for the addon,
 * which reads their fields through the prototype chain, are made with {@link bare}.
 */

import { types } from 'node:util'

/**
 * Deeper than any option: a deeper object (or a cycle) is kept as it is rather than copied for
 * ever, for the option's own check to refuse.
 */
const MAX_DEPTH = 16

/** More elements than any list option holds (args, env, grants): kept as it is, likewise. */
const MAX_ELEMENTS = 1_000_000

/** An object without a prototype and without keys: the default of an omitted options object. */
export const NONE: Readonly<Record<string, never>> = Object.freeze(
  Object.create(null) as Record<string, never>,
)

/**
 * A copy of `value` that holds only its own enumerable properties, on objects without a prototype
 * (and arrays without holes), so that no later read of an option can reach `Object.prototype`.
 * Option records (see {@link isOptionRecord}) and arrays are copied all the way down, each getter
 * read once; anything else (functions, an AbortSignal, typed arrays) is kept as it is, as are
 * the values of symbol keys and of the keys in `opaque` (host code the addon reads by own
 * properties, `imports`; an Engine). `undefined` stays `undefined`.
 */
export function ownOptions<T>(value: T, opaque: ReadonlySet<string> = NO_KEYS): T {
  return copy(value, opaque, 0) as T
}

const NO_KEYS: ReadonlySet<string> = new Set()

function copy(value: unknown, opaque: ReadonlySet<string>, depth: number): unknown {
  if (typeof value !== 'object' || value === null) return value
  const isArray = Array.isArray(value)
  if ((!isArray && !isOptionRecord(value)) || depth >= MAX_DEPTH) return value
  if (isArray) {
    const { length } = value
    if (length > MAX_ELEMENTS) return value
    const copied: unknown[] = new Array(length).fill(undefined)
    for (const key of Object.keys(value)) {
      const index = Number(key)
      if (Number.isInteger(index)) copied[index] = copy(value[index], NO_KEYS, depth + 1)
    }
    return copied
  }
  const copied = Object.create(null) as Record<PropertyKey, unknown>
  const source = value as Record<PropertyKey, unknown>
  for (const key of Object.keys(value)) {
    copied[key] = opaque.has(key) ? source[key] : copy(source[key], NO_KEYS, depth + 1)
  }
  // Symbol keys are ours (a sandbox's grants for wasi:http): kept as they are.
  for (const key of Object.getOwnPropertySymbols(value)) {
    if (Object.prototype.propertyIsEnumerable.call(value, key)) copied[key] = source[key]
  }
  return copied
}

/**
 * Whether `value` is of the kind a set of options is: an object literal, one made with
 * `Object.create(defaults)` or without a prototype, a class instance, a module namespace, from
 * any realm; copied by its own fields, so inherited defaults are no options of its own. Not an
 * array, a typed array or buffer, a Map or Set, a Date, a RegExp, a boxed primitive, a Promise or
 * an event target such as an AbortSignal (told by what they are, not by a `Symbol.toStringTag`
 * anyone can set), kept as they are where an option is one of those, and refused where options
 * are expected: their own keys would read as no options.
 */
export function isOptionRecord(value: unknown): value is object {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !ArrayBuffer.isView(value) &&
    !types.isAnyArrayBuffer(value) &&
    !types.isMap(value) &&
    !types.isSet(value) &&
    !types.isWeakMap(value) &&
    !types.isWeakSet(value) &&
    !types.isDate(value) &&
    !types.isRegExp(value) &&
    !types.isBoxedPrimitive(value) &&
    !types.isPromise(value) &&
    !(value instanceof EventTarget)
  )
}

/** `object`, made prototype-less: what the addon is given, for it reads fields it is not given. */
export function bare<T extends object>(object: T): T {
  return Object.setPrototypeOf(object, null) as T
}

/** `object[key]` if `object` holds it itself; `undefined` rather than what a prototype holds. */
export function ownField<T extends object, K extends keyof T>(object: T, key: K): T[K] | undefined {
  return Object.hasOwn(object, key) ? object[key] : undefined
}

/**
 * A copy of a listing (a component's imports or exports, with their WIT types) on objects without
 * a prototype, the fields that do not print (`func`, `members`) included: what the package's own
 * code reads to link, call, convert and write types. Read through the prototype chain, a field a
 * listing leaves out came from a polluted `Object.prototype`: an item's `exports` became a string
 * and listing a component threw a bare `TypeError`; a `result` without an err type gained one.
 * The listings the API returns stay ordinary objects, so that they print and compare as shown.
 */
export function bareListing<T>(listing: T): T {
  if (typeof listing !== 'object' || listing === null) return listing
  if (Array.isArray(listing)) return listing.map(bareListing) as T
  const copied = Object.create(null) as Record<string, unknown>
  const source = listing as Record<string, unknown>
  for (const key of Object.getOwnPropertyNames(source)) copied[key] = bareListing(source[key])
  return copied as T
}
