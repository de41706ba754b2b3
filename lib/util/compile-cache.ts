/**
 * Compiled code per engine, found by the bytes themselves: compiling the same bytes again returns
 * the same compiled object, as V8 does for `WebAssembly.Module`.
 *
 * A lookup hashes a sample of the input (its length and at most {@link SAMPLED_BYTES} bytes spread
 * over it) to find candidates, then compares the whole input with the copy of the bytes each entry
 * keeps (one `memcmp`, ~22 µs for 1 MiB here, where a SHA-256 took ~580 µs). A hit is therefore
 * byte-for-byte exact whatever the sample says: there is no collision to engineer. Inputs that
 * share a sample only share a bucket; a bucket holds at most {@link BUCKET_LIMIT} entries (the
 * oldest leaves first), so crafted inputs can make their own compiles miss the cache but never
 * make a lookup compare more than that many times.
 *
 * Entries are weak, so the cache never keeps compiled code alive by itself; the copy of the bytes
 * lives as long as the compiled object does. A pending compile is shared by concurrent callers.
 */
export class CompileCache<T extends object> {
  readonly #buckets = new Map<string, Entry<T>[]>()
  readonly #forget = new FinalizationRegistry<Entry<T>>((entry) => this.#remove(entry))

  /**
   * The cached object for `bytes`, or the one `compile` makes (and the cache then keeps, weakly).
   * `compile` gets the cache's own copy of the bytes: what is compiled is what is remembered, even
   * if the caller's array changes meanwhile (a SharedArrayBuffer another thread writes).
   */
  get(bytes: Uint8Array, compile: (own: Uint8Array) => T): T {
    const hit = this.#find(bytes)
    if (hit !== undefined && !(hit instanceof Promise)) return hit
    const own = copy(bytes)
    const compiled = compile(own)
    // While an asynchronous compile of the same bytes is pending, it will be the one remembered.
    if (hit === undefined) this.#remember(own, compiled)
    return compiled
  }

  /** The same as {@link CompileCache.get} for an asynchronous compile. */
  async getAsync(bytes: Uint8Array, compile: (own: Uint8Array) => Promise<T>): Promise<T> {
    const hit = this.#find(bytes)
    if (hit !== undefined) return hit
    const own = copy(bytes)
    const compiling = compile(own)
    const pending: Entry<T> = { key: sampleKey(own), bytes: own, compiled: compiling }
    this.#add(pending)
    try {
      const compiled: T = await compiling
      pending.compiled = new WeakRef(compiled)
      this.#forget.register(compiled, pending)
      return compiled
    } catch (error) {
      this.#remove(pending)
      throw error
    }
  }

  /**
   * What the cache holds for exactly `bytes`: the compiled object, or the pending compile. An entry
   * whose compiled object was collected is dropped on the way.
   */
  #find(bytes: Uint8Array): T | Promise<T> | undefined {
    const entry = this.#buckets
      .get(sampleKey(bytes))
      ?.find((candidate) => Buffer.compare(candidate.bytes, bytes) === 0)
    if (entry === undefined) return undefined
    if (entry.compiled instanceof Promise) return entry.compiled
    const hit = entry.compiled.deref()
    if (hit === undefined) this.#remove(entry)
    return hit
  }

  /** Keeps `compiled`, made from `own` (the cache's copy of the bytes). */
  #remember(own: Uint8Array, compiled: T): void {
    const entry: Entry<T> = { key: sampleKey(own), bytes: own, compiled: new WeakRef(compiled) }
    this.#add(entry)
    this.#forget.register(compiled, entry)
  }

  #add(entry: Entry<T>): void {
    const bucket = this.#buckets.get(entry.key)
    if (bucket === undefined) {
      this.#buckets.set(entry.key, [entry])
      return
    }
    if (bucket.length >= BUCKET_LIMIT) bucket.shift()
    bucket.push(entry)
  }

  #remove(entry: Entry<T>): void {
    const bucket = this.#buckets.get(entry.key)
    const at = bucket?.indexOf(entry) ?? -1
    if (bucket === undefined || at < 0) return
    bucket.splice(at, 1)
    if (bucket.length === 0) this.#buckets.delete(entry.key)
  }
}

interface Entry<T extends object> {
  key: string
  /** A private copy of the input: the caller may change its array after compiling. */
  bytes: Uint8Array
  compiled: WeakRef<T> | Promise<T>
}

/** Bytes of an input the lookup key reads (all of a smaller input). */
export const SAMPLED_BYTES = 512
/** Entries that may share one key. */
export const BUCKET_LIMIT = 4

function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes)
}

/**
 * The length and a 32-bit FNV-1a hash of {@link SAMPLED_BYTES} bytes spread evenly over the input.
 * Not a digest: it only narrows the candidates the exact comparison looks at.
 */
function sampleKey(bytes: Uint8Array): string {
  const length = bytes.length
  const step = Math.max(1, length / SAMPLED_BYTES)
  let hash = 0x811c9dc5
  for (let at = 0; at < length; at += step) {
    hash = Math.imul(hash ^ (bytes[Math.floor(at)] ?? 0), 0x01000193)
  }
  return `${length}:${hash >>> 0}`
}
