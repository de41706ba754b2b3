import test from 'ava'

import { flat, forwardingWat, layout } from '../../fuzz/forwarding-wat.js'
import { forwardingTarget } from '../../fuzz/forwarding.js'
import type { Wit } from '../../fuzz/wit.js'
import { Engine } from '../../lib/index.js'
import { assertProperty } from './helpers.js'

test('random WIT types: a value reaches the host function and comes back as the mapping says, on every path', async (t) => {
  await assertProperty(forwardingTarget(), 300)
  t.pass()
})

test("the forwarding component's flat forms and layouts are the canonical ABI's", (t) => {
  // A mistake here would make the guest pass values along wrongly and the property fail for the
  // wrong reason: pinned on the spec's own examples.
  const variant: Wit = {
    variant: [
      ['a', 'u8'],
      ['b', 'f32'],
      ['c', 'u64'],
      ['d', null],
    ],
  }
  t.deepEqual(flat(variant), ['i32', 'i64'])
  t.deepEqual(flat({ result: ['f32', 'u32'] }), ['i32', 'i32'])
  t.deepEqual(flat({ option: 'f64' }), ['i32', 'f64'])
  t.deepEqual(flat({ flags: Array.from({ length: 33 }, (_, i) => `f${i}`) }), ['i32', 'i32'])
  t.deepEqual(
    flat({
      record: [
        ['s', 'string'],
        ['n', 'u8'],
      ],
    }),
    ['i32', 'i32', 'i32'],
  )
  t.deepEqual(layout(variant), { size: 16, align: 8 })
  t.deepEqual(
    layout({
      record: [
        ['a', 'u8'],
        ['b', 'u32'],
        ['c', 'u16'],
      ],
    }),
    { size: 12, align: 4 },
  )
  t.deepEqual(layout({ tuple: ['u8', 'u8'] }), { size: 2, align: 1 })
  t.deepEqual(layout({ flags: Array.from({ length: 9 }, (_, i) => `f${i}`) }), { size: 2, align: 2 })
  t.deepEqual(layout({ enum: Array.from({ length: 300 }, (_, i) => `c${i}`) }), { size: 2, align: 2 })
  t.deepEqual(layout({ option: 'string' }), { size: 12, align: 4 })
  // Each form compiles: wasmtime checks the core signatures against the types.
  const engine = new Engine()
  const many: Wit = { record: Array.from({ length: 17 }, (_, i) => [`f${i}`, 'u32'] as const) }
  for (const type of [variant, many, 'u64', { list: 'string' }] as Wit[]) {
    t.notThrows(() => engine.compileComponentSync(forwardingWat(type).wat), JSON.stringify(type))
  }
})
