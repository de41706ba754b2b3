import { inspect } from 'node:util'
import vm from 'node:vm'

import test from 'ava'

import {
  type Component,
  Engine,
  HostLimitError,
  type Instance,
  WasmError,
  WasmTypeError,
} from '../../lib/index.js'
import { typesEverything, typesImports } from '../../fixtures/index.js'
import { MiB, typesComponent, typesInstance } from '../helpers.js'

const person = { firstName: 'Zoë 🚀', age: 255, tags: ['', 'b', 'ünïcödé'] }
const shape = (tag: string, val?: unknown) => (val === undefined ? { tag } : { tag, val })

/** [export, input, expected output (when it differs from the input)] */
const table: Array<[string, unknown] | [string, unknown, unknown]> = [
  ['roundtrip-bool', true],
  ['roundtrip-bool', false],
  ['roundtrip-u8', 0],
  ['roundtrip-u8', 255],
  ['roundtrip-u16', 65535],
  ['roundtrip-u32', 4294967295],
  ['roundtrip-u64', 0n],
  ['roundtrip-u64', 18446744073709551615n],
  ['roundtrip-s8', -128],
  ['roundtrip-s8', 127],
  ['roundtrip-s8', -1],
  ['roundtrip-s16', -32768],
  ['roundtrip-s32', -2147483648],
  ['roundtrip-s32', 2147483647],
  ['roundtrip-s64', -9223372036854775808n],
  ['roundtrip-s64', 9223372036854775807n],
  ['roundtrip-s64', -1n],
  ['roundtrip-f32', 1.5],
  ['roundtrip-f32', Number.NaN],
  ['roundtrip-f32', -Infinity],
  ['roundtrip-f64', Math.PI],
  ['roundtrip-f64', Number.NaN],
  ['roundtrip-f64', -0],
  ['roundtrip-f64', Number.MAX_VALUE],
  ['roundtrip-char', 'a'],
  ['roundtrip-char', '🚀'],
  ['roundtrip-char', 'ß'],
  ['roundtrip-string', ''],
  ['roundtrip-string', 'hello'],
  ['roundtrip-string', 'Grüße, 世界 🚀 \u{FEFF}\u0000end'],
  ['roundtrip-string', 'x'.repeat(100_000)],
  // Latin-1 text becomes a one-byte JS string; U+0100 and up does not; U+FFFD is ordinary text.
  ['roundtrip-string', '\u0080 \u00a0 ÿ é ö \u00ff'],
  ['roundtrip-string', 'ÿĀ'],
  ['roundtrip-string', '\uFFFD replacement \uFFFD'],
  ['roundtrip-string', 'é'.repeat(5000) + '🚀'],
  ['roundtrip-list-u8', new Uint8Array([0, 1, 255])],
  ['roundtrip-list-u8', [0, 7, 255], new Uint8Array([0, 7, 255])],
  ['roundtrip-list-u8', new Uint8Array([])],
  ['roundtrip-list-s8', new Int8Array([-128, 0, 127])],
  ['roundtrip-list-u16', new Uint16Array([0, 65535])],
  ['roundtrip-list-s16', [-32768, 32767], new Int16Array([-32768, 32767])],
  ['roundtrip-list-u32', new Uint32Array([0, 4294967295])],
  ['roundtrip-list-s32', new Int32Array([-2147483648, -1, 2147483647])],
  ['roundtrip-list-u64', new BigUint64Array([0n, 18446744073709551615n])],
  ['roundtrip-list-s64', [-1n, 5n], new BigInt64Array([-1n, 5n])],
  ['roundtrip-list-f32', new Float32Array([1.5, Number.NaN, -0])],
  ['roundtrip-list-f64', new Float64Array([Math.E, Number.NaN, Infinity])],
  ['roundtrip-list-string', []],
  ['roundtrip-list-string', ['a', '', '🚀']],
  ['roundtrip-list-bool', [true, false, true]],
  ['roundtrip-record', person],
  ['roundtrip-record', { firstName: '', age: 0, tags: [] }],
  ['roundtrip-point', { x: -2147483648, y: 2147483647 }],
  ['roundtrip-tuple', [255, 'ok', -1.25]],
  ['roundtrip-variant', shape('circle', 2.5)],
  ['roundtrip-variant', shape('rectangle', { x: 1, y: -1 })],
  ['roundtrip-variant', shape('nothing')],
  ['roundtrip-variant', shape('label', 'ünï')],
  ['roundtrip-enum', 'red'],
  ['roundtrip-enum', 'blue-ish'],
  ['roundtrip-flags', { read: true, write: false, execNow: true }],
  ['roundtrip-flags', {}, { read: false, write: false, execNow: false }],
  ['roundtrip-option', 'some text'],
  ['roundtrip-option', ''],
  ['roundtrip-option', undefined],
  ['roundtrip-option', null, undefined],
  ['roundtrip-option-option', { tag: 'none' }],
  ['roundtrip-option-option', { tag: 'some', val: undefined }],
  ['roundtrip-option-option', { tag: 'some', val: 0 }],
  ['roundtrip-option-option', { tag: 'some', val: 4294967295 }],
  [
    'roundtrip-results',
    [
      { tag: 'ok', val: 1 },
      { tag: 'err', val: 'bad 🚀' },
    ],
  ],
  ['roundtrip-result-unit', { tag: 'ok' }, [{ tag: 'ok' }]],
  ['roundtrip-result-unit', { tag: 'err' }, [{ tag: 'err' }]],
  [
    'roundtrip-nested',
    {
      items: [undefined, ['deep', [shape('circle', 1), shape('label', 'x'), shape('nothing')]], ['', []]],
      inner: person,
    },
  ],
  ['roundtrip-nested', { items: [], inner: undefined }],
  // One conversion makes each key and case name once and reuses it for every element: each
  // element must still get its own names (record keys camelCased, case names as written).
  [
    'roundtrip-nested',
    {
      items: [
        [
          'a',
          [shape('rectangle', { x: 1, y: 2 }), shape('circle', 0.5), shape('rectangle', { x: -3, y: 4 })],
        ],
        undefined,
        ['b', [shape('label', 'first-name'), shape('nothing'), shape('label', 'tag'), shape('circle', 1)]],
      ],
      inner: { firstName: 'tag', age: 1, tags: ['val', 'ok', 'err'] },
    },
  ],
  [
    'roundtrip-results',
    Array.from({ length: 9 }, (_, index) =>
      index % 3 === 0 ? { tag: 'err', val: 'ok' } : { tag: 'ok', val: index * 1_000_003 },
    ),
  ],
]

