import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { Worker } from 'node:worker_threads'
import { tmpdir } from 'node:os'
import path from 'node:path'

import type { ExecutionContext } from 'ava'

import { root, typesImports, typesWasm } from '../fixtures/index.js'
import { Engine, type Imports, type Instance } from '../lib/index.js'

export {
  helloWasm,
  root,
  typesImports,
  typesWasm,
  wasiComponentWasm,
  wasiModuleWasm,
} from '../fixtures/index.js'

export const MiB = 1 << 20

/**
 * A worker thread running the TypeScript module `source` (written to `dir`, ESM, top-level await
 * allowed). Workers do not inherit ava's TypeScript loader: the worker registers tsx itself.
 */
export function typeScriptWorker(dir: string, source: string): Worker {
  const body = path.join(dir, 'worker-body.mts')
  writeFileSync(body, source)
  const entry = path.join(dir, 'worker.mjs')
  const tsx = path.join(root, 'node_modules', 'tsx', 'dist', 'esm', 'api', 'index.mjs')
  writeFileSync(
    entry,
    `import { register } from ${JSON.stringify(tsx)}\nregister()\nawait import(${JSON.stringify(body)})\n`,
  )
  return new Worker(entry)
}

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
export function componentDir(parent: string, wasm: string, fields: ManifestFields): string {
  return manifestDir(parent, fields, (target) => copyFileSync(wasm, target))
}

/** {@link componentDir} for a guest written as WAT text (compiled as the wasm file's bytes would be). */
export function watComponentDir(parent: string, wat: string, fields: ManifestFields): string {
  return manifestDir(parent, fields, (target) => writeFileSync(target, wat))
}

