import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import path from 'node:path'

import test from 'ava'

import {
  CompileError,
  ConfigError,
  DisposedError,
  Engine,
  MemoryLimitError,
  OutOfFuelError,
  PoolExhaustedError,
  TimeoutError,
  WasmTypeError,
  type Instance,
  type Module,
  type ValidationResult,
} from '../lib/index.js'
import { engine, MiB, root, tempDir, typesImports, typesWasm, watBytes } from './helpers.js'

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

test('an async compile reads the bytes it was given at the call; a detached buffer or a Proxy is a WasmTypeError', async (t) => {
  // The bytes were read a turn later: a host that checked them and then reused its buffer
  // compiled what the buffer held by then.
  const engine = new Engine()
  t.teardown(() => engine.close())
  const wasm = (name: string) => Buffer.from(`(module (func (export "${name}")))`)
  const one = wasm('one')
  const buffer = Buffer.alloc(one.length)
  buffer.set(one)
  const compiling = engine.compileModule(buffer)
  buffer.set(wasm('two'))
  t.deepEqual(
    (await compiling).exports.map((item) => item.name),
    ['one'],
  )
  const validating = engine.validateAsync(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))
  t.deepEqual(await validating, { ok: true })

  const detached = new ArrayBuffer(8)
  structuredClone(detached, { transfer: [detached] })
  await t.throwsAsync(engine.compileModule(detached), { instanceOf: WasmTypeError, message: /detached/ })
  t.throws(() => engine.compileModuleSync(detached), { instanceOf: WasmTypeError, message: /detached/ })
  // A Uint8Array whose buffer was transferred too (V8's plain TypeError before, probe Z41).
  const view = new Uint8Array(8)
  structuredClone(view.buffer, { transfer: [view.buffer] })
  await t.throwsAsync(engine.compileComponent(view), { instanceOf: WasmTypeError, message: /detached/ })
  t.throws(() => engine.compileModuleSync(view), { instanceOf: WasmTypeError, message: /detached/ })
  const proxy = new Proxy(new Uint8Array(one), {})
  await t.throwsAsync(engine.compileModule(proxy), { instanceOf: WasmTypeError })
  t.throws(() => engine.validate(proxy), { instanceOf: WasmTypeError })
})

test("random bytes are a CompileError with wasmtime's reason, and the engine keeps working", async (t) => {
  const engine = new Engine()
  const junk = randomBytes(64)
  const error = t.throws(() => engine.compileModuleSync(junk), { instanceOf: CompileError })
  t.is(error?.code, 'ERR_WASM_COMPILE')
  // Bytes that are not WAT text (which starts with a parenthesis) are reported as a binary, with
  // wasmparser's reason and offset.
  t.regex(
    error?.message ?? '',
    /^not a wasm binary: .* \(at offset 0x0\); nor WAT text, which starts with '\('$/,
  )
  const magic = t.throws(
    () => engine.compileModuleSync(Buffer.concat([Buffer.from('\0asm\x01\0\0\0'), junk])),
    {
      instanceOf: CompileError,
    },
  )
  t.regex(magic?.message ?? '', /^failed to parse WebAssembly module: .* \(at offset 0x[0-9a-f]+\)$/)
  await t.throwsAsync(engine.compileComponent(junk), { instanceOf: CompileError, code: 'ERR_WASM_COMPILE' })
  t.is(engine.compileModuleSync(addWat).exports.length, 1)
})

test('bytes that are neither wasm nor WAT get an offset, in compile and validate alike; WAT gets its line', async (t) => {
  const engine = new Engine()
  for (const bytes of [[1, 2, 3], [0xde, 0xad, 0xbe, 0xef], [], [0x00, 0x61, 0x73, 0x6d, 9, 0, 0, 0]]) {
    const input = new Uint8Array(bytes)
    const sync = t.throws(() => engine.compileModuleSync(input), { instanceOf: CompileError }, `${bytes}`)
    t.regex(sync?.message ?? '', /\(at offset 0x[0-9a-f]+\)/, `${bytes}`)
    await t.throwsAsync(engine.compileComponent(input), { instanceOf: CompileError, message: /at offset 0x/ })
    const verdict = engine.validate(input)
    t.false(verdict.ok)
    t.is(verdict.ok ? undefined : verdict.message, sync?.message, 'validate gives the same reason')
  }
  const wat = t.throws(() => engine.compileModuleSync(Buffer.from('  (module (func (export "f") bogus))')), {
    instanceOf: CompileError,
  })
  t.regex(wat?.message ?? '', /:1:\d+/)
  engine.close()
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
  t.is(
    error?.message,
    'failed to parse WebAssembly module: function section has non-zero count but code section is absent (at offset 0x1e)',
  )
  const truncated = readFileSync(typesWasm).subarray(0, 200)
  const component = t.throws(() => engine.compileComponentSync(truncated), { instanceOf: CompileError })
  t.regex(
    component?.message ?? '',
    /^failed to parse WebAssembly module: unexpected end-of-file \(at offset 0x[0-9a-f]+\)$/,
  )
})

test('a core module passed as a component, and a component passed as a module, are CompileErrors', (t) => {
  const engine = new Engine()
  const core = engine.compileModuleSync(addWat)
  t.deepEqual(
    core.exports.map((e) => [e.name, e.type]),
    [['add', 'func(i32, i32) -> i32']],
  )
  const coreBytes = new TextEncoder().encode(addWat)
  t.throws(() => engine.compileComponentSync(coreBytes), { instanceOf: CompileError })
  const asComponent = t.throws(() => engine.compileComponentSync(addWasm), { instanceOf: CompileError })
  t.regex(asComponent?.message ?? '', /core wasm module/)
  const asModule = t.throws(() => engine.compileModuleSync(readFileSync(typesWasm)), {
    instanceOf: CompileError,
  })
  t.regex(asModule?.message ?? '', /got a component/)
})

test("an invalid function body's CompileError says what validate says, without wasmtime's framing", (t) => {
  // Probe H34: compiling gave "failed to compile: wasm[0]::function[0]: WebAssembly translation
  // error: Invalid input WebAssembly code at offset 25: …" where validate gave the plain text.
  for (const compiler of ['cranelift', 'winch'] as const) {
    const engine = new Engine({ compiler })
    for (const wat of [
      '(module (func (local i32) (local.get 5)))',
      '(module (func (result i32) (i64.const 1)))',
    ]) {
      const error = t.throws(() => engine.compileModuleSync(wat), { instanceOf: CompileError })
      t.is(error?.message, whyInvalid(engine.validate(wat)), compiler)
      t.regex(error?.message ?? '', /^(unknown local 5|type mismatch).* \(at offset 0x1[9a]\)$/)
    }
    // A function with a name (real toolchains keep them) has it in wasmtime's framing (H36).
    const named = '(module (func $g (result i32) local.get 5))'
    for (const wat of [named, `(component (core module ${named.slice('(module'.length)})`]) {
      const compile = () =>
        wat.startsWith('(component') ? engine.compileComponentSync(wat) : engine.compileModuleSync(wat)
      const error = t.throws(compile, { instanceOf: CompileError })
      t.is(error?.message, whyInvalid(engine.validate(wat)), `${compiler}: ${wat}`)
    }
    engine.close()
  }
})

test('bad WAT is a CompileError with the line', (t) => {
  const engine = new Engine()
  const error = t.throws(
    () => engine.compileModuleSync('(module (func (export "f") (result i32) i32.bogus))'),
    {
      instanceOf: CompileError,
    },
  )
  t.regex(error?.message ?? '', /^unknown operator or unexpected token\n +--> <anon>:1:41\n/)
})

