/**
 * Component values in their flat form (crate/src/component/wire.rs describes the layout): a
 * structured result crosses from the addon as one buffer, decoded here into the same JS values
 * the addon's per-value conversion makes, and structured arguments are written here into one
 * buffer the addon reads; the per-value path costs N-API calls for every value, object and
 * property, which dominated lists of records and variants.
 *
 * The addon writes into {@link flatScratch}, passed as `this` to a flat function handle, and
 * returns the length; a result that does not fit comes as its own `ArrayBuffer`, and the scratch
 * grows for the next call. Decoding runs no user code, so nothing can overwrite the scratch
 * while it is read.
 */
import { types } from 'node:util'

import type { WitFuncType, WitType } from './component.js'
import { someType, valueTypeOf } from './util/wit.js'
import { WasmError } from './errors.js'
import { lowerCamel } from './util/names.js'

/**
 * Where a decoder reads: the buffer, a view of it, the position of the next value, and when to
 * ask its call whether to stop (see {@link Stop}).
 */
interface Cursor {
  buffer: ArrayBuffer
  bytes: Buffer
  view: DataView
  at: number
  untilLook: number
  stop: Stop | undefined
}

/**
 * Throws when decoding a call's result must stop: the call's deadline passed. A guest's result of many small values costs the JS thread far more to decode than the
 * guest to make (0.3 s for 100,000 nested tuples of a 4 MiB guest); the decoders ask every
 * {@link LOOK_EVERY} list elements, as the addon's per-value conversion does.
 */
export type Stop = () => void

/** List elements decoded between two looks at a decoding's {@link Stop}. */
const LOOK_EVERY = 256

/**
 * Bytes of text that count as one list element between looks: decoding a KiB costs the JS thread
 * about what an element does, and one string of 60 MiB is decoded in tens of milliseconds, which
 * a deadline already passed need not wait for (as the addon's `TEXT_BYTES_PER_VALUE`).
 */
const TEXT_BYTES_PER_ELEMENT = 1024

/** Reads one value at `cursor.at` and moves past it. */
export type Read = (cursor: Cursor) => unknown

const INITIAL_SCRATCH = 64 * 1024
/** The scratch does not grow past this; larger results keep arriving in their own buffers. */
const MAX_SCRATCH = 4 * 1024 * 1024
/** Shorter ASCII strings are put together in JS; longer ones are cheaper to decode natively. */
const SHORT_TEXT = 16

let scratchCursor = cursorOf(new ArrayBuffer(INITIAL_SCRATCH))

function cursorOf(buffer: ArrayBuffer): Cursor {
  return {
    buffer,
    bytes: Buffer.from(buffer),
    view: new DataView(buffer),
    at: 0,
    untilLook: 0,
    stop: undefined,
  }
}

function look(cursor: Cursor): void {
  cursor.untilLook = LOOK_EVERY
  cursor.stop?.()
}

/** The buffer a flat function handle is applied to (`Reflect.apply(handle, flatScratch(), args)`). */
export function flatScratch(): Buffer {
  return scratchCursor.bytes
}

/** A larger scratch for the next call, after a value that did not fit (up to {@link MAX_SCRATCH}). */
function growScratch(needed: number): void {
  let size = scratchCursor.buffer.byteLength
  if (size >= MAX_SCRATCH) return
  while (size < needed && size < MAX_SCRATCH) size *= 2
  scratchCursor = cursorOf(new ArrayBuffer(size))
}

/** What a flat function handle returned, decoded by `read` until `stop` says to stop. */
export function decodeFlat(returned: unknown, read: Read, stop: Stop): unknown {
  let cursor: Cursor
  if (typeof returned === 'number') {
    cursor = scratchCursor
    cursor.at = 0
  } else if (returned instanceof ArrayBuffer) {
    if (returned.byteLength <= MAX_SCRATCH) growScratch(returned.byteLength)
    cursor = cursorOf(returned)
  } else {
    return undefined
  }
  cursor.untilLook = LOOK_EVERY
  cursor.stop = stop
  try {
    return read(cursor)
  } finally {
    cursor.stop = undefined
  }
}

