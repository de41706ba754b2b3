/**
 * A compute kernel (bench/wasm.ts: a 64-bit LCG loop, ~30 ms) run unmetered, with an epoch deadline,
 * with fuel, with both, and on Node's WebAssembly warmed up: what metering costs, and how far
 * Cranelift's code is from V8's optimized code.
 */
import { Engine } from '../lib/index.js'
import { expectEqual, KiB, type Scenario } from './harness.js'
import { AMPLE_FUEL, checkKernel, FAR_DEADLINE_MS, KERNEL_ITERATIONS } from './kernel.js'
import { coreModuleBytes, kernelReference } from './wasm.js'

export const compute: Scenario = {
  name: 'compute',
  title: `Compute kernel (i64 LCG, ${KERNEL_ITERATIONS.toLocaleString('en-US')} iterations)`,
  async setup() {
    const engine = new Engine()
    const fuelEngine = new Engine({ fuel: true })
    const limits = { limits: { memoryBytes: 64 * KiB } }
    const compiled = engine.compileModuleSync(coreModuleBytes)
    const plain = compiled.instantiateSync(limits)
    // Separate instances for the concurrent rows: calls on one instance run one at a time.
    const parallel = [0, 1, 2, 3].map(() => compiled.instantiateSync(limits))
    const metered = fuelEngine.compileModuleSync(coreModuleBytes).instantiateSync(limits)
    const node = new WebAssembly.Instance(new WebAssembly.Module(coreModuleBytes)).exports as {
      kernel: (iterations: bigint) => bigint
    }

    const unmetered = (n: bigint) => plain.callSync('kernel', [n])
    const epoch = (n: bigint) => plain.callSync('kernel', [n], { timeoutMs: FAR_DEADLINE_MS })
    const fuel = (n: bigint) => metered.callSync('kernel', [n], { fuel: AMPLE_FUEL })
    const hybrid = (n: bigint) =>
      metered.callSync('kernel', [n], { fuel: AMPLE_FUEL, timeoutMs: FAR_DEADLINE_MS })

    const expected = checkKernel('Node', node.kernel)
    for (const instance of parallel) {
      expectEqual('parallel kernel', await instance.call('kernel', [1000n]), kernelReference(1000))
    }
    const concurrently = (count: number) =>
      Promise.all(parallel.slice(0, count).map((instance) => instance.call('kernel', [KERNEL_ITERATIONS])))
    for (const result of await concurrently(4)) expectEqual('concurrent kernel', result, expected)
    checkKernel('unmetered', unmetered, expected)
    checkKernel('epoch', epoch, expected)
    checkKernel('fuel', fuel, expected)
    const fuelPerRun = metered.metrics().fuel.lastCallConsumed
    checkKernel('fuel + epoch', hybrid, expected)
    const iterations = KERNEL_ITERATIONS

    return {
      rows: [
        {
          id: 'node-kernel',
          title: 'Node: exports.kernel(n)',
          note:
            'Baseline. The kernel on V8, warmed up first (V8 starts a function in Liftoff and tiers it ' +
            'up to TurboFan once it is hot; the warm-up runs make sure the optimized code is measured).',
          run: () => {
            node.kernel(iterations)
          },
        },
        {
          id: 'kernel-unmetered',
          title: "callSync('kernel', [n])",
          note:
            'Our unmetered time: no fuel, no deadline. Our engines always compile epoch checks in ' +
            '(a load and compare at each loop header), so this already includes them, with a deadline ' +
            'that never comes. Ratio: to V8.',
          baselines: ['node-kernel'],
          run: () => {
            unmetered(iterations)
          },
        },
        {
          id: 'kernel-epoch',
          title: `callSync('kernel', [n], { timeoutMs: ${FAR_DEADLINE_MS} })`,
          note:
            'With a wall-clock deadline: the epoch ticker thread ticks every 5 ms and each tick runs ' +
            'our deadline callback. Ratios: to our unmetered time and to V8.',
          baselines: ['kernel-unmetered', 'node-kernel'],
          run: () => {
            epoch(iterations)
          },
        },
        {
          id: 'kernel-fuel',
          title: `callSync('kernel', [n], { fuel }) on Engine({ fuel: true })`,
          note:
            `With fuel metering (a budget of ${AMPLE_FUEL.toExponential()}; one run consumes ` +
            `${fuelPerRun.toLocaleString('en-US')}). Ratios: to our unmetered time and to V8.`,
          baselines: ['kernel-unmetered', 'node-kernel'],
          run: () => {
            fuel(iterations)
          },
        },
        {
          id: 'kernel-call',
          title: "await call('kernel', [n])",
          note: 'One unmetered kernel through the async call (on a pool thread). Ratio: to callSync.',
          baselines: ['kernel-unmetered'],
          runAsync: async () => {
            await parallel[0]!.call('kernel', [iterations])
          },
        },
        {
          id: 'kernel-call-x2',
          title: "2 × await call('kernel', [n]) at once, 2 instances",
          note:
            'Two kernels at once on two instances (Promise.all): the pool runs them on two threads. ' +
            'On this 2-core machine, 1.0× one call means both cores are used. Ratio: to one async call.',
          baselines: ['kernel-call'],
          runAsync: async () => {
            await concurrently(2)
          },
        },
        {
          id: 'kernel-call-x4',
          title: "4 × await call('kernel', [n]) at once, 4 instances",
          note: 'Four at once on two cores: 2.0× one call is the ideal. Ratio: to one async call.',
          baselines: ['kernel-call'],
          runAsync: async () => {
            await concurrently(4)
          },
        },
        {
          id: 'kernel-fuel-epoch',
          title: 'the same with fuel and timeoutMs',
          note: 'Fuel and a deadline together (whichever hits first wins). Ratios: to our unmetered time and to V8.',
          baselines: ['kernel-unmetered', 'node-kernel'],
          run: () => {
            hybrid(iterations)
          },
        },
      ],
      teardown: () => {
        plain.dispose()
        for (const instance of parallel) instance.dispose()
        metered.dispose()
        engine.close()
        fuelEngine.close()
      },
    }
  },
}