/** A failed validation's message ('' for bytes that passed). */
const whyInvalid = (result: ValidationResult) => (result.ok ? '' : result.message)

test('externref is refused for what it needs, GC, in compile and validate alike, in a module and a component', (t) => {
  // wasmparser named only "gc types", for a reference type V8 runs (probe Z17).
  const engine = new Engine()
  const module = '(module (func (export "id") (param externref) (result externref) local.get 0))'
  const reason =
    /gc types are disallowed .*\(externref, and every reference type but funcref, needs wasmtime's garbage collector/
  t.throws(() => engine.compileModuleSync(module), { instanceOf: CompileError, message: reason })
  t.regex(whyInvalid(engine.validate(module)), reason)
  const component = `(component (core module ${module.slice('(module'.length)})`
  const compiled = t.throws(() => engine.compileComponentSync(component), {
    instanceOf: CompileError,
    message: reason,
  })
  t.regex(whyInvalid(engine.validate(component)), reason)
  // At the same offset, within the component (validate counted it within the module: probe H36).
  const offset = (text: string) => / \(at offset (0x[0-9a-f]+)\)/.exec(text)?.[1]
  t.is(offset(whyInvalid(engine.validate(component))), offset(compiled?.message ?? ''))
  // funcref needs no GC.
  t.true(engine.validate('(module (table 1 funcref))').ok)
  // Winch put its error's Rust backtrace into the message, build paths and all, whenever
  // RUST_BACKTRACE was set (probe H26): a child with it set, as a service's may be.
  const script = `import { Engine } from './lib/index.ts'
    try { new Engine({ compiler: 'winch' }).compileModuleSync('(module (func (local externref)))') }
    catch (error) { console.log(JSON.stringify(error.message)) }`
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, RUST_BACKTRACE: '1' },
    encoding: 'utf8',
  })
  const message = JSON.parse(child.stdout) as string
  t.regex(message, reason)
  t.false(message.includes('backtrace'), message)
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

test('validateAsync agrees with validate, off the JS thread', async (t) => {
  const engine = new Engine()
  const sources = [
    addWat,
    readFileSync(typesWasm),
    typesWasm,
    randomBytes(32),
    '(module (func (result i32)))',
  ]
  for (const source of sources) t.deepEqual(await engine.validateAsync(source), engine.validate(source))
  // The JS thread stays free while it validates: a timer set before it fires before it settles.
  // The input takes tens of milliseconds to validate, so a loaded machine cannot reorder the two.
  const order: string[] = []
  setImmediate(() => order.push('timer'))
  const big = bigModuleWat(1000)
  await Promise.all(Array.from({ length: 8 }, () => engine.validateAsync(big)))
  order.push('validated')
  t.deepEqual(order, ['timer', 'validated'])
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
  // Inside pooling too: a typo would leave the default of 256 slots in place.
  const pooling = t.throws(() => new Engine({ pooling: { maxInstance: 1 } } as never), {
    instanceOf: ConfigError,
    message: /unknown pooling option "maxInstance" \(known: maxInstances, maxMemoryBytes\)/,
  })
  t.is(pooling?.path, 'pooling.maxInstance')
  t.throws(() => new Engine({ cacheDir: '' }), { instanceOf: ConfigError, message: /cacheDir/ })
  t.throws(() => new Engine({ cacheDir: 42 } as never), { instanceOf: ConfigError, message: /cacheDir/ })
  // A path under a regular file cannot become a directory.
  const uncreatable = t.throws(() => new Engine({ cacheDir: path.join(typesWasm, 'cache') }), {
    instanceOf: ConfigError,
    message: /^cacheDir: .*: cannot create it: /,
  })
  t.is(uncreatable?.path, 'cacheDir')
  // A path of 100,000 characters was repeated whole in the message (probe Z25).
  const long = t.throws(() => new Engine({ cacheDir: `/tmp/${'x'.repeat(100_000)}` }), {
    instanceOf: ConfigError,
  })
  t.true((long?.message.length ?? Infinity) < 4_300, `${long?.message.length} characters`)
  t.regex(long?.message ?? '', /… \(100005 characters\): cannot create it: /)
})

test("validate's message escapes the input it quotes, as the CompileError of the same input does", async (t) => {
  // The WAT line came back with raw U+0007 and U+2028 (probe H30).
  const text = '(module A\u0007BC\u2028D)'
  const compiled = t.throws(() => engine().compileModuleSync(text), { instanceOf: CompileError })
  for (const result of [engine().validate(text), await engine().validateAsync(text)]) {
    t.false(/[\u0007\u2028]/.test(whyInvalid(result)), whyInvalid(result))
    t.true(whyInvalid(result).includes('A\\u0007BC\\u2028D'))
    t.true(
      compiled?.message.includes(whyInvalid(result).split('\n')[0] ?? 'none') ?? false,
      compiled?.message,
    )
  }
})

test("a guest's newline inside a name quoted by a compile error is escaped, in validate's message too", (t) => {
  // A duplicate export name holding a newline printed a line of its own (probe H31).
  const bytes = duplicateExport('x\nok: fake')
  const compiled = t.throws(() => engine().compileModuleSync(bytes), { instanceOf: CompileError })
  t.false(compiled?.message.includes('\n') ?? true, compiled?.message)
  t.true(compiled?.message.includes('x\\nok: fake') ?? false, compiled?.message)
  t.false(whyInvalid(engine().validate(bytes)).includes('\n'))
  // A WAT error keeps the lines that point at its place.
  t.regex(whyInvalid(engine().validate('(module (func (export "f") (i32.foo)))')), /\n/)
})

/** A module exporting two functions both named `name`. */
function duplicateExport(name: string): Uint8Array {
  const utf8 = [...Buffer.from(name)]
  const entry = [utf8.length, ...utf8, 0x00, 0x00]
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...[0x01, 0x04, 0x01, 0x60, 0x00, 0x00],
    ...[0x03, 0x02, 0x01, 0x00],
    ...[0x07, 1 + 2 * entry.length, 0x02, ...entry, ...entry],
    ...[0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b],
  ])
}

test('a deadline however small stops a loop, and its message shows it as JS writes it', (t) => {
  // Number.MIN_VALUE was printed as 330 digits (probe Z25).
  const spin = engine()
    .compileModuleSync(limitsWat)
    .instantiateSync({ limits: { memoryBytes: MiB } })
  const error = t.throws(() => spin.callSync('spin', [], { timeoutMs: Number.MIN_VALUE }), {
    instanceOf: TimeoutError,
  })
  t.regex(error?.message ?? '', /\(timeoutMs: 5e-324\)$/)
})

const limitsWat = `(module
  (memory (export "memory") 1)
  (func (export "spin") (loop (br 0)))
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "fib") (param i64) (result i64) (local i64 i64 i64)
    i64.const 1 local.set 2
    (block (loop
      local.get 0 i64.eqz br_if 1
      local.get 1 local.get 2 i64.add local.set 3
      local.get 2 local.set 1 local.get 3 local.set 2
      local.get 0 i64.const 1 i64.sub local.set 0
      br 0))
    local.get 1))`

