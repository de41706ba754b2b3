/** The every-type round-trip exports of the `types` fixture (fixtures/types/wit/types.wit), as {@link Wit} types. */
import type { Wit } from './wit.js'

const point: Wit = {
  record: [
    ['x', 's32'],
    ['y', 's32'],
  ],
}
const person: Wit = {
  record: [
    ['first-name', 'string'],
    ['age', 'u8'],
    ['tags', { list: 'string' }],
  ],
}
const shape: Wit = {
  variant: [
    ['circle', 'f32'],
    ['rectangle', point],
    ['nothing', null],
    ['label', 'string'],
  ],
}
const token: Wit = {
  variant: [
    ['int', 's64'],
    ['text', 'string'],
    ['empty', null],
    ['pair', { tuple: ['u8', 'char'] }],
  ],
}
const everything: Wit = {
  record: [
    ['flag', 'bool'],
    ['tiny', 'u8'],
    ['small', 'u16'],
    ['medium', 'u32'],
    ['large', 'u64'],
    ['stiny', 's8'],
    ['ssmall', 's16'],
    ['smedium', 's32'],
    ['slarge', 's64'],
    ['single', 'f32'],
    ['wide', 'f64'],
    ['letter', 'char'],
    ['text', 'string'],
    ['bytes', { list: 'u8' }],
    ['words', { list: 'string' }],
    ['maybe', { option: { option: 'u32' } }],
    ['outcome', { result: ['string', 'u32'] }],
    ['rank', { enum: ['low', 'high-ish'] }],
    ['rights', { flags: ['read', 'write', 'exec-now'] }],
    ['tokens', { list: token }],
    ['pair', { tuple: ['s8', 'string'] }],
  ],
}

/** An export whose result is its parameters (or a function of them that {@link Roundtrip.back} states). */
export interface Roundtrip {
  name: string
  params: ReadonlyArray<readonly [string, Wit]>
  /** The result for the arguments' expected values, when it is not the single argument itself. */
  back?: (values: unknown[]) => unknown
}

const one = (name: string, ty: Wit): Roundtrip => ({ name, params: [['v', ty]] })

export const ROUNDTRIPS: readonly Roundtrip[] = [
  one('roundtrip-bool', 'bool'),
  one('roundtrip-u8', 'u8'),
  one('roundtrip-u16', 'u16'),
  one('roundtrip-u32', 'u32'),
  one('roundtrip-u64', 'u64'),
  one('roundtrip-s8', 's8'),
  one('roundtrip-s16', 's16'),
  one('roundtrip-s32', 's32'),
  one('roundtrip-s64', 's64'),
  one('roundtrip-f32', 'f32'),
  one('roundtrip-f64', 'f64'),
  one('roundtrip-char', 'char'),
  one('roundtrip-string', 'string'),
  one('roundtrip-list-u8', { list: 'u8' }),
  one('roundtrip-list-s8', { list: 's8' }),
  one('roundtrip-list-u16', { list: 'u16' }),
  one('roundtrip-list-s16', { list: 's16' }),
  one('roundtrip-list-u32', { list: 'u32' }),
  one('roundtrip-list-s32', { list: 's32' }),
  one('roundtrip-list-u64', { list: 'u64' }),
  one('roundtrip-list-s64', { list: 's64' }),
  one('roundtrip-list-f32', { list: 'f32' }),
  one('roundtrip-list-f64', { list: 'f64' }),
  one('roundtrip-list-string', { list: 'string' }),
  one('roundtrip-list-bool', { list: 'bool' }),
  one('roundtrip-record', person),
  one('roundtrip-point', point),
  one('roundtrip-tuple', { tuple: ['u8', 'string', 'f64'] }),
  one('roundtrip-variant', shape),
  one('roundtrip-enum', { enum: ['red', 'green', 'blue-ish'] }),
  one('roundtrip-flags', { flags: ['read', 'write', 'exec-now'] }),
  one('roundtrip-option', { option: 'string' }),
  one('roundtrip-option-option', { option: { option: 'u32' } }),
  one('roundtrip-results', { list: { result: ['u32', 'string'] } }),
  { name: 'roundtrip-result-unit', params: [['v', { result: [null, null] }]], back: ([v]) => [v] },
  one('roundtrip-nested', {
    record: [
      ['items', { list: { option: { tuple: ['string', { list: shape }] } } }],
      ['inner', { option: person }],
    ],
  }),
  {
    name: 'many-params',
    params: [
      ['a', 'u8'],
      ['b', 's64'],
      ['c', 'string'],
      ['d', 'f32'],
    ],
    back: (values) => values,
  },
  // Through the guest and back out to the host's `echo` import and in again: both directions twice.
  one('call-echo', everything),
  {
    name: 'call-transform',
    params: [['p', point]],
    back: ([p]) => ({ x: (p as { y: number }).y, y: (p as { x: number }).x }),
  },
]
