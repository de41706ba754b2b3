import test from 'ava'

import { CompileError, Engine, HostError, LinkError, TrapError, WasmTypeError } from '../lib/index.js'

const wat = `(module
  (import "env" "log" (func $log (param i32)))
  (import "env" "scale" (func $scale (param i64 f64) (result f64)))
  (memory (export "memory") 1 4)
  (global (export "counter") (mut i32) (i32.const 0))
  (table (export "table") 2 funcref)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "add64") (param i64 i64) (result i64) local.get 0 local.get 1 i64.add)
  (func (export "div") (param f64 f64) (result f64) local.get 0 local.get 1 f64.div)
  (func (export "narrow") (param f32) (result f32) local.get 0)
  (func (export "pair") (param i32) (result i32 i64) local.get 0 local.get 0 i64.extend_i32_s)
  (func (export "log-twice") (param i32) local.get 0 call $log local.get 0 call $log)
  (func (export "scale") (param i64 f64) (result f64) local.get 0 local.get 1 call $scale)
  (func (export "store") (param i32) i32.const 0 local.get 0 i32.store)
  (func (export "load") (result i32) i32.const 0 i32.load))`

function instance(
  imports = { env: { log: (_: number) => {}, scale: (a: bigint, b: number) => Number(a) * b } },
) {
  return new Engine().compileModuleSync(wat).instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports })
}

test('lists exports and imports with core types', (t) => {
  const module = new Engine().compileModuleSync(wat)
  t.deepEqual(
    module.imports.map((i) => `${i.module}.${i.name}: ${i.type}`),
    ['env.log: func(i32)', 'env.scale: func(i64, f64) -> f64'],
  )
  const types = Object.fromEntries(module.exports.map((e) => [e.name, `${e.kind} ${e.type}`]))
  t.is(types.memory, 'memory memory(min 1 pages, max 4 pages)')
  t.is(types.counter, 'global global(mut i32)')
  t.is(types.table, 'table table(funcref, min 2)')
  t.is(types.pair, 'func func(i32) -> (i32, i64)')
})

test('a function lists its parameter and result types by name; other items have no func', (t) => {
  const module = new Engine().compileModuleSync(wat)
  const items = Object.fromEntries(module.exports.map((e) => [e.name, e]))
  t.deepEqual(items.pair?.func, { params: ['i32'], results: ['i32', 'i64'] })
  t.deepEqual(items['log-twice']?.func, { params: ['i32'], results: [] })
  t.deepEqual(module.imports[1]?.func, { params: ['i64', 'f64'], results: ['f64'] })
  for (const name of ['memory', 'counter', 'table']) t.false('func' in (items[name] ?? {}), name)
})

test('i32 accepts the signed and unsigned ranges and returns signed, like Node', (t) => {
  const inst = instance()
  t.is(inst.callSync('add', [2, 3]), 5)
  t.is(inst.callSync('add', [0xffffffff, 0]), -1)
  t.is(inst.callSync('add', [-2147483648, 0]), -2147483648)
  t.throws(() => inst.callSync('add', [2 ** 32, 0]), {
    instanceOf: WasmTypeError,
    message: /param 0: expected i32/,
  })
  t.throws(() => inst.callSync('add', [1.5, 0]), { instanceOf: WasmTypeError })
})

test('i64 is a bigint both ways, range-checked', (t) => {
  const inst = instance()
  t.is(inst.callSync('add64', [2n ** 62n, 2n ** 62n]), -(2n ** 63n))
  t.is(inst.callSync('add64', [18446744073709551615n, 0n]), -1n)
  t.throws(() => inst.callSync('add64', [1, 2n]), { instanceOf: WasmTypeError, message: /a bigint/ })
  t.throws(() => inst.callSync('add64', [2n ** 64n, 0n]), { instanceOf: WasmTypeError })
})

test('floats keep NaN and infinities; f32 rounds', (t) => {
  const inst = instance()
  t.true(Number.isNaN(inst.callSync('div', [0, 0])))
  t.is(inst.callSync('div', [1, 0]), Infinity)
  t.is(inst.callSync('narrow', [0.1]), Math.fround(0.1))
})

test('multiple results come back as an array', async (t) => {
  const inst = instance()
  t.deepEqual(inst.callSync('pair', [-7]), [-7, -7n])
  t.deepEqual(await inst.call('pair', [3]), [3, 3n])
})

test('host functions receive and return core values, sync and async', async (t) => {
  const logged: number[] = []
  const inst = instance({
    env: { log: (x: number) => void logged.push(x), scale: (a: bigint, b: number) => Number(a) * b },
  })
  inst.callSync('log-twice', [7])
  await inst.call('log-twice', [8])
  t.deepEqual(logged, [7, 7, 8, 8])
  t.is(inst.callSync('scale', [3n, 1.5]), 4.5)
  t.is(await inst.call('scale', [-2n, 0.25]), -0.5)
})