test("compiler: 'winch' compiles with wasmtime's baseline compiler, and its code keeps every limit", async (t) => {
  const winch = new Engine({ compiler: 'winch', fuel: true })
  const cranelift = new Engine({ fuel: true })
  const module = winch.compileModuleSync(limitsWat)
  // Code from one compiler is not code for the other: proof the option reached wasmtime.
  t.throws(() => cranelift.deserializeModule(module.serialize()), { instanceOf: CompileError })
  const instance = module.instantiateSync({ limits: { memoryBytes: 2 * MiB } })
  t.is(instance.callSync('fib', [90n]), 2880067194370816120n)
  t.is(await instance.call('fib', [10n]), 55n)
  t.throws(() => instance.callSync('spin', [], { timeoutMs: 50 }), { instanceOf: TimeoutError })
  await t.throwsAsync(instance.call('spin', [], { timeoutMs: 50 }), { instanceOf: TimeoutError })
  t.throws(() => instance.callSync('spin', [], { fuel: 100_000 }), { instanceOf: OutOfFuelError })
  t.is(instance.callSync('grow', [1]), 1, 'growth within the limit')
  t.is(instance.callSync('grow', [64]), -1, 'growth past the limit is refused by the limiter')
  t.is(instance.metrics().memory.deniedGrowths, 1)
  const trapping = module.instantiateSync({ limits: { memoryBytes: 2 * MiB, trapOnMemoryDenial: true } })
  t.throws(() => trapping.callSync('grow', [64]), { instanceOf: MemoryLimitError })
  t.is(instance.callSync('fib', [20n]), 6765n, 'the instance works after every stop')

  const component = await winch.compileComponent(typesWasm)
  const typed = await component.instantiate({ limits: { memoryBytes: 4 * MiB }, imports: typesImports() })
  t.is(await typed.call('test:types/numbers#add', [20, 22]), 42)
  t.is(typed.callSync('call-double', [21]), 42, 'a JS host function called from Winch code')
  t.is(
    await typed.call('test:types/numbers#greet', ['wörld']),
    await (
      await engine().compileComponent(typesWasm)
    )
      .instantiate({ limits: { memoryBytes: 4 * MiB }, imports: typesImports() })
      .then((reference) => reference.call('test:types/numbers#greet', ['wörld'])),
  )
})

test('what compiling builds stays near the size of its input: sparse memory images, tables filled at their end, crowded locals', (t) => {
  // Probe Z24: some ten bytes of data built a 16 MiB memory image per memory, ten bytes of element
  // segment a 4 MiB table per table, and an 8-byte body of 50,000 locals 400 KB of Winch's code.
  for (const compiler of ['cranelift', 'winch'] as const) {
    const engine = new Engine({ compiler })
    const sparse = engine.compileModuleSync(
      '(module (memory 256) (data (i32.const 0) "a") (data (i32.const 16711679) "b"))',
    )
    t.true(sparse.serialize().length < MiB, `${compiler}: ${sparse.serialize().length} bytes`)
    const memory = sparse.instantiateSync({ limits: { memoryBytes: 256 * 65_536 } })
    t.is(memory.metrics().memory.currentBytes, 256 * 65_536, 'the data is still placed at instantiation')
    const filled = `(module (table 1048576 funcref) (table 1048576 funcref) (func $f)
      (elem (table 0) (i32.const 1048575) func $f) (elem (table 1) (i32.const 1048575) func $f))`
    const tables = /element segments fill more than 1048576 table entries/
    t.throws(() => engine.compileModuleSync(filled), { instanceOf: CompileError, message: tables })
    t.regex(whyInvalid(engine.validate(filled)), tables)
    const crowded = `(module ${`(func (local ${'i32 '.repeat(50_000)}))`.repeat(21)})`
    const locals = /the functions declare more than 1048576 slots of locals together/
    t.throws(() => engine.compileModuleSync(crowded), { instanceOf: CompileError, message: locals })
    t.regex(whyInvalid(engine.validate(crowded)), locals)
    t.throws(
      () => engine.compileComponentSync(`(component (core module ${crowded.slice('(module'.length)})`),
      {
        instanceOf: CompileError,
        message: locals,
      },
    )
    // A function type of many results made each caller of it kilobytes of code (probe H31).
    const returning = `(module (type (func (result ${'v128 '.repeat(33)}))))`
    t.throws(() => engine.compileModuleSync(returning), {
      instanceOf: CompileError,
      message: /a function type has 33 results taking 132 slots/,
    })
    t.regex(whyInvalid(engine.validate(returning)), /more than the 128 a function may return/)
    // Within the bounds both compile.
    t.notThrows(() =>
      engine.compileModuleSync(`(module ${`(func (local ${'i32 '.repeat(50_000)}))`.repeat(20)})`),
    )
    engine.close()
  }
})

// Serial: other tests of this file compile on the JS thread, which would hold the call's answer.
test.serial(
  "a burst of async compiles on one engine holds up no other engine's call, and its compile only by its turn",
  async (t) => {
    // Probe Z49: 300 compiles at once on one engine took 256 of the call pool's threads; another
    // engine's call (timeoutMs 100, counted from when it gets a thread) waited 2-13 s behind them,
    // and that engine's compile 10-12 s.
    const flood = new Engine()
    const honest = new Engine()
    t.teardown(() => {
      flood.close()
      honest.close()
    })
    const add = honest
      .compileModuleSync(
        '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))',
      )
      .instantiateSync({ limits: { memoryBytes: 0 } })
    const busy = (seed: number) =>
      `(module (func (export "f") (param i32) (result i32) i32.const ${seed} ${'local.get 0 i32.mul i32.const 7 i32.add '.repeat(3000)}))`
    const sources = Array.from({ length: 300 }, (_, seed) => busy(seed))
    const started = performance.now()
    const burst = Promise.all(sources.map((source) => flood.compileModule(source)))
    const calling = performance.now()
    t.is(await add.call('add', [1, 2], { timeoutMs: 100 }), 3)
    const callMs = performance.now() - calling
    const compiling = performance.now()
    await honest.compileModule(busy(-1))
    const compileMs = performance.now() - compiling
    await burst
    const burstMs = performance.now() - started
    // Before the fix the call waited for some 45 of the burst's compiles, sharing the cores with 255
    // others: 295 ms of the burst's 1,955 here (15%); now about 1%.
    t.true(callMs < burstMs / 20, `the call took ${callMs} ms of the burst's ${burstMs}`)
    t.true(
      compileMs < burstMs / 10,
      `the honest engine's compile took ${compileMs} ms of the burst's ${burstMs}`,
    )
  },
)

// Serial, as above: the timings compare one engine's compile with a burst on others.
test.serial(
  "a small compile beside other engines' compiles takes its share of the cores, async or sync",
  async (t) => {
    // Probe H51: every compile spread its functions over rayon's one pool for the process, first in,
    // first out: a 40-byte compile waited 9 s behind 60 compiles of 0.3 s on 30 other engines (it
    // ended as the 59th of them did), and a sync one held its JS thread as long.
    const busy = (seed: number) =>
      `(module (global i32 (i32.const ${seed})) ${`(func (param i64) (result i64) ${'local.get 0 i64.const 7 i64.mul local.get 0 i64.xor '.repeat(10)}${'i64.add '.repeat(9)})`.repeat(400)})`
    const tiny = (seed: number) => `(module (func (export "x") (result i32) i32.const ${seed}))`
    const engines = Array.from({ length: 30 }, () => new Engine())
    const victim = new Engine()
    t.teardown(() => [...engines, victim].forEach((engine) => engine.close()))
    const started = performance.now()
    const burst = Promise.all(
      engines.flatMap((engine, index) => [
        engine.compileModule(busy(2 * index)),
        engine.compileModule(busy(2 * index + 1)),
      ]),
    )
    await new Promise((resolve) => setTimeout(resolve, 50))
    const syncStarted = performance.now()
    victim.compileModuleSync(tiny(1))
    const syncMs = performance.now() - syncStarted
    const asyncStarted = performance.now()
    await victim.compileModule(tiny(2))
    const asyncMs = performance.now() - asyncStarted
    await burst
    const burstMs = performance.now() - started
    // Before the fix (measured here): sync 37% of the burst's time, async 97%; now 3-5% and
    // 12-36% (the async one's threads start beside some 120 others).
    t.true(syncMs < burstMs / 5, `the sync compile took ${syncMs} ms of the burst's ${burstMs}`)
    t.true(asyncMs < burstMs / 2, `the async compile took ${asyncMs} ms of the burst's ${burstMs}`)
  },
)

