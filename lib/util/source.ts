import { closeSync, fstatSync, openSync } from 'node:fs'
import { open } from 'node:fs/promises'

import { CompileError, WasmTypeError } from '../errors.js'
import { readBounded, readBoundedSync } from './open-beneath.js'

/** What compile functions accept: wasm bytes, a path to a .wasm/.wat file, or WAT text. */
export type WasmSource = Uint8Array | ArrayBuffer | string

/** WAT text starts with an s-expression or a comment; anything else in a string is a path. */
function isWatText(text: string): boolean {
  const start = text.trimStart()
  return start.startsWith('(') || start.startsWith(';;')
}

function fromBytes(source: Uint8Array | ArrayBuffer): Uint8Array {
  // A detached buffer (transferred) has no bytes to compile: a view of one reads as empty, and
  // viewing it again throws V8's plain TypeError.
  try {
    if (!(source instanceof Uint8Array)) return new Uint8Array(source)
    if (source.byteLength === 0) new Uint8Array(source.buffer)
    return source
  } catch {
    throw new WasmTypeError(
      `source: the ${source instanceof Uint8Array ? "Uint8Array's buffer" : 'ArrayBuffer'} is detached`,
    )
  }
}

function unreadable(path: string, error: unknown): CompileError {
  const reason = error instanceof Error ? error.message : String(error)
  return new CompileError(`cannot read wasm from ${path}: ${reason}`, { cause: error })
}

function check(source: unknown): asserts source is WasmSource {
  // `isView` refuses a Proxy of a Uint8Array, which `instanceof` lets through.
  const bytes = ArrayBuffer.isView(source) ? source instanceof Uint8Array : source instanceof ArrayBuffer
  if (!(bytes || typeof source === 'string')) {
    throw new WasmTypeError('source: expected a Uint8Array, an ArrayBuffer, a file path or WAT text')
  }
}

/**
 * A file larger than the engine's `maxModuleBytes`, refused before its bytes are held: by its size
 * when it is a regular file, else (a pipe, a device) once that many bytes have come.
 */
function tooLarge(path: string, maxBytes: number, size?: number): CompileError {
  const input = size === undefined ? `more than ${maxBytes} bytes` : `${size} bytes`
  const error = new CompileError(
    `${path}: the input is ${input}, more than the engine's maxModuleBytes (${maxBytes})`,
  )
  tooLargeErrors.add(error)
  return error
}

const tooLargeErrors = new WeakSet<Error>()

/** Whether `error` is a load's refusal of a file larger than `maxBytes` (validate reports it). */
export function isTooLarge(error: unknown): error is CompileError {
  return error instanceof CompileError && tooLargeErrors.has(error)
}

/**
 * The bytes of `source`, reading a file asynchronously, at most `maxBytes` of it. Bytes and WAT
 * text come back at once, not as a Promise: a caller that awaited them would let the code that
 * called it change the array before it is read.
 */
export function loadSource(source: WasmSource, maxBytes: number): Uint8Array | Promise<Uint8Array> {
  check(source)
  if (typeof source !== 'string') return fromBytes(source)
  if (isWatText(source)) return Buffer.from(source)
  return readFile(source, maxBytes)
}

async function readFile(source: string, maxBytes: number): Promise<Uint8Array> {
  let handle
  try {
    handle = await open(source, 'r')
  } catch (error) {
    throw unreadable(source, error)
  }
  try {
    const stats = await handle.stat()
    if (stats.isFile() && stats.size > maxBytes) throw tooLarge(source, maxBytes, stats.size)
    return await readBounded(handle, stats.size, maxBytes, () => tooLarge(source, maxBytes))
  } catch (error) {
    throw error instanceof CompileError ? error : unreadable(source, error)
  } finally {
    await handle.close()
  }
}

/** The bytes of `source`, reading a file synchronously, at most `maxBytes` of it. */
export function loadSourceSync(source: WasmSource, maxBytes: number): Uint8Array {
  check(source)
  if (typeof source !== 'string') return fromBytes(source)
  if (isWatText(source)) return Buffer.from(source)
  let fd: number
  try {
    fd = openSync(source, 'r')
  } catch (error) {
    throw unreadable(source, error)
  }
  try {
    const stats = fstatSync(fd)
    if (stats.isFile() && stats.size > maxBytes) throw tooLarge(source, maxBytes, stats.size)
    return readBoundedSync(fd, stats.size, maxBytes, () => tooLarge(source, maxBytes))
  } catch (error) {
    throw error instanceof CompileError ? error : unreadable(source, error)
  } finally {
    closeSync(fd)
  }
}
