import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs'
import path from 'node:path'

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

/** A value of the fixture's `everything` record: every WIT type but resources, at edge values. */
export const everything = {
  flag: true,
  tiny: 255,
  small: 65535,
  medium: 4294967295,
  large: 18446744073709551615n,
  stiny: -128,
  ssmall: -32768,
  smedium: -2147483648,
  slarge: -9223372036854775808n,
  single: Math.fround(-1.5),
  wide: Number.MAX_VALUE,
  letter: '🚀',
  text: 'Grüße, 世界 \u{FEFF}',
  bytes: new Uint8Array([0, 127, 255]),
  words: ['', 'ünï', '🚀'],
  maybe: { tag: 'some', val: undefined },
  outcome: { tag: 'err', val: 7 },
  rank: 'high-ish',
  rights: { read: true, write: false, execNow: true },
  tokens: [
    { tag: 'int', val: -1n },
    { tag: 'text', val: '' },
    { tag: 'empty' },
    { tag: 'pair', val: [255, 'ß'] },
  ],
  pair: [-1, 'x'],
}
