import { readFileSync } from 'node:fs'

import test from 'ava'

import { translate } from '../lib/errors.js'
import { WasmError } from '../lib/index.js'
import type { WitType } from '../lib/component.js'
import { NativeComponent, NativeEngine } from '../lib/native.js'
import { instantiateOptions } from '../lib/options.js'
import { ownedImports, Owner } from '../lib/util/reentry.js'
import { typesEverything, typesWasm } from '../fixtures/index.js'
import { decodeFlat, flatArgs, flatResult } from '../lib/wire.js'
import { MiB, typesComponent, typesImports } from './helpers.js'

/** An instance of the types fixture straight from the binding, without lib/'s layer. */
function nativeInstance() {
  const engine = new NativeEngine({
    fuel: false,
    epochTickMs: 5,
    maxWasmStackBytes: 512 * 1024,
    compiler: 'cranelift',
  })
  const component = NativeComponent.compileSync(engine, readFileSync(typesWasm))
  const { native } = instantiateOptions({ limits: { memoryBytes: 64 * MiB } })
  return component.instantiateSync(native, ownedImports(typesImports(), new Owner()), undefined)
}

function instance() {
  return typesComponent().instantiateSync({ limits: { memoryBytes: 64 * MiB }, imports: typesImports() })
}

/**
 * Everything about a value that the two paths must agree on and `deepEqual` does not pin: key
 * order, whether a key is present (`{ tag }` has no `val`), typed array classes, -0.
 */
function describe(value: unknown): string {
  if (Object.is(value, -0)) return '-0'
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined) return String(value)
  if (typeof value === 'string') return JSON.stringify(value)
  if (ArrayBuffer.isView(value)) {
    return `${value.constructor.name}[${Array.from(value as unknown as ArrayLike<unknown>, describe).join(',')}]`
  }
  if (Array.isArray(value)) return `Array[${value.map(describe).join(',')}]`
  const object = value as Record<string, unknown>
  return `{${Object.keys(object)
    .map((key) => `${key}:${describe(object[key])}`)
    .join(',')}}`
}

const person = { firstName: 'Zoë 🚀', age: 255, tags: ['', 'b', 'ünïcödé'] }
const tagged = (tag: string, val?: unknown) => (val === undefined ? { tag } : { tag, val })

/** Exports whose results come back flat, with values that reach every part of the form. */
const structured: Array<[string, unknown]> = [
  ['roundtrip-record', person],
  ['roundtrip-point', { x: -2147483648, y: 2147483647 }],
  ['roundtrip-tuple', [255, 'é', -0]],
  ['roundtrip-variant', tagged('rectangle', { x: 1, y: -1 })],
  ['roundtrip-variant', tagged('nothing')],
  ['roundtrip-flags', { read: true, write: false, execNow: true }],
  ['roundtrip-option-option', { tag: 'none' }],
  ['roundtrip-option-option', { tag: 'some', val: undefined }],
  ['roundtrip-option-option', { tag: 'some', val: 4294967295 }],
  ['roundtrip-list-string', ['', 'a'.repeat(16), 'b'.repeat(17), 'ü', '🚀'.repeat(9), '\u0000']],
  ['roundtrip-list-bool', [true, false]],
  ['roundtrip-results', [tagged('ok', 0), tagged('err', ''), tagged('err', 'x'.repeat(40))]],
  ['roundtrip-result-unit', { tag: 'err' }],
  [
    'roundtrip-nested',
    {
      items: [
        undefined,
        ['deep', [tagged('circle', 1.5), tagged('label', 'ÿĀ'), tagged('nothing')]],
        ['', []],
      ],
      inner: person,
    },
  ],
  ['many-params', undefined],
]