test('instances linked the same way reuse one linking, yet each calls its own host functions', async (t) => {
  const seen: string[] = []
  const instances = ['a', 'b', 'c'].map((name) =>
    instance({
      env: { log: () => void seen.push(name), scale: (a: bigint, b: number) => Number(a) * b * name.length },
    }),
  )
  for (const inst of [...instances].reverse()) inst.callSync('log-twice', [1])
  await Promise.all(instances.map((inst) => inst.call('log-twice', [1])))
  t.deepEqual(seen.slice(0, 6), ['c', 'c', 'b', 'b', 'a', 'a'])
  t.deepEqual([...seen.slice(6)].sort(), ['a', 'a', 'b', 'b', 'c', 'c'])
})

test('a host function returning the wrong type is a HostError', (t) => {
  const inst = instance({ env: { log: () => {}, scale: () => 'nope' as unknown as number } })
  t.throws(() => inst.callSync('scale', [1n, 1]), {
    instanceOf: HostError,
    message: /expected f64, got string/,
  })
})

test('missing imports are a LinkError naming module and field', (t) => {
  const module = new Engine().compileModuleSync(wat)
  const error = t.throws(
    () => module.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports: { env: {} } }),
    {
      instanceOf: LinkError,
    },
  )
  t.regex(error?.message ?? '', /"env\.log": func\(i32\)/)
  t.regex(error?.message ?? '', /"env\.scale"/)
})