function title(name: string, input: unknown): string {
  return `${name} round-trips ${inspect(input, { breakLength: Infinity, maxStringLength: 24, maxArrayLength: 4, depth: 2 })}`
}

for (const [index, row] of table.entries()) {
  const [name, input] = row
  const expected = row.length === 3 ? row[2] : input

  test(`${title(name, input)} through callSync (#${index})`, (t) => {
    const instance = typesInstance()
    t.deepEqual(instance.callSync(name, [input]), expected)
    instance.dispose()
  })

  test(`${title(name, input)} through call (#${index})`, async (t) => {
    const instance = typesInstance()
    t.deepEqual(await instance.call(name, [input]), expected)
    instance.dispose()
  })
}

test('exports are callable by their lowerCamelCase names too', (t) => {
  const instance = typesInstance()
  t.is(instance.callSync('roundtripU8', [7]), 7)
  t.true(instance.callSync('roundtripListU8', [[1]]) instanceof Uint8Array)
})

test('many parameters convert in order', (t) => {
  const instance = typesInstance()
  t.deepEqual(instance.callSync('many-params', [1, -5n, 'c', 0.5]), [1, -5n, 'c', 0.5])
})

test('a Proxy of an array is an array, as Array.isArray and jco take it: lists and tuples, both ways', async (t) => {
  // Probe Z61: reactive state (Vue, MobX) hands out proxies; N-API sees one as an object, and
  // each was refused with "expected array, got object".
  const instance = typesInstance()
  const proxied = <T extends object>(value: T): T => new Proxy(value, {})
  const cases: Array<[string, unknown, unknown]> = [
    ['roundtrip-list-u8', proxied([1, 2]), new Uint8Array([1, 2])],
    ['roundtrip-list-u32', proxied([1, 2]), new Uint32Array([1, 2])],
    ['roundtrip-list-string', proxied(['a', 'b']), ['a', 'b']],
    ['roundtrip-tuple', proxied([1, 'a', 1.5]), [1, 'a', 1.5]],
    ['roundtrip-record', { ...person, tags: proxied(['x']) }, { ...person, tags: ['x'] }],
  ]
  for (const [name, value, expected] of cases) {
    t.deepEqual(instance.callSync(name, [value]), expected, name)
    t.deepEqual(await instance.call(name, [value]), expected, name)
  }
  // What a host function returns, inside a record.
  const imports = typesImports()
  const host = imports['test:types/host@0.1.0'] as Record<string, unknown>
  host.echo = (value: typeof typesEverything) => ({ ...value, words: proxied([...value.words]) })
  const echoing = typesComponent().instantiateSync({ limits: { memoryBytes: 4 * MiB }, imports })
  t.deepEqual(await echoing.call('call-echo', [typesEverything]), typesEverything)
  // One that is not of an array is refused by its kind; one whose reading fails says why.
  t.throws(() => instance.callSync('roundtrip-list-u32', [proxied({ length: 1, 0: 1 })]), {
    instanceOf: WasmTypeError,
    message: /param "v": expected array, got object/,
  })
  const { proxy: revoked, revoke } = Proxy.revocable([1], {})
  revoke()
  const throwing = new Proxy([1], {
    get: (target, key) => {
      if (key === '0') throw new Error('no element today')
      return Reflect.get(target, key)
    },
  })
  const lengthy = (length: unknown) =>
    new Proxy([], { get: (_target, key) => (key === 'length' ? length : undefined) })
  const refusals: Array<[unknown, RegExp]> = [
    [revoked, /param "v": reading a proxied array threw: .*revoked/],
    [throwing, /param "v": reading a proxied array threw: no element today/],
    [lengthy(-1), /param "v": a proxied array whose length is -1/],
    [
      lengthy(2 ** 32 - 1),
      /param "v": an array of 4294967295 elements is longer than a list argument may be/,
    ],
  ]
  for (const [value, message] of refusals) {
    t.throws(() => instance.callSync('roundtrip-list-u32', [value]), { instanceOf: WasmTypeError, message })
    await t.throwsAsync(instance.call('roundtrip-list-u32', [value]), { instanceOf: WasmTypeError, message })
  }
})

