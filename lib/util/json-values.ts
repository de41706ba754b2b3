/**
 * JSON text <-> the JS values of WIT types (jco's mapping, see the README), for the command line.
 * JSON has no bigint, typed arrays or NaN, so arguments are converted by the function's parameter
 * types, and results are printed with a fixed, documented spelling for what JSON lacks.
 */
import type { WitType } from '../component.js'
import { lowerCamel } from './names.js'

/** A parameter's type: a component value type, or a core value type by name (`i64`). */
export type ParamType = WitType | string

/** The parameters of the function called (a core function's have no names). */
export interface Signature {
  params: readonly { name?: string; type: ParamType }[]
}

/** A command-line argument that cannot become a value of its parameter's type. */
export class ArgumentError extends Error {
  readonly code = 'ERR_USAGE'
}

const BIGINT_KINDS = new Set(['u64', 's64', 'i64'])
const FLOAT_KINDS = new Set(['f32', 'f64'])
/** The numbers JSON cannot write, by the spelling results print them with (and `-0`). */
const FLOAT_WORDS: ReadonlyMap<unknown, number> = new Map([
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['-0', -0],
])
const TEXT_KINDS = new Set(['string', 'char'])

/** `u64`, `s64` or a core `i64`: the types whose values are bigints. */
function isBigInt(type: ParamType | undefined): boolean {
  return type !== undefined && BIGINT_KINDS.has(typeof type === 'string' ? type : type.kind)
}

function isFloat(type: ParamType | undefined): boolean {
  return type !== undefined && FLOAT_KINDS.has(typeof type === 'string' ? type : type.kind)
}

function isText(type: ParamType | undefined): boolean {
  return typeof type === 'object' && TEXT_KINDS.has(type.kind)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function toBigInt(value: unknown): unknown {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value)
  if (typeof value === 'number' && Number.isInteger(value)) {
    // JSON.parse already rounded it: refuse rather than pass a different number.
    throw new ArgumentError(`${value} is beyond 2^53 and lost precision in JSON: write it as a string`)
  }
  if (typeof value === 'string' && /^-?\d+n?$/.test(value)) return BigInt(value.replace(/n$/, ''))
  return value
}

/**
 * Turns a parsed JSON value into what the binding accepts for `type`: 64-bit integers become
 * bigint (from a JSON integer up to 2^53, or a decimal string, optionally ending in `n`), floats
 * may be the strings `"NaN"`, `"Infinity"`, `"-Infinity"` and `"-0"` (as results print them), through
 * lists, options, results, tuples, records and variants. Anything else is left for the binding.
 */
export function fromJson(value: unknown, type: ParamType | undefined): unknown {
  if (isBigInt(type)) return toBigInt(value)
  if (isFloat(type)) return FLOAT_WORDS.get(value) ?? value
  if (type === undefined || typeof type === 'string') return value
  switch (type.kind) {
    case 'list':
      return Array.isArray(value) ? value.map((item) => fromJson(item, type.element)) : value
    case 'option':
      if (value === null || value === undefined) return value
      // An option of an option uses the tagged form: { tag: 'some', val } / { tag: 'none' }.
      if (type.element.kind === 'option') {
        return isObject(value) && value.tag === 'some'
          ? { ...value, val: fromJson(value.val, type.element) }
          : value
      }
      return fromJson(value, type.element)
    case 'result': {
      if (!isObject(value) || !('val' in value)) return value
      const payload = value.tag === 'ok' ? type.ok : value.tag === 'err' ? type.err : undefined
      return payload === undefined ? value : { ...value, val: fromJson(value.val, payload) }
    }
    case 'tuple':
      return Array.isArray(value) ? value.map((item, index) => fromJson(item, type.types[index])) : value
    case 'record': {
      if (!isObject(value)) return value
      const converted: Record<string, unknown> = { ...value }
      for (const field of type.fields) {
        const key = lowerCamel(field.name)
        if (key in converted) converted[key] = fromJson(converted[key], field.type)
      }
      return converted
    }
    case 'variant': {
      if (!isObject(value) || !('val' in value)) return value
      const payload = type.cases.find((variantCase) => variantCase.name === value.tag)?.type
      return payload === undefined ? value : { ...value, val: fromJson(value.val, payload) }
    }
    default:
      return value
  }
}

const label = (name: string | undefined) => (name === undefined ? '' : ` (${name})`)

/**
 * The arguments of a call from command-line text. Each is JSON, converted by its parameter's
 * type; for a `string` or `char` parameter (or one whose type is unknown), text that is not a
 * JSON string is taken as it is, so `greet world` works as well as `greet '"world"'`.
 */
export function argumentsFromText(texts: readonly string[], signature: Signature | undefined): unknown[] {
  return texts.map((text, index) => {
    const param = signature?.params[index]
    const type = param?.type
    // A bare 64-bit integer is read exactly, before JSON.parse could round it.
    if (isBigInt(type) && /^-?\d+$/.test(text)) return BigInt(text)
    if (isFloat(type) && FLOAT_WORDS.has(text)) return FLOAT_WORDS.get(text)
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (error) {
      // Unknown type (an export this tool cannot read): the binding will say what it expected.
      if (param === undefined || isText(type)) return text
      throw new ArgumentError(`argument ${index + 1}${label(param?.name)} is not valid JSON: ${text}`, {
        cause: error,
      })
    }
    if (isText(type) && typeof parsed !== 'string') return text
    try {
      return fromJson(parsed, type)
    } catch (error) {
      if (!(error instanceof ArgumentError)) throw error
      throw new ArgumentError(`argument ${index + 1}${label(param?.name)}: ${error.message}`)
    }
  })
}

/**
 * `value` as data: arrays, and objects by their own enumerable keys, as JSON reads them, but
 * without calling a `toJSON` method, which a guest resource has when the guest names one of its
 * methods `to-j-s-o-n`: printing must not run guest code, nor print what it returns unbounded.
 */
function asData(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(asData)
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return value
  // No prototype: a `__proto__` key stays a key.
  const copy: Record<string, unknown> = Object.create(null)
  for (const key of Object.keys(value)) copy[key] = asData((value as Record<string, unknown>)[key])
  return copy
}

/**
 * JSON text of a call's result. What JSON cannot hold is spelled out: a bigint as a string ending
 * in `n` (`"18446744073709551615n"`), a typed array as an array, NaN, the infinities and -0 as
 * the strings `"NaN"`, `"Infinity"`, `"-Infinity"` and `"-0"`, and `undefined` (an absent option, a function
 * without a result) as `null`.
 */
export function toJsonText(value: unknown, indent?: number): string {
  return JSON.stringify(
    asData(value),
    (_key, item: unknown) => {
      if (typeof item === 'bigint') return `${item}n`
      if (typeof item === 'number' && !Number.isFinite(item)) return String(item)
      if (Object.is(item, -0)) return '-0'
      if (item === undefined) return null
      if (ArrayBuffer.isView(item) && !(item instanceof DataView)) {
        return Array.from(item as unknown as ArrayLike<unknown>)
      }
      return item
    },
    indent,
  )
}
