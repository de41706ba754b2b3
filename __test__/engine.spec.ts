import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'

import test from 'ava'

import {
  CompileError,
  ConfigError,
  DisposedError,
  Engine,
  PoolExhaustedError,
  type Instance,
} from '../lib/index.js'
import { typesWasm } from './helpers.js'

const addWat = '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'

test('compiles a core module from WAT text, bytes and a file, sync and async', async (t) => {
  const engine = new Engine()
  const fromText = engine.compileModuleSync(addWat)
  const bytes = fromText.serialize()
  t.true(bytes.length > 0)
  t.deepEqual(
    fromText.exports.map((e) => [e.name, e.kind, e.type]),
    [['add', 'func', 'func(i32, i32) -> i32']],
  )
  const fromAsync = await engine.compileModule(addWat)
  t.is(fromAsync.exports[0]?.name, 'add')
  const component = await engine.compileComponent(readFileSync(typesWasm))
  t.true(component.exports.length > 10)
  t.true(engine.compileComponentSync(typesWasm).exports.length > 10)
})

test("random bytes are a CompileError with wasmtime's reason, and the engine keeps working", async (t) => {
  const engine = new Engine()
  const junk = randomBytes(64)
  const error = t.throws(() => engine.compileModuleSync(junk), { instanceOf: CompileError })
  t.is(error?.code, 'ERR_WASM_COMPILE')
  t.regex(error?.message ?? '', /magic|header|expected|input/i)
  await t.throwsAsync(engine.compileComponent(junk), { instanceOf: CompileError, code: 'ERR_WASM_COMPILE' })
  t.is(engine.compileModuleSync(addWat).exports.length, 1)
})

/** The binary form of addWat. */
const addWasm = Buffer.from(
  '0061736d0100000001070160027f7f017f030201000707010361646400000a09010700200020016a0b',
  'hex',
)

test('a truncated module or component is a CompileError naming an offset', (t) => {
  const engine = new Engine()
  t.is(engine.compileModuleSync(addWasm).exports[0]?.name, 'add')
  const error = t.throws(() => engine.compileModuleSync(addWasm.subarray(0, 30)), {
    instanceOf: CompileError,
  })
  t.regex(error?.message ?? '', /offset|unexpected end|eof/i)
  const truncated = readFileSync(typesWasm).subarray(0, 200)
  t.throws(() => engine.compileComponentSync(truncated), { instanceOf: CompileError })
})

test('a core module passed as a component, and a component passed as a module, are CompileErrors', (t) => {
  const engine = new Engine()
  const core = engine.compileModuleSync(addWat)
  t.truthy(core)
  const coreBytes = new TextEncoder().encode(addWat)
  t.throws(() => engine.compileComponentSync(coreBytes), { instanceOf: CompileError })
  const asComponent = t.throws(() => engine.compileComponentSync(addWasm), { instanceOf: CompileError })
  t.regex(asComponent?.message ?? '', /core wasm module/)
  const asModule = t.throws(() => engine.compileModuleSync(readFileSync(typesWasm)), {
    instanceOf: CompileError,
  })
  t.regex(asModule?.message ?? '', /got a component/)
})

test('bad WAT is a CompileError with the line', (t) => {
  const engine = new Engine()
  const error = t.throws(
    () => engine.compileModuleSync('(module (func (export "f") (result i32) i32.bogus))'),
    {
      instanceOf: CompileError,
    },
  )
  t.regex(error?.message ?? '', /i32\.bogus|unknown operator|expected/)
})

test('a missing file is a CompileError that says which', async (t) => {
  const engine = new Engine()
  const error = await t.throwsAsync(engine.compileModule('/no/such/file.wasm'), { instanceOf: CompileError })
  t.regex(error?.message ?? '', /\/no\/such\/file\.wasm/)
})

test('validate tells valid from invalid without throwing', (t) => {
  const engine = new Engine()
  t.deepEqual(engine.validate(addWat), { ok: true })
  t.deepEqual(engine.validate(readFileSync(typesWasm)), { ok: true })
  const bad = engine.validate(randomBytes(32))
  t.false(bad.ok)
  t.true(!bad.ok && bad.message.length > 0)
  t.false(engine.validate('(module (func (result i32)))').ok)
})

