import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

import test, { type ExecutionContext } from 'ava'

import { tempDir, typesInstance } from '../helpers.js'

function runWorker(mode: string): Promise<unknown> {
  const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
    workerData: { mode },
  })
  return new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
    worker.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`worker exited with ${code}`))))
  })
}

test('the addon loads and runs components inside worker threads, beside the main thread', async (t) => {
  const main = typesInstance()
  const [a, b] = await Promise.all([runWorker('component'), runWorker('component')])
  t.deepEqual(a, { greeting: 'Hello, worker!', doubled: 42, sum: 5 })
  t.deepEqual(b, a)
  t.is(main.callSync('call-double', [2]), 4)
})

test('a worker terminated while its guest runs does not take the process down', async (t) => {
  const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
    workerData: { mode: 'spin' },
  })
  const first = await Promise.race([
    new Promise((resolve) => worker.once('message', resolve)),
    new Promise((resolve) => setTimeout(resolve, 30_000, 'no message within 30 s')),
  ])
  t.is(first, 'running')
  // Let the host call return: the guest is then inside its loop on a pool thread.
  await new Promise((resolve) => setTimeout(resolve, 50))
  const started = performance.now()
  t.is(await worker.terminate(), 1, 'the worker was still running the guest')
  t.true(performance.now() - started < 4_000, 'terminate did not wait for the guest deadline')
  const main = typesInstance()
  t.is(await main.call('roundtrip-u8', [7]), 7)
})

test('a worker terminated while its guest waits on a host Promise does not hang or crash', async (t) => {
  const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
    workerData: { mode: 'host-hang' },
  })
  t.is(await new Promise((resolve) => worker.once('message', resolve)), 'waiting')
  t.is(await worker.terminate(), 1)
  // The pool thread that ran the guest is told the environment went away; the pool keeps serving.
  const main = typesInstance()
  t.is(await main.call('call-double', [21]), 42)
  t.deepEqual(await Promise.all([1, 2, 3].map((x) => main.call('roundtrip-u8', [x]))), [1, 2, 3])
})

test('a worker terminated with compiles queued: they never start, only those running finish', async (t) => {
  // Probe H51: all 60 compiles a terminated worker had queued ran to their end, holding a core for
  // 20 s, and the main thread's own compile waited 5-15 s behind them.
  const cacheDir = tempDir(t, 'worker-compiles')
  const count = 40
  const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
    workerData: { mode: 'compile-burst', cacheDir, count },
  })
  t.is(await new Promise((resolve) => worker.once('message', resolve)), 'queued')
  await new Promise((resolve) => setTimeout(resolve, 200))
  await worker.terminate()
  // Each compile that ran stored a file; wait until none has for a while.
  const stored = () =>
    readdirSync(cacheDir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).length
  let last = -1
  for (let quiet = 0; quiet < 10;) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    const now = stored()
    quiet = now === last ? quiet + 1 : 0
    last = now
  }
  t.true(last < count / 2, `${last} of ${count} compiles ran after the worker was terminated`)
})

/**
 * Runs the script at `file` (beside this one) in a child process, killed after a minute, and
 * checks that it ended by itself with status 0, not by a signal; returns its stdout.
 */
async function survivingChild(t: ExecutionContext, file: string): Promise<string> {
  const child = spawn(process.execPath, [fileURLToPath(new URL(file, import.meta.url))], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text))
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [status, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  t.is(signal, null, `the process was killed by ${signal}; stderr: ${stderr}`)
  t.is(status, 0, stderr)
  return stdout
}

test('a process that loads the addon only in worker threads survives the end of each of them', async (t) => {
  // In a child process, since the failure this guards against (a thread of the addon running after
  // the first worker's end broke it) is a crash of the whole process.
  const stdout = await survivingChild(t, './worker-only.mjs')
  const [ends, last] = stdout.trim().split('\n')
  t.is(last, 'survived')
  t.deepEqual(JSON.parse(ends ?? 'null'), [
    { mode: 'component', message: { greeting: 'Hello, worker!', doubled: 42, sum: 5 }, code: 0 },
    { mode: 'spin', message: 'running', code: 1 },
    { mode: 'host-hang', message: 'waiting', code: 1 },
    { mode: 'component', message: { greeting: 'Hello, worker!', doubled: 42, sum: 5 }, code: 0 },
  ])
})

test("a recursing guest called with callSync deep in a worker's JS stack is a StackOverflowError, not a crash", async (t) => {
  // In a child process: the failure this guards against killed the whole process (SIGSEGV).
  const stdout = await survivingChild(t, './deep-stack-worker.mjs')
  const { outcomes, own } = JSON.parse(stdout) as {
    outcomes: Record<string, string>
    own: { refused: string; after: unknown }
  }
  t.deepEqual(Object.keys(outcomes), ['0', '0.5', '0.7', '0.8', '0.9'])
  for (const [fraction, outcome] of Object.entries(outcomes)) {
    t.is(outcome, 'ERR_WASM_TRAP_STACK_OVERFLOW', `at ${fraction} of the JS stack`)
  }
  // Refused before the guest ran: the `own` argument was never the guest's, so it stays usable.
  t.deepEqual(own, { refused: 'ERR_WASM_TRAP_STACK_OVERFLOW', after: 'returned 1' })
})
