/**
 * An asynchronous call: `await call('add', [2, 3])` (the wasm runs on our own thread pool) next to
 * what a user would do without us to keep wasm off the JS thread: a worker_thread running the same
 * bytes on Node's WebAssembly, asked through postMessage and answering the same way.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'

import { Engine } from '../lib/index.js'
import { expectEqual, KiB, type Scenario } from './harness.js'
import { coreModuleBytes } from './wasm.js'

/** The worker: instantiate the bytes it is given, answer each [a, b] with add(a, b). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { add } = new WebAssembly.Instance(new WebAssembly.Module(workerData)).exports
parentPort.on('message', ([a, b]) => parentPort.postMessage(add(a, b)))
`

/** A worker answering one request at a time; `ask` resolves with its answer. */
function startWorker(bytes: Uint8Array): {
  ask: (a: number, b: number) => Promise<number>
  stop: () => Promise<number>
} {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: bytes })
  let pending: ((value: number) => void) | undefined
  worker.on('message', (value: number) => {
    const resolve = pending
    pending = undefined
    resolve?.(value)
  })
  return {
    ask: (a, b) =>
      new Promise<number>((resolve) => {
        pending = resolve
        worker.postMessage([a, b])
      }),
    stop: () => worker.terminate(),
  }
}

const PAUSE_MS = 2
const PAUSED_CALLS = 100

/** The median time of `PAUSED_CALLS` operations, each started after `PAUSE_MS` of idleness, in ns. */
async function afterPauses(operation: () => Promise<unknown>): Promise<number> {
  const times: number[] = []
  for (let index = 0; index < PAUSED_CALLS; index++) {
    await sleep(PAUSE_MS)
    const started = performance.now()
    await operation()
    times.push((performance.now() - started) * 1e6)
  }
  times.sort((a, b) => a - b)
  return times[times.length >> 1]!
}

export const callAsync: Scenario = {
  name: 'call-async',
  title: 'Asynchronous call (core add)',
  async setup() {
    const engine = new Engine()
    const instance = await (
      await engine.compileModule(coreModuleBytes)
    ).instantiate({ limits: { memoryBytes: 64 * KiB } })
    const worker = startWorker(coreModuleBytes)
    expectEqual('call add(2, 3)', await instance.call('add', [2, 3]), 5)
    expectEqual('worker add(2, 3)', await worker.ask(2, 3), 5)

    return {
      rows: [
        {
          id: 'worker-round-trip',
          title: 'Node: worker_thread postMessage round trip',
          note:
            "Baseline. postMessage([2, 3]) to a worker_thread that calls add on Node's WebAssembly " +
            '(same bytes) and posts the result back; timed until the main thread has it.',
          runAsync: async () => {
            await worker.ask(2, 3)
          },
        },
        {
          id: 'worker-after-pause',
          title: `Node: worker round trip after ${PAUSE_MS} ms idle`,
          note:
            `Baseline. The same round trip, each one after ${PAUSE_MS} ms without work (so the worker ` +
            `has gone to sleep); each sample is the median of ${PAUSED_CALLS} such round trips.`,
          unit: 'ns',
          sample: () => afterPauses(() => worker.ask(2, 3)),
        },
        {
          id: 'call-after-pause',
          title: `await call('add', [2, 3]) after ${PAUSE_MS} ms idle`,
          note:
            `Our async call, each one after ${PAUSE_MS} ms without work: the pool thread stopped spinning ` +
            'and sleeps, as in a service that calls now and then. Same sampling. Ratio: to the worker.',
          unit: 'ns',
          baselines: ['worker-after-pause'],
          sample: () => afterPauses(() => instance.call('add', [2, 3])),
        },
        {
          id: 'call-add',
          title: "await call('add', [2, 3])",
          note:
            'The same export through our async call: queued on the instance, run on our own pool ' +
            'thread, result delivered back to the JS thread as a resolved Promise. Ratio: to the worker round trip.',
          baselines: ['worker-round-trip'],
          runAsync: async () => {
            await instance.call('add', [2, 3])
          },
        },
      ],
      teardown: async () => {
        await worker.stop()
        instance.dispose()
        engine.close()
      },
    }
  },
}
