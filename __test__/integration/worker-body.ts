/** Runs inside a worker thread for worker-threads.spec.ts. */
import { parentPort, workerData } from 'node:worker_threads'

import { Engine } from '../../lib/index.js'
import { typesImports, typesWasm } from '../helpers.js'

const engine = new Engine()
const component = await engine.compileComponent(typesWasm)
const instance = await component.instantiate({ limits: { memoryBytes: 4 << 20 }, imports: typesImports() })

const mode = (workerData as { mode: string }).mode
if (mode === 'host-hang') {
  // A guest waiting on a host Promise that never settles when the worker is terminated.
  const imports = typesImports()
  imports.double = () => {
    parentPort?.postMessage('waiting')
    return new Promise(() => undefined)
  }
  const hanging = await component.instantiate({ limits: { memoryBytes: 4 << 20 }, imports })
  await hanging.call('call-double', [1])
} else if (mode === 'compile-burst') {
  // Compiles queued on one engine (it runs a core's worth at once) when the worker is terminated;
  // each one that runs stores its code in cacheDir, which the parent counts.
  const { cacheDir, count } = workerData as { cacheDir: string; count: number }
  const burst = new Engine({ cacheDir })
  const busy = (seed: number) =>
    `(module (global i32 (i32.const ${seed})) ${`(func (param i64) (result i64) ${'local.get 0 i64.const 7 i64.mul local.get 0 i64.xor '.repeat(10)}${'i64.add '.repeat(9)})`.repeat(400)})`
  const compiles = Array.from({ length: count }, (_, seed) => burst.compileModule(busy(seed)))
  parentPort?.postMessage('queued')
  await Promise.all(compiles)
} else if (mode === 'spin') {
  // The guest itself says it runs: it calls `running` (a host function) and then loops, so the
  // parent's terminate() lands while wasm executes, not before the call starts.
  const spinner = await engine.compileModule(
    '(module (import "env" "running" (func $running)) (func (export "spin") call $running (loop br 0)))',
  )
  const guest = await spinner.instantiate({
    limits: { memoryBytes: 0 },
    imports: { env: { running: () => parentPort?.postMessage('running') } },
  })
  await guest.call('spin', [], { timeoutMs: 5_000 }).catch(() => undefined)
} else {
  const greeting = await instance.call('test:types/numbers@0.1.0#greet', ['worker'])
  const doubled = instance.callSync('call-double', [21])
  const module = engine.compileModuleSync(
    '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))',
  )
  const sum = module.instantiateSync({ limits: { memoryBytes: 0 } }).callSync('add', [2, 3])
  parentPort?.postMessage({ greeting, doubled, sum })
}
