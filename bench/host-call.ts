/**
 * A round trip wasm -> JS host function -> wasm: the `types` component's `call-double(x)` calls
 * the imported `double(x)`. Sync host function through `callSync` and `call`, async (Promise)
 * host function through `call`, next to an export that calls no host function.
 */
import { stat } from 'node:fs/promises'

import { type Component, Engine } from '../lib/index.js'
import { typesImports, typesWasm } from '../fixtures/index.js'
import { expectEqual, MiB, type Scenario } from './harness.js'

/** CPU ns per wall-clock second of this process while 100 calls wait on unanswered host Promises. */
async function idleCpu(component: Component, limits: { memoryBytes: number }): Promise<number> {
  let answer = () => {}
  const gate = new Promise<void>((resolve) => {
    answer = resolve
  })
  const imports = typesImports()
  imports.double = async (x: number) => {
    await gate
    return x * 2
  }
  const instances = await Promise.all(
    Array.from({ length: 100 }, () => component.instantiate({ limits, imports })),
  )
  const calls = instances.map((instance) =>
    instance.call('call-double', [21], { signal: new AbortController().signal }),
  )
  await new Promise((resolve) => setTimeout(resolve, 200))
  const before = process.cpuUsage()
  const started = process.hrtime.bigint()
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const used = process.cpuUsage(before)
  const wallNs = Number(process.hrtime.bigint() - started)
  answer()
  for (const result of await Promise.all(calls)) expectEqual('waiting call-double(21)', result, 42)
  for (const instance of instances) instance.dispose()
  return ((used.user + used.system) * 1000 * 1e9) / wallNs
}

/**
 * The longest the event loop went without turning (ns) while 100 loops each await `run(loop)`
 * back to back for 1 s: a 1 ms interval timer's longest gap, the end of the second included (a
 * loop that never turns records no delay samples at all, so Node's delay histogram cannot show it).
 */
async function longestStall(run: (loop: number) => Promise<unknown>): Promise<number> {
  let last = process.hrtime.bigint()
  let longest = 0n
  const tick = () => {
    const now = process.hrtime.bigint()
    if (now - last > longest) longest = now - last
    last = now
  }
  const timer = setInterval(tick, 1)
  let going = true
  const loops = Array.from({ length: 100 }, async (_, loop) => {
    while (going) await run(loop)
  })
  await new Promise((resolve) => setTimeout(resolve, 1000))
  going = false
  tick()
  clearInterval(timer)
  await Promise.all(loops)
  return Number(longest)
}

/** `measure`'s values over one round (quick) or three. */
async function rounds(quick: boolean, measure: () => Promise<number>): Promise<number[]> {
  const values: number[] = []
  for (let round = 0; round < (quick ? 1 : 3); round++) values.push(await measure())
  return values
}

