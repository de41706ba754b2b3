/**
 * The typed paths of `func(list<u8>) -> list<u8>` (a `Uint8Array` or an array of numbers: one copy
 * each way) and of `func(string) -> string` against the generic `Val` path (the same bytes or text
 * as a field of a record, to a host function and back): the same values back on edge values, with
 * `callSync`, `call` and function handles, and the same errors.
 */
import { randomBytes } from 'node:crypto'

import test from 'ava'

import { Engine, WasmTypeError } from '../../lib/index.js'
import { typesImports, typesWasm } from '../helpers.js'

const engine = new Engine()
const component = engine.compileComponentSync(typesWasm)
const instance = () =>
  component.instantiateSync({ limits: { memoryBytes: 16 << 20 }, imports: typesImports() })
test.after.always(() => engine.close())

const edges: Uint8Array[] = [
  new Uint8Array(0),
  new Uint8Array([0]),
  new Uint8Array([255]),
  Uint8Array.from({ length: 256 }, (_, index) => index),
  new Uint8Array(randomBytes(1024)),
  new Uint8Array(randomBytes((1 << 20) + 7)),
]

/** The record the fixture's `call-echo` sends to the host's `echo` and returns: `bytes` on the Val path. */
const record = (bytes: Uint8Array | number[], text = '') => ({
  flag: false,
  tiny: 0,
  small: 0,
  medium: 0,
  large: 0n,
  stiny: 0,
  ssmall: 0,
  smedium: 0,
  slarge: 0n,
  single: 0,
  wide: 0,
  letter: 'a',
  text,
  bytes,
  words: [],
  maybe: { tag: 'none' },
  outcome: { tag: 'ok', val: '' },
  rank: 'low',
  rights: {},
  tokens: [],
  pair: [0, ''],
})

test('a Uint8Array and a plain array (typed path) give the same bytes back as the Val path', async (t) => {
  const inst = instance()
  for (const bytes of edges) {
    const typed = inst.callSync('roundtrip-list-u8', [bytes])
    t.true(typed instanceof Uint8Array)
    t.deepEqual(typed, bytes)
    const generic = (inst.callSync('call-echo', [record(bytes)]) as { bytes: Uint8Array }).bytes
    t.deepEqual(generic, typed)
    if (bytes.length <= 4096) {
      const array = Array.from(bytes)
      t.deepEqual(inst.callSync('roundtrip-list-u8', [array]), typed)
      t.deepEqual((inst.callSync('call-echo', [record(array)]) as { bytes: Uint8Array }).bytes, typed)
    }
    t.deepEqual(await inst.call('roundtrip-list-u8', [bytes]), bytes)
    t.deepEqual(inst.function('roundtripListU8')(bytes), bytes)
  }
})

test('an array that is not all bytes is refused on the typed path as on the Val path', (t) => {
  const inst = instance()
  for (const [bad, fragment] of [
    [[0, 256], 'list index 1: expected u8, got 256'],
    [[-1], 'list index 0: expected u8, got -1'],
    [[1.5], 'list index 0: expected u8, got 1.5'],
    [['1'], 'list index 0: expected u8, got string'],
    [[0, , 2], 'list index 1: expected u8, got undefined'],
  ] as Array<[unknown[], string]>) {
    const typed = t.throws(() => inst.callSync('roundtrip-list-u8', [bad]), { instanceOf: WasmTypeError })
    const generic = t.throws(() => inst.callSync('call-echo', [record(bad as number[])]), {
      instanceOf: WasmTypeError,
    })
    t.true(typed?.message.includes(`param "v": ${fragment}`), typed?.message)
    t.true(generic?.message.includes(fragment), generic?.message)
  }
})

test('a view into a larger buffer sends only its own bytes; a Buffer is a Uint8Array', (t) => {
  const inst = instance()
  const whole = Uint8Array.from({ length: 64 }, (_, index) => index)
  t.deepEqual(inst.callSync('roundtrip-list-u8', [whole.subarray(10, 20)]), whole.slice(10, 20))
  t.deepEqual(inst.callSync('roundtrip-list-u8', [Buffer.from('abc')]), new Uint8Array([97, 98, 99]))
})

test('other typed arrays and wrong values still get the Val path and its errors', (t) => {
  const inst = instance()
  t.throws(() => inst.callSync('roundtrip-list-u8', [new Uint16Array([1])]), { instanceOf: WasmTypeError })
  t.throws(() => inst.callSync('roundtrip-list-u8', ['bytes']), {
    instanceOf: WasmTypeError,
    message: /param "v"/,
  })
  t.throws(() => inst.callSync('roundtrip-list-u8', []), { instanceOf: WasmTypeError })
})

const texts: string[] = [
  '',
  'a',
  '\0',
  'ü',
  'ÿ\u0100',
  '\ufeff',
  '\ufffd',
  '🚀 in the middle 🚀',
  'airssys-wasm ü€ '.repeat(64),
  'x'.repeat(1 << 20) + 'é',
  String.fromCodePoint(0x10ffff),
]

test('a string (typed path) comes back as on the Val path, on edge values', async (t) => {
  const inst = instance()
  for (const text of texts) {
    const typed = inst.callSync('roundtrip-string', [text]) as string
    t.is(typed, text)
    t.is((inst.callSync('call-echo', [record([], text)]) as { text: string }).text, typed)
    t.is(await inst.call('roundtrip-string', [text]), text)
    t.is(inst.function('roundtripString')(text), text)
  }
})

test('a lone surrogate or a non-string is refused on the string typed path as on the Val path', (t) => {
  const inst = instance()
  for (const [bad, fragment] of [
    ['\ud800', 'lone surrogate'],
    ['a\udfff', 'lone surrogate'],
    [42, 'expected string, got 42'],
    [undefined, 'expected string, got undefined'],
  ] as Array<[unknown, string]>) {
    const typed = t.throws(() => inst.callSync('roundtrip-string', [bad]), { instanceOf: WasmTypeError })
    const generic = t.throws(() => inst.callSync('call-echo', [{ ...record([]), text: bad }]), {
      instanceOf: WasmTypeError,
    })
    t.true(typed?.message.includes(`param "v": `), typed?.message)
    t.true(typed?.message.includes(fragment), typed?.message)
    t.true(generic?.message.includes(fragment), generic?.message)
  }
  t.throws(() => inst.callSync('roundtrip-string', ['a', 'b']), {
    instanceOf: WasmTypeError,
    message: /expected 1 argument/,
  })
  t.is(inst.callSync('roundtrip-string', ['still works']), 'still works')
})

test('bytes larger than the memory limit fail as on the Val path, and the next instance works', (t) => {
  const small = () => component.instantiateSync({ limits: { memoryBytes: 2 << 20 }, imports: typesImports() })
  const big = new Uint8Array(3 << 20)
  const typed = t.throws(() => small().callSync('roundtrip-list-u8', [big]))
  const generic = t.throws(() => small().callSync('call-echo', [record(big)]))
  t.is(typed?.constructor, generic?.constructor)
  t.is((typed as { code?: string } | undefined)?.code, (generic as { code?: string } | undefined)?.code)
  t.deepEqual(instance().callSync('roundtrip-list-u8', [new Uint8Array([1, 2])]), new Uint8Array([1, 2]))
})