test('a function without a result returns undefined', async (t) => {
  const instance = typesInstance()
  t.is(instance.callSync('no-result', []), undefined)
  t.is(await instance.call('no-result'), undefined)
})

/** [export, arguments, message fragment] for values that must be refused, not wrapped. */
const refused: Array<[string, unknown[], string]> = [
  ['roundtrip-u8', [256], 'param "v": expected u8, got 256'],
  ['roundtrip-u8', [-1], 'param "v": expected u8, got -1'],
  ['roundtrip-u8', [1.5], 'expected u8, got 1.5'],
  ['roundtrip-u8', ['1'], 'expected u8, got string "1"'],
  ['roundtrip-s8', [128], 'expected s8, got 128'],
  ['roundtrip-u32', [4294967296], 'expected u32'],
  ['roundtrip-s32', [Number.NaN], 'expected s32, got NaN'],
  ['roundtrip-u64', [-1n], 'expected u64, got -1n'],
  ['roundtrip-u64', [18446744073709551616n], 'expected u64'],
  ['roundtrip-u64', [1], 'expected u64 (a bigint), got 1'],
  ['roundtrip-s64', [9223372036854775808n], 'expected s64'],
  ['roundtrip-bool', [1], 'expected bool, got 1'],
  ['roundtrip-f64', [1n], 'expected f64, got 1n'],
  ['roundtrip-char', ['ab'], 'expected char'],
  ['roundtrip-char', [''], 'expected char'],
  // A lone surrogate is shown as one, not as the U+FFFD it would become in UTF-8.
  ['roundtrip-char', ['\uD800'], 'expected char (a one-character string), got string "\\u{d800}"'],
  ['roundtrip-u8', ['a\uDC00\n'], 'expected u8, got string "a\\u{dc00}\\n"'],
  ['roundtrip-string', ['\uD800'], 'lone surrogate'],
  ['roundtrip-string', ['\uFFFD and a lone \uDC00'], 'lone surrogate'],
  ['roundtrip-string', ['end \uD83D'], 'lone surrogate'],
  ['roundtrip-string', [undefined], 'expected string, got undefined'],
  ['roundtrip-list-u8', [[0, 256]], 'param "v": list index 1: expected u8, got 256'],
  ['roundtrip-list-u16', [new Uint8Array(2)], 'expected array or Uint16Array, got Uint8Array'],
  [
    'roundtrip-record',
    [{ firstName: 'a', age: -1, tags: [] }],
    'param "v": field "age": expected u8, got -1',
  ],
  [
    'roundtrip-record',
    [{ firstName: 'a', age: 1, tags: [1] }],
    'field "tags": list index 0: expected string, got 1',
  ],
  ['roundtrip-record', [null], 'expected record'],
  ['roundtrip-tuple', [[1, 'a']], 'expected tuple of 3 elements, got an array of 2'],
  ['roundtrip-variant', [{ tag: 'square' }], 'unknown variant case "square"'],
  ['roundtrip-variant', [{ tag: 'circle', val: 'x' }], 'case "circle": expected f32'],
  // Tags are read into a small buffer when short: around its size the whole tag still counts.
  ['roundtrip-variant', [{ tag: 'c'.repeat(62) }], `unknown variant case "${'c'.repeat(62)}"`],
  ['roundtrip-variant', [{ tag: 'c'.repeat(63) }], `unknown variant case "${'c'.repeat(63)}"`],
  [
    'roundtrip-variant',
    [{ tag: 'circle' + 'e'.repeat(200) }],
    // Longer than any case and than a message shows: not read (a 256 MiB tag took 0.2 s).
    'unknown variant case (a string of 206 UTF-16 units), expected one of',
  ],
  [
    'roundtrip-results',
    [[{ tag: 'o'.repeat(200), val: 1 }]],
    'list index 0: unknown result tag (a string of 200 UTF-16 units)',
  ],
  [
    'roundtrip-option-option',
    [{ tag: 's'.repeat(200), val: 1 }],
    'unknown option tag (a string of 200 UTF-16 units)',
  ],
  ['roundtrip-flags', [{ ['r'.repeat(200)]: true }], 'unknown flag (a string of 200 UTF-16 units)'],
  ['roundtrip-flags', [{ ['r'.repeat(129)]: true }], 'unknown flag (a string of 129 UTF-16 units)'],
  ['roundtrip-flags', [{ ['r'.repeat(128)]: true }], `unknown flag "${'r'.repeat(64)}"… (128 characters)`],
  ['roundtrip-flags', [{ ['rea\uD800']: true }], 'unknown flag (a string with a lone surrogate)'],
  // Not read whole: no case is that long.
  ['roundtrip-enum', ['y'.repeat(100_000)], 'unknown enum case (a string of 100000 UTF-16 units)'],
  ['roundtrip-variant', [{ tag: 'circle\uD800' }], 'unknown variant case "circle\uFFFD"'],
  ['roundtrip-variant', [{ tag: 'ü'.repeat(40) }], `unknown variant case "${'ü'.repeat(40)}"`],
  ['roundtrip-variant', [{ tag: 'c'.repeat(57) + '🚀' }], `unknown variant case "${'c'.repeat(57)}🚀"`],
  ['roundtrip-variant', [{ tag: 'c'.repeat(58) + '🚀' }], `unknown variant case "${'c'.repeat(58)}🚀"`],
  [
    'roundtrip-results',
    [
      [
        { tag: 'ok', val: 1 },
        { tag: 'okay', val: 2 },
      ],
    ],
    'list index 1: unknown result tag "okay"',
  ],
  ['roundtrip-enum', ['purple'], 'unknown enum case "purple"'],
  // Quoted while a message would show it, though no case is that long.
  ['roundtrip-enum', ['p'.repeat(100)], `unknown enum case "${'p'.repeat(64)}"… (100 characters)`],
  ['roundtrip-flags', [{ read: 1 }], 'flag "read": expected boolean, got 1'],
  ['roundtrip-flags', [{ delete: true }], 'unknown flag "delete"'],
  ['roundtrip-option-option', [5], 'expected option (tagged'],
  ['roundtrip-results', [[{ tag: 'maybe' }]], 'list index 0: unknown result tag "maybe"'],
  ['roundtrip-results', [[['ok', 1]]], 'list index 0: expected result'],
  ['roundtrip-variant', [['circle', 1]], 'expected variant'],
  ['roundtrip-option-option', [[]], 'expected option (tagged'],
  [
    'roundtrip-nested',
    [{ items: [['x', [{ tag: 'circle', val: 'no' }]]], inner: undefined }],
    'field "items": list index 0: tuple index 1: list index 0: case "circle": expected f32',
  ],
  ['roundtrip-u8', [], 'expected 1 argument(s) (v: u8), got 0'],
  ['roundtrip-u8', [1, 2], 'expected 1 argument(s) (v: u8), got 2'],
]