test("what Cranelift's register allocator spends stays bounded: values a function's blocks carry, values its calls pass", (t) => {
  // Probes Z29 and the maintainer's: 32,000 blocks each returning an i32 (192 KB) took 2.1 GB to
  // compile, and 10,000 two-byte calls of a function taking and returning 128 values 17 s and 1.5 GB.
  const ifs = (count: number) =>
    `(module (func (export "f") (param i32) (result i32) i32.const 0 ${'local.get 0 if (result i32) i32.const 1 else i32.const 2 end i32.add '.repeat(count)}))`
  const blocks = /function 0's blocks take and return more than 4096 slots of values together/
  const values = 'i32 '.repeat(128)
  const calls = (count: number) =>
    `(module (type $t (func (param ${values}) (result ${values}))) (func $g (type $t) ${'local.get 0 '.repeat(128)})
      (func (type $t) ${'local.get 0 '.repeat(128)} ${'call $g '.repeat(count)}))`
  const passed = /function 1's calls pass and return more than 65536 slots of values together/
  for (const compiler of ['cranelift', 'winch'] as const) {
    const engine = new Engine({ compiler })
    t.throws(() => engine.compileModuleSync(ifs(4097)), { instanceOf: CompileError, message: blocks })
    t.regex(whyInvalid(engine.validate(ifs(4097))), blocks)
    t.throws(() => engine.compileModuleSync(calls(257)), { instanceOf: CompileError, message: passed })
    t.regex(whyInvalid(engine.validate(calls(257))), passed)
    t.throws(
      () => engine.compileComponentSync(`(component (core module ${calls(257).slice('(module'.length)})`),
      {
        instanceOf: CompileError,
        message: passed,
      },
    )
    // At the bounds both compile, and run.
    const at = engine.compileModuleSync(ifs(4096)).instantiateSync({ limits: { memoryBytes: 65_536 } })
    t.is(at.callSync('f', [1]), 4096)
    t.notThrows(() => engine.compileModuleSync(calls(256)))
    engine.close()
  }
})

test("the functions' signatures are bounded together: each one called from outside gets a trampoline", (t) => {
  // Probe Z40: 14,000 functions taking and returning 128 values each, in a table (98 KB), took 27 s
  // to compile, Winch's engines too (trampolines are Cranelift's). 256 such functions are 0.5 s.
  const values = 'i32 '.repeat(128)
  const functions = (count: number) =>
    `(module (type $t (func (param ${values}) (result ${values}))) (table ${count} funcref)
      ${'(func (type $t) unreachable) '.repeat(count)}
      (elem (i32.const 0) func ${Array.from({ length: count }, (_, index) => index).join(' ')}))`
  const signatures = /the functions' signatures take more than 65536 slots of values together/
  for (const compiler of ['cranelift', 'winch'] as const) {
    const engine = new Engine({ compiler })
    const started = performance.now()
    t.throws(() => engine.compileModuleSync(functions(14_000)), {
      instanceOf: CompileError,
      message: signatures,
    })
    t.true(performance.now() - started < 5_000)
    t.regex(whyInvalid(engine.validate(functions(257))), signatures)
    t.notThrows(() => engine.compileModuleSync(functions(256)))
    engine.close()
  }
})

test('values live across calls are bounded: the register allocator saves each at each call', (t) => {
  // Probe Z40 and after: 20,000 calls each made above the results of those before it (60 KB) took
  // Cranelift 5.7 s, and 10,000 locals loaded before 10,000 calls and summed after them (100 KB)
  // 2.7 s; some 27 ns a value and call. Real code holds under 0.6 a byte of code.
  const stacked = (calls: number) =>
    `(module (func $g (result i32) i32.const 1) (func (result i32) ${'call $g '.repeat(calls)}${'i32.add '.repeat(calls - 1)}))`
  const loaded = (count: number) =>
    `(module (memory 1) (func $g (result i32) i32.const 1)
      (func (param i32) (result i32) (local ${'i32 '.repeat(count)})
        ${Array.from({ length: count }, (_, i) => `(local.set ${i + 1} (i32.load offset=${i * 4} (local.get 0)))`).join(' ')}
        ${'(drop (call $g)) '.repeat(count)}
        local.get 1 ${Array.from({ length: count - 1 }, (_, i) => `local.get ${i + 2} i32.add`).join(' ')}))`
  // Probe H44: what wasmtime compiles to a call of its own counts too: 20,000 memory.grows (100
  // KB) took 5.8 s, and 10,000 table.gets, each a call behind a branch (60 KB), 57 s and 2.2 GB.
  const libcalls = (push: string, count: number) =>
    `(module (memory 1) (table 1 funcref) (func $g) (func (result i32) ${push.repeat(count)}${'i32.add '.repeat(count - 1)}))`
  const live = /^function 1 holds more than 33554432 values live across its calls and blocks together/
  const engine = new Engine()
  for (const wat of [
    stacked(20_000),
    loaded(10_000),
    libcalls('i32.const 0 memory.grow ', 20_000),
    libcalls('i32.const 0 table.get 0 ref.is_null ', 10_000),
  ]) {
    const started = performance.now()
    t.throws(() => engine.compileModuleSync(wat), { instanceOf: CompileError, message: live })
    t.regex(whyInvalid(engine.validate(wat)), live)
    t.true(performance.now() - started < 5_000)
  }
  t.notThrows(() => engine.compileModuleSync(stacked(2_000)))
  t.notThrows(() => engine.compileModuleSync(loaded(2_000)))
  engine.close()
})

