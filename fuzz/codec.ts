/**
 * JSON with the JS values plain JSON loses (undefined, bigint, NaN, -0, holes, typed arrays,
 * null-prototype objects), so a failing input can be saved to the corpus and read back as it was.
 */

import { TYPED_ARRAY_CLASSES } from '../lib/util/typed-arrays.js'

type Encoded = null | boolean | number | string | Encoded[] | { $: string; [key: string]: unknown }

/** Each typed-array class by its name; `from` takes the element values an encoding holds. */
const TYPED: Record<string, { from(values: ArrayLike<unknown>): unknown }> = Object.fromEntries(
  TYPED_ARRAY_CLASSES.map((Class) => [Class.name, Class as { from(values: ArrayLike<unknown>): unknown }]),
)

/** Encodes `value`; throws for what it cannot represent (functions, symbols, cycles, exotic objects). */
export function encode(value: unknown, seen = new Set<object>()): Encoded {
  switch (typeof value) {
    case 'undefined':
      return { $: 'undefined' }
    case 'boolean':
    case 'string':
      return value
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0) ? value : { $: 'number', v: String(value) }
    case 'bigint':
      return { $: 'bigint', v: value.toString() }
    case 'object': {
      if (value === null) return null
      if (seen.has(value)) throw new Error('cannot encode a cycle')
      seen.add(value)
      try {
        if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
          const name = value.constructor.name
          if (!(name in TYPED)) throw new Error(`cannot encode a ${name}`)
          return { $: name, v: Array.from(value as unknown as ArrayLike<unknown>, (item) => encode(item)) }
        }
        if (Array.isArray(value)) {
          const dense = Object.keys(value).length === value.length
          if (dense && Object.getPrototypeOf(value) === Array.prototype)
            return value.map((item) => encode(item, seen))
          return {
            $: 'array',
            length: value.length,
            items: Object.keys(value).map((key) => [key, encode(value[key as never], seen)]),
          }
        }
        const proto = Object.getPrototypeOf(value)
        if (proto !== Object.prototype && proto !== null) {
          throw new Error(`cannot encode a ${String(proto?.constructor?.name)}`)
        }
        return {
          $: 'object',
          proto: proto === null ? 'null' : 'object',
          entries: Object.keys(value).map((key) => [
            key,
            encode((value as Record<string, unknown>)[key], seen),
          ]),
        }
      } finally {
        seen.delete(value)
      }
    }
    default:
      throw new Error(`cannot encode a ${typeof value}`)
  }
}

/** The inverse of {@link encode}. */
export function decode(encoded: unknown): unknown {
  if (encoded === null || typeof encoded !== 'object') return encoded
  if (Array.isArray(encoded)) return encoded.map(decode)
  const tagged = encoded as { $: string; [key: string]: unknown }
  switch (tagged.$) {
    case 'undefined':
      return undefined
    case 'number':
      return Number(tagged.v)
    case 'bigint':
      return BigInt(tagged.v as string)
    case 'array': {
      const array = new Array(tagged.length as number)
      for (const [key, item] of tagged.items as Array<[string, unknown]>)
        array[key as never] = decode(item) as never
      return array
    }
    case 'object': {
      const object: Record<string, unknown> = tagged.proto === 'null' ? Object.create(null) : {}
      for (const [key, item] of tagged.entries as Array<[string, unknown]>) {
        Object.defineProperty(object, key, {
          value: decode(item),
          enumerable: true,
          writable: true,
          configurable: true,
        })
      }
      return object
    }
    default: {
      const Typed = TYPED[tagged.$]
      if (Typed === undefined) throw new Error(`unknown encoded kind ${tagged.$}`)
      return Typed.from((tagged.v as unknown[]).map(decode))
    }
  }
}

export const toText = (value: unknown) => `${JSON.stringify(encode(value), null, 1)}\n`
export const fromText = (text: string) => decode(JSON.parse(text))
