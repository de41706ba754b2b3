import test from 'ava'

import type { WitType } from '../../lib/component.js'
import { someType, valueTypeOf } from '../../lib/util/wit.js'

const isString = (type: WitType) => type.kind === 'string'
const string: WitType = { kind: 'string' }

test('someType looks inside every kind that holds other types', (t) => {
  const holders: WitType[] = [
    { kind: 'list', element: string },
    { kind: 'option', element: string },
    {
      kind: 'record',
      fields: [
        { name: 'a', type: { kind: 'u8' } },
        { name: 'b', type: string },
      ],
    },
    { kind: 'tuple', types: [{ kind: 'u8' }, string] },
    { kind: 'variant', cases: [{ name: 'a' }, { name: 'b', type: string }] },
    { kind: 'result', ok: { kind: 'u8' }, err: string },
    { kind: 'result', ok: { kind: 'list', element: { kind: 'option', element: string } } },
  ]
  for (const type of holders) t.true(someType(type, isString), type.kind)
  const without: WitType[] = [
    { kind: 'u8' },
    { kind: 'result' },
    { kind: 'variant', cases: [{ name: 'a' }] },
    { kind: 'enum', names: ['string'] },
    // A map is not looked into (neither path converts one).
    { kind: 'map', key: string, value: string },
  ]
  for (const type of without) t.false(someType(type, isString), type.kind)
})

test('valueTypeOf is the ok type of a result, else the result itself', (t) => {
  t.is(valueTypeOf({ params: [], result: { kind: 'result', ok: string } }), string)
  t.is(valueTypeOf({ params: [], result: { kind: 'result', err: string } }), undefined)
  t.is(valueTypeOf({ params: [], result: string }), string)
  t.is(valueTypeOf({ params: [] }), undefined)
})