/**
 * The decoder of what a call of `func` gives JS (the ok value of a `result`), when returning it
 * flat pays: for structured values. Numbers, strings, enums and lists of numbers (typed arrays)
 * are one N-API call each on the per-value path; resources are not in the flat form.
 */
export function flatResult(func: WitFuncType): Read | undefined {
  const type = valueTypeOf(func)
  return type !== undefined && hasFlatForm(type) && isStructured(type) ? reader(type) : undefined
}

/**
 * Writes the arguments of a call in their flat form into {@link flatScratch}, returning their
 * length, or -1 for arguments it does not take as they are: a wrong count or type, a proxy,
 * something too large. The per-value path then converts them, or says what is wrong with them,
 * so the flat form never decides whether an argument is valid. (An argument with getters or
 * proxy traps then has them run twice; one that throws is reported by the per-value path.)
 */
export type WriteArgs = (args: readonly unknown[]) => number

/** The writer of a call's arguments, when writing them flat pays: a structured parameter. */
export function flatArgs(func: WitFuncType): WriteArgs | undefined {
  const params = func.params.map((param) => param.type)
  if (!params.every(hasFlatForm) || !params.some(isStructured)) return undefined
  const writers = params.map(writer)
  return (args) => {
    if (args.length !== writers.length) return -1
    const out = scratchCursor
    out.at = 0
    try {
      for (let index = 0; index < writers.length; index++) {
        if (!writers[index]!(args[index], out)) {
          if (out.at > out.bytes.length) growScratch(out.at)
          return -1
        }
      }
    } catch {
      // A getter or proxy trap threw: the per-value path reads the value again and reports
      // where.
      return -1
    }
    return out.at
  }
}

/** Values whose per-value conversion costs several N-API calls: all but numbers, strings, enums and typed arrays. */
function isStructured(type: WitType): boolean {
  switch (type.kind) {
    case 'record':
    case 'tuple':
    case 'variant':
    case 'option':
    case 'result':
    case 'flags':
      return true
    case 'list':
      return packed(type.element) === undefined
    default:
      return false
  }
}

/** Whether every value of `type` has a flat form (as `Shape::of` in wire.rs decides). */
function hasFlatForm(type: WitType): boolean {
  return !someType(
    type,
    (inner) => NO_FLAT_FORM.has(inner.kind) || (inner.kind === 'list' && inner.length !== undefined),
  )
}

/** Kinds of value without a flat form: resources, and kinds the per-value path refuses itself. */
const NO_FLAT_FORM = new Set<WitType['kind']>(['own', 'borrow', 'future', 'stream', 'error-context', 'map'])

type TypedArrayClass =
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Uint16ArrayConstructor
  | Int16ArrayConstructor
  | Uint32ArrayConstructor
  | Int32ArrayConstructor
  | BigUint64ArrayConstructor
  | BigInt64ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor

/** The typed array a list of `element` becomes, if it is a number type. */
function packed(element: WitType): TypedArrayClass | undefined {
  switch (element.kind) {
    case 'u8':
      return Uint8Array
    case 's8':
      return Int8Array
    case 'u16':
      return Uint16Array
    case 's16':
      return Int16Array
    case 'u32':
      return Uint32Array
    case 's32':
      return Int32Array
    case 'u64':
      return BigUint64Array
    case 's64':
      return BigInt64Array
    case 'f32':
      return Float32Array
    case 'f64':
      return Float64Array
    default:
      return undefined
  }
}

function u32(cursor: Cursor): number {
  const value = cursor.view.getUint32(cursor.at, true)
  cursor.at += 4
  return value
}

function readString(cursor: Cursor): string {
  const header = u32(cursor)
  const start = cursor.at
  const length = header & 0x7fffffff
  const end = start + length
  cursor.at = end
  // Long text counts as many elements (see TEXT_BYTES_PER_ELEMENT), before it is decoded.
  if (length >= TEXT_BYTES_PER_ELEMENT) {
    cursor.untilLook -= Math.floor(length / TEXT_BYTES_PER_ELEMENT)
    if (cursor.untilLook < 0) look(cursor)
  }
  // The top bit marks text that is not ASCII.
  if (header !== length) return cursor.bytes.toString('utf8', start, end)
  if (length > SHORT_TEXT) return cursor.bytes.toString('latin1', start, end)
  const bytes = cursor.bytes
  let text = ''
  for (let index = start; index < end; index++) text += String.fromCharCode(bytes[index]!)
  return text
}

