/** The wasm a command works on: reading its file, and the functions it exports. */
import { readFile } from 'node:fs/promises'

import type { ComponentItem } from '../component.js'
import type { ModuleItem } from '../module.js'
import { UsageError } from './args.js'

/** An exported function, by the path `call` takes (`name` or `iface#name`), with its type. */
export interface ExportedFunction {
  name: string
  type: string
}

/** Functions a caller can invoke: root functions, and `iface#func` for exported interfaces. */
export function exportedFunctions(items: readonly (ComponentItem | ModuleItem)[]): ExportedFunction[] {
  return items.flatMap((item) => {
    if (item.kind === 'func') return [{ name: item.name, type: item.type }]
    if (item.kind !== 'instance' || !('exports' in item)) return []
    return (item.exports ?? [])
      .filter((inner) => inner.kind === 'func')
      .map((inner) => ({ name: `${item.name}#${inner.name}`, type: inner.type }))
  })
}

/** The bytes of `file`; a file that cannot be read is a usage error of `command`. */
export async function readWasm(file: string, command: string): Promise<Uint8Array> {
  try {
    return await readFile(file)
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      command,
    )
  }
}