for (const [name, input] of structured) {
  test(`${name}: the flat form gives the values the per-value path gives (${describe(input).slice(0, 40)})`, async (t) => {
    const inst = instance()
    const args = name === 'many-params' ? [200, -5n, 'ü', 0.5] : [input]
    // The addon's own handle, without the flat form either way: the reference.
    const perValue = describe(nativeInstance().function(name)(...args))
    t.is(describe(inst.callSync(name, args)), perValue)
    t.is(describe(inst.function(name)(...args)), perValue)
    t.is(describe(await inst.call(name, args)), perValue)
    // With a per-call budget, only the result is flat.
    t.is(describe(inst.callSync(name, args, { timeoutMs: 60_000 })), perValue)
    inst.dispose()
  })
}

test('results larger than the scratch buffer arrive whole, before and after it grows', async (t) => {
  const inst = instance()
  // ~90 KiB, then ~5 MiB (past the largest scratch kept): each size twice.
  for (const count of [2_000, 2_000, 100_000, 100_000]) {
    const input = Array.from({ length: count }, (_, index) => `element ${index} ${'é'.repeat(index % 20)}`)
    const output = inst.callSync('roundtrip-list-string', [input]) as string[]
    t.is(output.length, count)
    t.deepEqual(output, input)
  }
  // A small result after the large ones still comes from the scratch buffer intact.
  t.deepEqual(inst.callSync('roundtrip-record', [person]), person)
  t.deepEqual(await inst.call('roundtrip-record', [person]), person)
})

test('a flat result decodes the same when a host function made another flat call during it', (t) => {
  // The guest calls the host's `echo` during `call-echo`; the callSync of another instance inside
  // it uses the same scratch buffer, before the outer result is written there.
  const other = instance()
  const inner: unknown[] = []
  const imports = typesImports()
  ;(imports['test:types/host@0.1.0'] as Record<string, unknown>).echo = (value: unknown) => {
    inner.push(other.callSync('roundtrip-record', [person]))
    return value
  }
  const inst = typesComponent().instantiateSync({ limits: { memoryBytes: 16 * MiB }, imports })
  t.deepEqual(inst.callSync('call-echo', [typesEverything]), typesEverything)
  t.deepEqual(inner, [person])
})

test('only structured results without resources are returned flat', (t) => {
  const func = (result?: WitType) => flatResult({ params: [], result })
  t.is(func(undefined), undefined)
  t.is(func({ kind: 'u32' }), undefined)
  t.is(func({ kind: 'string' }), undefined)
  t.is(func({ kind: 'enum', names: ['a'] }), undefined)
  // A list of numbers is a typed array, one N-API call on the per-value path.
  t.is(func({ kind: 'list', element: { kind: 'u8' } }), undefined)
  t.is(func({ kind: 'list', element: { kind: 'own', resource: 'r' } }), undefined)
  t.is(func({ kind: 'option', element: { kind: 'borrow', resource: 'r' } }), undefined)
  t.is(func({ kind: 'list', element: { kind: 'u8' }, length: 4 }), undefined)
  // The ok value of a `result` is what JS receives.
  t.is(func({ kind: 'result', ok: { kind: 'string' } }), undefined)
  t.is(func({ kind: 'result' }), undefined)
  t.not(func({ kind: 'result', ok: { kind: 'tuple', types: [{ kind: 'u8' }] } }), undefined)
  t.not(func({ kind: 'list', element: { kind: 'string' } }), undefined)
  t.not(func({ kind: 'record', fields: [{ name: 'a', type: { kind: 'u8' } }] }), undefined)
})

test('a flat result that does not match its type is an internal error, not a wrong value', (t) => {
  const read = flatResult({
    params: [],
    result: { kind: 'variant', cases: [{ name: 'a' }, { name: 'b', type: { kind: 'u8' } }] },
  })!
  t.deepEqual(decodeFlat(new Uint8Array([1, 0, 0, 0, 7]).buffer, read, never), { tag: 'b', val: 7 })
  const error = t.throws(() => decodeFlat(new Uint8Array([2, 0, 0, 0]).buffer, read, never), {
    instanceOf: WasmError,
  })
  t.is(error?.code, 'ERR_WASM_INTERNAL')
  // Nothing returned (a WASI exit(0)) is undefined.
  t.is(decodeFlat(undefined, read, never), undefined)
})

