/**
 * Wrong and hostile JS arguments, described as data so a failing one can be saved and rebuilt:
 * a valid value of the parameter's type in which one node (the root or any nested object, array
 * or leaf) is replaced by something hostile.
 */
import fc from 'fast-check'

import { valid, type Wit } from './wit.js'

export const EXOTICS = [
  'symbol',
  'function',
  'boxed-number',
  'boxed-string',
  'boxed-boolean',
  'boxed-bigint',
  'date',
  'map',
  'set',
  'promise',
  'weakmap',
  'array-buffer',
  'shared-array-buffer',
  'data-view',
  'detached-typed-array',
  'shared-typed-array',
  'array-subclass',
  'array-like',
  'primitive-throws',
  'null-prototype-empty',
  'frozen-empty',
  'error',
  'regexp',
  'arguments',
] as const

export type Mutation =
  | { kind: 'anything'; value: unknown }
  | { kind: 'getter-throws'; key: string }
  | { kind: 'proxy-transparent' }
  | { kind: 'proxy-throwing' }
  | { kind: 'revoked-proxy' }
  | { kind: 'sparse'; length: number; entries: Array<[number, unknown]> }
  | { kind: 'cyclic' }
  | { kind: 'exotic'; which: (typeof EXOTICS)[number] }

/** One hostile argument: `base` (valid) with node number `node` (in visiting order) replaced. */
export interface Hostile {
  base: unknown
  node: number
  mutation: Mutation
}

const anything = fc.anything({
  maxDepth: 3,
  maxKeys: 5,
  withBigInt: true,
  withNullPrototype: true,
  withTypedArray: true,
  withSparseArray: true,
  withUnicodeString: true,
})

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: anything.map((value) => ({ kind: 'anything' as const, value })) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom('tag', 'val', '0', '1', 'firstName', 'age', 'tags', 'x', 'y', 'read', 'items', 'inner')
      .map((key) => ({ kind: 'getter-throws' as const, key })),
  },
  fc.constant({ kind: 'proxy-transparent' as const }),
  fc.constant({ kind: 'proxy-throwing' as const }),
  fc.constant({ kind: 'revoked-proxy' as const }),
  {
    weight: 2,
    arbitrary: fc
      .record({
        length: fc.oneof(
          fc.constantFrom(2 ** 32 - 1, 2 ** 31, 10_000_000),
          fc.integer({ min: 1, max: 2 ** 32 - 1 }),
        ),
        entries: fc.array(fc.tuple(fc.nat({ max: 3 }), anything), { maxLength: 2 }),
      })
      .map(({ length, entries }) => ({ kind: 'sparse' as const, length, entries })),
  },
  fc.constant({ kind: 'cyclic' as const }),
  { weight: 2, arbitrary: fc.constantFrom(...EXOTICS).map((which) => ({ kind: 'exotic' as const, which })) },
)

/** Hostile arguments for a parameter of type `ty`. */
export function hostile(ty: Wit): fc.Arbitrary<Hostile> {
  return fc.record({ base: valid(ty), node: fc.nat({ max: 40 }), mutation })
}

