/** The wasm a command works on: reading its file, and the functions it exports. */
import { statSync } from 'node:fs'

import type { Component, ComponentItem, WitFuncType } from '../component.js'
import { Engine } from '../engine.js'
import { WasmError } from '../errors.js'
import type { CoreFuncType, Module, ModuleItem } from '../module.js'
import { loadManifest } from '../sandbox/manifest.js'
import { readComponentWasm } from '../sandbox/paths.js'
import type { Signature } from '../util/json-values.js'
import { isTooLarge, loadSource } from '../util/source.js'
import { UsageError } from './args.js'

/** An exported function, by the path `call` takes (`name` or `iface#name`), with its type. */
export interface ExportedFunction {
  name: string
  type: string
  /** What its arguments convert by (absent when the listing has no descriptor). */
  signature?: Signature
}

/** A core function's parameters have no names, only value types. */
function signatureOf(func: WitFuncType | CoreFuncType | undefined): Signature | undefined {
  if (func === undefined) return undefined
  return 'results' in func ? { params: func.params.map((type) => ({ type })) } : func
}

/** Functions a caller can invoke: root functions, and `iface#func` for exported interfaces. */
export function exportedFunctions(items: readonly (ComponentItem | ModuleItem)[]): ExportedFunction[] {
  return items.flatMap((item) => {
    if (item.kind === 'func') return [{ name: item.name, type: item.type, signature: signatureOf(item.func) }]
    if (item.kind !== 'instance' || !('exports' in item)) return []
    return (item.exports ?? [])
      .filter((inner) => inner.kind === 'func')
      .map((inner) => ({
        name: `${item.name}#${inner.name}`,
        type: inner.type,
        signature: signatureOf(inner.func),
      }))
  })
}

type Listed = Omit<ComponentItem, 'func' | 'exports'> & { exports?: Listed[] }

/**
 * Items as `--json` prints them: name, kind and the type's spelling. The type descriptors (`func`)
 * stay in the API, so the printed listing keeps its shape.
 */
export function listing(
  items: readonly (ComponentItem | ModuleItem)[],
): (Listed | Omit<ModuleItem, 'func'>)[] {
  return items.map((item) => {
    const { func: _descriptor, ...listed } = item
    return 'exports' in item && item.exports !== undefined
      ? { ...listed, exports: listing(item.exports) as Listed[] }
      : listed
  })
}

/**
 * The bytes of `file`, at most `maxModuleBytes` (more is a CompileError, before they are all
 * read); a file that cannot be read is a usage error of `command`.
 */
export async function readWasm(file: string, command: string, maxModuleBytes: number): Promise<Uint8Array> {
  try {
    return await loadSource(file, maxModuleBytes)
  } catch (error) {
    if (isTooLarge(error)) throw error
    const cause = (error as { cause?: NodeJS.ErrnoException }).cause
    throw new UsageError(`cannot read ${file}: ${cause?.code ?? String(error)}`, command)
  }
}

/**
 * The wasm a command describes: `target` itself, or for a directory the wasm its Component.toml
 * names (read from the file the manifest's check approved, opened following no symlink).
 */
export async function readTargetWasm(
  target: string,
  command: string,
  maxModuleBytes: number,
): Promise<{ file: string; bytes: Uint8Array }> {
  let isDirectory = false
  try {
    isDirectory = statSync(target).isDirectory()
  } catch {
    throw new UsageError(`cannot find ${target}`, command)
  }
  if (!isDirectory) return { file: target, bytes: await readWasm(target, command, maxModuleBytes) }
  const manifest = loadManifest(target)
  return { file: manifest.wasmPath, bytes: await readComponentWasm(manifest, maxModuleBytes) }
}

/**
 * `bytes` compiled for their listing only (`inspect`, `types`): first with Winch, which compiles
 * several times faster than Cranelift (`winch-cold` and `component-cold-winch` in BENCHMARKING.md),
 * and a listing does not depend on the compiler. What Winch refuses (tail calls, some
 * proposals), a platform without Winch, or any other failure of Winch's goes to `engine`, whose
 * verdict stands.
 */
export async function compileForListing(
  engine: Engine,
  bytes: Uint8Array,
  kind: 'component',
): Promise<Component>
export async function compileForListing(
  engine: Engine,
  bytes: Uint8Array,
  kind: 'component' | 'module',
): Promise<Component | Module>
export async function compileForListing(
  engine: Engine,
  bytes: Uint8Array,
  kind: 'component' | 'module',
): Promise<Component | Module> {
  let winch: Engine | undefined
  try {
    winch = new Engine({ compiler: 'winch', maxModuleBytes: engine.maxModuleBytes })
    return kind === 'component' ? await winch.compileComponent(bytes) : await winch.compileModule(bytes)
  } catch (error) {
    // Whatever Winch could not do, Cranelift gets to say.
    if (!(error instanceof WasmError)) throw error
  } finally {
    winch?.close()
  }
  return kind === 'component' ? await engine.compileComponent(bytes) : await engine.compileModule(bytes)
}