/** A decoding's stop that never stops. */
function never(): void {}

test('decoding a flat list asks its stop every 256 elements, at any depth, and ends when it throws', (t) => {
  // list<list<tuple<bool>>>: 3 lists of 300 one-element tuples.
  const read = flatResult({
    params: [],
    result: {
      kind: 'list',
      element: { kind: 'list', element: { kind: 'tuple', types: [{ kind: 'bool' }] } },
    },
  })!
  const bytes = new Uint8Array(4 + 3 * (4 + 300))
  const view = new DataView(bytes.buffer)
  view.setUint32(0, 3, true)
  for (let list = 0; list < 3; list++) view.setUint32(4 + list * 304, 300, true)
  let looks = 0
  const decoded = decodeFlat(bytes.buffer, read, () => looks++) as boolean[][][]
  t.is(decoded.length, 3)
  t.deepEqual(decoded[2]![299], [false])
  // 903 elements in all, the 3 outer ones included: a look after each 256.
  t.is(looks, 3)
  const stopped = new Error('stopped')
  let decodedBefore = 0
  const error = t.throws(() =>
    decodeFlat(bytes.buffer, read, () => {
      decodedBefore++
      if (decodedBefore === 2) throw stopped
    }),
  )
  t.is(error, stopped)
  t.is(decodedBefore, 2)
})

/** `roundtrip-record`'s function type (it takes a `person`), from the component's listing. */
const personFunc = typesComponent().exports.find((item) => item.name === 'roundtrip-record')!.func!

test('arguments are written flat only when taken as they are; anything else goes to the per-value path', (t) => {
  const write = flatArgs(personFunc)!
  t.true(write([person]) > 0)
  t.true(write([{ ...person, extra: 1 }]) > 0)
  // Each of these is the per-value path's to convert or refuse (and to name where).
  const declined: unknown[][] = [
    [],
    [person, person],
    [{ ...person, age: 256 }],
    [{ ...person, age: 1.5 }],
    [{ ...person, age: '1' }],
    [{ ...person, firstName: 'lone \ud800' }],
    [{ ...person, tags: 'not a list' }],
    [{ ...person, tags: new Proxy([], {}) }],
    [[person]],
    [
      Object.defineProperty({ ...person }, 'age', {
        get() {
          throw new Error('getter broke')
        },
      }),
    ],
    [null],
  ]
  for (const [index, args] of declined.entries()) t.is(write(args), -1, `declined[${index}]`)
  // Signatures of numbers, strings and typed arrays stay on the per-value path.
  t.is(flatArgs({ params: [{ name: 'a', type: { kind: 'string' } }] }), undefined)
  t.is(flatArgs({ params: [{ name: 'a', type: { kind: 'list', element: { kind: 'u8' } } }] }), undefined)
  t.is(flatArgs({ params: [{ name: 'a', type: { kind: 'own', resource: 'r' } }] }), undefined)
})

test('arguments the flat writer declines are converted or refused exactly as before', async (t) => {
  const inst = instance()
  // A proxy and an object with a getter are still records; a revoked proxy is still refused.
  const proxied = new Proxy({ ...person }, {})
  t.deepEqual(inst.callSync('roundtrip-record', [proxied]), person)
  let reads = 0
  const counted = Object.defineProperty({ firstName: 'a', tags: [] }, 'age', {
    get: () => ++reads,
    enumerable: true,
  })
  t.deepEqual(inst.callSync('roundtrip-record', [counted]), { firstName: 'a', age: 1, tags: [] })
  const wrong: unknown[] = [
    { ...person, age: -1 },
    { ...person, tags: [1] },
    { ...person, firstName: 'end \ud83d' },
    [person],
    null,
  ]
  for (const value of wrong) {
    const sync = t.throws(() => inst.callSync('roundtrip-record', [value]))
    const pooled = await t.throwsAsync(inst.call('roundtrip-record', [value]))
    t.is(sync?.message, pooled?.message)
    t.is(sync?.constructor, pooled?.constructor)
  }
  // Structured values whose parts take other forms: typed arrays inside, arrays for typed lists.
  const forms = { ...typesEverything, bytes: new Uint8ClampedArray([1, 2, 255]), words: [] }
  t.deepEqual(inst.callSync('call-echo', [forms]), { ...forms, bytes: new Uint8Array([1, 2, 255]) })
  const numbers = { ...typesEverything, bytes: [0, 255] }
  t.deepEqual(inst.callSync('call-echo', [numbers]), { ...typesEverything, bytes: new Uint8Array([0, 255]) })
  t.deepEqual(inst.callSync('roundtrip-flags', [{ write: true }]), {
    read: false,
    write: true,
    execNow: false,
  })
  t.deepEqual(inst.callSync('roundtrip-tuple', [[1, 'x', -0]]), [1, 'x', -0])
  t.deepEqual(inst.callSync('roundtrip-record', [{ ...person, age: -0 }]), { ...person, age: 0 })
})

