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