const show = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))

for (const [name, args, fragment] of refused) {
  test(`${name} refuses ${show(args)} with a TypeError that says where`, async (t) => {
    const instance = typesInstance()
    const sync = t.throws(() => instance.callSync(name, args), { instanceOf: WasmTypeError })
    t.true(sync?.message.includes(fragment), sync?.message)
    t.is(sync?.code, 'ERR_WASM_TYPE')
    t.true(sync instanceof TypeError && sync instanceof WasmError)
    const async = await t.throwsAsync(instance.call(name, args), { instanceOf: WasmTypeError })
    t.true(async?.message.includes(fragment), async?.message)
    // Nothing was lost: the instance still works.
    t.is(instance.callSync('roundtrip-u8', [3]), 3)
  })
}

/** Takes a record and flags whose names every JS object inherits from Object.prototype. */
const OBJECT_NAMES_WAT = `(component
  (core module $m
    (func (export "rec") (param $d i32) (param $v i32) (param $x i32) (result i32)
      local.get $d i32.const 1000000 i32.mul local.get $v i32.const 1000 i32.mul i32.add local.get $x i32.add)
    (func (export "fl") (param i32) (result i32) local.get 0))
  (core instance $i (instantiate $m))
  (type $r (record (field "constructor" (option u32)) (field "x" u32)))
  (type $f (flags "to-string" "value-of" "x"))
  (export $R "r" (type $r))
  (export $F "f" (type $f))
  (func $rec (param "r" $r) (result u32) (canon lift (core func $i "rec")))
  (func $fl (param "f" $f) (result u32) (canon lift (core func $i "fl")))
  (export "rec" (func $rec) (func (param "r" $R) (result u32)))
  (export "fl" (func $fl) (func (param "f" $F) (result u32))))`