test('a list whose length changes while it is read is converted or refused as a TypeError, never an internal error', async (t) => {
  const instance = typesComponent().instantiateSync({
    limits: { memoryBytes: 4 * MiB },
    imports: typesImports(),
  })
  const shrinking = ['a', 'b']
  Object.defineProperty(shrinking, 0, {
    get() {
      shrinking.length = 0
      return 'a'
    },
  })
  const growing = ['a', 'b']
  Object.defineProperty(growing, 0, {
    get() {
      growing.push('c')
      return 'a'
    },
  })
  for (const list of [shrinking, growing]) {
    let outcome: unknown
    try {
      outcome = await instance.call('roundtrip-list-string', [list])
    } catch (error) {
      outcome = error
    }
    t.false(outcome instanceof WasmError && outcome.code === 'ERR_WASM_INTERNAL', String(outcome))
  }
  t.false(instance.poisoned)
})

test('the addon checks flat arguments as hostile: wrong bytes, lengths and buffers are errors, never a crash', (t) => {
  // Straight at the binding, past lib/wire.ts: the addon's own checks must hold.
  const inst = nativeInstance()
  const flat = translate(() => inst.function('roundtrip-results', false, true, true)) as (
    this: unknown,
    ...args: unknown[]
  ) => unknown
  const buffer = Buffer.alloc(64)
  const cases: Array<[string, Uint8Array | undefined, unknown[]]> = [
    ['a count past the end', Buffer.from([0xff, 0xff, 0xff, 0x7f]), [4]],
    ['a string longer than the buffer', Buffer.from([1, 0, 0, 0, 1, 0xff, 0xff, 0, 0]), [9]],
    ['a result flag of 2', Buffer.from([1, 0, 0, 0, 2]), [5]],
    ['a string that is not UTF-8', Buffer.from([1, 0, 0, 0, 1, 1, 0, 0, 0, 0xff]), [10]],
    ['bytes left over', Buffer.from([0, 0, 0, 0, 9]), [5]],
    ['a length past the buffer', buffer, [65]],
    ['a negative length', buffer, [-1]],
    ['no length', buffer, []],
    ['a length that is not a number', buffer, ['4']],
    ['no buffer', undefined, [0]],
    ['a buffer of other elements', new Uint16Array(8) as unknown as Uint8Array, [4]],
  ]
  for (const [what, bytes, args] of cases) {
    // The addon returns its failures (see lib/util/failure.ts): `translate` throws them.
    const error = t.throws(() => translate(() => flat.apply(bytes, args)), undefined, what) as
      { code?: string } | undefined
    t.true(error?.code === 'ERR_WASM_INTERNAL' || error?.code === 'ERR_WASM_TYPE', `${what}: ${error?.code}`)
  }
  // Well-formed flat arguments still work on the same instance: an empty list.
  const scratch = Buffer.alloc(64)
  t.is(flat.call(scratch, 4), 4)
  t.deepEqual([...scratch.subarray(0, 4)], [0, 0, 0, 0])
})
