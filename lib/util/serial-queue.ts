/** Runs async tasks one at a time, in the order they were queued; a failed task does not stop the rest. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve()
  #pending = 0

  /** Tasks queued or running. */
  get pending(): number {
    return this.#pending
  }

  /** Settles once every task queued so far has settled. */
  get idle(): Promise<unknown> {
    return this.#tail
  }

  /** Starts `task` now when nothing is queued or running (so it reads its inputs now), else after the rest. */
  run<T>(task: () => Promise<T>): Promise<T> {
    this.#pending++
    const started =
      this.#pending === 1 ? new Promise<T>((resolve) => resolve(task())) : this.#tail.then(task, task)
    const result = started.finally(() => this.#pending--)
    this.#tail = result.catch(() => undefined)
    return result
  }
}
