/**
 * A round trip wasm -> JS host function -> wasm: the `types` component's `call-double(x)` calls
 * the imported `double(x)`. Sync host function through `callSync` and `call`, async (Promise)
 * host function through `call`, next to an export that calls no host function.
 */
import { Engine } from '../lib/index.js'
import { typesImports, typesWasm } from '../fixtures/index.js'
import { expectEqual, MiB, type Scenario } from './harness.js'

export const hostCall: Scenario = {
  name: 'host-call',
  title: 'Host function round trip (component)',
  async setup() {
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
      ],
      teardown: () => {
        sync.dispose()
        asynchronous.dispose()
        engine.close()
      },
    }
  },
}