test("a field or flag named like Object.prototype's members is read only as the value's own property", async (t) => {
  // `{ x: 5 }` was refused ("field constructor: expected u32, got function"), and every flags
  // value without its own `toString` key failed the same way.
  const inst = new Engine()
    .compileComponentSync(OBJECT_NAMES_WAT)
    .instantiateSync({ limits: { memoryBytes: 0 } })
  for (const call of [
    (name: string, arg: unknown) => inst.callSync(name, [arg]),
    (name: string, arg: unknown) => (inst.exports[name] as (arg: unknown) => unknown)(arg),
  ]) {
    t.is(call('rec', { x: 5 }), 5)
    t.is(call('rec', { constructor: 7, x: 5 }), 1_007_005)
    t.is(call('rec', Object.assign(Object.create(null) as object, { x: 6 })), 6)
    t.is(call('fl', { x: true }), 4)
    t.is(call('fl', {}), 0)
    t.is(call('fl', { toString: true, valueOf: true }), 3)
    t.throws(() => call('fl', { toString: 1 }), {
      instanceOf: WasmTypeError,
      message: /flag "toString": expected boolean/,
    })
  }
  t.is(await inst.call('rec', [{ x: 5 }]), 5)
  t.is(await inst.call('fl', [{ x: true }]), 4)
})

/** Returns what its imports `get-r` and `get-f` return, as numbers (the addon converts those). */
const OBJECT_NAMES_IMPORTS_WAT = `(component
  (type $r (record (field "constructor" (option u32)) (field "x" u32)))
  (type $f (flags "to-string" "value-of" "x"))
  (import "r" (type $R (eq $r)))
  (import "f" (type $F (eq $f)))
  (import "get-r" (func $get_r (result $R)))
  (import "get-f" (func $get_f (result $F)))
  (core module $mem (memory (export "memory") 1))
  (core instance $mi (instantiate $mem))
  (alias core export $mi "memory" (core memory $memory))
  (core func $get_r_l (canon lower (func $get_r) (memory $memory)))
  (core func $get_f_l (canon lower (func $get_f)))
  (core module $m
    (import "h" "get-r" (func $get_r (param i32)))
    (import "h" "get-f" (func $get_f (result i32)))
    (import "m" "memory" (memory 1))
    (func (export "rec") (result i32)
      i32.const 16 call $get_r
      i32.const 16 i32.load8_u i32.const 1000000 i32.mul
      i32.const 20 i32.load i32.const 1000 i32.mul i32.add
      i32.const 24 i32.load i32.add)
    (func (export "fl") (result i32) call $get_f))
  (core instance $i (instantiate $m (with "m" (instance $mi))
    (with "h" (instance (export "get-r" (func $get_r_l)) (export "get-f" (func $get_f_l))))))
  (func (export "rec") (result u32) (canon lift (core func $i "rec")))
  (func (export "fl") (result u32) (canon lift (core func $i "fl"))))`

let objectNames: Component | undefined