/** A tagged value as the per-value path makes it: `{ tag }`, or `{ tag, val }` with a payload. */
function tagged(tag: string, read: Read | undefined, cursor: Cursor): unknown {
  return read === undefined ? { tag } : { tag, val: read(cursor) }
}

function corrupt(what: string): never {
  throw new WasmError(`a flat result holds ${what}: the addon and lib/wire.ts disagree`, {
    code: 'ERR_WASM_INTERNAL',
  })
}

/** The decoder of values of `type` (which has a flat form). */
function reader(type: WitType): Read {
  switch (type.kind) {
    case 'bool':
      return (cursor) => cursor.bytes[cursor.at++] !== 0
    case 'u8':
      return (cursor) => cursor.bytes[cursor.at++]
    case 's8':
      return (cursor) => cursor.view.getInt8(cursor.at++)
    case 'u16':
      return (cursor) => {
        const value = cursor.view.getUint16(cursor.at, true)
        cursor.at += 2
        return value
      }
    case 's16':
      return (cursor) => {
        const value = cursor.view.getInt16(cursor.at, true)
        cursor.at += 2
        return value
      }
    case 'u32':
      return u32
    case 's32':
      return (cursor) => {
        const value = cursor.view.getInt32(cursor.at, true)
        cursor.at += 4
        return value
      }
    case 'u64':
      return (cursor) => {
        const value = cursor.view.getBigUint64(cursor.at, true)
        cursor.at += 8
        return value
      }
    case 's64':
      return (cursor) => {
        const value = cursor.view.getBigInt64(cursor.at, true)
        cursor.at += 8
        return value
      }
    case 'f32':
      return (cursor) => {
        const value = cursor.view.getFloat32(cursor.at, true)
        cursor.at += 4
        return value
      }
    case 'f64':
      return (cursor) => {
        const value = cursor.view.getFloat64(cursor.at, true)
        cursor.at += 8
        return value
      }
    case 'char':
      return (cursor) => String.fromCodePoint(u32(cursor))
    case 'string':
      return readString
    case 'list': {
      const Class = packed(type.element)
      if (Class !== undefined) {
        const size = Class.BYTES_PER_ELEMENT
        return (cursor) => {
          const count = u32(cursor)
          const start = cursor.at
          cursor.at += count * size
          // A copy with its own buffer, aligned for its element type.
          return new Class(cursor.buffer.slice(start, cursor.at))
        }
      }
      const element = reader(type.element)
      return (cursor) => {
        const count = u32(cursor)
        const items: unknown[] = []
        for (let index = 0; index < count; index++) {
          if (--cursor.untilLook < 0) look(cursor)
          items.push(element(cursor))
        }
        return items
      }
    }
    case 'record': {
      const keys = type.fields.map((field) => lowerCamel(field.name))
      const fields = type.fields.map((field) => reader(field.type))
      return (cursor) => {
        const record: Record<string, unknown> = {}
        for (let index = 0; index < keys.length; index++) record[keys[index]!] = fields[index]!(cursor)
        return record
      }
    }
    case 'tuple': {
      const items = type.types.map(reader)
      return (cursor) => items.map((item) => item(cursor))
    }
    case 'variant': {
      const cases = type.cases.map((item) => ({
        name: item.name,
        read: item.type === undefined ? undefined : reader(item.type),
      }))
      return (cursor) => {
        const found = cases[u32(cursor)] ?? corrupt('a case index out of range')
        return tagged(found.name, found.read, cursor)
      }
    }
    case 'enum': {
      const names = type.names
      return (cursor) => names[u32(cursor)] ?? corrupt('an enum index out of range')
    }
    case 'option': {
      const inner = reader(type.element)
      // An option inside an option is tagged, so that `some(none)` differs from `none`.
      if (type.element.kind === 'option') {
        return (cursor) => (cursor.bytes[cursor.at++] === 0 ? { tag: 'none' } : tagged('some', inner, cursor))
      }
      return (cursor) => (cursor.bytes[cursor.at++] === 0 ? undefined : inner(cursor))
    }
    case 'result': {
      const ok = type.ok === undefined ? undefined : reader(type.ok)
      const err = type.err === undefined ? undefined : reader(type.err)
      return (cursor) =>
        cursor.bytes[cursor.at++] === 0 ? tagged('ok', ok, cursor) : tagged('err', err, cursor)
    }
    case 'flags': {
      const keys = type.names.map(lowerCamel)
      return (cursor) => {
        const flags: Record<string, boolean> = {}
        for (const key of keys) flags[key] = cursor.bytes[cursor.at++] !== 0
        return flags
      }
    }
    default:
      return corrupt(`a value of type ${type.kind}, which has no flat form`)
  }
}

