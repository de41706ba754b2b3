import path from 'node:path'

import test from 'ava'

import { typesInstance, root } from '../helpers.js'
import { WasmTypeError } from '../../lib/index.js'
import { valuesTarget, wrongValuesTarget } from '../../fuzz/values.js'
import { assertProperty, runScript } from './helpers.js'

test('random values of every WIT type come back equal through call, callSync and function handles', async (t) => {
  await assertProperty(valuesTarget(), 300)
  t.pass()
})

test('wrong and hostile values for every parameter are a WasmTypeError naming it, never another error', async (t) => {
  await assertProperty(wrongValuesTarget(), 300)
  t.pass()
})

// Finding F2 (fixed): a JS exception while an argument is read is taken and reported where it happened.

test('a getter that throws while an argument is read is a WasmTypeError naming where', (t) => {
  const instance = typesInstance()
  const point = Object.defineProperty({ x: 1 }, 'y', {
    get() {
      throw new Error('getter broke')
    },
    enumerable: true,
  })
  const error = t.throws(() => instance.callSync('roundtrip-point', [point]), { instanceOf: WasmTypeError })
  t.true(error?.message.startsWith('roundtrip-point: param "v": field "y"'), error?.message)
  t.is(instance.callSync('roundtrip-u8', [3]), 3)
})

test('a revoked proxy as an argument is a WasmTypeError naming where', async (t) => {
  const instance = typesInstance()
  const { proxy, revoke } = Proxy.revocable({ x: 1, y: 2 }, {})
  revoke()
  // Today `call` gives a WasmTypeError ("N-API call failed: property") and callSync V8's own TypeError.
  const pooled = await t.throwsAsync(instance.call('roundtrip-point', [proxy]), { instanceOf: WasmTypeError })
  t.true(pooled?.message.startsWith('roundtrip-point: param "v"'), pooled?.message)
  const sync = t.throws(() => instance.callSync('roundtrip-point', [proxy]), { instanceOf: WasmTypeError })
  t.true(sync?.message.startsWith('roundtrip-point: param "v"'), sync?.message)
})

test('a huge sparse array as a list argument is a WasmTypeError, not a process abort', (t) => {
  // In a child process: the converter once reserved length × sizeof(Val) bytes up front, and Rust
  // aborted the whole process when that allocation failed (finding F1).
  const lib = path.join(root, 'lib/index.ts')
  const fixtures = path.join(root, 'fixtures/index.ts')
  const child = runScript(`
    import { Engine, WasmTypeError } from ${JSON.stringify(lib)}
    import { typesImports, typesWasm } from ${JSON.stringify(fixtures)}
    const component = new Engine().compileComponentSync(typesWasm)
    const instance = component.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: typesImports() })
    for (const name of ['roundtrip-list-u8', 'roundtrip-list-string']) {
      try {
        instance.callSync(name, [new Array(2 ** 32 - 1)])
        console.log(name, 'accepted')
      } catch (error) {
        console.log(name, error instanceof WasmTypeError ? 'WasmTypeError' : String(error))
      }
    }
  `)
  t.is(child.signal, null, child.stderr.slice(0, 400))
  t.is(child.status, 0, child.stderr.slice(0, 400))
  t.is(child.stdout, 'roundtrip-list-u8 WasmTypeError\nroundtrip-list-string WasmTypeError\n')
})
