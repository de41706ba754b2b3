import test from 'ava'

import { escapeControl, quoted } from '../../lib/util/quoted.js'

test('quotes as JSON does, and escapes what JSON leaves raw yet breaks lines or reorders text', (t) => {
  t.is(quoted('plain "a"\n'), '"plain \\"a\\"\\n"')
  t.is(
    quoted('a\u2028b\u2029c\u202ed\u2066e\u200ff\u0085g\u007fh\ufeff'),
    '"a\\u2028b\\u2029c\\u202ed\\u2066e\\u200ff\\u0085g\\u007fh\\ufeff"',
  )
  t.is(quoted('é – 中文 😀'), '"é – 中文 😀"', 'other text stays as it is')
})

test('long text is cut to its first characters and its length', (t) => {
  t.is(quoted('x'.repeat(300)), `"${'x'.repeat(200)}"… (300 characters)`)
  t.is(quoted('abcdef', 3), '"abc"… (6 characters)')
  t.is(quoted('abc', 3), '"abc"')
})

test('escaping writes runs at once and every escaped kind, keeping newlines and tabs', (t) => {
  t.is(escapeControl('a\u0000\u0000\u0000b\u001b\u0007c\n\t'), 'a\\u0000\\u0000\\u0000b\\u001b\\u0007c\n\t')
  t.is(
    escapeControl('\u202e\u2028\u2029\u200f\u2066\u061c\ufeff\u009b'),
    '\\u202e\\u2028\\u2029\\u200f\\u2066\\u061c\\ufeff\\u009b',
  )
})