test('locals live across blocks and loops are bounded: the register allocator carries each across each', (t) => {
  // SECURITY 49's open part: 4,000 locals loaded before 4,000 blocks that each branch and summed
  // after them (about 100 KB) took Cranelift 2.4 s and 720 MB, 2,000 through 1,000 loops 2.6 s and
  // 390 MB, 4,000 across 10,000 blocks 13 s and 1.4 GB. Real code reaches under 7 a byte of code.
  const across = (locals: number, count: number, each: string) =>
    `(module (memory 1) (func (export "f") (param i32) (result i32) (local ${'i32 '.repeat(locals)})
      ${Array.from({ length: locals }, (_, i) => `(local.set ${i + 1} (i32.load offset=${(i % 1_000) * 4} (local.get 0)))`).join(' ')}
      ${each.repeat(count)}
      local.get 1 ${Array.from({ length: locals - 1 }, (_, i) => `local.get ${i + 2} i32.add`).join(' ')}))`
  const block = '(block (br_if 0 (local.get 0)) (local.set 0 (i32.const 1))) '
  const loop = '(loop (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br_if 0 (local.get 0))) '
  const live =
    /^function 0 holds more than 33554432 values live across its calls and blocks together .* 4 for each live local, 48 more through a loop/
  for (const compiler of ['cranelift', 'winch'] as const) {
    const engine = new Engine({ compiler })
    for (const wat of [
      across(4_000, 4_000, block),
      across(2_000, 1_000, loop),
      across(4_000, 10_000, block),
    ]) {
      const started = performance.now()
      t.throws(() => engine.compileModuleSync(wat), { instanceOf: CompileError, message: live })
      t.regex(whyInvalid(engine.validate(wat)), live)
      t.throws(() => engine.compileComponentSync(`(component (core module ${wat.slice('(module'.length)})`), {
        instanceOf: CompileError,
        message: live,
      })
      t.true(performance.now() - started < 5_000)
    }
    // Within the bound they compile and run: the locals summed once the blocks are passed.
    const memory = { limits: { memoryBytes: 65_536 } }
    const within = engine.compileModuleSync(across(500, 500, block)).instantiateSync(memory)
    t.is(within.callSync('f', [0]), 0)
    t.notThrows(() => engine.compileModuleSync(across(300, 300, loop)))
    engine.close()
  }
  // Probe H50: the check's own sets, one bit per declared local for each loop, were made before
  // its work was counted: 2^20 locals and 66,000 loops (198 KB) took 8 GB and aborted the process.
  const leb = (value: number) => {
    const out: number[] = []
    do {
      out.push((value & 0x7f) | (value >= 0x80 ? 0x80 : 0))
      value = Math.floor(value / 128)
    } while (value > 0)
    return out
  }
  const manyLocals = (locals: number, loops: number) => {
    const body = [1, ...leb(locals), 0x7f, ...Array<number[]>(loops).fill([0x03, 0x40, 0x0b]).flat(), 0x0b]
    const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content]
    return Uint8Array.from([
      ...[0, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
      ...section(1, [1, 0x60, 0, 0]),
      ...section(3, [1, 0]),
      ...section(10, [1, ...leb(body.length), ...body]),
    ])
  }
  const engine = new Engine()
  for (const [locals, loops] of [
    [1_047_576, 66_000],
    [50_000, 32_000],
  ] as const) {
    const started = performance.now()
    t.false(engine.validate(manyLocals(locals, loops)).ok)
    t.true(performance.now() - started < 5_000)
  }
  engine.close()
})

test("a function's loops are bounded by their square: Cranelift's time grows with it", (t) => {
  // Probe Z35: 20,000 plain loops one after another (60 KB) took Cranelift 24 s, and 10,000 of
  // them with values held across them (100 KB) 108 s and 929 MB; nested loops alike (SECURITY 23:
  // 30,000, 90 KB, 26 s). 2,048 loops are 0.4 s; the most in one real function measured is 392.
  const loops = (count: number, nested: boolean) =>
    `(module (func ${nested ? '(loop '.repeat(count) + ')'.repeat(count) : '(loop) '.repeat(count)}))`
  const tooMany = (count: number) =>
    new RegExp(
      `^function 0 has ${count} loops: Cranelift's compile time grows with the square of a function's loops, and the functions' squares add up to more than 4194304 \\(or one per byte of code\\)$`,
    )
  for (const compiler of ['cranelift', 'winch'] as const) {
    const engine = new Engine({ compiler })
    t.notThrows(() => engine.compileModuleSync(loops(2_048, false)))
    t.throws(() => engine.compileModuleSync(loops(2_049, false)), {
      instanceOf: CompileError,
      message: tooMany(2_049),
    })
    t.regex(whyInvalid(engine.validate(loops(2_049, false))), tooMany(2_049))
    // Nested, the time grows with the cube of their depth: 2,000 (12 KB, within the squares'
    // bound) took 9 s. At most 256 nest; the most in a real function measured is 16.
    const deep =
      /^function 0 nests more than 256 loops: Cranelift's compile time grows with the cube of their depth$/
    t.notThrows(() => engine.compileModuleSync(loops(256, true)))
    t.throws(() => engine.compileModuleSync(loops(2_000, true)), { instanceOf: CompileError, message: deep })
    t.regex(whyInvalid(engine.validate(loops(257, true))), deep)
    // The squares add up across functions: four of 1,024 are at the bound, a fifth is over.
    const functions = (count: number) => `(module ${`(func ${'(loop) '.repeat(1_024)})`.repeat(count)})`
    t.notThrows(() => engine.compileModuleSync(functions(4)))
    t.throws(() => engine.compileModuleSync(functions(5)), {
      instanceOf: CompileError,
      message: /^function 4 has 1024 loops: /,
    })
    engine.close()
  }
})

test("compiler: 'winch' charges fuel for a bulk copy as one instruction: a deadline stops bulk copies a fuel budget does not bound", (t) => {
  // Probe Z28 (SECURITY 52). Pinned so that a wasmtime release that changes either side is seen.
  const copies = `(module (memory 2) (func (export "copy") (param $n i32) (result i32) (local $i i32)
    (block (loop (br_if 1 (i32.eq (local.get $i) (local.get $n)))
      (memory.copy (i32.const 65536) (i32.const 0) (i32.const 65536))
      (local.set $i (i32.add (local.get $i) (i32.const 1))) (br 0))) (local.get $i)))`
  const run = (compiler: 'cranelift' | 'winch') =>
    new Engine({ compiler, fuel: true })
      .compileModuleSync(copies)
      .instantiateSync({ limits: { memoryBytes: 2 * 65_536 } })
  // 2,000 copies of 64 KiB: Cranelift charges each byte, so a budget of 1,000,000 ends within 16.
  t.throws(() => run('cranelift').callSync('copy', [2000], { fuel: 1_000_000 }), {
    instanceOf: OutOfFuelError,
  })
  const winch = run('winch')
  t.is(winch.callSync('copy', [2000], { fuel: 1_000_000 }), 2000, 'Winch moved 131 MB on the same budget')
  t.throws(() => winch.callSync('copy', [-1], { fuel: 1e15, timeoutMs: 50 }), { instanceOf: TimeoutError })
})

test("compiler: 'winch' refuses proposals it does not support with a CompileError; bad values are ConfigErrors", (t) => {
  const tailCall =
    '(module (func $f (param i32) (result i32) local.get 0 return_call $g) (func $g (param i32) (result i32) local.get 0))'
  t.notThrows(() => new Engine().compileModuleSync(tailCall))
  const error = t.throws(() => new Engine({ compiler: 'winch' }).compileModuleSync(tailCall), {
    instanceOf: CompileError,
  })
  t.is(error?.code, 'ERR_WASM_COMPILE')
  t.regex(error?.message ?? '', /tail/i)
  // Inside a component, validate points where compiling does: at the offset within the component
  // (it gave the offset within the core module: probe H27).
  const component = '(component (core module $m (func $f (return_call $f))))'
  const winch = new Engine({ compiler: 'winch' })
  const compiled = t.throws(() => winch.compileComponentSync(component), { instanceOf: CompileError })
  const offset = / \(at offset 0x[0-9a-f]+\)$/
  const validated = winch.validate(component)
  t.is(
    validated.ok ? 'valid' : validated.message.match(offset)?.[0],
    compiled?.message.match(offset)?.[0] ?? 'none',
  )
  for (const compiler of ['v8', 'Winch', '', 1]) {
    const thrown = t.throws(() => new Engine({ compiler } as never), { instanceOf: ConfigError })
    t.is(thrown?.path, 'compiler')
  }
})

