/**
 * The soak's worker lane: worker threads that load the addon, run guests and end, in four ways
 * in turn: by themselves after their calls, terminated while idle with live instances, terminated
 * while their guest runs wasm, and terminated while their guest waits on a host Promise.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { isDeepStrictEqual } from 'node:util'
import { Worker } from 'node:worker_threads'

import { describe, type Problems } from './load.js'

export type WorkerMode = 'exit' | 'terminate' | 'spin' | 'host-hang'
export interface WorkerData {
  mode: WorkerMode
  /** `Component.serialize()` of the `types` fixture, made by the main thread. */
  serialized: Uint8Array
}

const MODES: readonly WorkerMode[] = ['exit', 'terminate', 'spin', 'host-hang']
const EXPECTED = { greeting: 'Hello, worker!', doubled: 42, sum: 5 }
/** Longest a worker may take to report or to end: far beyond its start-up (well under 2 s). */
const WORKER_TIMEOUT_MS = 30_000

/** What the worker says first, in each mode. */
function expectedMessage(mode: WorkerMode): unknown {
  return mode === 'spin' ? 'running' : mode === 'host-hang' ? 'waiting' : EXPECTED
}

export class WorkerLane {
  started = 0
  readonly #entry: URL
  readonly #serialized: Uint8Array
  readonly #problems: Problems
  /** Pause between workers, so that their start-up does not take a whole core. */
  readonly #pauseMs: number

  /** `entry` is the worker body as JavaScript (see worker-build.ts). */
  constructor(entry: URL, serialized: Uint8Array, problems: Problems, pauseMs: number) {
    this.#entry = entry
    this.#serialized = serialized
    this.#problems = problems
    this.#pauseMs = pauseMs
  }

  /** Starts workers one after another until `deadline` (a `performance.now()` time). */
  async run(deadline: number): Promise<void> {
    while (performance.now() < deadline) {
      const mode = MODES[this.started % MODES.length] ?? 'exit'
      this.started++
      try {
        await this.#cycle(mode)
      } catch (error) {
        this.#problems.add(`worker (${mode}): ${describe(error)}`)
      }
      await sleep(this.#pauseMs)
    }
  }

  async #cycle(mode: WorkerMode): Promise<void> {
    const data: WorkerData = { mode, serialized: this.#serialized }
    const worker = new Worker(this.#entry, { workerData: data })
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve))
    const failed = new Promise<never>((_, reject) => worker.once('error', reject))
    const timer = new AbortController()
    const timedOut = sleep(WORKER_TIMEOUT_MS, undefined, { signal: timer.signal }).then(() => {
      throw new Error(`no message or exit within ${WORKER_TIMEOUT_MS} ms`)
    })
    timedOut.catch(() => undefined)
    try {
      const message = await Promise.race([
        new Promise((resolve) => worker.once('message', resolve)),
        failed,
        exited.then((code) => Promise.reject(new Error(`exited with ${code} before its message`))),
        timedOut,
      ])
      if (!isDeepStrictEqual(message, expectedMessage(mode))) {
        this.#problems.add(`worker (${mode}): said ${JSON.stringify(message)}`)
      }
      if (mode === 'exit') {
        const code = await Promise.race([exited, failed, timedOut])
        if (code !== 0) this.#problems.add(`worker (exit): exit code ${code}, expected 0`)
        return
      }
      // The spinning guest reported from its host import: let it return into its loop first.
      if (mode === 'spin') await sleep(20)
      const code = await worker.terminate()
      if (code !== 1)
        this.#problems.add(`worker (${mode}): terminate() gave ${code}, expected 1 (still running)`)
    } finally {
      timer.abort()
      await worker.terminate()
    }
  }
}
