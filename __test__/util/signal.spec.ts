import test from 'ava'

import {
  ConfigError,
  createHttp,
  createPermissions,
  createTime,
  Engine,
  hostInterfaces,
} from '../../lib/index.js'

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

test("the reference interfaces' signal option: one whose own code throws is a ConfigError where it is given, never later", async (t) => {
  // createTime/createHttp/hostInterfaces kept the caller's signal and read it on every sleep or
  // fetch: a Proxy whose trap throws was a bare Error then, or at once, with no code (probe H15).
  const traps: ProxyHandler<AbortSignal>[] = [
    {
      getPrototypeOf: () => {
        throw new Error('trap getPrototypeOf')
      },
    },
    {
      has: () => {
        throw new Error('trap has')
      },
    },
    {
      get: (_, key) => {
        if (key === 'addEventListener') throw new Error('trap get')
        return undefined
      },
    },
  ]
  const permissions = createPermissions({ timeSleep: true })
  for (const handler of traps) {
    const signal = new Proxy(new AbortController().signal, handler)
    for (const [what, make] of [
      ['createTime', () => createTime(permissions, { signal })],
      ['createHttp', () => createHttp(permissions, { signal })],
      ['hostInterfaces', () => hostInterfaces(permissions, { signal })],
    ] as const) {
      try {
        const made = make()
        // Accepted: then it works as a signal, and the work it bounds never meets its traps.
        if (what === 'createTime') await (made as ReturnType<typeof createTime>).sleep(1)
        t.pass()
      } catch (error) {
        t.true(error instanceof ConfigError, `${what}: ${String(error)}`)
        // A trap met while the options are copied names them; one met as it is listened to, it.
        t.true(['signal', 'options'].includes((error as ConfigError).path ?? ''), what)
      }
    }
  }
  // A signal of its own that aborts still ends a pending sleep.
  const controller = new AbortController()
  const time = createTime(permissions, { signal: new Proxy(controller.signal, {}) })
  const pending = time.sleep(60_000)
  controller.abort(new Error('stop'))
  const stopped = await t.throwsAsync(pending, { name: 'AbortError' })
  t.is((stopped?.cause as Error).message, 'stop')
})

test("a signal whose trap throws only later, as the caller aborts, does not end the process; a function's signal is checked each time", async (t) => {
  // Following it read the reason through the Proxy in an abort listener: the trap's throw was an
  // uncaught exception that ended the process (probe H16). A function giving something else was
  // Node's own TypeError at every sleep.
  const permissions = createPermissions({ timeSleep: true })
  const controller = new AbortController()
  let armed = false
  const signal = new Proxy(controller.signal, {
    get(target, key) {
      if (armed) throw new Error('late trap')
      const value: unknown = Reflect.get(target, key, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  const time = createTime(permissions, { signal })
  const pending = time.sleep(60_000)
  armed = true
  controller.abort(new Error('stop'))
  const stopped = await t.throwsAsync(pending, { name: 'AbortError' })
  t.regex(String((stopped?.cause as Error | undefined)?.message), /late trap|stop/)
  for (const given of [
    () => 42,
    () => {
      throw new Error('boom')
    },
  ]) {
    const fromFunction = createTime(permissions, { signal: given as unknown as () => AbortSignal })
    const error = await t.throwsAsync(fromFunction.sleep(1), { instanceOf: ConfigError })
    t.is(error?.path, 'signal')
  }
})
