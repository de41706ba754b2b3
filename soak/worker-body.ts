/**
 * Runs inside a soak worker thread (see workers.ts for what each mode checks). The `types`
 * component comes precompiled from the main thread, so a worker costs its start-up, not a compile.
 */
import { parentPort, workerData } from 'node:worker_threads'

import { typesImports } from '../fixtures/index.js'
import { Engine } from '../lib/index.js'
import { CORE_WAT, PAGE } from './guests.js'
import type { WorkerData } from './workers.js'

const { mode, serialized } = workerData as WorkerData
const port = parentPort
if (port === null) throw new Error('worker-body.ts runs in a worker thread')

const engine = new Engine()
const component = engine.deserializeComponent(serialized)
const core = engine.compileModuleSync(CORE_WAT)

if (mode === 'spin') {
  const spinner = core.instantiateSync({
    limits: { memoryBytes: 4 * PAGE },
    imports: { env: { host: (x: number) => (port.postMessage('running'), x) } },
  })
  await spinner.call('announceAndSpin', [], { timeoutMs: 10_000 })
} else if (mode === 'host-hang') {
  const imports = typesImports()
  // Held, so that a garbage collection before the termination cannot end the call (finding S1).
  const held: Array<Promise<never>> = []
  imports.double = () => {
    port.postMessage('waiting')
    const never = new Promise<never>(() => undefined)
    held.push(never)
    return never
  }
  const hanging = await component.instantiate({ limits: { memoryBytes: 4 << 20 }, imports })
  await hanging.call('call-double', [1])
} else {
  // Left undisposed on purpose: the worker's exit (or its termination) must free them.
  const instance = await component.instantiate({ limits: { memoryBytes: 4 << 20 }, imports: typesImports() })
  const greeting = await instance.call('test:types/numbers@0.1.0#greet', ['worker'])
  const doubled = instance.callSync('call-double', [21])
  const sum = core
    .instantiateSync({ limits: { memoryBytes: 4 * PAGE }, imports: { env: { host: (x: number) => x } } })
    .callSync('add', [2, 3])
  port.postMessage({ greeting, doubled, sum })
  // 'terminate' waits to be terminated with live instances; 'exit' ends by itself.
  if (mode === 'terminate') setInterval(() => undefined, 60_000)
}
