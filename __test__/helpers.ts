import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

import { Engine, type Imports, type Instance } from '../lib/index.js'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const typesWasm = path.join(root, '__test__/fixtures/build/types.wasm')
export const helloWasm = path.join(root, 'examples/hello/hello.wasm')

export const MiB = 1 << 20

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

/** Host functions the `types` fixture imports, recording what the guest sent. */
export function typesImports(log: string[] = []): Imports {
  return {
    double: (x: number) => x * 2,
    'test:types/host@0.1.0': {
      log: (message: string) => {
        log.push(message)
      },
      transform: (p: { x: number; y: number }) => ({ x: p.y, y: p.x }),
      echo: (value: unknown) => value,
      failMaybe: (x: number) => {
        if (x === 0) throw new Error('zero is not allowed')
        return x + 1
      },
    },
  }
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
