// Child process for worker-threads.spec.ts: its main thread never loads the addon, only its
// workers do, one after another, ending in each way a worker can end (by itself, terminated while
// its guest runs, terminated while its guest waits on a host Promise). Whatever the addon keeps
// for the process must outlive the thread that first loaded it: mimalloc v3's main heap did not
// (the next thread to allocate crashed), and a library unloaded with its last environment would
// not either (our threads and thread-local destructors run on). It prints `survived` and exits 0
// only if the process lives on after every worker's end.
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'

const entry = new URL('./worker.mjs', import.meta.url)

async function run(mode) {
  const worker = new Worker(entry, { workerData: { mode } })
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  const message = await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  if (mode === 'component') return { mode, message, code: await exited }
  // The guest runs (or waits) now: end the worker under it.
  if (mode === 'spin') await sleep(50)
  return { mode, message, code: await worker.terminate() }
}

const ends = []
for (const mode of ['component', 'spin', 'host-hang', 'component']) ends.push(await run(mode))
// Threads the addon started (the epoch ticker ticks every few ms) run again in this time.
await sleep(300)
console.log(JSON.stringify(ends))
console.log('survived')
