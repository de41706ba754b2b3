/**
 * What the sandbox costs per call: the compute kernel through the async `call` (our pool thread) next
 * to `callSync`, and the per-call setup of a deadline and of a fuel budget on the tiny add.
 */
import { Engine } from '../lib/index.js'
import { expectEqual, KiB, type Scenario } from './harness.js'
import { AMPLE_FUEL, checkKernel, FAR_DEADLINE_MS, KERNEL_ITERATIONS } from './kernel.js'
import { coreModuleBytes } from './wasm.js'

export const limitsOverhead: Scenario = {
  name: 'limits-overhead',
  title: 'Limits overhead',
  async setup() {
    const engine = new Engine()
    const fuelEngine = new Engine({ fuel: true })
    const limits = { limits: { memoryBytes: 64 * KiB } }
    const instance = engine.compileModuleSync(coreModuleBytes).instantiateSync(limits)
    const metered = fuelEngine.compileModuleSync(coreModuleBytes).instantiateSync(limits)
    const iterations = KERNEL_ITERATIONS

    const expected = checkKernel('callSync', (n) => instance.callSync('kernel', [n]))
    expectEqual('call kernel', await instance.call('kernel', [iterations]), expected)
    expectEqual('callSync add', instance.callSync('add', [2, 3]), 5)
    expectEqual('callSync add with {}', instance.callSync('add', [2, 3], {}), 5)
    expectEqual(
      'callSync add with timeoutMs',
      instance.callSync('add', [2, 3], { timeoutMs: FAR_DEADLINE_MS }),
      5,
    )
    expectEqual('callSync add with fuel', metered.callSync('add', [2, 3], { fuel: AMPLE_FUEL }), 5)

    return {
      rows: [
        {
          id: 'kernel-callsync',
          title: "callSync('kernel', [n])",
          note: 'Baseline. The compute kernel (~30 ms) on the JS thread, unmetered.',
          run: () => {
            instance.callSync('kernel', [iterations])
          },
        },
        {
          id: 'kernel-call',
          title: "await call('kernel', [n])",
          note:
            'The same kernel off the JS thread on our pool: the hand-off and the Promise on top of ' +
            'the same work. Ratio: to callSync.',
          baselines: ['kernel-callsync'],
          runAsync: async () => {
            await instance.call('kernel', [iterations])
          },
        },
        {
          id: 'add-plain',
          title: "callSync('add', [2, 3])",
          note: 'Baseline for the per-call rows: no deadline, no fuel (the fast path of callSync).',
          run: () => {
            instance.callSync('add', [2, 3])
          },
        },
        {
          id: 'add-options',
          title: "callSync('add', [2, 3], {})",
          note:
            'The same with an empty options object: no budget, but today any options object sends ' +
            'callSync down its generic path (name lookup and type-driven conversion in the addon), so ' +
            'this separates the cost of that path from the cost of a budget. Ratio: to the plain call.',
          baselines: ['add-plain'],
          run: () => {
            instance.callSync('add', [2, 3], {})
          },
        },
        {
          id: 'add-deadline',
          title: `callSync('add', [2, 3], { timeoutMs: ${FAR_DEADLINE_MS} })`,
          note:
            'Setting up and clearing a wall-clock deadline around a tiny call. Ratios: to the call ' +
            'with empty options (the cost of the deadline itself) and to the plain call.',
          baselines: ['add-options', 'add-plain'],
          run: () => {
            instance.callSync('add', [2, 3], { timeoutMs: FAR_DEADLINE_MS })
          },
        },
        {
          id: 'add-fuel',
          title: "callSync('add', [2, 3], { fuel }) on Engine({ fuel: true })",
          note:
            'Setting a fuel budget and reading what was consumed around a tiny call (fuel-instrumented ' +
            'code). Ratios: to the call with empty options and to the plain call.',
          baselines: ['add-options', 'add-plain'],
          run: () => {
            metered.callSync('add', [2, 3], { fuel: AMPLE_FUEL })
          },
        },
      ],
      teardown: () => {
        instance.dispose()
        metered.dispose()
        engine.close()
        fuelEngine.close()
      },
    }
  },
}