const SOME_NONE: ReadonlyMap<string, number> = new Map([
  ['none', 0],
  ['some', 1],
])
const OK_ERR: ReadonlyMap<string, number> = new Map([
  ['ok', 0],
  ['err', 1],
])

/** Longest array the per-value path takes for a list (its own limit, so that it says so). */
const MAX_ARRAY_ITEMS = 1 << 22

/**
 * Writes one value at `out.at` and moves past it; `false` when the encoder does not take the
 * value as it is, or it does not fit (then `out.at` is past the end, by the room it wanted).
 */
type Write = (value: unknown, out: Cursor) => boolean

/** Whether `size` more bytes fit; if not, `out.at` becomes the size that was wanted. */
function room(out: Cursor, size: number): boolean {
  if (out.at + size <= out.bytes.length) return true
  out.at += size
  return false
}

function writeU32(out: Cursor, value: number): void {
  out.view.setUint32(out.at, value, true)
  out.at += 4
}

/**
 * Whether every object inherits `key` from `Object.prototype` (`constructor`, `toString`): a field
 * or flag of that name counts only as the value's own property (`{}` has no field `constructor`),
 * as in the addon's conversion.
 */
function isObjectMember(key: string): boolean {
  return key in Object.prototype
}

/**
 * `value[key]` as a record's field, a flag or a variant's `tag`/`val`: a name every object inherits
 * (`inherited`: `constructor`, `toString`) only as the value's own property; any other as its own
 * or its class's (a getter), never `Object.prototype`'s (any realm's), where a polluted property
 * would fill what the caller left out. As in the addon's conversion.
 */
function memberOf(value: Record<string, unknown>, key: string, inherited: boolean): unknown {
  if (Object.hasOwn(value, key)) return value[key]
  if (inherited) return undefined
  for (
    let prototype: unknown = Object.getPrototypeOf(value);
    prototype !== null && !isObjectPrototype(prototype as object);
    prototype = Object.getPrototypeOf(prototype)
  ) {
    if (Object.hasOwn(prototype as object, key)) return value[key]
  }
  return undefined
}

/**
 * Whether `prototype` is `Object.prototype`, this realm's or another's (an object made in a `vm`
 * context, probe H49): the end of a chain (no prototype of its own) with `hasOwnProperty` of its
 * own. A class may name a method so (probe H50); its prototype has a prototype.
 */
function isObjectPrototype(prototype: object): boolean {
  return (
    prototype === Object.prototype ||
    (Object.getPrototypeOf(prototype) === null && Object.hasOwn(prototype, 'hasOwnProperty'))
  )
}

