import test from 'ava'

import { boundedJsonText, printText } from '../../lib/cli/output.js'
import { HostLimitError } from '../../lib/index.js'
import { toJsonText } from '../../lib/util/json-values.js'

test('a result whose JSON text would pass 64 MiB is a HostLimitError before any text is made', (t) => {
  const value = { name: 'ok', bytes: new Uint8Array([1, 2]), big: [5n], nested: [[{ a: '\u001b' }]] }
  t.is(boundedJsonText(value), toJsonText(value))
  t.is(boundedJsonText(value, 2), toJsonText(value, 2))
  const tooLarge = (value: unknown) => t.throws(() => boundedJsonText(value), { instanceOf: HostLimitError })
  // 12 Mi control characters: 72 MiB once each is \u001b (100 MB of them passed V8's longest string).
  tooLarge('\u001b'.repeat(12 * 1024 * 1024))
  // 3 million 64-bit integers, each "…n" as a string.
  tooLarge(new BigUint64Array(3_000_000).fill(2n ** 64n - 1n))
  // 3 million numbers of 24 characters each: 75 MB.
  tooLarge(Array.from({ length: 3_000_000 }, () => -Number.MAX_VALUE))
  // Deeper than JSON.stringify can go.
  let deep: unknown = 0
  for (let depth = 0; depth < 5_000; depth++) deep = [deep]
  tooLarge(deep)
  // What the terminal escapes counts as printed: 12 Mi right-to-left overrides are 72 MiB.
  tooLarge('\u202e'.repeat(12 * 1024 * 1024))
  // Counted in the bytes printed: 25 Mi U+FFFF are 75 MiB of UTF-8.
  tooLarge('\uffff'.repeat(25 * 1024 * 1024))
  // Below the bound: printed.
  t.is(boundedJsonText('\u001b'.repeat(1024)).length, 6 * 1024 + 2)
  // A byte list printed compactly takes at most four characters an element ("255,"): counted as
  // five, 14 million zeros (28 MB of JSON) were refused as more than 64 MiB (probe H22).
  const bytes = new Uint8Array(1000).fill(255)
  t.is(boundedJsonText(bytes, undefined, 4_100), toJsonText(bytes))
  t.is(toJsonText(bytes).length, 4_001)
  t.throws(
    () => boundedJsonText(bytes, 2, 4_100),
    { instanceOf: HostLimitError },
    'indented, each takes a line',
  )
  // Each number is counted as printed: 2.7 million zeros of a list<f64> (5.4 MB) were refused as
  // more than 64 MiB, each counted as its longest, 25 characters (probe H23).
  const zeros = new Float64Array(2_700_000)
  t.is(boundedJsonText(zeros).length, 5_400_001)
})

test("the JSON bound is never below the printed text's length, indented or not", (t) => {
  // Nested lists' closing lines went uncounted with an indent: 41 k characters printed within a
  // bound of 28 k (probe H23). What is counted as printed must be at least what is printed.
  let nested: unknown = Array.from({ length: 200 }, (_, index) => new Uint8Array([index]))
  for (let depth = 0; depth < 30; depth++) nested = [nested, { depth, name: 'level', flag: depth % 2 === 0 }]
  const values: unknown[] = [
    nested,
    [
      new Float32Array([-0, NaN, Infinity, -1.5e-7]),
      new BigInt64Array([-(2n ** 63n)]),
      [null, undefined, true],
    ],
    { 'a key': [new Int16Array([-32768, 0, 7]), 'text\u0000\u202e'] },
  ]
  for (const value of values) {
    for (const indent of [undefined, 2]) {
      const printed = toJsonText(value, indent).length
      t.throws(
        () => boundedJsonText(value, indent, printed - 1),
        { instanceOf: HostLimitError },
        `indent ${indent}`,
      )
      t.is(boundedJsonText(value, indent, printed + 64 * 1024), toJsonText(value, indent))
    }
  }
  // JSON's short escapes print as two characters and a surrogate pair as its four bytes: counted
  // as six each, 22 MB of newlines or emoji were refused as more than 64 MiB (probe H25).
  for (const text of ['\n\t\r\b\f'.repeat(20), '😀'.repeat(20)]) {
    const printed = Buffer.byteLength(toJsonText(text))
    t.is(boundedJsonText(text, undefined, printed), toJsonText(text))
    t.throws(() => boundedJsonText(text, undefined, printed - 1), { instanceOf: HostLimitError })
  }
  // Plain data is counted exactly, compact or indented: compact commas and colons counted as two
  // characters refused a list of 10 million false (57 MiB) as more than 64 MiB (probe H24).
  const data = [
    Array.from({ length: 1000 }, () => false),
    [],
    {},
    { a: 1, 'b c': [null, true] },
    new Uint8Array(),
  ]
  for (const indent of [undefined, 2]) {
    const printed = toJsonText(data, indent).length
    t.is(boundedJsonText(data, indent, printed), toJsonText(data, indent), `indent ${indent}`)
  }
})

test("printing a value never calls a toJSON method: a guest resource's to-j-s-o-n is the guest's code", (t) => {
  // JSON.stringify called it, and printed what the guest returned past the bound: 480 MB of
  // escaped text from a resource returned by `run` (probe H24).
  let called = 0
  class Resource {
    toJSON() {
      called++
      return '\u0001'.repeat(1000)
    }
  }
  t.is(
    boundedJsonText({ made: new Resource(), list: [new Resource()] }, undefined, 100),
    '{"made":{},"list":[{}]}',
  )
  t.is(called, 0)
  // A `__proto__` key of the guest's data stays a key.
  t.is(toJsonText(JSON.parse('{"__proto__":[1]}')), '{"__proto__":[1]}')
})

test('printing writes slices that keep surrogate pairs whole', async (t) => {
  const written: string[] = []
  // A pair astride the 1 Mi character slice boundary.
  const text = `${'x'.repeat(1024 * 1024 - 1)}😀tail`
  await printText({ write: (chunk) => written.push(chunk) }, text)
  t.is(written.join(''), text)
  t.true(written.every((chunk) => !/^[\udc00-\udfff]/.test(chunk) && !/[\ud800-\udbff]$/.test(chunk)))
})