export const hostCall: Scenario = {
  name: 'host-call',
  title: 'Host function round trip (component)',
  async setup(mode) {
    const engine = new Engine()
    const component = await engine.compileComponent(typesWasm)
    const limits = { memoryBytes: 4 * MiB }
    const sync = await component.instantiate({ limits, imports: typesImports() })
    const asyncImports = typesImports()
    asyncImports.double = async (x: number) => x * 2
    const asynchronous = await component.instantiate({ limits, imports: asyncImports })
    const add = sync.function('test:types/numbers#add')
    const callDouble = sync.function('call-double')

    expectEqual('add(20, 22)', add(20, 22), 42)
    expectEqual('call-double(21), sync host', callDouble(21), 42)
    expectEqual('call-double(21) through call, sync host', await sync.call('call-double', [21]), 42)
    expectEqual('call-double(21) through call, async host', await asynchronous.call('call-double', [21]), 42)

    /** Times `count` single calls, one after another: their own distribution, not cycle means. */
    const singleCalls = async (run: () => Promise<unknown>, count: number) => {
      for (let warm = 0; warm < 200; warm++) await run()
      const samples: number[] = []
      for (let index = 0; index < count; index++) {
        const started = process.hrtime.bigint()
        await run()
        samples.push(Number(process.hrtime.bigint() - started))
      }
      return samples
    }
    const singles = mode.quick ? 300 : 3000

    return {
      rows: [
        {
          id: 'no-host-sync',
          title: 'callSync numbers#add (no host call)',
          note: 'Baseline. A component export that calls no host function, on the JS thread.',
          run: () => {
            add(20, 22)
          },
        },
        {
          id: 'host-sync',
          title: 'callSync call-double -> double (sync JS)',
          note:
            'The export calls the imported double(x), a plain JS function called directly from wasm on ' +
            'the JS thread. Ratio: to the export without a host call.',
          baselines: ['no-host-sync'],
          run: () => {
            callDouble(21)
          },
        },
        {
          id: 'no-host-async',
          title: 'await call numbers#add (no host call)',
          note: 'Baseline. The same export without a host call through the async call (our pool).',
          runAsync: async () => {
            await sync.call('test:types/numbers#add', [20, 22])
          },
        },
        {
          id: 'host-sync-in-call',
          title: 'await call call-double -> double (sync JS)',
          note:
            'The guest runs on a pool thread; the host call goes to the JS thread through the ' +
            'environment dispatcher and back. Ratio: to the async call without a host call.',
          baselines: ['no-host-async'],
          runAsync: async () => {
            await sync.call('call-double', [21])
          },
        },
        {
          id: 'host-async-in-call',
          title: 'await call call-double -> async double',
          note:
            'The host function returns a Promise: the pool thread waits while the JS thread awaits it. ' +
            'Ratio: to the async call without a host call.',
          baselines: ['no-host-async'],
          runAsync: async () => {
            await asynchronous.call('call-double', [21])
          },
        },
        {
          id: 'single-no-host',
          title: 'single calls: await call numbers#add (no host call)',
          note:
            'Baseline. The same calls as no-host-async, each timed on its own: the median and ' +
            'percentiles here are of single calls, so a rare slow wake-up moves p90/p99, not the median.',
          unit: 'ns',
          samples: () => singleCalls(() => sync.call('test:types/numbers#add', [20, 22]), singles),
        },
        {
          id: 'single-host-sync',
          title: 'single calls: await call call-double -> double (sync JS)',
          note: 'host-sync-in-call, each call timed on its own. Ratio: to single calls without a host call.',
          baselines: ['single-no-host'],
          unit: 'ns',
          samples: () => singleCalls(() => sync.call('call-double', [21]), singles),
        },
        {
          id: 'single-host-async',
          title: 'single calls: await call call-double -> async double',
          note: 'host-async-in-call, each call timed on its own. Ratio: to single calls without a host call.',
          baselines: ['single-no-host'],
          unit: 'ns',
          samples: () => singleCalls(() => asynchronous.call('call-double', [21]), singles),
        },
        {
          id: 'loop-stall-node-stat',
          title: 'longest event-loop stall: 100 loops of await fs.promises.stat',
          note:
            "Baseline. Node's own async I/O at full pace from 100 loops for 1 s: the longest gap " +
            "of a 1 ms interval timer, how long a timer or a socket's data waited at worst.",
          unit: 'ns',
          samples: () => rounds(mode.quick, () => longestStall(() => stat(typesWasm))),
        },
        {
          id: 'loop-stall-calls',
          title: 'longest event-loop stall: 100 loops of await call numbers#add',
          note:
            'The same with 100 loops of async calls on 100 instances. Before the dispatcher let the ' +
            'loop turn after 2 ms of completions, an outside probe measured stalls of 950 ms. Ratio: ' +
            'to the fs.promises.stat loops.',
          baselines: ['loop-stall-node-stat'],
          unit: 'ns',
          samples: async () => {
            const instances = await Promise.all(
              Array.from({ length: 100 }, () => component.instantiate({ limits, imports: typesImports() })),
            )
            const values = await rounds(mode.quick, () =>
              longestStall((loop) => instances[loop]!.call('test:types/numbers#add', [1, 2])),
            )
            for (const instance of instances) instance.dispose()
            return values
          },
        },
        {
          id: 'idle-waiting-100',
          title: 'CPU per second while 100 calls with AbortSignals wait on host Promises',
          note:
            'CPU time (user + system) this process used per second of wall time while 100 instances ' +
            'each had a `call` waiting on an async host function that had not answered, each call with ' +
            'its own AbortSignal; 10,000,000 ns is 1% of one core. Measured over 2 s, 3 times.',
          unit: 'ns',
          samples: () => rounds(mode.quick, () => idleCpu(component, limits)),
        },
      ],
      teardown: () => {
        sync.dispose()
        asynchronous.dispose()
        engine.close()
      },
    }
  },
}
