/**
 * The typed path of `func(list<u8>) -> list<u8>` (a `Uint8Array` argument: one copy each way)
 * against the generic `Val` path (a plain array of numbers): the same bytes back on edge values,
 * with `callSync`, `call` and function handles, and the same errors.
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

test('a Uint8Array (typed path) and a plain array (Val path) give the same bytes back', async (t) => {
  const inst = instance()
  for (const bytes of edges) {
    const typed = inst.callSync('roundtrip-list-u8', [bytes])
    t.true(typed instanceof Uint8Array)
    t.deepEqual(typed, bytes)
    if (bytes.length <= 4096) t.deepEqual(inst.callSync('roundtrip-list-u8', [Array.from(bytes)]), typed)
    t.deepEqual(await inst.call('roundtrip-list-u8', [bytes]), bytes)
    t.deepEqual(inst.function('roundtripListU8')(bytes), bytes)
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

test('bytes larger than the memory limit fail as on the Val path, and the next instance works', (t) => {
  const small = () => component.instantiateSync({ limits: { memoryBytes: 2 << 20 }, imports: typesImports() })
  const big = new Uint8Array(3 << 20)
  const typed = t.throws(() => small().callSync('roundtrip-list-u8', [big]))
  const generic = t.throws(() => small().callSync('roundtrip-list-u8', [Array.from(big)]))
  t.is(typed?.constructor, generic?.constructor)
  t.is((typed as { code?: string } | undefined)?.code, (generic as { code?: string } | undefined)?.code)
  t.deepEqual(instance().callSync('roundtrip-list-u8', [new Uint8Array([1, 2])]), new Uint8Array([1, 2]))
})
