import test from 'ava'

import { ArgumentError, argumentsFromText, toJsonText } from '../../lib/util/json-values.js'
import { parseFuncSignature } from '../../lib/util/wit-type.js'
import { typesComponent, typesInstance } from '../helpers.js'

/** The signature of one of the `types` fixture's exports, as `component.exports` spells it. */
function signature(name: string) {
  const item = typesComponent().exports.find((candidate) => candidate.name === name)
  if (item === undefined) throw new Error(`no export ${name}`)
  return parseFuncSignature(item.type)
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
  ['roundtrip-list-f64', ['[1.5,-0]'], '[1.5,0]'],
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

test('core wasm signatures have unnamed parameters, and i64 converts to bigint', (t) => {
  const core = parseFuncSignature('func(i32, i64) -> i64')
  t.deepEqual(argumentsFromText(['1', '2'], core), [1, 2n])
})

test('results print NaN, infinities and typed arrays in a fixed spelling', (t) => {
  t.is(
    toJsonText({ nan: Number.NaN, up: Infinity, down: -Infinity, bytes: new Uint8Array([1, 2]), big: 5n }),
    '{"nan":"NaN","up":"Infinity","down":"-Infinity","bytes":[1,2],"big":"5n"}',
  )
  t.is(toJsonText(new BigInt64Array([-1n])), '["-1n"]')
  t.is(toJsonText({ absent: undefined }), '{"absent":null}')
})

test('type strings with every WIT form parse', (t) => {
  const nested = typesComponent().exports.find((item) => item.name === 'roundtrip-nested')
  const parsed = parseFuncSignature(nested?.type ?? '')
  t.is(parsed.params[0]?.name, 'v')
  t.is(parsed.params[0]?.type.kind, 'record')
  t.deepEqual(parseFuncSignature('func(a: list<u8, 4>, b: own<resource>, c: result<_, string>)').params, [
    { name: 'a', type: { kind: 'list', element: { kind: 'primitive', name: 'u8' } } },
    { name: 'b', type: { kind: 'other', text: 'own' } },
    { name: 'c', type: { kind: 'result', ok: undefined, err: { kind: 'primitive', name: 'string' } } },
  ])
  t.throws(() => parseFuncSignature('func(a: list<u8'), { instanceOf: SyntaxError })
})

test('a nested 64-bit integer that JSON would round is refused, not changed', (t) => {
  t.throws(() => argumentsFromText(['[18446744073709551615]'], signature('roundtrip-list-u64')), {
    instanceOf: ArgumentError,
    message: /^argument 1 \(v\): 18446744073709552000 is beyond 2\^53 .* write it as a string$/,
  })
})
