import test from 'ava'

import {
  ArithmeticTrapError,
  Engine,
  MemoryOutOfBoundsError,
  StackOverflowError,
  TrapError,
  UnreachableError,
  type Instance,
  type Module,
  type WasmFrame,
} from '../lib/index.js'

/** One function per trap kind, each producing it with real wasm. */
const wat = `(module
  (type $unary (func (param i32) (result i32)))
  (type $nullary (func))
  (memory 1)
  (table 2 funcref)
  (elem (i32.const 0) $identity)
  (func $identity (type $unary) local.get 0)
  (func (export "unreachable") unreachable)
  (func (export "divide-by-zero") (result i32) i32.const 1 i32.const 0 i32.div_s)
  (func (export "integer-overflow") (result i32) i32.const 0x80000000 i32.const -1 i32.div_s)
  (func (export "bad-conversion") (result i32) f32.const nan i32.trunc_f32_s)
  (func (export "memory-out-of-bounds") (result i32) i32.const 65536 i32.load)
  (func (export "table-out-of-bounds") (result i32) i32.const 0 i32.const 5 call_indirect (type $unary))
  (func (export "indirect-call-to-null") (result i32) i32.const 0 i32.const 1 call_indirect (type $unary))
  (func (export "bad-signature") i32.const 0 call_indirect (type $nullary))
  (func $recurse (export "stack-overflow") (param i32) (result i32)
    local.get 0 i32.const 1 i32.add call $recurse))`

/** [export, class, code, trapCode, args] */
const traps: Array<[string, new (...args: never[]) => TrapError, string, string, unknown[]]> = [
  ['unreachable', UnreachableError, 'ERR_WASM_TRAP_UNREACHABLE', 'UnreachableCodeReached', []],
  ['divide-by-zero', ArithmeticTrapError, 'ERR_WASM_TRAP_DIVIDE_BY_ZERO', 'IntegerDivisionByZero', []],
  ['integer-overflow', ArithmeticTrapError, 'ERR_WASM_TRAP_INTEGER_OVERFLOW', 'IntegerOverflow', []],
  ['bad-conversion', ArithmeticTrapError, 'ERR_WASM_TRAP_BAD_CONVERSION', 'BadConversionToInteger', []],
  [
    'memory-out-of-bounds',
    MemoryOutOfBoundsError,
    'ERR_WASM_TRAP_MEMORY_OUT_OF_BOUNDS',
    'MemoryOutOfBounds',
    [],
  ],
  ['table-out-of-bounds', TrapError, 'ERR_WASM_TRAP_TABLE_OUT_OF_BOUNDS', 'TableOutOfBounds', []],
  ['indirect-call-to-null', TrapError, 'ERR_WASM_TRAP_INDIRECT_CALL', 'IndirectCallToNull', []],
  ['bad-signature', TrapError, 'ERR_WASM_TRAP_BAD_SIGNATURE', 'BadSignature', []],
  ['stack-overflow', StackOverflowError, 'ERR_WASM_TRAP_STACK_OVERFLOW', 'StackOverflow', [0]],
]

let shared: Module | undefined
/** A fresh instance per test: the tests run at once, and one's call() would make another's callSync a BusyError. */
function instance(): Instance {
  shared ??= new Engine().compileModuleSync(wat)
  return shared.instantiateSync({ limits: { memoryBytes: 1 << 20 } })
}

for (const [name, Class, code, trapCode, args] of traps) {
  test(`${name} traps as ${Class.name} ${code} on the JS thread and on the pool`, async (t) => {
    const sync = t.throws(() => instance().callSync(name, args), { instanceOf: Class })
    t.is(sync?.code, code)
    t.is(sync?.trapCode, trapCode)
    t.true(sync instanceof TrapError)
    const frames: WasmFrame[] = sync?.wasmBacktrace ?? []
    t.true(frames.length > 0, 'a backtrace with at least one frame')
    t.true(frames.every((frame) => typeof frame.funcIndex === 'number'))
    t.true(frames.some((frame) => typeof frame.moduleOffset === 'number'))
    const async = await t.throwsAsync(instance().call(name, args), { instanceOf: Class })
    t.is(async?.code, code)
    t.is(async?.trapCode, trapCode)
  })
}

test('backtraces name the functions that have names', (t) => {
  const error = t.throws(() => instance().callSync('stack-overflow', [0]), { instanceOf: StackOverflowError })
  t.true(error?.wasmBacktrace.some((frame) => frame.funcName === 'recurse'))
  // Stopped at its entry, the innermost frame has no instruction, so no offsets (as WasmFrame says);
  // the frames that called it have theirs.
  const [innermost, caller] = error?.wasmBacktrace ?? []
  t.is(innermost?.funcOffset, undefined)
  t.is(innermost?.moduleOffset, undefined)
  t.is(typeof caller?.funcOffset, 'number')
  t.is(typeof caller?.moduleOffset, 'number')
})

test('the process survives every trap and later calls still work', async (t) => {
  const same = instance()
  for (const [name, , , , args] of traps) {
    t.throws(() => same.callSync(name, args))
    await t.throwsAsync(same.call(name, args))
  }
  const ok = new Engine()
    .compileModuleSync('(module (func (export "one") (result i32) i32.const 1))')
    .instantiateSync({ limits: { memoryBytes: 0 } })
  t.is(ok.callSync('one'), 1)
  t.is(await ok.call('one'), 1)
})

test('a trap without a class of its own is a plain TrapError with ERR_WASM_TRAP and the trapCode of wasmtime', async (t) => {
  // Typed function references are on (WebAssembly 3.0): a null reference trap is real wasm that
  // no named code covers, so it takes the generic fallback.
  const nulls = new Engine()
    .compileModuleSync(
      `(module
        (type $f (func))
        (func (export "as-non-null") ref.null func ref.as_non_null drop)
        (func (export "call-ref") (call_ref $f (ref.null $f)))
        (func (export "ok") (result i32) i32.const 1))`,
    )
    .instantiateSync({ limits: { memoryBytes: 0 } })
  for (const name of ['as-non-null', 'call-ref']) {
    const sync = t.throws(() => nulls.callSync(name), { instanceOf: TrapError })
    t.is(sync?.constructor, TrapError, 'not one of the subclasses')
    t.is(sync?.name, 'TrapError')
    t.is(sync?.code, 'ERR_WASM_TRAP')
    t.is(sync?.trapCode, 'NullReference')
    t.is(sync?.message, 'wasm trap: null reference')
    t.true((sync?.wasmBacktrace.length ?? 0) > 0)
    const pooled = await t.throwsAsync(nulls.call(name), { instanceOf: TrapError })
    t.is(pooled?.constructor, TrapError)
    t.is(pooled?.code, 'ERR_WASM_TRAP')
    t.is(pooled?.trapCode, 'NullReference')
  }
  t.is(nulls.callSync('ok'), 1, 'a core instance keeps working after the trap')
})
