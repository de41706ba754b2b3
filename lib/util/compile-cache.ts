import { createHash } from 'node:crypto'

/**
 * Compiled code per engine, keyed by the SHA-256 of the bytes: compiling the same bytes again
 * returns the same compiled object, as V8 does for `WebAssembly.Module`. Entries are weak, so the
 * cache never keeps compiled code alive by itself; a pending compile is shared by concurrent callers.
 */
export class CompileCache<T extends object> {
  readonly #entries = new Map<string, WeakRef<T> | Promise<T>>()
  readonly #forget = new FinalizationRegistry<string>((key) => {
    const entry = this.#entries.get(key)
    if (entry instanceof WeakRef && entry.deref() === undefined) this.#entries.delete(key)
  })

  /**
   * The cached object for `bytes`, or the one `compile` makes (and the cache then keeps, weakly).
   * `compile` gets the bytes' SHA-256 in hex, which the engine's on-disk cache uses as well.
   */
  get(bytes: Uint8Array, compile: (digest: string) => T): T {
    const key = keyOf(bytes)
    const entry = this.#entries.get(key)
    const alive = entry instanceof WeakRef ? entry.deref() : undefined
    if (alive !== undefined) return alive
    const compiled = compile(key)
    if (!(entry instanceof Promise)) this.#remember(key, compiled)
    return compiled
  }

  /** The same as {@link CompileCache.get} for an asynchronous compile. */
  async getAsync(bytes: Uint8Array, compile: (digest: string) => Promise<T>): Promise<T> {
    const key = keyOf(bytes)
    const entry = this.#entries.get(key)
    if (entry instanceof Promise) return entry
    const alive = entry?.deref()
    if (alive !== undefined) return alive
    const pending = compile(key)
    this.#entries.set(key, pending)
    try {
      const compiled = await pending
      this.#remember(key, compiled)
      return compiled
    } catch (error) {
      this.#entries.delete(key)
      throw error
    }
  }

  #remember(key: string, compiled: T): void {
    this.#entries.set(key, new WeakRef(compiled))
    this.#forget.register(compiled, key)
  }
}

function keyOf(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}
