import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import type { ExecutionContext } from 'ava'

import { typesImports, typesWasm } from '../fixtures/index.js'
import { Engine, type Instance } from '../lib/index.js'

export {
  helloWasm,
  root,
  typesImports,
  typesWasm,
  wasiComponentWasm,
  wasiModuleWasm,
} from '../fixtures/index.js'

export const MiB = 1 << 20

/** A new directory under the system's temporary directory, removed with its contents when `t` ends. */
export function tempDir(t: ExecutionContext, prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `airssys-${prefix}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** What {@link componentDir} writes into Component.toml. */
export interface ManifestFields {
  name?: string
  maxBytes: number
  maxFuel?: number
  timeoutMs?: number
  /** TOML lines under [permissions]; none: no section. */
  permissions?: string[]
}

/** A new directory under `parent` with a copy of `wasm` and a Component.toml with these fields. */
export function componentDir(
  parent: string,
  wasm: string,
  {
    name = 'test-component',
    maxBytes,
    maxFuel = 10_000_000,
    timeoutMs = 1_000,
    permissions = [],
  }: ManifestFields,
): string {
  const dir = mkdtempSync(path.join(parent, 'component-'))
  copyFileSync(wasm, path.join(dir, 'component.wasm'))
  const manifest = [
    '[component]',
    `name = "${name}"`,
    'version = "1.0.0"',
    'wasm = "component.wasm"',
    '[resources.memory]',
    `max_bytes = ${maxBytes}`,
    '[resources.cpu]',
    `max_fuel = ${maxFuel}`,
    `timeout_ms = ${timeoutMs}`,
    ...(permissions.length > 0 ? ['[permissions]', ...permissions] : []),
  ].join('\n')
  writeFileSync(path.join(dir, 'Component.toml'), manifest)
  return dir
}

let shared: Engine | undefined

/** One engine for the whole spec file (engines are cheap, compiled code is not). */
export function engine(): Engine {
  shared ??= new Engine()
  return shared
}

const compiled = new Map<string, ReturnType<Engine['compileComponentSync']>>()

export function typesComponent() {
  let component = compiled.get(typesWasm)
  if (!component) {
    component = engine().compileComponentSync(typesWasm)
    compiled.set(typesWasm, component)
  }
  return component
}

export function typesInstance(log: string[] = []): Instance {
  return typesComponent().instantiateSync({ limits: { memoryBytes: 4 * MiB }, imports: typesImports(log) })
}
