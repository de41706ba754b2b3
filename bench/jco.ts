/**
 * The Node alternative for components, as a baseline: the same component transpiled by jco (to
 * JS plus core wasm that V8 runs) in a temporary directory, with the types fixture's host
 * functions. No sandbox: no memory limit, fuel, deadline or capability check.
 */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

/** The transpiled component's exports (jco's names: `roundtripString`, `callLog`, …). */
export type JcoExports = Record<string, (...args: unknown[]) => unknown>

const HOST = `export const double = (x) => x * 2
export const log = () => {}
export const transform = (p) => ({ x: p.y, y: p.x })
export const echo = (value) => value
export const failMaybe = (x) => { if (x === 0) throw new Error('zero is not allowed'); return x + 1 }
`

/** Transpiles the component at `wasmPath` (the types fixture's world) with jco and loads it. */
export async function jcoComponent(wasmPath: string): Promise<JcoExports> {
  const { transpile } = (await import('@bytecodealliance/jco')) as {
    transpile: (bytes: Uint8Array, options: object) => Promise<{ files: Record<string, Uint8Array> }>
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'airssys-jco-'))
  const { files } = await transpile(readFileSync(wasmPath), {
    name: 'component',
    map: { 'test:types/host@0.1.0': './host.js', double: './host.js#double' },
  })
  for (const [name, bytes] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    writeFileSync(path.join(dir, name), bytes)
  }
  writeFileSync(path.join(dir, 'host.js'), HOST)
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }')
  return (await import(pathToFileURL(path.join(dir, 'component.js')).href)) as JcoExports
}
