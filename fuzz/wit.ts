/**
 * A small model of WIT value types for the property tests: for each type, an arbitrary of valid
 * JS values, the value the addon gives back for one of them, and an oracle that says whether any
 * JS value is a valid argument. The oracle restates the conversion rules of the README
 * (jco's mapping) independently of the Rust code, so a disagreement is a finding.
 */
import fc from 'fast-check'

export type Wit =
  | 'bool'
  | 'u8'
  | 'u16'
  | 'u32'
  | 'u64'
  | 's8'
  | 's16'
  | 's32'
  | 's64'
  | 'f32'
  | 'f64'
  | 'char'
  | 'string'
  | { list: Wit }
  | { record: ReadonlyArray<readonly [string, Wit]> }
  | { tuple: readonly Wit[] }
  | { variant: ReadonlyArray<readonly [string, Wit | null]> }
  | { enum: readonly string[] }
  | { flags: readonly string[] }
  | { option: Wit }
  | { result: readonly [Wit | null, Wit | null] }

const INTEGERS = {
  u8: [0, 255],
  u16: [0, 65535],
  u32: [0, 4294967295],
  s8: [-128, 127],
  s16: [-32768, 32767],
  s32: [-2147483648, 2147483647],
} as const
const BIGINTS = {
  u64: [0n, 2n ** 64n - 1n],
  s64: [-(2n ** 63n), 2n ** 63n - 1n],
} as const

/** The typed array a `list<T>` of a numeric T comes back as. */
export const TYPED_ARRAYS = {
  u8: Uint8Array,
  s8: Int8Array,
  u16: Uint16Array,
  s16: Int16Array,
  u32: Uint32Array,
  s32: Int32Array,
  u64: BigUint64Array,
  s64: BigInt64Array,
  f32: Float32Array,
  f64: Float64Array,
} as const

type Numeric = keyof typeof TYPED_ARRAYS
const isNumeric = (ty: Wit): ty is Numeric => typeof ty === 'string' && ty in TYPED_ARRAYS

/**
 * kebab-case WIT name -> the lowerCamelCase JS key, as jco spells it: a word in capitals is a word
 * like any other (`get-HTTP-url` -> `getHttpUrl`).
 */
export function camel(name: string): string {
  return name
    .split('-')
    .map((word, index) => {
      const lower = /^[A-Z0-9]+$/.test(word) ? word.toLowerCase() : word
      return index === 0 ? lower : lower.charAt(0).toUpperCase() + lower.slice(1)
    })
    .join('')
}

/**
 * Names a guest may give fields, cases and flags: plain ones, and ones a JS layer could trip on
 * (what objects inherit, what tagged values and thenables use, words in capitals).
 */
const NAME = fc.oneof(
  fc.constantFrom(
    ...['a', 'b', 'c', 'x1', 'first-name', 'tag', 'val', 'ok', 'err', 'some', 'none', 'then'],
    ...['constructor', 'to-string', 'value-of', 'has-own-property', 'payload', 'get-HTTP-url'],
    ...['ALL-CAPS', 'TAG', 'length', 'name', 'prototype', 'proto'],
  ),
  fc.stringMatching(/^[a-z][a-z0-9]{0,5}(-[a-z][a-z0-9]{0,5}){0,2}$/),
)

/** Between `min` and `max` names, distinct as the component model wants them (ignoring case). */
const names = (min: number, max: number) =>
  fc.uniqueArray(NAME, { minLength: min, maxLength: max, selector: (name) => name.toLowerCase() })

const PRIMITIVES: readonly Wit[] = [
  ...['bool', 'u8', 'u16', 'u32', 'u64', 's8', 's16', 's32', 's64'],
  ...['f32', 'f64', 'char', 'string'],
] as Wit[]

/** Random WIT value types, nested up to `levels` deep (each level an arbitrary built once). */
export function witType(levels = 3): fc.Arbitrary<Wit> {
  const primitive = fc.constantFrom(...PRIMITIVES)
  const enums = fc.oneof(
    { weight: 5, arbitrary: names(1, 8) },
    // Past 256 cases the discriminant takes two bytes.
    fc.integer({ min: 250, max: 300 }).map((count) => Array.from({ length: count }, (_, i) => `c${i}`)),
  )
  const flags = names(1, 40).map((list): Wit => ({ flags: list }))
  const leaf = fc.oneof(
    { weight: 6, arbitrary: primitive },
    enums.map((list): Wit => ({ enum: list })),
    flags,
  )
  if (levels === 0) return leaf
  const inner = witType(levels - 1)
  const optional = fc.option(inner, { nil: null })
  return fc.oneof(
    { weight: 4, arbitrary: leaf },
    inner.map((list): Wit => ({ list })),
    inner.map((option): Wit => ({ option })),
    fc.tuple(optional, optional).map(([ok, err]): Wit => ({ result: [ok, err] })),
    fc.array(inner, { minLength: 1, maxLength: 5 }).map((tuple): Wit => ({ tuple })),
    names(1, 6).chain((fields) =>
      fc.tuple(...fields.map(() => inner)).map((types): Wit => ({
        record: fields.map((field, index) => [field, types[index]!] as const),
      })),
    ),
    names(1, 6).chain((tags) =>
      fc.tuple(...tags.map(() => optional)).map((payloads): Wit => ({
        variant: tags.map((tag, index) => [tag, payloads[index]!] as const),
      })),
    ),
  )
}