/**
 * `rec` of a new instance of `OBJECT_NAMES_IMPORTS_WAT` whose `get-r` returns `r`: a host
 * function's result, through the addon's conversion.
 */
function recordFromHost(r: unknown): unknown {
  objectNames ??= new Engine().compileComponentSync(OBJECT_NAMES_IMPORTS_WAT)
  return objectNames
    .instantiateSync({ limits: { memoryBytes: 1 << 16 }, imports: { getR: () => r, getF: () => ({}) } })
    .callSync('rec')
}

/** The ways to call an export of `inst` on the JS thread with one argument: `callSync` and `inst.exports`. */
function syncCalls(inst: Instance): ((name: string, arg: unknown) => unknown)[] {
  return [
    (name, arg) => inst.callSync(name, [arg]),
    (name, arg) => (inst.exports[name] as (arg: unknown) => unknown)(arg),
  ]
}

test("a host function's record or flags named like Object.prototype's members: own properties only", (t) => {
  const component = new Engine().compileComponentSync(OBJECT_NAMES_IMPORTS_WAT)
  const run = (r: unknown, f: unknown) => {
    const inst = component.instantiateSync({
      limits: { memoryBytes: 1 << 16 },
      imports: { getR: () => r, getF: () => f },
    })
    return [inst.callSync('rec'), inst.callSync('fl')]
  }
  t.deepEqual(run({ x: 5 }, { x: true }), [5, 4])
  t.deepEqual(run({ constructor: 7, x: 5 }, { toString: true, valueOf: true }), [1_007_005, 3])
})

test.serial(
  "Object.prototype's properties fill no field, tag or payload; a class's getters still do",
  async (t) => {
    // Probe Z43: with Object.prototype.age set (a polluted prototype), `{ firstName, tags }` went to
    // the guest with age 7; with Object.prototype.val, `{ tag: 'circle' }` with its payload.
    const inst = typesInstance()
    class Person {
      age = 3
      tags = []
      get firstName() {
        return 'z'
      }
    }
    class Point {
      get x() {
        return 4
      }
    }
    const polluted = { age: 7, val: 1.5, tag: 'nothing', x: 9 }
    Object.assign(Object.prototype, polluted)
    try {
      for (const call of syncCalls(inst)) {
        t.throws(() => call('roundtrip-record', { firstName: 'a', tags: [] }), {
          instanceOf: WasmTypeError,
          message: /field "age": expected u8, got undefined/,
        })
        t.throws(() => call('roundtrip-variant', { tag: 'circle' }), {
          instanceOf: WasmTypeError,
          message: /expected f32, got undefined/,
        })
        t.throws(() => call('roundtrip-variant', {}), { instanceOf: WasmTypeError })
        t.deepEqual(call('roundtrip-record', new Person()), { firstName: 'z', age: 3, tags: [] })
      }
      await t.throwsAsync(inst.call('roundtrip-record', [{ firstName: 'a', tags: [] }]), {
        instanceOf: WasmTypeError,
      })
      // A host function's result goes through the addon's conversion: the same rules.
      t.throws(() => recordFromHost({ constructor: 7 }), {
        message: /field "x": expected u32, got undefined/,
      })
      t.is(recordFromHost(new Point()), 4)
    } finally {
      for (const key of Object.keys(polluted)) delete (Object.prototype as Record<string, unknown>)[key]
    }
  },
)