function exotic(which: (typeof EXOTICS)[number]): unknown {
  switch (which) {
    case 'symbol':
      return Symbol('hostile')
    case 'function':
      return () => 1
    case 'boxed-number':
      return new Number(1)
    case 'boxed-string':
      return new String('a')
    case 'boxed-boolean':
      return new Boolean(true)
    case 'boxed-bigint':
      return Object(1n)
    case 'date':
      return new Date(0)
    case 'map':
      return new Map([['tag', 'ok']])
    case 'set':
      return new Set([1])
    case 'promise':
      return Promise.resolve(1)
    case 'weakmap':
      return new WeakMap()
    case 'array-buffer':
      return new ArrayBuffer(8)
    case 'shared-array-buffer':
      return new SharedArrayBuffer(8)
    case 'data-view':
      return new DataView(new ArrayBuffer(8))
    case 'detached-typed-array': {
      const bytes = new Uint8Array(16)
      // Transferring the buffer detaches it: the view keeps its object but has no bytes left.
      ;(structuredClone as (value: unknown, options: unknown) => unknown)(bytes.buffer, {
        transfer: [bytes.buffer],
      })
      return bytes
    }
    case 'shared-typed-array':
      return new Uint8Array(new SharedArrayBuffer(4))
    case 'array-subclass':
      return class Hostile extends Array {}.from([1, 2])
    case 'array-like':
      return { length: 2, 0: 1, 1: 2 }
    case 'primitive-throws':
      return {
        valueOf() {
          throw new Error('hostile valueOf')
        },
        toString() {
          throw new Error('hostile toString')
        },
        [Symbol.toPrimitive]() {
          throw new Error('hostile toPrimitive')
        },
      }
    case 'null-prototype-empty':
      return Object.create(null)
    case 'frozen-empty':
      return Object.freeze({})
    case 'error':
      return new Error('not a value')
    case 'regexp':
      return /x/
    case 'arguments':
      return (function () {
        // eslint-disable-next-line prefer-rest-params
        return arguments
      })()
  }
}

const throwing = () => {
  throw new Error('hostile trap')
}

const ALL_TRAPS: ProxyHandler<object> = {
  get: throwing,
  has: throwing,
  ownKeys: throwing,
  getOwnPropertyDescriptor: throwing,
  getPrototypeOf: throwing,
  defineProperty: throwing,
  set: throwing,
}

function replace(node: unknown, later: Array<(root: unknown) => void>, m: Mutation): unknown {
  const object = typeof node === 'object' && node !== null ? node : { tag: node, val: node }
  switch (m.kind) {
    case 'anything':
      return m.value
    case 'getter-throws': {
      const copy: object = Array.isArray(object) ? [...object] : { ...object }
      Object.defineProperty(copy, m.key, { get: throwing, enumerable: true, configurable: true })
      return copy
    }
    case 'proxy-transparent':
      return new Proxy(object, {})
    case 'proxy-throwing':
      return new Proxy(object, ALL_TRAPS)
    case 'revoked-proxy': {
      const { proxy, revoke } = Proxy.revocable(object, {})
      revoke()
      return proxy
    }
    case 'sparse': {
      const array: unknown[] = new Array(m.length)
      for (const [index, item] of m.entries) array[index] = item
      return array
    }
    case 'cyclic': {
      // A node that contains the whole argument: the converter must not follow it forever.
      const copy: Record<string, unknown> | unknown[] = Array.isArray(object) ? [...object] : { ...object }
      later.push((root) => {
        if (Array.isArray(copy)) copy.push(root)
        else
          for (const key of Object.keys(copy).length > 0 ? Object.keys(copy) : ['tag', 'val'])
            copy[key] = root
      })
      return copy
    }
    case 'exotic':
      return exotic(m.which)
  }
}

/** Builds the hostile value a {@link Hostile} describes. */
export function build({ base, node, mutation: m }: Hostile): unknown {
  let visited = 0
  const later: Array<(root: unknown) => void> = []
  const visit = (value: unknown): unknown => {
    if (visited++ === node) return replace(value, later, m)
    if (ArrayBuffer.isView(value)) return value
    if (Array.isArray(value)) return value.map(visit)
    if (typeof value === 'object' && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, visit(item)]))
    }
    return value
  }
  let root = visit(base)
  // Past the last node: mutate the root.
  if (visited <= node) root = replace(root, later, m)
  for (const fix of later) fix(root)
  return root
}

/** A short description for logs and saved files. */
export function describe({ node, mutation: m }: Hostile): string {
  const detail = 'which' in m ? m.which : 'key' in m ? m.key : 'length' in m ? `length ${m.length}` : ''
  return `${m.kind}${detail ? ` (${detail})` : ''} at node ${node}`
}
