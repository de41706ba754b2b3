/**
 * `forwarding`: random WIT types, both directions. For each type T a component whose export
 * `f: func(x: T) -> T` hands its argument to the host's `g` of the same type and returns what `g`
 * gave (fuzz/forwarding-wat.ts); the host's `g` gives back what it got. A random valid value then
 * crosses JS → guest → JS → guest → JS, and must reach `g` and come back from `f` as the README's
 * mapping says (the oracle of fuzz/wit.ts), on every call path, with a sync and an async `g`. Types
 * nobody picked (deep nesting, names objects inherit, tags inside results) are where the fixed
 * `types` fixture cannot look.
 */
import { isDeepStrictEqual, inspect } from 'node:util'

import fc from 'fast-check'

import { ComponentError, Engine, type Component } from '../lib/index.js'
import { fromText, toText } from './codec.js'
import { forwardingWat } from './forwarding-wat.js'
import { expect, type Target } from './target.js'
import { camel, expected, valid, witType, type Wit } from './wit.js'

const show = (value: unknown) => inspect(value, { depth: 8, breakLength: Infinity, maxArrayLength: 10 })

export interface ForwardingInput {
  type: Wit
  values: unknown[]
  /** Whether the host's `g` returns a Promise (then only `call` may run it). */
  async: boolean
  /** Whether `g` gives a result back as the result itself, where that is not ambiguous. */
  itself: boolean
}

/**
 * What a host function of result type T gives for the value `x` it got back: the ok value, or a
 * throw whose `payload` is the err (a host function returns the ok value and throws the err); with
 * `itself`, the result itself where its tag is not one the ok value may carry.
 */
function answer(type: Wit, x: unknown, itself: boolean): unknown {
  if (typeof type !== 'object' || !('result' in type)) return x
  const { tag, val } = x as { tag: 'ok' | 'err'; val?: unknown }
  if (itself && !carries(type.result[0], tag)) return x
  if (tag === 'ok') return val
  throw Object.assign(new Error('err'), { payload: val })
}

/**
 * Whether a JS value of `ok` may have an own `tag` of `tag` (jco's rule, restated): a result's
 * has either, a variant's its cases, a record with a field and flags with a flag keyed `tag` any,
 * an option's what its element's may.
 */
function carries(ok: Wit | null, tag: string): boolean {
  if (ok === null || typeof ok === 'string') return false
  if ('result' in ok) return true
  if ('variant' in ok) return ok.variant.some(([name]) => name === tag)
  if ('record' in ok) return ok.record.some(([name]) => camel(name) === 'tag')
  if ('flags' in ok) return ok.flags.some((name) => camel(name) === 'tag')
  if ('option' in ok) return carries(ok.option, tag)
  return false
}

/** What `f` gives for `want` (the value as it comes back): a result's ok value, or a ComponentError. */
function outcomeOf(type: Wit, want: unknown): { ok: true; value: unknown } | { ok: false; payload: unknown } {
  if (typeof type !== 'object' || !('result' in type)) return { ok: true, value: want }
  const { tag, val } = want as { tag: 'ok' | 'err'; val?: unknown }
  return tag === 'ok' ? { ok: true, value: val } : { ok: false, payload: val }
}

export function forwardingTarget(): Target<ForwardingInput> {
  let engine: Engine | undefined
  const compiled = new Map<string, Component>()
  const component = (wat: string) => {
    engine ??= new Engine()
    let found = compiled.get(wat)
    if (found === undefined) {
      // A few dozen components at most stay compiled: types rarely repeat.
      if (compiled.size >= 32) compiled.clear()
      found = engine.compileComponentSync(wat)
      compiled.set(wat, found)
    }
    return found
  }
  return {
    name: 'forwarding',
    extension: '.json',
    arbitrary: witType().chain((type) =>
      fc.record({
        type: fc.constant(type),
        values: fc.array(valid(type), { minLength: 1, maxLength: 4 }),
        async: fc.boolean(),
        itself: fc.boolean(),
      }),
    ),
    async check({ type, values, async, itself }) {
      const { wat, interfaceName } = forwardingWat(type)
      let received: unknown[] = []
      const g = async
        ? async (x: unknown) => {
            received.push(x)
            await null
            return answer(type, x, itself)
          }
        : (x: unknown) => {
            received.push(x)
            return answer(type, x, itself)
          }
      const instance = component(wat).instantiateSync({
        limits: { memoryBytes: 64 << 20 },
        imports: { [interfaceName]: { g } },
      })
      try {
        const exports = instance.exports as { f(x: unknown): unknown }
        const vias = {
          exports: (x: unknown) => exports.f(x),
          callSync: (x: unknown) => instance.callSync('f', [x]),
          call: (x: unknown) => instance.call('f', [x]),
        }
        for (const value of values) {
          const want = expected(type, value)
          const outcome = outcomeOf(type, want)
          for (const [via, run] of Object.entries(vias)) {
            if (async && via !== 'call') continue
            received = []
            const context = () => `${via} f(${show(value)}) for ${show(type)} (${async ? 'async' : 'sync'} g)`
            let got: { ok: true; value: unknown } | { ok: false; error: unknown }
            try {
              got = { ok: true, value: await run(value) }
            } catch (error) {
              got = { ok: false, error }
            }
            expect(
              received.length === 1 && isDeepStrictEqual(received[0], want),
              () => `${context()}: g received ${show(received)}, expected ${show(want)}`,
            )
            if (outcome.ok) {
              expect(
                got.ok && isDeepStrictEqual(got.value, outcome.value),
                () => `${context()}: gave ${show(got)}, expected ${show(outcome.value)}`,
              )
            } else {
              expect(
                !got.ok &&
                  got.error instanceof ComponentError &&
                  isDeepStrictEqual(got.error.payload, outcome.payload),
                () =>
                  `${context()}: gave ${show(got)}, expected a ComponentError of ${show(outcome.payload)}`,
              )
            }
            expect(!instance.poisoned, () => `${context()}: poisoned the instance`)
          }
        }
      } finally {
        instance.dispose()
      }
    },
    encode: (input) => new TextEncoder().encode(toText(input)),
    decode: (file) => fromText(new TextDecoder().decode(file)) as ForwardingInput,
    close: () => {
      compiled.clear()
      engine?.close()
    },
  }
}
