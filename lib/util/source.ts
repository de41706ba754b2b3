import { readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'

import { CompileError, WasmTypeError } from '../errors.js'

/** What compile functions accept: wasm bytes, a path to a .wasm/.wat file, or WAT text. */
export type WasmSource = Uint8Array | ArrayBuffer | string

/** WAT text starts with an s-expression or a comment; anything else in a string is a path. */
function isWatText(text: string): boolean {
  const start = text.trimStart()
  return start.startsWith('(') || start.startsWith(';;')
}

function fromBytes(source: Uint8Array | ArrayBuffer): Uint8Array {
  return source instanceof Uint8Array ? source : new Uint8Array(source)
}

function unreadable(path: string, error: unknown): CompileError {
  const reason = error instanceof Error ? error.message : String(error)
  return new CompileError(`cannot read wasm from ${path}: ${reason}`, { cause: error })
}

function check(source: unknown): asserts source is WasmSource {
  if (!(source instanceof Uint8Array || source instanceof ArrayBuffer || typeof source === 'string')) {
    throw new WasmTypeError('source: expected a Uint8Array, an ArrayBuffer, a file path or WAT text')
  }
}

/** The bytes of `source`, reading a file asynchronously. */
export async function loadSource(source: WasmSource): Promise<Uint8Array> {
  check(source)
  if (typeof source !== 'string') return fromBytes(source)
  if (isWatText(source)) return Buffer.from(source)
  try {
    return await readFile(source)
  } catch (error) {
    throw unreadable(source, error)
  }
}

/** The bytes of `source`, reading a file synchronously. */
export function loadSourceSync(source: WasmSource): Uint8Array {
  check(source)
  if (typeof source !== 'string') return fromBytes(source)
  if (isWatText(source)) return Buffer.from(source)
  try {
    return readFileSync(source)
  } catch (error) {
    throw unreadable(source, error)
  }
}
