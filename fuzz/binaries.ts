/**
 * `binaries`: random byte mutations (flip, insert, delete, truncate, splice) of the repo's module
 * and component fixtures through compileModule/compileComponent (sync and async) and validate:
 * success or a CompileError, never another error or a crash; and validate agrees with the compilers.
 * A mutant that compiles is instantiated under a 4 MiB memory limit and its exports run with fuel and a
 * deadline: success or one of our errors.
 * A native crash cannot be caught in-process: the runner and the spec run this target in a child
 * process (fuzz/child.ts), which writes each input to a file before trying it.
 */
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { inspect } from 'node:util'

import fc from 'fast-check'

import { builtDir, root, typesImports } from '../fixtures/index.js'
import { CompileError, Component, Engine, Module, WasmError } from '../lib/index.js'
import { expect, type Target } from './target.js'

/** `(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))` */
const ADD = '0061736d0100000001070160027f7f017f030201000707010361646400000a09010700200020016a0b'
export interface Seed {
  name: string
  bytes: Uint8Array
}

/** The fixtures the mutations start from: whatever of them is built. */
export function seeds(): Seed[] {
  const files = [
    path.join(builtDir, 'types.wasm'),
    path.join(builtDir, 'wasi-cli.component.wasm'),
    path.join(builtDir, 'wasi-cli.module.wasm'),
    ...['hello', 'runaway', 'memory-hog', 'capabilities'].map((name) =>
      path.join(root, 'examples', name, `${name}.wasm`),
    ),
  ]
  const found = files
    .filter((file) => existsSync(file))
    .map((file) => ({ name: path.basename(file), bytes: readFileSync(file) }))
  return [
    { name: 'add.wasm', bytes: Buffer.from(ADD, 'hex') },
    ...found.map(({ name, bytes }) => ({ name, bytes: new Uint8Array(bytes) })),
  ]
}

export type ByteEdit =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; at: number; from: number; length: number }
  | { kind: 'leb'; at: number; value: number }

const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      at: fc.nat(),
      byte: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x40, 0x41, 0x0b, 0x10),
    }),
  },
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('splice' as const),
    at: fc.nat(),
    from: fc.nat(),
    length: fc.integer({ min: 1, max: 64 }),
  }),
  // Section and vector sizes are LEB128: big values stress the parser's length checks.
  fc.record({
    kind: fc.constant('leb' as const),
    at: fc.nat(),
    value: fc.constantFrom(0, 1, 0x7f, 0x3fff, 0xffff, 0x7fffffff, 0xffffffff),
  }),
)

function leb(value: number): number[] {
  const out: number[] = []
  let rest = value >>> 0
  do {
    const byte = rest & 0x7f
    rest >>>= 7
    out.push(rest === 0 ? byte : byte | 0x80)
  } while (rest !== 0)
  return out
}

export function mutate(bytes: Uint8Array, edits: readonly ByteEdit[]): Uint8Array {
  let out = Array.from(bytes)
  for (const e of edits) {
    const at = out.length === 0 ? 0 : e.at % (out.length + 1)
    switch (e.kind) {
      case 'flip':
        if (at < out.length) out[at] = out[at]! ^ (1 << e.bit)
        break
      case 'set':
        if (at < out.length) out[at] = e.byte
        break
      case 'insert':
        out.splice(at, 0, ...e.bytes)
        break
      case 'delete':
        out.splice(at, e.length)
        break
      case 'truncate':
        out = out.slice(0, at)
        break
      case 'splice': {
        const from = out.length === 0 ? 0 : e.from % out.length
        out.splice(at, 0, ...out.slice(from, from + e.length))
        break
      }
      case 'leb':
        out.splice(at, 0, ...leb(e.value))
        break
    }
  }
  return Uint8Array.from(out)
}

/** A fixture and the edits to make to it; or, read back from the corpus, the resulting bytes. */
export type BinaryInput = { seed: string; edits: ByteEdit[] } | { raw: Uint8Array }

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown }

async function attempt<T>(run: () => T | Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await run() }
  } catch (error) {
    return { ok: false, error }
  }
}

/** Zero of each core parameter type, or undefined when a parameter cannot be passed from JS. */
function zeros(type: string): unknown[] | undefined {
  const params = /^func\((.*?)\)/.exec(type)?.[1]
  if (params === undefined) return undefined
  const values: unknown[] = []
  for (const param of params
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)) {
    if (param === 'i32' || param === 'f32' || param === 'f64') values.push(0)
    else if (param === 'i64') values.push(0n)
    else return undefined
  }
  return values
}