test("another realm's Object.prototype fills no field, tag or payload either", async (t) => {
  // Probe H49: objects made in a vm context have that context's Object.prototype, which counted
  // as "a prototype of their own": polluted there, it filled a record's age, a variant's payload,
  // a flag, and a host function's result.
  const realm = vm.createContext({})
  const foreign = (source: string): unknown => vm.runInContext(source, realm)
  vm.runInContext('Object.assign(Object.prototype, { age: 7, val: 1.5, read: true, x: 9, y: 99 })', realm)
  const inst = typesInstance()
  for (const call of syncCalls(inst)) {
    t.throws(() => call('roundtrip-record', foreign("({ firstName: 'a', tags: [] })")), {
      instanceOf: WasmTypeError,
      message: /field "age": expected u8, got undefined/,
    })
    t.throws(() => call('roundtrip-variant', foreign("({ tag: 'circle' })")), {
      instanceOf: WasmTypeError,
      message: /expected f32, got undefined/,
    })
    // Its own properties, as any object's, are read.
    t.deepEqual(call('roundtrip-record', foreign("({ firstName: 'a', age: 2, tags: [] })")), {
      firstName: 'a',
      age: 2,
      tags: [],
    })
  }
  t.throws(() => recordFromHost(foreign('({ constructor: 7 })')), {
    message: /field "x": expected u32, got undefined/,
  })
  t.is(recordFromHost(foreign('({ x: 4 })')), 4)
  // A class may name a method hasOwnProperty: its getters still count (probe H50).
  class Named {
    get firstName() {
      return 'g'
    }
    get age() {
      return 3
    }
    get tags() {
      return []
    }
    hasOwnProperty(key: PropertyKey) {
      return Object.hasOwn(this, key)
    }
  }
  t.deepEqual(inst.callSync('roundtrip-record', [new Named()]), { firstName: 'g', age: 3, tags: [] })
  t.deepEqual(await inst.call('roundtrip-record', [new Named()]), { firstName: 'g', age: 3, tags: [] })
  const exported = inst.exports['roundtrip-record'] as (arg: unknown) => unknown
  t.deepEqual(exported(new Named()), { firstName: 'g', age: 3, tags: [] })
  // Lists of variants take the flat path (lib/wire.ts).
  class Circle {
    get tag() {
      return 'circle'
    }
    get val() {
      return 1.5
    }
    hasOwnProperty() {
      return false
    }
  }
  const nested = { items: [['a', [new Circle()]]], inner: new Named() }
  t.deepEqual(inst.callSync('roundtrip-nested', [nested]), {
    items: [['a', [{ tag: 'circle', val: 1.5 }]]],
    inner: { firstName: 'g', age: 3, tags: [] },
  })
  class Point {
    get x() {
      return 4
    }
    hasOwnProperty() {
      return false
    }
  }
  t.is(recordFromHost(new Point()), 4)
})

test("values whose JS form would overflow V8's heap are refused before any is made, in results and in a host function's arguments", async (t) => {
  // A list of empty lists costs wasmtime's hostcall fuel 32 bytes an element and V8's heap about
  // 200 (one Uint8Array each): a 200 MiB guest returning 25 million of them aborted the process
  // (V8: heap out of memory). Now the JS form is bounded by the same figure as the fuel.
  const engine = new Engine()
  t.teardown(() => engine.close())
  const lists = (count: number) => `(component
    (import "sink" (func $sink (param "items" (list (list u8)))))
    (core module $m
      (memory (export "memory") 16)
      (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 0))
      ;; At 0: (ptr 16, len n); at 16: n empty lists (ptr 0, len 0), memory's own zeros.
      (func (export "make") (result i32)
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const ${count}))
        (i32.const 0)))
    (core instance $i (instantiate $m))
    (core func $sink_core (canon lower (func $sink) (memory (core memory $i "memory"))))
    (core module $caller
      (import "h" "sink" (func $sink (param i32 i32)))
      (func (export "give") (call $sink (i32.const 16) (i32.const ${count}))))
    (core instance $c (instantiate $caller (with "h" (instance (export "sink" (func $sink_core))))))
    (func (export "make") (result (list (list u8)))
      (canon lift (core func $i "make") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
    (func (export "give") (canon lift (core func $c "give"))))`
  // 1 MiB of guest memory: 8 MiB of fuel, room for about 40,000 empty lists in JS.
  const limits = { memoryBytes: 1 << 20 }
  let received = 0
  const imports = { sink: (items: Uint8Array[]) => void (received = items.length) }
  const small = (await engine.compileComponent(lists(30_000))).instantiateSync({ limits, imports })
  t.is((small.callSync('make') as Uint8Array[]).length, 30_000)
  small.callSync('give')
  t.is(received, 30_000)
  const large = await engine.compileComponent(lists(100_000))
  const result = t.throws(() => large.instantiateSync({ limits, imports }).callSync('make'), {
    instanceOf: HostLimitError,
  })
  t.regex(result?.message ?? '', /^the result of make would take more than \d+ bytes of JS heap/)
  received = 0
  const args = await t.throwsAsync(large.instantiateSync({ limits, imports }).call('give'), {
    instanceOf: HostLimitError,
  })
  t.regex(args?.message ?? '', /^the arguments to .*sink.* would take more than \d+ bytes of JS heap/)
  t.is(received, 0, 'the host function was not called')
})

