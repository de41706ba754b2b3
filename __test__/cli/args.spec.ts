import test from 'ava'

import { integerFlag } from '../../lib/cli/args.js'

test('an integer flag takes digits with single underscores between them', (t) => {
  t.is(integerFlag('--fuel', '1000000', 'run'), 1_000_000)
  t.is(integerFlag('--fuel', '1_000_000', 'run'), 1_000_000)
  t.is(integerFlag('--fuel', undefined, 'run'), undefined)
  // A trailing or doubled underscore read as the digits (`1__0` was a budget of 10: probe Z25).
  for (const text of ['1000_', '1__000', '_1', '1_', '0', '-1', '1.5', '1e3', ' 1', '']) {
    t.throws(() => integerFlag('--fuel', text, 'run'), {
      message: `--fuel expects a positive integer, got "${text}"`,
    })
  }
})

test('an integer flag past the largest safe integer says so, not that it is no integer', (t) => {
  t.is(integerFlag('--fuel', String(Number.MAX_SAFE_INTEGER), 'run'), Number.MAX_SAFE_INTEGER)
  t.throws(() => integerFlag('--fuel', '9007199254740992', 'run'), {
    message: '--fuel may be at most 9007199254740991, got "9007199254740992"',
  })
})

test("an integer flag past its option's largest value is named by the flag", (t) => {
  // --memory 9007199254740991 got limits.memoryBytes' message, which allows 0 (probe H30).
  t.is(integerFlag('--memory', String(2 ** 48), 'run', 2 ** 48), 2 ** 48)
  t.throws(() => integerFlag('--memory', '9007199254740991', 'run', 2 ** 48), {
    message: '--memory may be at most 281474976710656, got "9007199254740991"',
  })
})
