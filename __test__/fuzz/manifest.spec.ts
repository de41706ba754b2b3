import test from 'ava'

import { manifestTarget } from '../../fuzz/manifest.js'
import { assertProperty } from './helpers.js'

test('random and mutated Component.toml documents load, or fail with a ConfigError that says where', async (t) => {
  await assertProperty(manifestTarget(), 500)
  t.pass()
})
