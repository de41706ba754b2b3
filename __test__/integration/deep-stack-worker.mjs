// For worker-threads.spec.ts: a guest that recurses without end, called with callSync from ever
// deeper in a worker's JS recursion. Node gives a worker a 4 MiB stack that JS may nearly fill,
// and wasmtime counts maxWasmStackBytes from where the call enters: without our check the guest
// ran past the thread's real stack and the whole process died of SIGSEGV. Prints one line of JSON:
// each depth's outcome.
import { isMainThread, parentPort, Worker } from 'node:worker_threads'

if (isMainThread) {
  const worker = new Worker(new URL(import.meta.url))
  const [outcomes] = await new Promise((resolve, reject) => {
    worker.once('message', (message) => resolve([message]))
    worker.once('error', reject)
  })
  console.log(JSON.stringify(outcomes))
} else {
  const { register } = await import('tsx/esm/api')
  register()
  const { Engine } = await import('../../lib/index.ts')
  const guest = new Engine()
    .compileModuleSync(
      `(module (func $r (export "r") (param i64) (result i64) (local i64 i64 i64 i64 i64 i64 i64 i64)
        local.get 0 i64.eqz if (result i64) i64.const 0
        else local.get 0 i64.const 1 i64.sub call $r i64.const 1 i64.add end))`,
    )
    .instantiateSync({ limits: { memoryBytes: 0 } })
  // One function both measures how deep this worker's JS can recurse (with no target) and goes
  // to a depth, so that its frames are the same size either way.
  let deepest = 0
  const descend = (depth, target) => {
    deepest = Math.max(deepest, depth)
    if (target === undefined || depth < target) return descend(depth + 1, target)
    try {
      return `returned ${guest.callSync('r', [10_000_000n])}`
    } catch (error) {
      return error.code ?? String(error)
    }
  }
  try {
    descend(0, undefined)
  } catch {
    // The JS stack's end: its depth is what was wanted.
  }
  const outcomes = {}
  for (const fraction of [0, 0.5, 0.7, 0.8, 0.9]) {
    try {
      outcomes[fraction] = descend(0, Math.floor(deepest * fraction))
    } catch (error) {
      outcomes[fraction] = `JS: ${error.constructor.name}`
    }
  }
  parentPort.postMessage(outcomes)
}