test('cacheDir: code compiled by one compiler is never loaded by an engine using the other', (t) => {
  const dir = tempDir(t, 'cache')
  new Engine({ cacheDir: dir }).compileModuleSync(addWasm)
  const winch = new Engine({ cacheDir: dir, compiler: 'winch' })
  t.is(
    winch
      .compileModuleSync(addWasm)
      .instantiateSync({ limits: { memoryBytes: 0 } })
      .callSync('add', [2, 2]),
    4,
  )
  t.deepEqual(winch.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
  t.is(readdirSync(dir).length, 2)
})

/** The one entry directory an engine's cache made under `dir`, and the artifacts in it. */
function cacheEntries(dir: string): { sub: string; files: string[] } {
  const [sub, ...others] = readdirSync(dir)
  if (sub === undefined || others.length > 0) throw new Error(`expected one entry directory in ${dir}`)
  return { sub: path.join(dir, sub), files: readdirSync(path.join(dir, sub)).sort() }
}

test('cacheDir: a second engine loads code the first one compiled, for modules and components', async (t) => {
  const dir = tempDir(t, 'cache')
  const first = new Engine({ cacheDir: dir })
  t.deepEqual(first.cacheStats, { hits: 0, misses: 0, writeFailures: 0 })
  first.compileModuleSync(addWasm)
  await first.compileComponent(typesWasm)
  t.deepEqual(first.cacheStats, { hits: 0, misses: 2, writeFailures: 0 })
  const { files } = cacheEntries(dir)
  t.is(files.length, 2)
  const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')
  t.deepEqual(files, [
    `component-${sha256(readFileSync(typesWasm))}.cwasm`,
    `module-${sha256(addWasm)}.cwasm`,
  ])

  const second = new Engine({ cacheDir: dir })
  const module = await second.compileModule(addWasm)
  const component = second.compileComponentSync(typesWasm)
  t.deepEqual(second.cacheStats, { hits: 2, misses: 0, writeFailures: 0 })
  t.is(module.instantiateSync({ limits: { memoryBytes: 0 } }).callSync('add', [40, 2]), 42)
  t.deepEqual(component.exports, first.compileComponentSync(typesWasm).exports)
  t.is(new Engine().cacheStats, undefined)
  // validate checks without compiling: it neither reads nor writes the cache.
  const third = new Engine({ cacheDir: dir })
  t.deepEqual(third.validate(typesWasm), { ok: true })
  t.deepEqual(third.cacheStats, { hits: 0, misses: 0, writeFailures: 0 })
})

test('cacheDir: engines with other settings keep apart; a damaged file is recompiled and replaced', (t) => {
  const dir = tempDir(t, 'cache')
  new Engine({ cacheDir: dir }).compileModuleSync(addWasm)
  const { sub, files } = cacheEntries(dir)

  const metered = new Engine({ cacheDir: dir, fuel: true })
  metered.compileModuleSync(addWasm)
  t.deepEqual(metered.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
  t.is(readdirSync(dir).length, 2)

  const artifact = path.join(sub, files[0] ?? '')
  writeFileSync(artifact, randomBytes(4096))
  const repaired = new Engine({ cacheDir: dir })
  const module = repaired.compileModuleSync(addWasm)
  t.deepEqual(repaired.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
  t.is(module.instantiateSync({ limits: { memoryBytes: 0 } }).callSync('add', [1, 2]), 3)
  const reloaded = new Engine({ cacheDir: dir })
  reloaded.compileModuleSync(addWasm)
  t.deepEqual(reloaded.cacheStats, { hits: 1, misses: 0, writeFailures: 0 })
})

test('cacheDir: a file damaged past its header is recompiled, never run', (t) => {
  // wasmtime checks an artifact's header only: flipped bits in its code loaded and ran as machine
  // code (an outside probe: SIGSEGV, SIGILL). Each file carries its own hash now.
  const dir = tempDir(t, 'cache')
  new Engine({ cacheDir: dir }).compileComponentSync(typesWasm)
  const { sub, files } = cacheEntries(dir)
  const artifact = path.join(sub, files[0] ?? '')
  const bytes = readFileSync(artifact)
  for (let offset = bytes.length >> 2; offset < (bytes.length * 3) >> 2; offset += 97) bytes[offset]! ^= 0x10
  writeFileSync(artifact, bytes)
  const reader = new Engine({ cacheDir: dir })
  const component = reader.compileComponentSync(typesWasm)
  t.deepEqual(reader.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
  const inst = component.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: typesImports() })
  t.is(inst.callSync('test:types/numbers@0.1.0#add', [40, 2]), 42)
  const again = new Engine({ cacheDir: dir })
  again.compileComponentSync(typesWasm)
  t.deepEqual(again.cacheStats, { hits: 1, misses: 0, writeFailures: 0 }, 'the damaged file was replaced')
})

/** A module whose `f` returns `value`. */
const returning = (value: number) => `(module (func (export "f") (result i32) i32.const ${value}))`
const runF = (module: Module) => module.instantiateSync({ limits: { memoryBytes: 0 } }).callSync('f', [])

test("cacheDir: an entry renamed, copied or linked to another input's name is a miss, never run for it", (t) => {
  const dir = tempDir(t, 'cache')
  const first = new Engine({ cacheDir: dir })
  // Each input's entry: the file its compile added.
  const [a, b, c] = [111, 222, 333].map((value) => {
    const before = existsSync(dir) && readdirSync(dir).length > 0 ? cacheEntries(dir).files : []
    first.compileModuleSync(returning(value))
    const { sub, files } = cacheEntries(dir)
    return path.join(
      sub,
      files.find((file) => !before.includes(file))!,
    )
  }) as [string, string, string]
  // Swap two entries' names, copy a third over one, and link another: each is a genuine,
  // undamaged artifact of the wrong input.
  const aBytes = readFileSync(a)
  writeFileSync(a, readFileSync(b))
  writeFileSync(b, aBytes)
  rmSync(c)
  linkSync(a, c)
  const reader = new Engine({ cacheDir: dir })
  t.deepEqual(
    [111, 222, 333].map((value) => runF(reader.compileModuleSync(returning(value)))),
    [111, 222, 333],
  )
  t.deepEqual(reader.cacheStats, { hits: 0, misses: 3, writeFailures: 0 })
  const again = new Engine({ cacheDir: dir })
  for (const value of [111, 222, 333]) again.compileModuleSync(returning(value))
  t.deepEqual(again.cacheStats, { hits: 3, misses: 0, writeFailures: 0 }, 'each was replaced by its own')
})

test('cacheDir: an entry that is a FIFO or a symlink is a miss, neither waited on nor followed', (t) => {
  const dir = tempDir(t, 'cache')
  new Engine({ cacheDir: dir }).compileModuleSync(returning(7))
  const { sub, files } = cacheEntries(dir)
  const entry = path.join(sub, files[0]!)
  // A genuine copy of the entry, elsewhere, reached through a symlink: refused all the same.
  const elsewhere = path.join(tempDir(t, 'elsewhere'), 'copy.cwasm')
  writeFileSync(elsewhere, readFileSync(entry))
  rmSync(entry)
  symlinkSync(elsewhere, entry)
  const linked = new Engine({ cacheDir: dir })
  t.is(runF(linked.compileModuleSync(returning(7))), 7)
  t.deepEqual(linked.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })

  rmSync(entry)
  t.is(spawnSync('mkfifo', [entry]).status, 0)
  // A FIFO's open blocked until a writer came: for ever.
  const piped = new Engine({ cacheDir: dir })
  t.is(runF(piped.compileModuleSync(returning(7))), 7)
  t.deepEqual(piped.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
})

test('cacheDir: a new engine removes the temporaries writers killed mid-write left, and nothing else', (t) => {
  // Nothing removed them: each held a whole artifact, and the directory only grew (probe Z16).
  const dir = tempDir(t, 'cache')
  new Engine({ cacheDir: dir }).compileModuleSync(addWasm)
  const { sub, files } = cacheEntries(dir)
  const entry = files[0]!
  const old = new Date(Date.now() - 3_600_000)
  const plant = (name: string, mtime = old) => {
    writeFileSync(path.join(sub, name), 'left behind')
    utimesSync(path.join(sub, name), mtime, mtime)
    return name
  }
  const stale = [plant(`${entry}.123-0-0001.tmp`), plant('component-ab.cwasm.9-4-ffff.tmp')]
  // A write in progress (its file is recent), a file not ours by name, a link: kept.
  const kept = [plant(`${entry}.124-0-0002.tmp`, new Date()), plant('notes.tmp'), plant('module-x.cwasm')]
  symlinkSync(path.join(sub, 'notes.tmp'), path.join(sub, 'module-link.cwasm.1-1-1.tmp'))
  const engine = new Engine({ cacheDir: dir })
  t.deepEqual(readdirSync(sub).sort(), [entry, ...kept, 'module-link.cwasm.1-1-1.tmp'].sort())
  t.false(stale.some((name) => readdirSync(sub).includes(name)))
  engine.compileModuleSync(addWasm)
  t.deepEqual(engine.cacheStats, { hits: 1, misses: 0, writeFailures: 0 })
})

test('cacheDir: an entry others may write is a miss, and is replaced by a private one', (t) => {
  const dir = tempDir(t, 'cache')
  new Engine({ cacheDir: dir }).compileModuleSync(returning(9))
  const { sub, files } = cacheEntries(dir)
  const entry = path.join(sub, files[0]!)
  chmodSync(entry, 0o666)
  const reader = new Engine({ cacheDir: dir })
  t.is(runF(reader.compileModuleSync(returning(9))), 9)
  t.deepEqual(reader.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
  t.is(statSync(entry).mode & 0o777, 0o600)
})

test('cacheDir: the directory checked when the engine was made is the one it keeps using', (t) => {
  const parent = tempDir(t, 'cache-parent')
  const dir = path.join(parent, 'cache')
  const engine = new Engine({ cacheDir: dir })
  // The checked directory moves away and another takes its name (it could be anyone's, had the
  // parent been writable by others): the engine neither reads nor writes the newcomer.
  renameSync(dir, path.join(parent, 'moved'))
  mkdirSync(dir, { mode: 0o777 })
  chmodSync(dir, 0o777)
  engine.compileModuleSync(returning(5))
  t.deepEqual(engine.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
  t.deepEqual(readdirSync(dir), [])
  const { files } = cacheEntries(path.join(parent, 'moved'))
  t.is(files.length, 1)
})

test("cacheDir: a guest's writable grant that is, holds or lies inside a cache of the process is refused, so it plants no code", (t) => {
  // Probe Z56: a file a guest writes is the host user's, so an entry it wrote into a cache, with
  // the trailer worked out as the engine works it out, passed every check an entry gets and ran
  // as native code for another input: module A returned B's 666. A grant the guest may write that
  // overlaps a cacheDir of any engine of the process is refused now.
  const parent = tempDir(t, 'cache-grant')
  const dir = path.join(parent, 'cache')
  t.is(runF(new Engine({ cacheDir: dir }).compileModuleSync(returning(1))), 1)
  const { sub, files } = cacheEntries(dir)
  const name = files[0]!
  const other = tempDir(t, 'cache-other')
  new Engine({ cacheDir: other }).compileModuleSync(returning(666))
  const theirs = cacheEntries(other)
  const artifact = readFileSync(path.join(theirs.sub, theirs.files[0]!)).subarray(0, -32)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(name.length))
  const trailer = createHash('sha256').update(length).update(name).update(artifact).digest()
  const planted = Buffer.concat([artifact, trailer])
  // A guest that writes `planted` to `where` in its grant.
  const planter = (where: string) =>
    engine().compileModuleSync(`(module
      (import "wasi_snapshot_preview1" "path_open"
        (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 2)
      (data (i32.const 1024) "${watBytes(Buffer.from(where))}")
      (data (i32.const 4096) "${watBytes(planted)}")
      (func (export "plant") (result i32)
        (drop (call $open (i32.const 3) (i32.const 0) (i32.const 1024) (i32.const ${where.length})
          (i32.const 9) (i64.const 0x1fffffff) (i64.const 0) (i32.const 0) (i32.const 16)))
        (i32.store (i32.const 64) (i32.const 4096)) (i32.store (i32.const 68) (i32.const ${planted.length}))
        (call $write (i32.load (i32.const 16)) (i32.const 64) (i32.const 1) (i32.const 32))))`)
  const settings = path.basename(sub)
  const grants = [
    [dir, `${settings}/${name}`],
    [parent, `cache/${settings}/${name}`],
    [sub, name],
  ] as const
  for (const [host, where] of grants) {
    const refused = t.throws(
      () =>
        planter(where)
          .instantiateSync({
            limits: { memoryBytes: 2 << 16 },
            wasi: { preopens: { '/data': { host, write: true } } },
          })
          .callSync('plant'),
      { instanceOf: ConfigError },
      host,
    )
    t.regex(refused?.message ?? '', /could write to the cacheDir .* of an engine in this process/)
  }
  t.is(runF(new Engine({ cacheDir: dir }).compileModuleSync(returning(1))), 1, "A is still A's")
  // Read-only, or beside the cache, a grant is as before.
  const read = planter(name).instantiateSync({
    limits: { memoryBytes: 2 << 16 },
    wasi: { preopens: { '/data': sub } },
  })
  t.not(read.callSync('plant'), 0, 'a read-only grant cannot be written')
  const beside = tempDir(t, 'cache-beside')
  const writable = { preopens: { '/data': { host: beside, write: true } } }
  t.is(
    planter('x')
      .instantiateSync({ limits: { memoryBytes: 2 << 16 }, wasi: writable })
      .callSync('plant'),
    0,
  )
})

test('cacheDir: a cache that cannot be written still compiles, and counts the failure', (t) => {
  const dir = tempDir(t, 'cache')
  const engine = new Engine({ cacheDir: dir })
  const { sub } = cacheEntries(dir)
  // Replace the entry directory with a file: writes fail whatever the user's permissions.
  rmSync(sub, { recursive: true })
  writeFileSync(sub, '')
  const module = engine.compileModuleSync(addWasm)
  t.is(module.instantiateSync({ limits: { memoryBytes: 0 } }).callSync('add', [2, 2]), 4)
  t.deepEqual(engine.cacheStats, { hits: 0, misses: 1, writeFailures: 1 })
})

test('a pooling engine takes modules with up to four memories and tables; maxInstances stops where the address space does', (t) => {
  const pooled = new Engine({ pooling: { maxInstances: 2, maxMemoryBytes: 1 << 20 } })
  const two = pooled.compileModuleSync(
    '(module (memory 1) (memory 1) (table 1 funcref) (table 1 funcref) (func (export "f") (result i32) i32.const 7))',
  )
  t.is(two.instantiateSync({ limits: { memoryBytes: 2 << 20 } }).callSync('f', []), 7)
  t.throws(
    () => pooled.compileModuleSync('(module (memory 1) (memory 1) (memory 1) (memory 1) (memory 1))'),
    {
      instanceOf: CompileError,
      message: /per-instance limit of 4/,
    },
  )
  // Each slot reserves address space for its memories: past 4,096 slots of 4 GiB memories the
  // reservation failed on x86-64 whatever the memories' size.
  t.notThrows(() => new Engine({ pooling: { maxInstances: 4_096, maxMemoryBytes: 4 * 1024 ** 3 } }))
  const error = t.throws(() => new Engine({ pooling: { maxInstances: 4_097 } }), { instanceOf: ConfigError })
  t.is(error?.path, 'pooling.maxInstances')
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
  // Exactly maxInstances: the engine counts live instances itself (the pool's own counts are per
  // core instance and memory, and a component takes several; finding F3).
  t.is(live.length, 1)
  live[0]?.dispose()
  t.is(module.instantiateSync({ limits: { memoryBytes: 1 << 20 } }).callSync('f'), 7)
  t.throws(() => module.instantiateSync({ limits: { memoryBytes: 1 << 20 } }), {
    instanceOf: PoolExhaustedError,
  })
})

test('pooling.maxInstances: 1 admits exactly one live core instance', (t) => {
  const engine = new Engine({ pooling: { maxInstances: 1, maxMemoryBytes: 1 << 20 } })
  const module = engine.compileModuleSync('(module (memory 1) (func (export "f") (result i32) i32.const 7))')
  const first = module.instantiateSync({ limits: { memoryBytes: 1 << 20 } })
  t.throws(() => module.instantiateSync({ limits: { memoryBytes: 1 << 20 } }), {
    instanceOf: PoolExhaustedError,
  })
  first.dispose()
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

test('a growth past a pooling slot is a denied growth in metrics, and later growth within it still works', (t) => {
  const engine = new Engine({ pooling: { maxInstances: 2, maxMemoryBytes: 1 << 20 } })
  const module = engine.compileModuleSync(`(module (memory 1)
    (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
    (func (export "size") (result i32) memory.size))`)
  // The limit allows 32 pages; the slot holds 16.
  const instance = module.instantiateSync({ limits: { memoryBytes: 2 << 20 } })
  t.is(instance.callSync('grow', [20]), -1)
  t.like(instance.metrics().memory, { currentBytes: 65536, peakBytes: 65536, deniedGrowths: 1 })
  t.is(instance.callSync('grow', [12]), 1, 'the refused pages were never counted')
  t.is(instance.callSync('size'), 13)
  t.like(instance.metrics().memory, { currentBytes: 13 * 65536, deniedGrowths: 1 })
  instance.dispose()
  const trapping = module.instantiateSync({ limits: { memoryBytes: 2 << 20, trapOnMemoryDenial: true } })
  const error = t.throws(() => trapping.callSync('grow', [20]), { instanceOf: MemoryLimitError })
  t.regex(error?.message ?? '', /pooling\.maxMemoryBytes is 1048576/)
  engine.close()
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

/** A module with about 0.9 MB of machine code: `functions` functions of 40 multiply/xor rounds. */
function bigModuleWat(functions: number): string {
  const rounds = Array.from(
    { length: 40 },
    (_, k) => `local.get 0 i32.const ${k + 1} i32.mul local.get 1 i32.xor local.set 0`,
  ).join(' ')
  const bodies = Array.from(
    { length: functions },
    (_, i) => `(func (export "f${i}") (param i32 i32) (result i32) ${rounds} local.get 0)`,
  )
  return `(module ${bodies.join('\n')})`
}

// Serial: RSS is the whole process's, so no other test of this file may allocate meanwhile.
test.serial('compiled code dropped without dispose is reclaimed: its size is reported to V8', async (t) => {
  const engine = new Engine()
  const precompiled = engine.compileModuleSync(bigModuleWat(1000)).serialize()
  t.true(precompiled.length > 500_000)
  const before = process.memoryUsage.rss()
  // 600 modules of ~0.9 MB each, none kept: without the report V8 sees only small JS objects,
  // does not collect them, and RSS grows by about 1 GB.
  for (let batch = 0; batch < 30; batch++) {
    for (let i = 0; i < 20; i++) engine.deserializeModule(precompiled)
    await new Promise((resolve) => setImmediate(resolve))
  }
  const grownMiB = (process.memoryUsage.rss() - before) / 2 ** 20
  t.log(`RSS grew by ${grownMiB.toFixed(0)} MiB`)
  // Measured: 65-85 MiB with the report, about 960 MiB without it; 400 MiB is 5x the one and
  // well under the other.
  t.true(grownMiB < 400, `RSS grew by ${grownMiB.toFixed(0)} MiB`)
})

/** The voluntary context switches of this process's epoch ticker threads, by thread id (Linux). */
function tickerWakeups(): Map<string, number> {
  const wakeups = new Map<string, number>()
  for (const id of readdirSync('/proc/self/task')) {
    let status: string
    try {
      status = readFileSync(`/proc/self/task/${id}/status`, 'utf8')
    } catch {
      // A thread that ended since the listing (a compile pool's, say) is not a ticker.
      continue
    }
    // Thread names are cut to 15 bytes: `airssys-wasm-epoch` reads `airssys-wasm-ep`.
    if (!/^Name:\s+airssys-wasm-ep/m.test(status)) continue
    wakeups.set(id, Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)![1]))
  }
  return wakeups
}

test.serial(
  "an engine's epoch ticker sleeps while no timed call runs, and wakes for the next one",
  async (t) => {
    // It woke every epochTickMs from its first timed call until the engine closed: 300 idle
    // sandboxes (an engine each) took 23% of a core (probe Z4).
    if (process.platform !== 'linux') return t.pass('reads /proc')
    const before = new Set(tickerWakeups().keys())
    const ticking = new Engine({ epochTickMs: 1 })
    const instance = ticking
      .compileModuleSync('(module (func (export "f")))')
      .instantiateSync({ limits: { memoryBytes: 1 << 16 } })
    instance.callSync('f', [], { timeoutMs: 1_000 })
    // The thread names itself once it runs.
    let ours: string[] = []
    for (let wait = 0; wait < 100 && ours.length === 0; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      ours = [...tickerWakeups().keys()].filter((id) => !before.has(id))
    }
    t.is(ours.length, 1, 'the timed call started one ticker')
    const id = ours[0]!
    await new Promise((resolve) => setTimeout(resolve, 50))
    const idle = tickerWakeups().get(id)!
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.is(tickerWakeups().get(id), idle, 'no wake-up in 300 ms without a timed call (300 at 1 ms before)')
    // A deadline still stops a loop: the ticker wakes for it.
    const looping = ticking
      .compileModuleSync('(module (func (export "spin") (loop $l (br $l))))')
      .instantiateSync({ limits: { memoryBytes: 1 << 16 } })
    t.throws(() => looping.callSync('spin', [], { timeoutMs: 50 }), { instanceOf: TimeoutError })
    t.true(tickerWakeups().get(id)! > idle)
    ticking.close()
  },
)
