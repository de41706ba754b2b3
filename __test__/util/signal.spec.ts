import test from 'ava'

import { ConfigError, Engine } from '../../lib/index.js'

const ADD = `(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))`

/** A real signal behind a Proxy whose trap throws when `addEventListener` is read. */
function unlistenable(): AbortSignal {
  return new Proxy(new AbortController().signal, {
    get(target, key) {
      if (key === 'addEventListener') throw new Error('boom from signal')
      const value: unknown = Reflect.get(target, key, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

test('a signal that cannot be listened to is a ConfigError about the signal, every time, and the call never runs', async (t) => {
  // It was a WasmTypeError "reading the arguments threw", blaming arguments that were fine
  // (probe Z1); and the first attempt left a waiting set no listener would ever fire.
  const instance = new Engine().compileModuleSync(ADD).instantiateSync({ limits: { memoryBytes: 1 << 16 } })
  for (let attempt = 0; attempt < 2; attempt++) {
    const error = await t.throwsAsync(instance.call('add', [1, 2], { signal: unlistenable() }), {
      instanceOf: ConfigError,
    })
    t.is(error?.path, 'signal')
    t.regex(error?.message ?? '', /^signal: listening for its abort threw: boom from signal$/)
    t.is((error?.cause as Error).message, 'boom from signal')
  }
  t.is(instance.metrics().calls, 0)
  t.is(await instance.call('add', [1, 2]), 3)
})
