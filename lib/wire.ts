/**
 * Decoding component values from their flat form (written by crate/src/component/wire.rs, which
 * describes the layout). A structured result crosses from the addon as one buffer, decoded here
 * into the same JS values the addon's per-value conversion makes; the per-value path costs N-API
 * calls for every value, object and property, which dominated lists of records and variants.
 *
 * The addon writes into {@link flatScratch}, passed as `this` to a flat function handle, and
 * returns the length; a result that does not fit comes as its own `ArrayBuffer`, and the scratch
 * grows for the next call. Decoding runs no user code, so nothing can overwrite the scratch
 * while it is read.
 */
import type { WitFuncType, WitType } from './component.js'
import { WasmError } from './errors.js'
import { lowerCamel } from './util/names.js'

/** Where a decoder reads: the buffer, a view of it, and the position of the next value. */
interface Cursor {
  buffer: ArrayBuffer
  bytes: Buffer
  view: DataView
  at: number
}

/** Reads one value at `cursor.at` and moves past it. */
export type Read = (cursor: Cursor) => unknown

const INITIAL_SCRATCH = 64 * 1024
/** The scratch does not grow past this; larger results keep arriving in their own buffers. */
const MAX_SCRATCH = 4 * 1024 * 1024
/** Shorter ASCII strings are put together in JS; longer ones are cheaper to decode natively. */
const SHORT_TEXT = 16

let scratchCursor = cursorOf(new ArrayBuffer(INITIAL_SCRATCH))

function cursorOf(buffer: ArrayBuffer): Cursor {
  return { buffer, bytes: Buffer.from(buffer), view: new DataView(buffer), at: 0 }
}

/** The buffer a flat function handle is applied to (`Reflect.apply(handle, flatScratch(), args)`). */
export function flatScratch(): Buffer {
  return scratchCursor.bytes
}

/** What a flat function handle returned, decoded by `read`. */
export function decodeFlat(returned: unknown, read: Read): unknown {
  if (typeof returned === 'number') {
    scratchCursor.at = 0
    return read(scratchCursor)
  }
  if (returned instanceof ArrayBuffer) {
    if (returned.byteLength <= MAX_SCRATCH) {
      let size = scratchCursor.buffer.byteLength
      while (size < returned.byteLength) size *= 2
      scratchCursor = cursorOf(new ArrayBuffer(size))
    }
    return read(cursorOf(returned))
  }
  return undefined
}

/**
 * The decoder of what a call of `func` gives JS (the ok value of a `result`), when returning it
 * flat pays: for structured values. Numbers, strings, enums and lists of numbers (typed arrays)
 * are one N-API call each on the per-value path; resources are not in the flat form.
 */
export function flatResult(func: WitFuncType): Read | undefined {
  const type = func.result?.kind === 'result' ? func.result.ok : func.result
  if (type === undefined || !hasFlatForm(type)) return undefined
  switch (type.kind) {
    case 'record':
    case 'tuple':
    case 'variant':
    case 'option':
    case 'result':
    case 'flags':
      return reader(type)
    case 'list':
      return packed(type.element) === undefined ? reader(type) : undefined
    default:
      return undefined
  }
}

/** Whether every value of `type` has a flat form (as `Shape::of` in wire.rs decides). */
function hasFlatForm(type: WitType): boolean {
  switch (type.kind) {
    case 'list':
      return type.length === undefined && hasFlatForm(type.element)
    case 'option':
      return hasFlatForm(type.element)
    case 'record':
      return type.fields.every((field) => hasFlatForm(field.type))
    case 'tuple':
      return type.types.every(hasFlatForm)
    case 'variant':
      return type.cases.every((item) => item.type === undefined || hasFlatForm(item.type))
    case 'result':
      return (
        (type.ok === undefined || hasFlatForm(type.ok)) && (type.err === undefined || hasFlatForm(type.err))
      )
    case 'own':
    case 'borrow':
    case 'future':
    case 'stream':
    case 'error-context':
    case 'map':
      return false
    default:
      return true
  }
}

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
        for (let index = 0; index < count; index++) items.push(element(cursor))
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
