import test from 'ava'

import { escapeControl, escapeText, isEscaped, quoted } from '../../lib/util/quoted.js'

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

test('invisible format characters (Unicode Cf) are escaped, astral ones as their two halves', (t) => {
  // Probe Z62: a zero-width space or word joiner in a manifest's grant made `validate` print two
  // identical grants that were not; tag characters hid text in a guest's output.
  t.is(
    escapeControl('a\u200bb\u200cc\u200dd\u2060e\u00adf\u180eg\ufff9h'),
    'a\\u200bb\\u200cc\\u200dd\\u2060e\\u00adf\\u180eg\\ufff9h',
  )
  t.is(escapeControl('x\u{e0001}\u{e0041}y\u{1d173}'), 'x\\udb40\\udc01\\udb40\\udc41y\\ud834\\udd73')
  t.is(escapeControl('é 😀 \u0301 ️'), 'é 😀 \u0301 ️', 'emoji, marks and selectors stay')
  t.is(quoted('./data\u200b/**'), '"./data\\u200b/**"')
})

test("the format characters written out are exactly this Node's Unicode Cf, with the controls and separators", (t) => {
  const format = /^\p{Cf}$/u
  const wrong: string[] = []
  for (let code = 0; code <= 0x10ffff; code++) {
    if (code >= 0xd800 && code <= 0xdfff) continue
    const control = (code < 0x20 && code !== 0x0a && code !== 0x09) || (code >= 0x7f && code <= 0x9f)
    const expected = control || code === 0x2028 || code === 0x2029 || format.test(String.fromCodePoint(code))
    if (isEscaped(code) !== expected) wrong.push(code.toString(16))
  }
  t.deepEqual(wrong, [], `Unicode ${process.versions.unicode}`)
})

test('names and messages escape every invisible character; output keeps the variation selectors of emoji', (t) => {
  const invisible = 'a\u034fb\ufe0fc\u115fd\u3164e\uffa0f\u2065g\u{e0100}h\u{e0002}i'
  t.is(
    escapeText(invisible),
    'a\\u034fb\\ufe0fc\\u115fd\\u3164e\\uffa0f\\u2065g\\udb40\\udd00h\\udb40\\udc02i',
  )
  t.is(quoted('./data\ufe0f/**'), '"./data\\ufe0f/**"')
  t.is(escapeControl('\u2764\ufe0f \u26a0\ufe0f'), '\u2764\ufe0f \u26a0\ufe0f')
})
