/**
 * How precisely a runaway loop stops at `timeoutMs: 100`, through `callSync` and `call`: the
 * distribution of the time until the caller sees TimeoutError, against the deadline plus two
 * epoch ticks (the design target). Also `worker.terminate()` of a worker spinning in Node's own
 * WebAssembly, the alternative a Node user has.
 */
import { Worker } from 'node:worker_threads'

import { Engine, TimeoutError } from '../lib/index.js'
import { type Scenario } from './harness.js'

const TIMEOUT_MS = 100
const TICK_MS = 5
const SPIN = '(module (func (export "spin") (loop br 0)))'
/** The binary form of SPIN, for Node's WebAssembly in the worker. */
const SPIN_WASM_HEX = '0061736d0100000001040160000003020100070801047370696e00000a0901070003400c000b0b'

async function terminateWorkerOnce(): Promise<number> {
  const worker = new Worker(
    `const { parentPort } = require('node:worker_threads');
     const bytes = Buffer.from('${SPIN_WASM_HEX}', 'hex');
     const { spin } = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
     parentPort.postMessage('spinning');
     spin();`,
    { eval: true },
  )
  await new Promise((resolve) => worker.once('message', resolve))
  const started = performance.now()
  await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS))
  await worker.terminate()
  return performance.now() - started
}

export const timeout: Scenario = {
  name: 'timeout',
  title: `Runaway loop stopped at timeoutMs: ${TIMEOUT_MS} (epochTickMs: ${TICK_MS})`,
  async setup() {
    const engine = new Engine({ epochTickMs: TICK_MS })
    const instance = engine.compileModuleSync(SPIN).instantiateSync({ limits: { memoryBytes: 0 } })
    const expectTimeout = (error: unknown) => {
      if (!(error instanceof TimeoutError)) throw error
    }
    try {
      instance.callSync('spin', [], { timeoutMs: TIMEOUT_MS })
      throw new Error('spin returned')
    } catch (error) {
      expectTimeout(error)
    }
    const target = `target: within ${TIMEOUT_MS + 2 * TICK_MS} ms (deadline + 2 ticks)`
    return {
      rows: [
        {
          id: 'worker-terminate',
          title: `Node: worker.terminate() after ${TIMEOUT_MS} ms`,
          note:
            "Baseline. A worker spinning in Node's WebAssembly, terminated after the same 100 ms: " +
            'the time from the timer start until terminate() resolved (a fresh worker each time).',
          runAsync: async () => {
            await terminateWorkerOnce()
          },
        },
        {
          id: 'callsync-timeout',
          title: `callSync spin, timeoutMs ${TIMEOUT_MS}`,
          note: `Time until callSync threw TimeoutError on the JS thread; ${target}. Ratio: to worker.terminate().`,
          baselines: ['worker-terminate'],
          run: () => {
            try {
              instance.callSync('spin', [], { timeoutMs: TIMEOUT_MS })
            } catch (error) {
              expectTimeout(error)
            }
          },
        },
        {
          id: 'call-timeout',
          title: `await call spin, timeoutMs ${TIMEOUT_MS}`,
          note: `Time until the async call rejected with TimeoutError; ${target}. Ratio: to worker.terminate().`,
          baselines: ['worker-terminate'],
          runAsync: async () => {
            await instance.call('spin', [], { timeoutMs: TIMEOUT_MS }).catch(expectTimeout)
          },
        },
      ],
      teardown: () => {
        instance.dispose()
        engine.close()
      },
    }
  },
}
