// Child process for worker-threads.spec.ts: its main thread never loads the addon, only its
// workers do, one after another, ending in each way a worker can end (by itself, terminated while
// its guest runs, terminated while its guest waits on a host Promise). When the last worker that
// loaded an addon ends, Node unloads the library, so anything of the addon still running or
// registered afterwards (a thread, a thread-local destructor) would crash this process. It prints
// `survived` and exits 0 only if it lives on after every worker's end.
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
