/**
 * Runs inside a worker thread for lifecycle.spec.ts. `workerData.mode` picks the state the worker
 * puts its guest in; every guest tells the parent itself (through a host import) when it runs, so
 * the parent acts while wasm is really executing or waiting, never before.
 */
import { parentPort, workerData } from 'node:worker_threads'

import { wasiModuleWasm } from '../../fixtures/index.js'
import { Engine, type Instance } from '../../lib/index.js'

export type Mode =
  'sync-dispose' | 'sync-close' | 'sync-spin' | 'sync-sleep' | 'sync-wasi-spin' | 'call-spin' | 'host-wait'

const { mode, timeoutMs } = workerData as { mode: Mode; timeoutMs?: number }
const post = (message: unknown) => parentPort?.postMessage(message)

/** The error code `body` throws, or 'no error'. */
function codeOf(body: () => unknown): string {
  try {
    body()
    return 'no error'
  } catch (error) {
    return (error as { code?: string }).code ?? String(error)
  }
}

/**
 * Runs the call `body` makes and posts how it ended. The parent terminates the worker while the
 * guest runs or waits: anything posted after 'running' or 'waiting' means JS ran again here.
 */
async function reportEnd(body: () => unknown): Promise<void> {
  try {
    await body()
    post('the call returned')
  } catch (error) {
    post(`the call failed: ${(error as { code?: string }).code}`)
  }
}

const engine = new Engine()
const module = engine.compileModuleSync(`(module
  (import "env" "running" (func $running))
  (import "env" "wait" (func $wait (result i32)))
  (func (export "notify-then-value") (result i32) call $running i32.const 7)
  (func (export "notify-then-spin") call $running (loop br 0))
  (func (export "wait") (result i32) call $wait)
  (func (export "value") (result i32) i32.const 3))`)

const never: Array<Promise<number>> = []
let instance: Instance | undefined
let running = () => post('running')
const live = (): Instance => instance!
instance = module.instantiateSync({
  limits: { memoryBytes: 0 },
  ...(timeoutMs === undefined ? {} : { timeoutMs }),
  imports: {
    env: {
      running: () => running(),
      wait: () => {
        post('waiting')
        // Kept: a collected Promise would end the wait early (finding L4).
        never.push(new Promise<number>(() => undefined))
        return never.at(-1)!
      },
    },
  },
})

if (mode === 'sync-dispose') {
  // dispose() from inside the callSync: the only code that can run on this thread meanwhile.
  running = () => live().dispose()
  const value = live().callSync('notify-then-value')
  post({ value, disposed: live().disposed, next: codeOf(() => live().callSync('value')) })
} else if (mode === 'sync-close') {
  running = () => engine.close()
  const started = performance.now()
  const stopped = codeOf(() => live().callSync('notify-then-spin', [], { timeoutMs: 200 }))
  post({
    stopped,
    elapsedMs: performance.now() - started,
    closed: engine.closed,
    timedCall: codeOf(() => live().callSync('value', [], { timeoutMs: 100 })),
    untimedCall: live().callSync('value'),
    compile: codeOf(() => engine.compileModuleSync('(module)')),
  })
} else if (mode === 'sync-sleep') {
  // A guest asleep in WASI (poll_oneoff) on this thread, with no deadline: it cannot say when it
  // sleeps, so the parent waits a little after 'running'.
  const sleeper = (await engine.compileModule(wasiModuleWasm)).instantiateSync({
    limits: { memoryBytes: 16 << 20 },
    wasi: { args: ['wasi-cli', 'sleep', '600000'] },
  })
  post('running')
  await reportEnd(() => sleeper.callSync('_start'))
} else if (mode === 'sync-wasi-spin') {
  // A guest with WASI (its calls run as a future on this thread) spinning in wasm, no deadline.
  const spinner = (
    await engine.compileModule(
      '(module (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32))) (memory (export "memory") 1) (func (export "spin") (drop (call $yield)) (loop br 0)))',
    )
  ).instantiateSync({ limits: { memoryBytes: 1 << 16 }, wasi: {} })
  post('running')
  await reportEnd(() => spinner.callSync('spin'))
} else if (mode === 'sync-spin') {
  await reportEnd(() => live().callSync('notify-then-spin'))
} else {
  await reportEnd(() => live().call(mode === 'call-spin' ? 'notify-then-spin' : 'wait'))
}