test("a LinkError names the first 20 missing imports, each cut short: its size is not the guest's to choose", (t) => {
  // A 5 KB module importing a function of 1,000 parameters and results 490 times made a
  // 4.9 MB message, every signature written out (a signature now takes at most 128 slots: 64 i64s).
  const types = (kind: string, length = 1_000) => Array.from({ length }, () => kind).join(' ')
  const imports = Array.from({ length: 490 }, (_, i) => `(import "m" "f${i}" (func (type 0)))`).join('')
  const module = new Engine().compileModuleSync(
    `(module (type (func (param ${types('i64', 64)}) (result ${types('i64', 64)}))) ${imports})`,
  )
  const error = t.throws(() => module.instantiateSync({ limits: { memoryBytes: 0 } }), {
    instanceOf: LinkError,
  })
  t.true(error!.message.length < 20 * 520, `${error!.message.length} characters`)
  t.regex(error!.message, /^missing import\(s\): "m\.f0": func\(i64, i64/)
  t.regex(error!.message, /; and 470 more$/)
})

test("a core export's name in a WasmTypeError cannot print a line of its own", (t) => {
  // `main\nERR_WASM_FAKE: …` forged a line on the CLI's stderr when `run` called the only export
  // with the wrong arguments (probe H32).
  const name = 'main\nERR_WASM_FAKE: forged'
  const inst = new Engine()
    .compileModuleSync(`(module (func (export "main\\0aERR_WASM_FAKE: forged") (param i32)))`)
    .instantiateSync({ limits: { memoryBytes: 0 } })
  for (const run of [
    () => inst.callSync(name, []),
    () => inst.function(name)('x'),
    () => inst.callSync(name, {} as never),
  ]) {
    const error = t.throws(run, { instanceOf: WasmTypeError })
    t.false(error?.message.includes('\n') ?? true, error?.message)
    t.true(error?.message.startsWith('main\\nERR_WASM_FAKE: forged: ') ?? false, error?.message)
  }
})

test('a v128 or reference result is a WasmTypeError before the guest runs; such an import is a LinkError naming its type', async (t) => {
  // Probe Z28: the guest ran, its effects stayed, and the caller got ERR_WASM_INTERNAL; an import
  // of such a type linked, then failed at the guest's call with a message naming the wrong side.
  const engine = new Engine()
  const module = engine.compileModuleSync(`(module (type $t (func)) (func $g (type $t)) (elem declare func $g)
    (global $runs (mut i32) (i32.const 0))
    (func (export "runs") (result i32) global.get $runs)
    (func (export "vec") (result v128) (global.set $runs (i32.add (global.get $runs) (i32.const 1))) (v128.const i64x2 1 2))
    (func (export "fref") (result i32 funcref) (global.set $runs (i32.add (global.get $runs) (i32.const 1))) (i32.const 0) (ref.func $g))
    (func (export "typed") (result (ref $t)) (global.set $runs (i32.add (global.get $runs) (i32.const 1))) (ref.func $g)))`)
  // By its kind only: a signature of typed references, spelled out, made a few KB list gigabytes (H34).
  t.deepEqual(module.exports.find((item) => item.name === 'typed')?.func?.results, ['(ref (func …))'])
  const instance = module.instantiateSync({ limits: { memoryBytes: 0 } })
  const refused = {
    instanceOf: WasmTypeError,
    message:
      /^(vec|fref|typed): result [01]: results of type (v128|funcref|\(ref \(func …\)\)) are not supported$/,
  }
  for (const name of ['vec', 'fref', 'typed']) {
    t.throws(() => instance.callSync(name, []), refused)
    await t.throwsAsync(instance.call(name, []), refused)
    t.throws(() => (instance.exports[name] as () => unknown)(), refused)
  }
  t.is(instance.callSync('runs', []), 0, 'no guest body ran')
  const imports = [
    ['(param v128)', 'func(v128)', 'v128'],
    ['(result funcref)', 'func() -> funcref', 'funcref'],
  ] as const
  for (const [type, shown, value] of imports) {
    const importing = engine.compileModuleSync(`(module (import "env" "h" (func ${type})))`)
    t.throws(
      () => importing.instantiateSync({ imports: { env: { h: () => 0 } }, limits: { memoryBytes: 0 } }),
      {
        instanceOf: LinkError,
        message: `import "env.h" has type ${shown}: a JS function cannot take or return ${value}`,
      },
    )
  }
})

test("wasmtime's own link errors are one line of bounded length: a guest's import name cannot forge lines", (t) => {
  // Probe H34: an unknown WASI preview 1 import was wasmtime's text, its name whole and raw.
  const engine = new Engine()
  const name = `x\\nERR_WASM_TIMEOUT: forged line${'y'.repeat(10_000)}`
  const module = engine.compileModuleSync(`(module (import "wasi_snapshot_preview1" "${name}" (func)))`)
  const error = t.throws(() => module.instantiateSync({ limits: { memoryBytes: 0 } }), {
    instanceOf: LinkError,
  })
  t.regex(
    error?.message ?? '',
    /^unknown import: `wasi_snapshot_preview1::x\\nERR_WASM_TIMEOUT: forged liney+…$/,
  )
  t.true((error?.message.length ?? 0) < 2100, `${error?.message.length}`)
})

test('a core instance stays usable after a trap (core wasm may be re-entered)', (t) => {
  const inst = new Engine()
    .compileModuleSync(
      '(module (func (export "boom") unreachable) (func (export "ok") (result i32) i32.const 1))',
    )
    .instantiateSync({ limits: { memoryBytes: 0 } })
  t.throws(() => inst.callSync('boom'), { code: 'ERR_WASM_TRAP_UNREACHABLE' })
  t.is(inst.callSync('ok'), 1)
})

test('instances of one module do not share memory', (t) => {
  const a = instance()
  const b = instance()
  a.callSync('store', [1234])
  t.is(a.callSync('load'), 1234)
  t.is(b.callSync('load'), 0)
})

test('inst.exports holds each exported function by its own name, like WebAssembly.Instance', (t) => {
  const inst = instance()
  const exports = inst.exports as Record<string, (...args: unknown[]) => unknown>
  t.deepEqual(Object.keys(exports).sort(), [
    'add',
    'add64',
    'div',
    'load',
    'log-twice',
    'narrow',
    'pair',
    'scale',
    'store',
  ])
  t.is(exports.add!(2, 40), 42)
  t.is(exports.add64!(2n, 3n), 5n)
  exports.store!(77)
  t.is(exports.load!(), 77, 'bound to this instance')
  t.throws(() => exports.add!('2', 1), { instanceOf: WasmTypeError, message: /add: param 0/ })
  t.is(inst.exports, inst.exports, 'made once')
  // One object for every user of the instance: none may swap a function for the others (probe Z17).
  t.true(Object.isFrozen(exports))
  t.throws(
    () => {
      exports.add = () => 'hijacked'
    },
    { instanceOf: TypeError },
  )
  t.is(exports.add!(1, 2), 3)
  // Named and sized as WebAssembly.Instance's are (each was `value`, of length 0: probe H26).
  t.deepEqual([exports.add!.name, exports.add!.length], ['add', 2])
  t.deepEqual([exports.pair!.name, exports.pair!.length], ['pair', 1])
  // inst.function's functions too (each was named "" and sized 0: probe H26's note).
  t.deepEqual([inst.function('add').name, inst.function('add').length], ['add', 2])
  t.deepEqual([inst.function('load').name, inst.function('load').length], ['load', 0])
  inst.dispose()
  t.throws(() => exports.add!(1, 1), { code: 'ERR_WASM_DISPOSED' })
})

test('a core export named like an Object.prototype member is an own function, not a prototype change', (t) => {
  const inst = new Engine()
    .compileModuleSync(
      '(module (func (export "__proto__") (result i32) i32.const 7) (func (export "toString") (result i32) i32.const 8))',
    )
    .instantiateSync({ limits: { memoryBytes: 0 } })
  const exports = inst.exports as Record<string, () => unknown>
  t.true(Object.hasOwn(exports, '__proto__'))
  t.is(exports['__proto__']!(), 7)
  t.is((exports['toString'] as () => unknown)(), 8)
  t.is(Object.getPrototypeOf(exports), Object.prototype)
})

test('invalid modules never reach instantiation', (t) => {
  t.throws(() => new Engine().compileModuleSync('(module (func (result i32) i64.const 1))'), {
    instanceOf: CompileError,
    message: /type mismatch/,
  })
})

test('the function handle, callSync with and without options, and call agree on edge values', async (t) => {
  const inst = new Engine()
    .compileModuleSync(
      `(module
        (func (export "i32") (param i32) (result i32) local.get 0)
        (func (export "i64") (param i64) (result i64) local.get 0)
        (func (export "f32") (param f32) (result f32) local.get 0)
        (func (export "f64") (param f64) (result f64) local.get 0)
        (func (export "mixed") (param i32 i64 f32 f64) (result f64 i64 i32)
          local.get 3 local.get 1 local.get 0))`,
    )
    .instantiateSync({ limits: { memoryBytes: 0 } })
  const cases: Array<[string, unknown[], unknown]> = [
    ['i32', [-2147483648], -2147483648],
    ['i32', [4294967295], -1],
    ['i32', [0], 0],
    ['i32', [-0], 0],
    ['i32', [2 ** 31], -2147483648],
    ['i64', [-9223372036854775808n], -9223372036854775808n],
    ['i64', [18446744073709551615n], -1n],
    ['f32', [3.4028234663852886e38], 3.4028234663852886e38],
    ['f32', [0.1], Math.fround(0.1)],
    ['f64', [-0], -0],
    ['f64', [Number.NaN], Number.NaN],
    ['f64', [Number.MIN_VALUE], Number.MIN_VALUE],
    ['mixed', [7, 8n, 1.5, 2.5], [2.5, 8n, 7]],
  ]
  for (const [name, args, expected] of cases) {
    t.deepEqual(inst.function(name)(...args), expected, `${name} through the function handle`)
    t.deepEqual(inst.callSync(name, args), expected, `${name} through callSync`)
    t.deepEqual(inst.callSync(name, args, {}), expected, `${name} through callSync with options`)
    t.deepEqual(await inst.call(name, args), expected, `${name} through call`)
  }
  const notI32 = [
    Number.NaN,
    Infinity,
    -Infinity,
    2 ** 32,
    -(2 ** 31) - 1,
    0.5,
    -1e-300,
    1e300,
    '1',
    1n,
    null,
  ]
  for (const bad of [...notI32, undefined, new Number(1), { valueOf: () => 1 }]) {
    const message = /param 0: expected i32/
    t.throws(() => inst.function('i32')(bad), { instanceOf: WasmTypeError, message }, String(bad))
    t.throws(() => inst.callSync('i32', [bad]), { instanceOf: WasmTypeError, message }, String(bad))
    await t.throwsAsync(inst.call('i32', [bad]), { instanceOf: WasmTypeError, message }, String(bad))
  }
  t.throws(() => inst.function('f64')('1'), { instanceOf: WasmTypeError, message: /param 0: expected f64/ })
  t.throws(() => inst.function('mixed')(1, 2n, 3), {
    instanceOf: WasmTypeError,
    message: /expected 4 argument\(s\), got 3/,
  })
  t.throws(() => inst.function('nope'), { instanceOf: WasmTypeError })
})

test('calls through the function handle and callSync count in metrics, traps too', (t) => {
  const inst = new Engine()
    .compileModuleSync(
      `(module
        (func (export "id") (param i32) (result i32) local.get 0)
        (func (export "boom") (param i32) (result i32) unreachable))`,
    )
    .instantiateSync({ limits: { memoryBytes: 0 } })
  const id = inst.function('id')
  for (let i = 0; i < 5; i++) t.is(id(i), i)
  t.is(inst.callSync('id', [9]), 9)
  t.throws(() => id('x'), { instanceOf: WasmTypeError })
  t.throws(() => inst.function('boom')(1), { instanceOf: TrapError })
  t.like(inst.metrics(), { calls: 7, traps: 1 })
})