test('serialize and deserialize round-trip; foreign bytes are a clear CompileError', (t) => {
  const engine = new Engine()
  const module = engine.compileModuleSync(addWat)
  const loaded = engine.deserializeModule(module.serialize())
  const instance = loaded.instantiateSync({ limits: { memoryBytes: 0 } })
  t.is(instance.callSync('add', [2, 3]), 5)

  const component = engine.compileComponentSync(typesWasm)
  const again = engine.deserializeComponent(component.serialize())
  t.deepEqual(again.exports, component.exports)

  const fuelEngine = new Engine({ fuel: true })
  const error = t.throws(() => fuelEngine.deserializeModule(module.serialize()), { instanceOf: CompileError })
  t.regex(error?.message ?? '', /cannot deserialize/)
  t.throws(() => engine.deserializeModule(randomBytes(100)), { instanceOf: CompileError })
})

test('options are checked and unknown options rejected', (t) => {
  t.throws(() => new Engine({ epochTickMs: 0 }), { instanceOf: ConfigError })
  t.throws(() => new Engine({ maxWasmStackBytes: 64 << 20 }), { instanceOf: ConfigError })
  t.throws(() => new Engine({ fule: true } as never), {
    instanceOf: ConfigError,
    message: /unknown Engine option "fule"/,
  })
  t.throws(() => new Engine({ cacheDir: '/tmp/x' }), { instanceOf: ConfigError, message: /cacheDir/ })
})

test('an exhausted pool is a PoolExhaustedError, and a disposed instance frees its slot', (t) => {
  const engine = new Engine({ pooling: { maxInstances: 1, maxMemoryBytes: 1 << 20 } })
  const module = engine.compileModuleSync('(module (memory 1) (func (export "f") (result i32) i32.const 7))')
  const live: Instance[] = []
  const error = t.throws(
    () => {
      for (let i = 0; i < 10; i++) live.push(module.instantiateSync({ limits: { memoryBytes: 1 << 20 } }))
    },
    { instanceOf: PoolExhaustedError },
  )
  t.is(error?.code, 'ERR_WASM_POOL_EXHAUSTED')
  t.true(live.length > 0)
  live[0]?.dispose()
  t.is(module.instantiateSync({ limits: { memoryBytes: 1 << 20 } }).callSync('f'), 7)
})

test('pooling engines instantiate from preallocated slots', (t) => {
  const engine = new Engine({ pooling: { maxInstances: 4, maxMemoryBytes: 1 << 20 } })
  const module = engine.compileModuleSync('(module (memory 1) (func (export "f") (result i32) i32.const 7))')
  const instances = [1, 2, 3].map(() => module.instantiateSync({ limits: { memoryBytes: 1 << 20 } }))
  t.deepEqual(
    instances.map((i) => i.callSync('f')),
    [7, 7, 7],
  )
})

test('a closed engine refuses to compile with DisposedError', (t) => {
  const engine = new Engine()
  engine.close()
  t.true(engine.closed)
  t.throws(() => engine.compileModuleSync(addWat), { instanceOf: DisposedError, code: 'ERR_WASM_DISPOSED' })
})

test('compiling the same bytes again returns the cached code, per engine', async (t) => {
  const engine = new Engine()
  const first = engine.compileModuleSync(addWat)
  t.is(engine.compileModuleSync(addWat), first, 'same bytes, same engine: the same Module')
  t.is(await engine.compileModule(addWat), first)
  t.not(engine.compileModuleSync(`${addWat} `), first, 'different bytes compile anew')
  t.not(new Engine().compileModuleSync(addWat), first, 'another engine has its own cache')
  const [a, b] = await Promise.all([engine.compileComponent(typesWasm), engine.compileComponent(typesWasm)])
  t.is(a, b, 'concurrent compiles of the same bytes share one compilation')
  t.is(engine.compileComponentSync(typesWasm), a)
})