const isNestedOption = (ty: Wit) => typeof ty === 'object' && 'option' in ty && isOption(ty.option)
const isOption = (ty: Wit) => typeof ty === 'object' && 'option' in ty

/** A Unicode scalar value as a one-code-point string. */
const scalar = fc
  .oneof(
    fc.integer({ min: 0, max: 0x7f }),
    fc.integer({ min: 0x80, max: 0xd7ff }),
    fc.integer({ min: 0xe000, max: 0x10ffff }),
  )
  .map((code) => String.fromCodePoint(code))

const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  // Long enough to take the converter's bulk paths and the guest's realloc growth.
  fc.string({ unit: fc.constantFrom('a', 'é', '世', '🚀'), minLength: 1_000, maxLength: 20_000 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('\u0000', 'ÿ', '\u0100', '\uFFFD', '\uFEFF', '🚀', 'é'), maxLength: 20 }),
)

/** Valid JS arguments of type `ty`, in every accepted form (arrays and typed arrays, null for none, ...). */
export function valid(ty: Wit, depth = 0): fc.Arbitrary<unknown> {
  if (typeof ty === 'string') {
    switch (ty) {
      case 'bool':
        return fc.boolean()
      case 'u64':
      case 's64': {
        const [min, max] = BIGINTS[ty]
        return fc.oneof(fc.bigInt({ min, max }), fc.constantFrom(min, max, 0n))
      }
      case 'f32':
        return fc.oneof(fc.float(), fc.double())
      case 'f64':
        return fc.double()
      case 'char':
        return scalar
      case 'string':
        return text
      default: {
        const [min, max] = INTEGERS[ty]
        return fc.oneof(fc.integer({ min, max }), fc.constantFrom(min, max, -0))
      }
    }
  }
  const size = depth > 1 ? 2 : 6
  if ('list' in ty) {
    const element = valid(ty.list, depth + 1)
    const scalarElements = isNumeric(ty.list) || ty.list === 'bool'
    const items =
      depth === 0 && scalarElements
        ? fc.oneof(
            { weight: 4, arbitrary: fc.array(element, { maxLength: size }) },
            fc.array(element, { maxLength: 5_000 }),
          )
        : fc.array(element, { maxLength: size })
    if (!isNumeric(ty.list)) return items
    const Typed = TYPED_ARRAYS[ty.list]
    const typed = items.map((values) => {
      const narrowed = ty.list === 'f32' ? values.map((v) => Math.fround(v as number)) : values
      return (Typed as unknown as { from(values: unknown[]): unknown }).from(narrowed)
    })
    const forms = [items, typed]
    if (ty.list === 'u8') forms.push(items.map((values) => Uint8ClampedArray.from(values as number[])))
    return fc.oneof(...forms)
  }
  if ('record' in ty) {
    const shape: Record<string, fc.Arbitrary<unknown>> = {}
    for (const [name, field] of ty.record) shape[camel(name)] = valid(field, depth + 1)
    return fc.record(shape)
  }
  if ('tuple' in ty) return fc.tuple(...ty.tuple.map((item) => valid(item, depth + 1)))
  if ('variant' in ty) {
    return fc.oneof(
      ...ty.variant.map(([tag, payload]) =>
        payload === null ? fc.constant({ tag }) : valid(payload, depth + 1).map((val) => ({ tag, val })),
      ),
    )
  }
  if ('enum' in ty) return fc.constantFrom(...ty.enum)
  if ('flags' in ty) {
    const shape: Record<string, fc.Arbitrary<unknown>> = {}
    for (const name of ty.flags) shape[camel(name)] = fc.boolean()
    // Missing flags are false: leave some keys out.
    return fc.record(shape, { requiredKeys: [] })
  }
  if ('option' in ty) {
    const some = valid(ty.option, depth + 1)
    if (isOption(ty.option)) {
      return fc.oneof(
        fc.constant({ tag: 'none' }),
        some.map((val) => ({ tag: 'some', val })),
      )
    }
    return fc.oneof(fc.constant(undefined), fc.constant(null), some)
  }
  const [ok, err] = ty.result
  return fc.oneof(
    ok === null ? fc.constant({ tag: 'ok' }) : valid(ok, depth + 1).map((val) => ({ tag: 'ok', val })),
    err === null ? fc.constant({ tag: 'err' }) : valid(err, depth + 1).map((val) => ({ tag: 'err', val })),
  )
}

