import { abortedBy, isAborted, onAbort } from './signal.js'

/** Runs async tasks one at a time, in the order they were queued; a failed task does not stop the rest. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve()
  #pending = 0
  /** How to abandon each task waiting its turn. */
  readonly #waiting = new Set<(reason: unknown) => void>()

  /** Tasks queued or running. */
  get pending(): number {
    return this.#pending
  }

  /** Settles once every task queued so far has settled. */
  get idle(): Promise<unknown> {
    return this.#tail
  }

  /**
   * Starts `task` now when nothing is queued or running (so it reads its inputs now), else after
   * the rest. While it waits, `signal` aborting rejects it at once with AbortError, and it never
   * starts: a waiting task must not be held behind a running one for that one's whole deadline. An
   * already aborted signal is refused before it waits, since it never fires again.
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (isAborted(signal)) return Promise.reject(abortedBy(signal))
    this.#pending++
    let state = 'waiting' as 'waiting' | 'started' | 'abandoned'
    const start = (): Promise<T> | undefined => {
      if (state === 'abandoned') return undefined
      state = 'started'
      return task()
    }
    const started =
      this.#pending === 1
        ? new Promise<T | undefined>((resolve) => resolve(start()))
        : this.#tail.then(start, start)
    const result = started.finally(() => {
      if (state !== 'abandoned') this.#pending--
    }) as Promise<T>
    // The tail follows `started`, not `result`: a handler on `result` would mark it handled, and
    // a failed call whose Promise the caller drops would then go unreported (no
    // `unhandledRejection`), unlike any other Promise. `result`'s own handler runs first.
    this.#tail = started.then(
      () => undefined,
      () => undefined,
    )
    if (state === 'started') return result
    return new Promise<T>((resolve, reject) => {
      const abandon = (reason: unknown) => {
        if (state !== 'waiting') return
        state = 'abandoned'
        this.#pending--
        this.#waiting.delete(abandon)
        reject(reason)
      }
      this.#waiting.add(abandon)
      const stop = signal === undefined ? undefined : onAbort(signal, () => abandon(abortedBy(signal)))
      result.then(resolve, reject).finally(() => {
        stop?.()
        this.#waiting.delete(abandon)
      })
    })
  }

  /**
   * Rejects every task still waiting its turn with `reason()`, at once: they never start. What
   * waits behind a running task must not wait for it to learn it never will run (an instance
   * disposed meanwhile).
   */
  abandonWaiting(reason: () => unknown): void {
    for (const abandon of [...this.#waiting]) abandon(reason())
  }
}
