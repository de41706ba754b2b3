import test from 'ava'

import { exportedFunctions } from '../../lib/cli/wasm.js'
import { ArgumentError, argumentsFromText, toJsonText } from '../../lib/util/json-values.js'
import type { WitType } from '../../lib/index.js'
import { engine, typesComponent, typesInstance } from '../helpers.js'

/** The type of one of the `types` fixture's exports, as `component.exports` describes it. */
function signature(name: string) {
  const item = typesComponent().exports.find((candidate) => candidate.name === name)
  if (item?.func === undefined) throw new Error(`no exported function ${name}`)
  return item.func
}

// [export, command-line texts, the result as the CLI prints it]
const roundTrips: [string, string[], string][] = [
  ['roundtrip-u64', ['18446744073709551615'], '"18446744073709551615n"'],
  ['roundtrip-u64', ['"18446744073709551615n"'], '"18446744073709551615n"'],
  ['roundtrip-s64', ['-9007199254740991'], '"-9007199254740991n"'],
  ['roundtrip-u8', ['255'], '255'],
  ['roundtrip-f64', ['1.5'], '1.5'],
  ['roundtrip-bool', ['true'], 'true'],
  ['roundtrip-char', ['🚀'], '"🚀"'],
  ['roundtrip-string', ['plain text'], '"plain text"'],
  ['roundtrip-string', ['"json text"'], '"json text"'],
  ['roundtrip-string', ['42'], '"42"'],
  ['roundtrip-list-u8', ['[0,1,255]'], '[0,1,255]'],
  ['roundtrip-list-u64', ['[1,"18446744073709551615"]'], '["1n","18446744073709551615n"]'],
  ['roundtrip-list-f64', ['[1.5,-0]'], '[1.5,"-0"]'],
  // Floats JSON cannot write, spelled as results print them (they were refused as strings).
  ['roundtrip-f64', ['"NaN"'], '"NaN"'],
  ['roundtrip-f64', ['NaN'], '"NaN"'],
  ['roundtrip-f32', ['-Infinity'], '"-Infinity"'],
  ['roundtrip-list-f64', ['["Infinity",1.5,"NaN"]'], '["Infinity",1.5,"NaN"]'],
  ['roundtrip-record', ['{"firstName":"Ada","age":36,"tags":[]}'], '{"firstName":"Ada","age":36,"tags":[]}'],
  ['roundtrip-tuple', ['[1,"x",2.5]'], '[1,"x",2.5]'],
  ['roundtrip-variant', ['{"tag":"circle","val":1.5}'], '{"tag":"circle","val":1.5}'],
  ['roundtrip-enum', ['"blue-ish"'], '"blue-ish"'],
  ['roundtrip-flags', ['{"read":true}'], '{"read":true,"write":false,"execNow":false}'],
  ['roundtrip-option', ['null'], 'null'],
  ['roundtrip-option-option', ['{"tag":"some","val":7}'], '{"tag":"some","val":7}'],
  [
    'roundtrip-results',
    ['[{"tag":"ok","val":1},{"tag":"err","val":"bad"}]'],
    '[{"tag":"ok","val":1},{"tag":"err","val":"bad"}]',
  ],
  ['many-params', ['1', '-2', 'three', '4'], '[1,"-2n","three",4]'],
  ['no-result', [], 'null'],
]

for (const [name, texts, printed] of roundTrips) {
  test(`${name} ${texts.join(' ')} reaches the guest and prints as ${printed}`, (t) => {
    const result = typesInstance().callSync(name, argumentsFromText(texts, signature(name)))
    t.is(toJsonText(result), printed)
  })
}

test('text that is not JSON is an ArgumentError naming the parameter, unless the parameter is text', (t) => {
  const error = t.throws(() => argumentsFromText(['nope'], signature('roundtrip-u32')), {
    instanceOf: ArgumentError,
  })
  t.is(error?.code, 'ERR_USAGE')
  t.is(error?.message, 'argument 1 (v) is not valid JSON: nope')
  t.deepEqual(argumentsFromText(['nope'], undefined), ['nope'], 'an unknown signature leaves text as it is')
})

test('core wasm parameters have no names, and i64 converts to bigint', (t) => {
  const module = engine().compileModuleSync(
    '(module (func (export "f") (param i32 i64) (result i64) local.get 1))',
  )
  const [exported] = exportedFunctions(module.exports)
  t.deepEqual(exported?.signature, { params: [{ type: 'i32' }, { type: 'i64' }] })
  t.deepEqual(argumentsFromText(['1', '2'], exported?.signature), [1, 2n])
  t.deepEqual(
    argumentsFromText(['"3"'], exported?.signature),
    ['3'],
    'an i32 is left for the binding to check',
  )
})

test('results print NaN, infinities, -0 and typed arrays in a fixed spelling that reads back', (t) => {
  t.is(
    toJsonText({ nan: Number.NaN, up: Infinity, down: -Infinity, bytes: new Uint8Array([1, 2]), big: 5n }),
    '{"nan":"NaN","up":"Infinity","down":"-Infinity","bytes":[1,2],"big":"5n"}',
  )
  t.is(toJsonText(new BigInt64Array([-1n])), '["-1n"]')
  t.is(toJsonText({ absent: undefined }), '{"absent":null}')
  // -0 printed as 0, so a result did not read back as the argument it came from (probe Z6).
  t.is(toJsonText(-0), '"-0"')
  t.is(toJsonText(new Float64Array([-0, 0])), '["-0",0]')
  t.true(Object.is(argumentsFromText([toJsonText(-0)], signature('roundtrip-f64'))[0], -0))
})

test('64-bit integers convert inside options, results, tuples, records and variants', (t) => {
  const type: WitType = {
    kind: 'tuple',
    types: [
      { kind: 'option', element: { kind: 'u64' } },
      { kind: 'result', ok: { kind: 's64' } },
      { kind: 'record', fields: [{ name: 'big-id', type: { kind: 'u64' } }] },
      { kind: 'variant', cases: [{ name: 'id', type: { kind: 'u64' } }, { name: 'none' }] },
      { kind: 'list', element: { kind: 'enum', names: ['a'] } },
    ],
  }
  const text = '["7", {"tag":"ok","val":-1}, {"bigId":"9n"}, {"tag":"id","val":5}, ["a"]]'
  t.deepEqual(argumentsFromText([text], { params: [{ name: 'v', type }] }), [
    [7n, { tag: 'ok', val: -1n }, { bigId: 9n }, { tag: 'id', val: 5n }, ['a']],
  ])
})

test('a nested 64-bit integer that JSON would round is refused, not changed', (t) => {
  t.throws(() => argumentsFromText(['[18446744073709551615]'], signature('roundtrip-list-u64')), {
    instanceOf: ArgumentError,
    message: /^argument 1 \(v\): 18446744073709552000 is beyond 2\^53 .* write it as a string$/,
  })
})

test('-0 reaches a float parameter as -0, bare or as a string', (t) => {
  for (const text of ['-0', '"-0"']) {
    const [value] = argumentsFromText([text], signature('roundtrip-f64'))
    t.true(Object.is(typesInstance().callSync('roundtrip-f64', [value]), -0), text)
  }
})