test('a list of flags counts every flag of each element, set or not', async (t) => {
  // A flags value lists only the flags set: 32 flags in 4 bytes of guest memory, almost no
  // hostcall fuel, and a JS object of 32 booleans (1.6 KB of V8's heap). A 25 MiB guest
  // returning 1.4 million of them aborted the process.
  const engine = new Engine()
  t.teardown(() => engine.close())
  const names = Array.from({ length: 32 }, (_, i) => `"f${i}"`).join(' ')
  const flags = (count: number) =>
    engine.compileComponent(`(component
      (core module $m
        (memory (export "memory") 16)
        (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable)
        (func (export "make") (result i32)
          (i32.store (i32.const 0) (i32.const 16))
          (i32.store (i32.const 4) (i32.const ${count}))
          (i32.const 0)))
      (core instance $i (instantiate $m))
      (type $flags (flags ${names}))
      (export $exported "all" (type $flags))
      (func (export "make") (result (list $exported))
        (canon lift (core func $i "make") (memory (core memory $i "memory")) (realloc (core func $i "realloc")))))`)
  const limits = { memoryBytes: 1 << 20 }
  const few = (await flags(1_000)).instantiateSync({ limits }).callSync('make') as object[]
  t.is(few.length, 1_000)
  t.is(Object.keys(few[0]!).length, 32)
  const many = (await flags(100_000)).instantiateSync({ limits })
  // Refused by the JS heap it would take, or first by wasmtime's count of what it lifts, which a
  // component with flags has divided by what a flag set takes (SECURITY 64).
  t.throws(() => many.callSync('make'), {
    instanceOf: HostLimitError,
    message: /bytes of JS heap|too much data is being copied/,
  })
})

test("a host function's list of flags counts each flag's name: V8 keys every object by them", async (t) => {
  // Setting a flag on a JS object compares its whole name again for each object: 32 names of
  // 60 KB made a list<flags> argument cost 100 µs an element, four seconds for a 16 MiB guest,
  // with no flag set and so no hostcall fuel spent.
  const engine = new Engine()
  t.teardown(() => engine.close())
  const names = Array.from({ length: 32 }, (_, i) => `"${'n'.repeat(2_000)}${i}"`).join(' ')
  const component = await engine.compileComponent(`(component
    (type $t (flags ${names}))
    (import "t" (type $flags (eq $t)))
    (type $list (list $flags))
    (import "h" (func $h (param "v" $list)))
    (core module $memory (memory (export "memory") 16))
    (core instance $mi (instantiate $memory))
    (core func $h_core (canon lower (func $h) (memory (core memory $mi "memory"))))
    (core module $m
      (import "host" "h" (func $h (param i32 i32)))
      (func (export "give") (param $n i32) (call $h (i32.const 64) (local.get $n))))
    (core instance $i (instantiate $m (with "host" (instance (export "h" (func $h_core))))))
    (func (export "give") (param "n" u32) (canon lift (core func $i "give"))))`)
  let received = 0
  const imports = { h: (items: object[]) => void (received = items.length) }
  const inst = component.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports })
  inst.callSync('give', [100])
  t.is(received, 100)
  const fresh = component.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports })
  t.throws(() => fresh.callSync('give', [1_000]), { instanceOf: HostLimitError, message: /bytes of JS heap/ })
  t.is(received, 100, 'the host function was not called again')
})

test('names with a word in capitals are spelled as jco spells them, on every side', (t) => {
  // `get-HTTP-url` is `getHttpUrl` in jco: records keyed `getHTTPUrl` and an export named
  // `fetchURL` made a host written for jco fail to link or to return its records.
  const component = new Engine().compileComponentSync(`(component
    (type $r (record (field "get-HTTP-url" u8)))
    (export $R "HTTP-rec" (type $r))
    (core module $m (func (export "f") (param i32) (result i32) local.get 0))
    (core instance $i (instantiate $m))
    (func (export "fetch-URL") (param "r" $R) (result $R) (canon lift (core func $i "f"))))`)
  const instance = component.instantiateSync({ limits: { memoryBytes: 0 } })
  const exports = instance.exports as { fetchUrl?: (r: unknown) => unknown }
  t.deepEqual(Object.keys(exports), ['fetchUrl'])
  t.deepEqual(exports.fetchUrl?.({ getHttpUrl: 7 }), { getHttpUrl: 7 })
  t.deepEqual(instance.callSync('fetch-URL', [{ getHttpUrl: 9 }]), { getHttpUrl: 9 })
  t.throws(() => instance.callSync('fetchUrl', [{ getHTTPUrl: 9 }]), {
    instanceOf: WasmTypeError,
    message: /field "getHttpUrl": expected u8, got undefined/,
  })
})
