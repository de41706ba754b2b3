import test from 'ava'

import { BUCKET_LIMIT, CompileCache, SAMPLED_BYTES } from '../../lib/util/compile-cache.js'

class Compiled {
  constructor(readonly serial: number) {}
}

/** A cache and a compile function that counts its calls. */
function counting(): { cache: CompileCache<Compiled>; compile: () => Compiled; compiles: () => number } {
  let serial = 0
  return {
    cache: new CompileCache<Compiled>(),
    compile: () => new Compiled(++serial),
    compiles: () => serial,
  }
}

function input(length: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(length)
  for (let at = 0; at < length; at++) bytes[at] = (at * 31 + seed) & 0xff
  return bytes
}

/** A position the key's sample skips in an input of `length` bytes (the sample reads every length/SAMPLED_BYTES-th). */
function unsampledPosition(length: number): number {
  const step = length / SAMPLED_BYTES
  return Math.floor(step / 2) + 1
}

test('the same bytes compile once, from any array holding them', (t) => {
  const { cache, compile, compiles } = counting()
  const bytes = input(4096)
  const first = cache.get(bytes, compile)
  t.is(cache.get(bytes, compile), first)
  t.is(cache.get(input(4096), compile), first, 'another array with equal bytes')
  const framed = new Uint8Array(4096 + 16)
  framed.set(bytes, 8)
  t.is(cache.get(framed.subarray(8, 8 + 4096), compile), first, 'a view at an offset')
  t.is(cache.get(Buffer.from(bytes), compile), first, 'a Buffer')
  t.is(compiles(), 1)
})

test('one changed byte the lookup key does not sample is still a different input', (t) => {
  const { cache, compile, compiles } = counting()
  const bytes = input(1 << 20)
  const original = cache.get(bytes, compile)
  const at = unsampledPosition(bytes.length)
  bytes[at] = (bytes[at] ?? 0) ^ 0xff
  const changed = cache.get(bytes, compile)
  t.not(changed, original)
  t.is(compiles(), 2)
  bytes[at] = (bytes[at] ?? 0) ^ 0xff
  t.is(cache.get(bytes, compile), original, 'changing it back finds the first compile again')
  t.is(compiles(), 2)
})

test('the cache keeps its own copy: changing the caller array after a compile changes nothing cached', (t) => {
  const { cache, compile } = counting()
  const bytes = input(300)
  const original = cache.get(bytes, compile)
  const kept = input(300)
  bytes.fill(0)
  t.is(cache.get(kept, compile), original)
  t.not(cache.get(bytes, compile), original)
})

test('inputs crafted to share a key each get their own compile, and a key holds a bounded number of them', (t) => {
  const { cache, compile, compiles } = counting()
  const length = 1 << 16
  const at = unsampledPosition(length)
  const variants = Array.from({ length: BUCKET_LIMIT + 3 }, (_, index) => {
    const bytes = input(length)
    bytes[at] = index
    return bytes
  })
  const compiled = variants.map((bytes) => cache.get(bytes, compile))
  t.is(new Set(compiled).size, variants.length, 'no two inputs share compiled code')
  t.is(compiles(), variants.length)
  // The newest BUCKET_LIMIT are cached; the older ones were let go and compile again.
  for (const [index, bytes] of variants.entries()) {
    if (index >= variants.length - BUCKET_LIMIT)
      t.is(cache.get(bytes, compile) as Compiled | undefined, compiled[index])
  }
  t.is(compiles(), variants.length)
  t.not(cache.get(variants[0] as Uint8Array, compile), compiled[0])
  t.is(compiles(), variants.length + 1)
})

test('what is compiled is what is remembered, even when the caller changes its array during the compile', (t) => {
  const cache = new CompileCache<Compiled>()
  const bytes = input(1 << 16)
  const original = input(1 << 16)
  let compiledFrom: Uint8Array | undefined
  const first = cache.get(bytes, (own) => {
    t.not(own, bytes, 'the compile gets the cache own copy')
    // Another thread writing a shared buffer, in effect: the caller's array changes mid-compile.
    bytes.fill(7)
    compiledFrom = own
    return new Compiled(1)
  })
  t.deepEqual(compiledFrom, original)
  t.is(
    cache.get(original, () => new Compiled(2)),
    first,
    'the bytes that were compiled find their code',
  )
  t.not(
    cache.get(bytes, () => new Compiled(3)),
    first,
    'the changed bytes do not',
  )
})

test('an input shorter than the sample and an empty input are cached by all their bytes', (t) => {
  const { cache, compile, compiles } = counting()
  const empty = cache.get(new Uint8Array(0), compile)
  t.is(cache.get(new Uint8Array(0), compile), empty)
  const a = cache.get(Uint8Array.of(1, 2, 3), compile)
  t.not(cache.get(Uint8Array.of(1, 2, 4), compile), a)
  t.is(cache.get(Uint8Array.of(1, 2, 3), compile), a)
  t.is(compiles(), 3)
})

test('concurrent asynchronous compiles of the same bytes share one; a failed compile is not kept', async (t) => {
  const cache = new CompileCache<Compiled>()
  let compiles = 0
  const slow = async () => {
    compiles++
    await new Promise((resolve) => setTimeout(resolve, 10))
    return new Compiled(compiles)
  }
  const bytes = input(2048)
  const [a, b] = await Promise.all([cache.getAsync(bytes, slow), cache.getAsync(input(2048), slow)])
  t.is(a, b)
  t.is(
    cache.get(bytes, () => new Compiled(-1)),
    a,
    'the synchronous path sees the finished compile',
  )
  t.is(compiles, 1)

  const other = input(2048, 7)
  await t.throwsAsync(
    cache.getAsync(other, () => Promise.reject(new Error('bad bytes'))),
    { message: 'bad bytes' },
  )
  const retried = await cache.getAsync(other, slow)
  t.is(retried.serial, 2)
})