/** What the guest's identity function gives back for the valid argument `value`. */
export function expected(ty: Wit, value: unknown): unknown {
  if (typeof ty === 'string') {
    if (ty === 'f32') return Math.fround(value as number)
    if (ty in INTEGERS) return (value as number) + 0 // -0 comes back as 0
    return value
  }
  if ('list' in ty) {
    // A view of a detached buffer has length 0, and iterating it throws.
    const source =
      ArrayBuffer.isView(value) && (value as Uint8Array).length === 0 ? [] : (value as ArrayLike<unknown>)
    const items = Array.from(source, (item) => expected(ty.list, item))
    if (!isNumeric(ty.list)) return items
    return (TYPED_ARRAYS[ty.list] as unknown as { from(values: unknown[]): unknown }).from(items)
  }
  const object = value as Record<string, unknown>
  if ('record' in ty) {
    return Object.fromEntries(
      ty.record.map(([name, field]) => [camel(name), expected(field, object[camel(name)])]),
    )
  }
  if ('tuple' in ty) return ty.tuple.map((item, index) => expected(item, (value as unknown[])[index]))
  if ('variant' in ty) {
    const payload = ty.variant.find(([tag]) => tag === object.tag)?.[1]
    return payload ? { tag: object.tag, val: expected(payload, object.val) } : { tag: object.tag }
  }
  if ('enum' in ty) return value
  if ('flags' in ty)
    return Object.fromEntries(ty.flags.map((name) => [camel(name), object[camel(name)] === true]))
  if ('option' in ty) {
    if (isOption(ty.option)) {
      return object.tag === 'none' ? { tag: 'none' } : { tag: 'some', val: expected(ty.option, object.val) }
    }
    return value === undefined || value === null ? undefined : expected(ty.option, value)
  }
  const payload = object.tag === 'ok' ? ty.result[0] : ty.result[1]
  return payload === null ? { tag: object.tag } : { tag: object.tag, val: expected(payload, object.val) }
}

/** A string the component model can carry: no lone surrogate. */
const wellFormed = (value: string) =>
  !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const typedName = (value: unknown): string | undefined =>
  ArrayBuffer.isView(value) && !(value instanceof DataView) ? value.constructor.name : undefined

/**
 * Whether `value` is a valid argument of type `ty`, by the documented rules. Reads the value the
 * way the converter does (property reads, array indices), so only use it on ordinary values.
 */
export function accepts(ty: Wit, value: unknown): boolean {
  if (typeof ty === 'string') {
    switch (ty) {
      case 'bool':
        return typeof value === 'boolean'
      case 'u64':
      case 's64': {
        const [min, max] = BIGINTS[ty]
        return typeof value === 'bigint' && value >= min && value <= max
      }
      case 'f32':
      case 'f64':
        return typeof value === 'number'
      case 'char':
        return typeof value === 'string' && wellFormed(value) && [...value].length === 1
      case 'string':
        return typeof value === 'string' && wellFormed(value)
      default: {
        const [min, max] = INTEGERS[ty]
        return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
      }
    }
  }
  if ('list' in ty) {
    const typed = typedName(value)
    if (typed !== undefined) {
      if (!isNumeric(ty.list)) return false
      return typed === TYPED_ARRAYS[ty.list].name || (ty.list === 'u8' && typed === 'Uint8ClampedArray')
    }
    if (!Array.isArray(value)) return false
    for (let index = 0; index < value.length; index++) if (!accepts(ty.list, value[index])) return false
    return true
  }
  if ('record' in ty) {
    return isPlainObject(value) && ty.record.every(([name, field]) => accepts(field, value[camel(name)]))
  }
  if ('tuple' in ty) {
    return (
      Array.isArray(value) &&
      value.length === ty.tuple.length &&
      ty.tuple.every((item, index) => accepts(item, value[index]))
    )
  }
  if ('variant' in ty) {
    if (!isPlainObject(value) || typeof value.tag !== 'string') return false
    const tag = value.tag
    const found = ty.variant.find(([name]) => name === tag)
    if (found === undefined) return false
    return found[1] === null || accepts(found[1], value.val)
  }
  if ('enum' in ty) return typeof value === 'string' && ty.enum.includes(value)
  if ('flags' in ty) {
    if (!isPlainObject(value)) return false
    const names = ty.flags.map(camel)
    if (Object.keys(value).some((key) => !names.includes(key))) return false
    return names.every((name) => value[name] === undefined || typeof value[name] === 'boolean')
  }
  if ('option' in ty) {
    if (isOption(ty.option)) {
      if (!isPlainObject(value) || typeof value.tag !== 'string') return false
      if (value.tag === 'none') return true
      return value.tag === 'some' && accepts(ty.option, value.val)
    }
    return value === undefined || value === null || accepts(ty.option, value)
  }
  if (!isPlainObject(value) || typeof value.tag !== 'string') return false
  const payload = value.tag === 'ok' ? ty.result[0] : value.tag === 'err' ? ty.result[1] : undefined
  if (payload === undefined) return false
  return payload === null || accepts(payload, value.val)
}

export { isNestedOption }