/** A plain array: a proxy's traps and a typed array's type are the per-value path's to judge. */
function isArray(value: unknown): value is unknown[] {
  return Array.isArray(value) && !types.isProxy(value)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

function integer(size: number, min: number, max: number, set: (out: Cursor, value: number) => void): Write {
  return (value, out) => {
    if (typeof value !== 'number' || !(value >= min && value <= max) || !Number.isInteger(value)) return false
    if (!room(out, size)) return false
    set(out, value)
    out.at += size
    return true
  }
}

function big(min: bigint, max: bigint, signed: boolean): Write {
  return (value, out) => {
    if (typeof value !== 'bigint' || value < min || value > max || !room(out, 8)) return false
    if (signed) out.view.setBigInt64(out.at, value, true)
    else out.view.setBigUint64(out.at, value, true)
    out.at += 8
    return true
  }
}

function float(size: 4 | 8): Write {
  return (value, out) => {
    if (typeof value !== 'number' || !room(out, size)) return false
    if (size === 4) out.view.setFloat32(out.at, value, true)
    else out.view.setFloat64(out.at, value, true)
    out.at += size
    return true
  }
}

function writeString(value: unknown, out: Cursor): boolean {
  if (typeof value !== 'string' || !room(out, 4 + value.length)) return false
  const start = out.at + 4
  const bytes = out.bytes
  let at = start
  for (let index = 0; index < value.length; index++) {
    const unit = value.charCodeAt(index)
    if (unit >= 0x80) return writeText(value, out)
    bytes[at++] = unit
  }
  writeU32(out, value.length)
  out.at = at
  return true
}

/** A lone surrogate (in a `u` pattern, a well-formed pair is one code point, not two surrogates). */
const LONE_SURROGATE = /\p{Cs}/u

/** Text that is not all ASCII: UTF-8 by Node, once it is known to be valid Unicode. */
function writeText(value: string, out: Cursor): boolean {
  // A lone surrogate would become U+FFFD here; the per-value path refuses it.
  if (LONE_SURROGATE.test(value) || !room(out, 4 + 3 * value.length)) return false
  const length = out.bytes.write(value, out.at + 4, 'utf8')
  writeU32(out, length)
  out.at += length
  return true
}

function writeChar(value: unknown, out: Cursor): boolean {
  // The length first: a longer string is no char, and reading its first code point would make V8
  // flatten all of it (a repeated string of 256 MiB: 150 ms and as many bytes).
  if (typeof value !== 'string' || value.length > 2 || !room(out, 4)) return false
  const code = value.codePointAt(0)
  if (code === undefined || value.length !== (code > 0xffff ? 2 : 1) || (code >= 0xd800 && code <= 0xdfff)) {
    return false
  }
  writeU32(out, code)
  return true
}

/**
 * Reads `{ tag, val }` (both, as the per-value path does) and writes the case's index: a u32 for
 * a variant, one byte for an option or result.
 */
function writeTagged(
  index: ReadonlyMap<string, number>,
  payloads: ReadonlyArray<Write | undefined>,
  size: 1 | 4,
): Write {
  return (value, out) => {
    if (!isObject(value)) return false
    const tag = memberOf(value, 'tag', false)
    const payload = memberOf(value, 'val', false)
    const found = typeof tag === 'string' ? index.get(tag) : undefined
    if (found === undefined || !room(out, size)) return false
    if (size === 4) writeU32(out, found)
    else out.bytes[out.at++] = found
    const write = payloads[found]
    return write === undefined || write(payload, out)
  }
}

/** The encoder of values of `type` (which has a flat form). */
function writer(type: WitType): Write {
  switch (type.kind) {
    case 'bool':
      return (value, out) => {
        if (typeof value !== 'boolean' || !room(out, 1)) return false
        out.bytes[out.at++] = value ? 1 : 0
        return true
      }
    case 'u8':
      return integer(1, 0, 0xff, (out, value) => out.view.setUint8(out.at, value))
    case 's8':
      return integer(1, -0x80, 0x7f, (out, value) => out.view.setInt8(out.at, value))
    case 'u16':
      return integer(2, 0, 0xffff, (out, value) => out.view.setUint16(out.at, value, true))
    case 's16':
      return integer(2, -0x8000, 0x7fff, (out, value) => out.view.setInt16(out.at, value, true))
    case 'u32':
      return integer(4, 0, 0xffffffff, (out, value) => out.view.setUint32(out.at, value, true))
    case 's32':
      return integer(4, -0x80000000, 0x7fffffff, (out, value) => out.view.setInt32(out.at, value, true))
    case 'u64':
      return big(0n, 0xffffffffffffffffn, false)
    case 's64':
      return big(-0x8000000000000000n, 0x7fffffffffffffffn, true)
    case 'f32':
      return float(4)
    case 'f64':
      return float(8)
    case 'char':
      return writeChar
    case 'string':
      return writeString
    case 'list': {
      const element = writer(type.element)
      const Class = packed(type.element)
      return (value, out) => {
        // A typed array of the list's element type goes as its bytes (a u8 list also takes a
        // Uint8ClampedArray); other typed arrays are the per-value path's to refuse.
        if (Class !== undefined && ArrayBuffer.isView(value)) {
          const fits = value instanceof Class || (Class === Uint8Array && value instanceof Uint8ClampedArray)
          if (!fits || !room(out, 4 + value.byteLength)) return false
          writeU32(out, value.byteLength / Class.BYTES_PER_ELEMENT)
          out.bytes.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength), out.at)
          out.at += value.byteLength
          return true
        }
        if (!isArray(value) || value.length > MAX_ARRAY_ITEMS || !room(out, 4)) return false
        // The count written is the count read: an element's getter may change the array's length.
        const count = value.length
        writeU32(out, count)
        for (let index = 0; index < count; index++) if (!element(value[index], out)) return false
        return true
      }
    }
    case 'record': {
      const keys = type.fields.map((field) => lowerCamel(field.name))
      const fields = type.fields.map((field) => writer(field.type))
      const inherited = keys.map(isObjectMember)
      return (value, out) => {
        if (!isObject(value) || Array.isArray(value)) return false
        for (let index = 0; index < keys.length; index++) {
          const key = keys[index]!
          const field = memberOf(value, key, inherited[index]!)
          if (!fields[index]!(field, out)) return false
        }
        return true
      }
    }
    case 'tuple': {
      const items = type.types.map(writer)
      return (value, out) => {
        if (!isArray(value) || value.length !== items.length) return false
        for (let index = 0; index < items.length; index++) if (!items[index]!(value[index], out)) return false
        return true
      }
    }
    case 'variant':
      return writeTagged(
        new Map(type.cases.map((item, index) => [item.name, index])),
        type.cases.map((item) => (item.type === undefined ? undefined : writer(item.type))),
        4,
      )
    case 'enum': {
      const index = new Map(type.names.map((name, position) => [name, position]))
      return (value, out) => {
        const found = typeof value === 'string' ? index.get(value) : undefined
        if (found === undefined || !room(out, 4)) return false
        writeU32(out, found)
        return true
      }
    }
    case 'option': {
      const inner = writer(type.element)
      // An option inside an option is tagged, so that `some(none)` differs from `none`.
      if (type.element.kind === 'option') return writeTagged(SOME_NONE, [undefined, inner], 1)
      return (value, out) => {
        if (!room(out, 1)) return false
        if (value === undefined || value === null) {
          out.bytes[out.at++] = 0
          return true
        }
        out.bytes[out.at++] = 1
        return inner(value, out)
      }
    }
    case 'result':
      return writeTagged(
        OK_ERR,
        [
          type.ok === undefined ? undefined : writer(type.ok),
          type.err === undefined ? undefined : writer(type.err),
        ],
        1,
      )
    case 'flags': {
      const keys = type.names.map(lowerCamel)
      const known = new Set(keys)
      const inherited = keys.map(isObjectMember)
      return (value, out) => {
        if (!isObject(value) || Array.isArray(value) || !room(out, keys.length)) return false
        // Unknown own keys go to the per-value path, which refuses them.
        for (const key of Object.keys(value)) if (!known.has(key)) return false
        for (let index = 0; index < keys.length; index++) {
          const key = keys[index]!
          const flag = memberOf(value, key, inherited[index]!)
          if (flag !== undefined && typeof flag !== 'boolean') return false
          out.bytes[out.at++] = flag === true ? 1 : 0
        }
        return true
      }
    }
    default:
      return () => false
  }
}