const RUN_OPTIONS = {
  // Room for a Rust guest's 17 initial pages (its 1 MiB shadow stack), not much more.
  limits: { memoryBytes: 4 << 20 },
  fuel: 5_000_000,
  timeoutMs: 200,
  wasi: { stdout: 'ignore', stderr: 'ignore' },
} as const

/**
 * A mutant that compiled also instantiates under a memory limit and runs its exports with fuel and
 * a deadline: each step succeeds or fails with one of our errors, never anything else.
 */
async function runCompiled(compiled: Module | Component): Promise<void> {
  const isModule = compiled instanceof Module
  const instantiated = await attempt(() =>
    isModule
      ? compiled.instantiate(RUN_OPTIONS)
      : compiled.instantiate({ ...RUN_OPTIONS, imports: typesImports() }),
  )
  if (!instantiated.ok) {
    expect(instantiated.error instanceof WasmError, () => `instantiate threw ${inspect(instantiated.error)}`)
    return
  }
  const instance = instantiated.value
  try {
    const functions = compiled.exports.filter((item) => item.kind === 'func').slice(0, 6)
    for (const { name, type } of functions) {
      const args = isModule ? zeros(type) : type.startsWith('func()') ? [] : undefined
      if (args === undefined) continue
      for (const via of ['callSync', 'call'] as const) {
        const called = await attempt(() =>
          via === 'call' ? instance.call(name, args) : instance.callSync(name, args),
        )
        if (!called.ok) {
          expect(called.error instanceof WasmError, () => `${via} ${name} threw ${inspect(called.error)}`)
        }
      }
    }
  } finally {
    instance.dispose()
  }
}

export function binariesTarget(): Target<BinaryInput> {
  const all = seeds()
  const bySeed = new Map(all.map((seed) => [seed.name, seed.bytes]))
  let engine: Engine | undefined
  const bytesOf = (input: BinaryInput): Uint8Array => {
    if ('raw' in input) return input.raw
    const base = bySeed.get(input.seed)
    if (base === undefined) throw new Error(`no fixture ${input.seed}`)
    return mutate(base, input.edits)
  }
  return {
    name: 'binaries',
    extension: '.bin',
    arbitrary: fc.record({
      seed: fc.constantFrom(...all.map((seed) => seed.name)),
      edits: fc.array(byteEdit, { minLength: 1, maxLength: 6 }),
    }),
    async check(input) {
      await checkBytes(bytesOf(input))
    },
    // The corpus keeps the mutated bytes themselves: they stay a test when the fixtures change.
    encode: (input) => bytesOf(input),
    decode: (raw) => ({ raw }),
    close() {
      engine?.close()
      engine = undefined
    },
  }

  /** Every entry point agrees: CompileError or success, and validate says ok when one compiler does. */
  async function checkBytes(bytes: Uint8Array): Promise<void> {
    engine ??= new Engine({ fuel: true })
    const compiling = engine
    const outcomes = {
      moduleSync: await attempt(() => compiling.compileModuleSync(bytes)),
      module: await attempt(() => compiling.compileModule(bytes)),
      componentSync: await attempt(() => compiling.compileComponentSync(bytes)),
      component: await attempt(() => compiling.compileComponent(bytes)),
    }
    for (const [entry, outcome] of Object.entries(outcomes)) {
      if (!outcome.ok) {
        expect(
          outcome.error instanceof CompileError && outcome.error.code === 'ERR_WASM_COMPILE',
          () => `${entry} threw ${inspect(outcome.error)}`,
        )
      }
    }
    expect(
      outcomes.moduleSync.ok === outcomes.module.ok,
      () => 'compileModule and compileModuleSync disagree',
    )
    expect(
      outcomes.componentSync.ok === outcomes.component.ok,
      () => 'compileComponent and compileComponentSync disagree',
    )
    let validation: ReturnType<Engine['validate']>
    try {
      validation = compiling.validate(bytes)
    } catch (error) {
      throw new Error(`validate threw ${inspect(error)}`)
    }
    const compiles = outcomes.moduleSync.ok || outcomes.componentSync.ok
    // Finding F8 (validate accepting what compileComponent refuses) is fixed: no exception left.
    expect(
      validation.ok === compiles,
      () => `validate says ${inspect(validation)} but compiling ${compiles ? 'succeeded' : 'failed'}`,
    )
    if (!validation.ok) expect(validation.message !== '', () => 'validate failed without a message')
    if (outcomes.module.ok) await runCompiled(outcomes.module.value)
    if (outcomes.component.ok) await runCompiled(outcomes.component.value)
  }
}