function manifestDir(
  parent: string,
  {
    name = 'test-component',
    maxBytes,
    maxFuel = 10_000_000,
    timeoutMs = 1_000,
    permissions = [],
  }: ManifestFields,
  writeWasm: (target: string) => void,
): string {
  const dir = mkdtempSync(path.join(parent, `${name}-`))
  writeWasm(path.join(dir, 'component.wasm'))
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

/**
 * A component importing the resource `counter` at its world's root (a constructor and `bump`);
 * its `run(start)` makes a counter, bumps it twice, drops it and returns the last value.
 */
export const ROOT_COUNTER_WAT = `(component
  (import "counter" (type $counter (sub resource)))
  (import "[constructor]counter" (func $ctor (param "start" u32) (result (own $counter))))
  (import "[method]counter.bump" (func $bump (param "self" (borrow $counter)) (result u32)))
  (core func $ctor_core (canon lower (func $ctor)))
  (core func $bump_core (canon lower (func $bump)))
  (core func $drop_core (canon resource.drop $counter))
  (core module $m
    (import "host" "ctor" (func $ctor (param i32) (result i32)))
    (import "host" "bump" (func $bump (param i32) (result i32)))
    (import "host" "drop" (func $drop (param i32)))
    (func (export "run") (param i32) (result i32) (local $h i32) (local $r i32)
      (local.set $h (call $ctor (local.get 0)))
      (drop (call $bump (local.get $h)))
      (local.set $r (call $bump (local.get $h)))
      (call $drop (local.get $h))
      (local.get $r)))
  (core instance $i (instantiate $m (with "host" (instance
    (export "ctor" (func $ctor_core)) (export "bump" (func $bump_core)) (export "drop" (func $drop_core))))))
  (func (export "run") (param "start" u32) (result u32) (canon lift (core func $i "run"))))`

/**
 * For a component: a core instance `$m` exporting a memory and a bump-allocating `realloc`,
 * aliased as `$memory` and `$realloc` for `canon lower` and `canon lift`.
 */
export const BUMP_MEMORY_WAT = `(core module $mem
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $r i32)
      global.get $bump local.set $r
      local.get $r local.get 3 i32.add global.set $bump local.get $r))
  (core instance $m (instantiate $mem))
  (alias core export $m "memory" (core memory $memory))
  (alias core export $m "realloc" (core func $realloc))`

/** `bytes` as the contents of a WAT string (a data segment's), every byte escaped. */
export function watBytes(bytes: Uint8Array): string {
  return [...bytes].map((byte) => `\\${byte.toString(16).padStart(2, '0')}`).join('')
}

/**
 * A WASI preview 1 module whose start function writes `text` to the descriptor `fd` (1 stdout,
 * 2 stderr) and then runs `then` (WAT instructions); `imports` and `exports` are more of its
 * fields, WAT too.
 */
export function writingStartWat({
  text,
  fd = 2,
  then = '',
  imports = '',
  exports = '',
}: {
  text: string
  fd?: 1 | 2
  then?: string
  imports?: string
  exports?: string
}): string {
  const bytes = Buffer.from(text)
  return `(module
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    ${imports}
    (memory (export "memory") 1)
    (data (i32.const 16) "${watBytes(bytes)}")
    (func $start
      (i32.store (i32.const 0) (i32.const 16))
      (i32.store (i32.const 4) (i32.const ${bytes.length}))
      (drop (call $write (i32.const ${fd}) (i32.const 0) (i32.const 1) (i32.const 8)))
      ${then})
    (start $start)
    ${exports})`
}

/**
 * Imports for the resources fixture whose host `Logger` has `dispose` as its `[Symbol.dispose]`
 * (a method or a getter); a logger's `prefix` is what the guest made it with.
 */
export function disposingLoggerImports(dispose: PropertyDescriptor): Imports {
  class Logger {
    constructor(public prefix = '') {}
    log() {
      return 1
    }
    count() {
      return 7
    }
    static cloneWith(other: Logger) {
      return other
    }
  }
  Object.defineProperty(Logger.prototype, Symbol.dispose, dispose)
  return {
    'test:resources/host': { Logger, makeLogger: (prefix: string) => new Logger(prefix), logAll: () => {} },
  }
}

/** The warnings `process` emits until the test ends (its listener goes with the test). */
export function processWarnings(t: ExecutionContext): Error[] {
  const seen: Error[] = []
  const listener = (warning: Error) => seen.push(warning)
  process.on('warning', listener)
  t.teardown(() => process.off('warning', listener))
  return seen
}

/** The reasons of the process's unhandled rejections until the test ends. */
export function unhandledRejections(t: ExecutionContext): unknown[] {
  const seen: unknown[] = []
  const listener = (reason: unknown) => seen.push(reason)
  process.on('unhandledRejection', listener)
  t.teardown(() => process.off('unhandledRejection', listener))
  return seen
}

/**
 * Runs `body` while a 1 ms interval measures the longest the event loop stood still, in ms, until
 * `settleMs` after it ends (what a call leaves to do on the JS thread after it settled counts).
 */
export async function longestStall(body: () => Promise<void>, settleMs = 5): Promise<number> {
  let last = performance.now()
  let longest = 0
  const ticking = setInterval(() => {
    const now = performance.now()
    longest = Math.max(longest, now - last)
    last = now
  }, 1)
  try {
    await new Promise((resolve) => setTimeout(resolve, 5))
    last = performance.now()
    longest = 0
    await body()
    await new Promise((resolve) => setTimeout(resolve, settleMs))
    return longest
  } finally {
    clearInterval(ticking)
  }
}

/**
 * A component exporting the resource `thing` (of `test:x/api`) without a constructor, with the
 * statics `prototype` and `length`, both returning 7: `prototype` cannot sit on a class.
 */
export const PROTOTYPE_STATIC_WAT = `(component
  (type $r (resource (rep i32)))
  (core module $m (func (export "seven") (result i32) i32.const 7))
  (core instance $i (instantiate $m))
  (func $seven (result u32) (canon lift (core func $i "seven")))
  (component $shim
    (import "thing" (type $t (sub resource)))
    (import "seven" (func $s (result u32)))
    (export $T "thing" (type $t))
    (export "[static]thing.prototype" (func $s))
    (export "[static]thing.length" (func $s)))
  (instance $api (instantiate $shim (with "thing" (type $r)) (with "seven" (func $seven))))
  (export "test:x/api" (instance $api)))`
