import test from 'ava'

import type { ComponentItem, WitFuncType, WitType } from '../../lib/index.js'
import { engine, helloWasm, typesComponent, wasiComponentWasm } from '../helpers.js'

function exported(name: string): ComponentItem {
  const item = typesComponent().exports.find((candidate) => candidate.name === name)
  if (item === undefined) throw new Error(`no export ${name}`)
  return item
}

const u32: WitType = { kind: 'u32' }
const string: WitType = { kind: 'string' }

test('a function lists its parameters by name and its result as type trees', (t) => {
  const person: WitType = {
    kind: 'record',
    fields: [
      { name: 'first-name', type: string },
      { name: 'age', type: { kind: 'u8' } },
      { name: 'tags', type: { kind: 'list', element: string } },
    ],
  }
  t.deepEqual(exported('roundtrip-record').func, { params: [{ name: 'v', type: person }], result: person })
  t.deepEqual(exported('many-params').func?.params, [
    { name: 'a', type: { kind: 'u8' } },
    { name: 'b', type: { kind: 's64' } },
    { name: 'c', type: string },
    { name: 'd', type: { kind: 'f32' } },
  ])
  t.deepEqual(exported('no-result').func, { params: [] }, 'no result: the member is absent')
  t.false('result' in (exported('no-result').func ?? {}))
})

test('variants, enums, flags, options, results and tuples keep their members in order', (t) => {
  const result = (name: string) => exported(name).func?.result
  t.deepEqual(result('roundtrip-variant'), {
    kind: 'variant',
    cases: [
      { name: 'circle', type: { kind: 'f32' } },
      {
        name: 'rectangle',
        type: {
          kind: 'record',
          fields: [
            { name: 'x', type: { kind: 's32' } },
            { name: 'y', type: { kind: 's32' } },
          ],
        },
      },
      { name: 'nothing' },
      { name: 'label', type: string },
    ],
  })
  t.deepEqual(result('roundtrip-enum'), { kind: 'enum', names: ['red', 'green', 'blue-ish'] })
  t.deepEqual(result('roundtrip-flags'), { kind: 'flags', names: ['read', 'write', 'exec-now'] })
  t.deepEqual(result('roundtrip-option-option'), {
    kind: 'option',
    element: { kind: 'option', element: u32 },
  })
  t.deepEqual(result('roundtrip-results'), {
    kind: 'list',
    element: { kind: 'result', ok: u32, err: string },
  })
  t.deepEqual(result('roundtrip-result-unit'), { kind: 'tuple', types: [{ kind: 'result' }] })
  t.deepEqual(result('roundtrip-tuple'), { kind: 'tuple', types: [{ kind: 'u8' }, string, { kind: 'f64' }] })
})

test('interface members carry descriptors; instances and type definitions carry none', (t) => {
  const host = typesComponent().imports.find((item) => item.name === 'test:types/host@0.1.0')
  t.is(host?.kind, 'instance')
  t.false('func' in (host ?? {}))
  const members = Object.fromEntries((host?.exports ?? []).map((item) => [item.name, item]))
  t.deepEqual(members['fail-maybe']?.func, {
    params: [{ name: 'x', type: u32 }],
    result: { kind: 'result', ok: u32, err: string },
  })
  t.is(members.point?.kind, 'type')
  t.is(members.point?.type, 'record { x: s32, y: s32 }')
  t.false('func' in (members.point ?? {}))
})

test('resources are own/borrow naming their resource, and a result without an ok payload has only err', (t) => {
  const wasi = engine().compileComponentSync(wasiComponentWasm)
  const functions = wasi.imports.flatMap((item) => item.exports ?? []).filter((item) => item.kind === 'func')
  const write = functions.find((item) =>
    item.type.startsWith('func(self: borrow<output-stream>, contents: list<u8>)'),
  )
  const streams = wasi.imports.find((item) => item.name.startsWith('wasi:io/streams'))?.name
  const errors = wasi.imports.find((item) => item.name.startsWith('wasi:io/error'))?.name
  t.deepEqual(write?.func?.params[0], {
    name: 'self',
    type: { kind: 'borrow', resource: 'output-stream', interface: streams, imported: true },
  })
  t.deepEqual(write?.func?.result, {
    kind: 'result',
    err: {
      kind: 'variant',
      cases: [
        {
          name: 'last-operation-failed',
          type: { kind: 'own', resource: 'error', interface: errors, imported: true },
        },
        { name: 'closed' },
      ],
    },
  })
})

/** The listing's spelling, written independently of the addon's, to show `type` follows `func`. */
function spell(type: WitType): string {
  const list = (items: string[]) => items.join(', ')
  switch (type.kind) {
    case 'list':
      return type.length === undefined
        ? `list<${spell(type.element)}>`
        : `list<${spell(type.element)}, ${type.length}>`
    case 'option':
      return `option<${spell(type.element)}>`
    case 'map':
      return `map<${spell(type.key)}, ${spell(type.value)}>`
    case 'record':
      return `record { ${list(type.fields.map((field) => `${field.name}: ${spell(field.type)}`))} }`
    case 'tuple':
      return `tuple<${list(type.types.map(spell))}>`
    case 'variant':
      return `variant { ${list(type.cases.map((c) => (c.type === undefined ? c.name : `${c.name}(${spell(c.type)})`)))} }`
    case 'enum':
    case 'flags':
      return `${type.kind} { ${list(type.names)} }`
    case 'result':
      if (type.ok === undefined && type.err === undefined) return 'result'
      if (type.err === undefined) return `result<${spell(type.ok as WitType)}>`
      return `result<${type.ok === undefined ? '_' : spell(type.ok)}, ${spell(type.err)}>`
    case 'own':
    case 'borrow':
      return `${type.kind}<${type.resource ?? 'resource'}>`
    default:
      return type.kind
  }
}

function spellFunc(func: WitFuncType): string {
  const params = func.params.map((param) => `${param.name}: ${spell(param.type)}`).join(', ')
  return func.result === undefined ? `func(${params})` : `func(${params}) -> ${spell(func.result)}`
}

test('every function’s type string is the spelling of its descriptor', (t) => {
  const components = [
    typesComponent(),
    engine().compileComponentSync(wasiComponentWasm),
    engine().compileComponentSync(helloWasm),
  ]
  const functions = components
    .flatMap((component) => [...component.imports, ...component.exports])
    .flatMap((item) => [item, ...(item.exports ?? [])])
    .filter((item) => item.kind === 'func')
  t.true(functions.length > 100)
  for (const item of functions) {
    if (item.func === undefined) return t.fail(`${item.name} has no descriptor`)
    t.is(spellFunc(item.func), item.type, item.name)
  }
})

test('a listing compares as the README shows it: { name, kind, type, exports? }, its descriptors kept apart', (t) => {
  const hello = engine().compileComponentSync(helloWasm)
  t.deepEqual(hello.exports, [{ name: 'greet', kind: 'func', type: 'func(name: string) -> string' }])
  t.deepEqual(JSON.parse(JSON.stringify(hello.exports)), hello.exports)
  // The descriptors are still there for code that walks the types.
  t.deepEqual(hello.exports[0]?.func, { params: [{ name: 'name', type: string }], result: string })
  const api = typesComponent().exports.find((item) => item.name === 'test:types/numbers@0.1.0')
  const add = api?.exports?.find((item) => item.name === 'add')
  t.deepEqual(Object.keys(add ?? {}), ['name', 'kind', 'type'])
  t.deepEqual(add?.func?.params.length, 2)
})
