// Hostile guests: hand-written WAT components whose exports, imports or realloc lie about the
// canonical ABI (wit-bindgen never produces these). A broken ABI is a GuestAbiError (a TrapError
// with trapCode 'CanonicalAbi'); a trap inside the guest's own code (realloc, post-return) is that
// trap's class; either way the instance is poisoned, and a fresh instance of the same component
// still works. Each case runs through callSync (guest on the JS thread) and call (on the pool).
import test, { type ExecutionContext } from 'ava'

import {
  BusyError,
  type Component,
  Engine,
  GuestAbiError,
  HostError,
  InstancePoisonedError,
  type Instance,
  LinkError,
  TimeoutError,
  TrapError,
  UnreachableError,
} from '../../lib/index.js'

import { BUMP_MEMORY_WAT } from '../helpers.js'

const engine = new Engine()

/** Canonical options of a lifted function that uses the core instance's memory and realloc. */
const MEMORY = '(memory (core memory $i "mem")) (realloc (core func $i "realloc")) string-encoding=utf8'

/** A core function `name` that writes the pair (a, b) at address 0 and returns 0: a return area. */
function returns(name: string, a: number, b: number): string {
  return `(func (export "${name}") (result i32)
    (i32.store (i32.const 0) (i32.const ${a | 0})) (i32.store (i32.const 4) (i32.const ${b | 0})) i32.const 0)`
}

/**
 * A component with one core instance `$i` of a module with a 64 KiB memory "mem", a "realloc"
 * with body `realloc` (bump-free: the body decides the pointer), the data segments and functions
 * given, and the lifted exports given. Every component also exports a well-behaved
 * `good: func() -> string` returning "ok".
 */
function hostile(parts: { realloc?: string; core?: string; types?: string; lifts?: string }): Component {
  return engine.compileComponentSync(`(component
    ${parts.types ?? ''}
    (core module $m
      (memory (export "mem") 1)
      (func (export "realloc") (param i32 i32 i32 i32) (result i32) ${parts.realloc ?? 'i32.const 1024'})
      ${returns('good', 64, 2)}
      (data (i32.const 64) "ok")
      ${parts.core ?? ''})
    (core instance $i (instantiate $m))
    (func (export "good") (result string) (canon lift (core func $i "good") ${MEMORY}))
    ${parts.lifts ?? ''})`)
}

const LIMITS = { memoryBytes: 1 << 20 }

type How = 'callSync' | 'call'
const BOTH: How[] = ['callSync', 'call']

/** Calls `name` through `how`, returning the error it throws (failing the test if it returns). */
async function failure(
  t: ExecutionContext,
  instance: Instance,
  how: How,
  name: string,
  args: unknown[] = [],
): Promise<TrapError> {
  let value: unknown
  try {
    value = how === 'callSync' ? instance.callSync(name, args) : await instance.call(name, args)
  } catch (error) {
    return error as TrapError
  }
  t.fail(`${how}('${name}') returned ${String(value)} instead of failing`)
  throw new Error(`${how}('${name}') did not fail`)
}

/**
 * `name` (called both ways, each on a fresh instance) fails with `Class` and `code`, a message
 * containing `reason`; the instance is then poisoned, and a fresh instance of the same component
 * works.
 */
async function rejects(
  t: ExecutionContext,
  component: Component,
  name: string,
  expected: { Class: new (...args: never[]) => TrapError; code: string; trapCode: string; reason: string },
  args: unknown[] = [],
  options: { timeoutMs?: number } = {},
): Promise<void> {
  for (const how of BOTH) {
    const instance = component.instantiateSync({ limits: LIMITS, ...options })
    const error = await failure(t, instance, how, name, args)
    t.true(error instanceof expected.Class, `${how}('${name}'): ${String(error)}`)
    t.like(error, { code: expected.code, trapCode: expected.trapCode }, `${how}('${name}')`)
    t.true(error.message.includes(expected.reason), `${how}('${name}'): ${error.message}`)
    t.true(instance.poisoned, `${how}('${name}') poisons the instance`)
    t.throws(() => instance.callSync('good'), {
      instanceOf: InstancePoisonedError,
      code: 'ERR_WASM_INSTANCE_POISONED',
    })
    await t.throwsAsync(instance.call('good'), { instanceOf: InstancePoisonedError })
    t.is(component.instantiateSync({ limits: LIMITS }).callSync('good'), 'ok')
  }
}

/** `name` breaks the canonical ABI: a GuestAbiError whose message contains `reason`. */
function abi(reason: string) {
  return { Class: GuestAbiError, code: 'ERR_WASM_GUEST_ABI', trapCode: 'CanonicalAbi', reason }
}

// --- Values the guest returns ----------------------------------------------------------------

test('a returned string that is not UTF-8 is a GuestAbiError that poisons the instance', async (t) => {
  const component = hostile({
    core: `${returns('bad-utf8', 16, 2)} ${returns('bad-utf8-in-list', 32, 1)}
      (data (i32.const 16) "\\ff\\fe")
      (data (i32.const 32) "\\10\\00\\00\\00\\02\\00\\00\\00")`,
    lifts: `(func (export "bad-utf8") (result string) (canon lift (core func $i "bad-utf8") ${MEMORY}))
      (func (export "bad-utf8-in-list") (result (list string)) (canon lift (core func $i "bad-utf8-in-list") ${MEMORY}))`,
  })
  await rejects(t, component, 'bad-utf8', abi('invalid utf-8 sequence'))
  await rejects(t, component, 'bad-utf8-in-list', abi('invalid utf-8 sequence'))
})

test('a returned UTF-16 string at an odd address or with an unpaired surrogate is a GuestAbiError', async (t) => {
  const utf16 = '(memory (core memory $i "mem")) (realloc (core func $i "realloc")) string-encoding=utf16'
  const component = hostile({
    core: `${returns('odd', 17, 1)} ${returns('surrogate', 16, 1)} (data (i32.const 16) "\\00\\d8")`,
    lifts: `(func (export "odd") (result string) (canon lift (core func $i "odd") ${utf16}))
      (func (export "surrogate") (result string) (canon lift (core func $i "surrogate") ${utf16}))`,
  })
  await rejects(t, component, 'odd', abi('string pointer not aligned to 2'))
  await rejects(t, component, 'surrogate', abi('unpaired surrogate found: d800'))
})

test('a returned string whose pointer and length run past memory, or wrap past 2^32, is a GuestAbiError', async (t) => {
  const cases: Array<[string, number, number]> = [
    ['past-the-end', 65_530, 100],
    ['wraps-32-bits', 0xffff_fff0, 0x20],
    ['length-max', 0, 0xffff_ffff],
  ]
  const component = hostile({
    core: cases.map(([name, pointer, length]) => returns(name, pointer, length)).join('\n'),
    lifts: cases
      .map(
        ([name]) =>
          `(func (export "${name}") (result string) (canon lift (core func $i "${name}") ${MEMORY}))`,
      )
      .join('\n'),
  })
  for (const [name] of cases) {
    await rejects(t, component, name, abi('string pointer/length out of bounds of memory'))
  }
})

test('a returned list at a misaligned address, or whose byte length overflows 32 bits, is a GuestAbiError', async (t) => {
  const component = hostile({
    core: `${returns('odd-address', 17, 1)} ${returns('u32-wraps', 0, 0x4000_0001)} ${returns('u64-wraps', 0, 0x2000_0000)}`,
    lifts: `(func (export "odd-address") (result (list u32)) (canon lift (core func $i "odd-address") ${MEMORY}))
      (func (export "u32-wraps") (result (list u32)) (canon lift (core func $i "u32-wraps") ${MEMORY}))
      (func (export "u64-wraps") (result (list u64)) (canon lift (core func $i "u64-wraps") ${MEMORY}))`,
  })
  await rejects(t, component, 'odd-address', abi('list pointer is not aligned'))
  // 0x40000001 u32s are 2^32 + 4 bytes: a 32-bit product would wrap to 4 and read in bounds.
  await rejects(t, component, 'u32-wraps', abi('list pointer/length out of bounds of memory'))
  await rejects(t, component, 'u64-wraps', abi('list pointer/length out of bounds of memory'))
})

test('a return area pointer out of bounds or misaligned is a GuestAbiError', async (t) => {
  const component = hostile({
    core: `(func (export "area-past-end") (result i32) i32.const -4)
      (func (export "area-odd") (result i32) i32.const 1)`,
    lifts: `(func (export "area-past-end") (result string) (canon lift (core func $i "area-past-end") ${MEMORY}))
      (func (export "area-odd") (result string) (canon lift (core func $i "area-odd") ${MEMORY}))`,
  })
  await rejects(t, component, 'area-past-end', abi('pointer out of bounds of memory'))
  await rejects(t, component, 'area-odd', abi('return pointer not aligned'))
})

test('invalid enum, variant, option and result discriminants are GuestAbiErrors naming the discriminant', async (t) => {
  const component = hostile({
    types: `(type $e' (enum "a" "b")) (export $e "e" (type $e'))
      (type $v' (variant (case "p" u32) (case "q"))) (export $v "v" (type $v'))`,
    core: `(func (export "enum") (result i32) i32.const 2)
      ${returns('variant', 9, 0)} ${returns('option', 2, 0)} ${returns('result', 0xffff_ffff, 0)}`,
    lifts: `(func (export "enum") (result $e) (canon lift (core func $i "enum")))
      (func (export "variant") (result $v) (canon lift (core func $i "variant") ${MEMORY}))
      (func (export "option") (result (option u32)) (canon lift (core func $i "option") ${MEMORY}))
      (func (export "result") (result (result u32 (error u32))) (canon lift (core func $i "result") ${MEMORY}))`,
  })
  await rejects(t, component, 'enum', abi('discriminant 2 out of range [0..2)'))
  await rejects(t, component, 'variant', abi('discriminant 9 out of range [0..2)'))
  await rejects(t, component, 'option', abi('discriminant 2 out of range [0..2)'))
  // A one-byte discriminant: only the low byte (255) is read.
  await rejects(t, component, 'result', abi('discriminant 255 out of range [0..2)'))
})

test('a char that is a surrogate or above U+10FFFF is a GuestAbiError', async (t) => {
  const component = hostile({
    core: `(func (export "surrogate") (result i32) i32.const 0xd800)
      (func (export "too-big") (result i32) i32.const 0x110000)`,
    lifts: `(func (export "surrogate") (result char) (canon lift (core func $i "surrogate")))
      (func (export "too-big") (result char) (canon lift (core func $i "too-big")))`,
  })
  await rejects(t, component, 'surrogate', abi('out of range for `char`'))
  await rejects(t, component, 'too-big', abi('out of range for `char`'))
})

test('a guest that enters or leaves itself where the canonical ABI forbids it is a GuestAbiError naming the trap', async (t) => {
  // It calls its own export back through an import of it, or its realloc or post-return calls an
  // import: these were plain TrapErrors, so a service sorting out broken guests by
  // ERR_WASM_GUEST_ABI missed them (probe Z21). The host function is never run.
  const component = await engine.compileComponent(`(component
    (import "ping" (func $ping))
    (core func $ping_l (canon lower (func $ping)))
    (core module $A
      (import "x" "ping" (func $ping))
      (memory (export "mem") 1)
      (func (export "inner") (result i32) i32.const 7)
      (func (export "realloc") (param i32 i32 i32 i32) (result i32) (call $ping) i32.const 1024)
      (func (export "pr") (param i32) (call $ping))
      (func (export "take") (param i32 i32) (result i32) local.get 1)
      (func (export "seven") (result i32) i32.const 7))
    (core instance $a (instantiate $A (with "x" (instance (export "ping" (func $ping_l))))))
    (func $inner (result u32) (canon lift (core func $a "inner")))
    (core func $inner_l (canon lower (func $inner)))
    (core module $B (import "x" "inner" (func $inner (result i32))) (func (export "outer") (result i32) (call $inner)))
    (core instance $b (instantiate $B (with "x" (instance (export "inner" (func $inner_l))))))
    (func (export "calls-itself") (result u32) (canon lift (core func $b "outer")))
    (func (export "realloc-calls-out") (param "s" string) (result u32)
      (canon lift (core func $a "take") (memory (core memory $a "mem")) (realloc (core func $a "realloc"))))
    (func (export "post-return-calls-out") (result u32)
      (canon lift (core func $a "seven") (post-return (core func $a "pr")))))`)
  const cases = [
    ['calls-itself', [], 'CannotEnterComponent', 'cannot enter component instance'],
    ['realloc-calls-out', ['x'], 'CannotLeaveComponent', 'cannot leave component instance'],
    ['post-return-calls-out', [], 'CannotLeaveComponent', 'cannot leave component instance'],
  ] as const
  for (const [name, args, trapCode, reason] of cases) {
    for (const how of BOTH) {
      let pinged = 0
      const instance = component.instantiateSync({ limits: LIMITS, imports: { ping: () => void pinged++ } })
      const error = await failure(t, instance, how, name, [...args])
      t.true(error instanceof GuestAbiError, `${how}('${name}'): ${String(error)}`)
      t.like(error, { code: 'ERR_WASM_GUEST_ABI', trapCode }, `${how}('${name}')`)
      t.true(error.message.includes(reason), error.message)
      t.true(instance.poisoned)
      t.is(pinged, 0)
    }
  }
})

test("a func(string) -> string (called through wasmtime's typed API) returning bad text is a GuestAbiError too", async (t) => {
  // The core function takes the argument's pointer and length and returns a return area.
  const echo = (name: string, a: number, b: number) =>
    `(func (export "${name}") (param i32 i32) (result i32)
      (i32.store (i32.const 0) (i32.const ${a | 0})) (i32.store (i32.const 4) (i32.const ${b | 0})) i32.const 0)`
  const utf16 = '(memory (core memory $i "mem")) (realloc (core func $i "realloc")) string-encoding=utf16'
  const component = hostile({
    core: `${echo('bad-utf8', 16, 2)} ${echo('past-the-end', 65_530, 100)} ${echo('wraps', 0xffff_fff0, 0x20)}
      ${echo('surrogate', 24, 1)} ${echo('fine', 64, 2)}
      (data (i32.const 16) "\\ff\\fe") (data (i32.const 24) "\\00\\d8")`,
    lifts: ['bad-utf8', 'past-the-end', 'wraps', 'fine']
      .map(
        (name) =>
          `(func (export "${name}") (param "s" string) (result string) (canon lift (core func $i "${name}") ${MEMORY}))`,
      )
      .join('\n')
      .concat(
        `(func (export "surrogate") (param "s" string) (result string) (canon lift (core func $i "surrogate") ${utf16}))`,
      ),
  })
  await rejects(t, component, 'bad-utf8', abi('invalid utf-8 sequence'), ['x'])
  await rejects(t, component, 'past-the-end', abi('string pointer/length out of bounds of memory'), ['x'])
  await rejects(t, component, 'wraps', abi('string pointer/length out of bounds of memory'), ['x'])
  await rejects(t, component, 'surrogate', abi('unpaired surrogate found: d800'), ['x'])
  const instance = component.instantiateSync({ limits: LIMITS })
  t.is(instance.callSync('fine', ['anything']), 'ok')
  t.is(await instance.call('fine', ['anything']), 'ok')
  t.is(instance.function('fine')('anything'), 'ok')
})

test('flag bits beyond the declared flags are ignored and any non-zero bool is true, as the canonical ABI defines', async (t) => {
  const component = hostile({
    types: `(type $f' (flags "x" "y")) (export $f "f" (type $f'))`,
    core: `(func (export "flags") (result i32) i32.const 0xfe)
      (func (export "bool") (result i32) i32.const 0x100)`,
    lifts: `(func (export "flags") (result $f) (canon lift (core func $i "flags")))
      (func (export "bool") (result bool) (canon lift (core func $i "bool")))`,
  })
  const instance = component.instantiateSync({ limits: LIMITS })
  t.deepEqual(instance.callSync('flags'), { x: false, y: true })
  t.deepEqual(await instance.call('flags'), { x: false, y: true })
  t.is(instance.callSync('bool'), true)
  t.is(await instance.call('bool'), true)
  t.false(instance.poisoned)
})

// --- Arguments lowered into the guest: realloc lies ------------------------------------------

/** A component whose realloc has body `realloc` and whose exports take a string and a list<u32>. */
function taking(realloc: string): Component {
  return hostile({
    realloc,
    core: `(func (export "take-string") (param i32 i32) (result i32) local.get 1)
      (func (export "take-list") (param i32 i32) (result i32) local.get 1)`,
    lifts: `(func (export "take-string") (param "s" string) (result u32) (canon lift (core func $i "take-string") ${MEMORY}))
      (func (export "take-list") (param "l" (list u32)) (result u32) (canon lift (core func $i "take-list") ${MEMORY}))`,
  })
}

test('a realloc that returns a pointer beyond memory, or too close to its end for the argument, is a GuestAbiError', async (t) => {
  const beyond = taking('i32.const -16')
  await rejects(t, beyond, 'take-string', abi('realloc return: beyond end of memory'), ['hello world'])
  await rejects(t, beyond, 'take-list', abi('realloc return: beyond end of memory'), [[1, 2, 3]])
  // 65,532 is aligned, but 12 bytes from there run past the 64 KiB memory.
  const nearEnd = taking('i32.const 65532')
  await rejects(t, nearEnd, 'take-string', abi('realloc return: beyond end of memory'), ['hello world'])
  await rejects(t, nearEnd, 'take-list', abi('realloc return: beyond end of memory'), [[1, 2, 3]])
})

test('a realloc that returns a misaligned pointer is a GuestAbiError for a list<u32>; strings need no alignment', async (t) => {
  const component = taking('i32.const 1')
  await rejects(t, component, 'take-list', abi('realloc return: result not aligned'), [[1, 2, 3]])
  const instance = component.instantiateSync({ limits: LIMITS })
  t.is(instance.callSync('take-string', ['hello world']), 11)
  t.is(await instance.call('take-string', ['hello world']), 11)
})

test('a realloc that traps fails the call with its own trap (UnreachableError) and poisons the instance', async (t) => {
  const component = taking('unreachable')
  const unreachable = {
    Class: UnreachableError,
    code: 'ERR_WASM_TRAP_UNREACHABLE',
    trapCode: 'UnreachableCodeReached',
    reason: 'unreachable',
  }
  await rejects(t, component, 'take-string', unreachable, ['hello world'])
  await rejects(t, component, 'take-list', unreachable, [[1, 2, 3]])
})

test('a realloc that loops forever stops at timeoutMs with a TimeoutError and poisons the instance', async (t) => {
  const component = taking('(loop (br 0)) i32.const 0')
  const timeout = {
    Class: TimeoutError,
    code: 'ERR_WASM_TIMEOUT',
    trapCode: 'Interrupt',
    reason: 'timeoutMs: 100',
  }
  await rejects(t, component, 'take-string', timeout, ['hello world'], { timeoutMs: 100 })
  await rejects(t, component, 'take-list', timeout, [[1, 2, 3]], { timeoutMs: 100 })
})

// --- Exports that trap, loop or lie after returning ------------------------------------------

test('an export that loops forever stops at timeoutMs with elapsedMs and timeoutMs, on both threads', async (t) => {
  const component = hostile({
    core: '(func (export "spin") (loop (br 0)))',
    lifts: '(func (export "spin") (canon lift (core func $i "spin")))',
  })
  for (const how of BOTH) {
    const instance = component.instantiateSync({ limits: LIMITS, timeoutMs: 100 })
    const error = (await failure(t, instance, how, 'spin')) as TimeoutError
    t.true(error instanceof TimeoutError, String(error))
    t.like(error, { code: 'ERR_WASM_TIMEOUT', trapCode: 'Interrupt', timeoutMs: 100 })
    t.true(error.elapsedMs >= 100, `${how}: ${error.elapsedMs}`)
    t.true(instance.poisoned)
  }
})

test('a post-return function that traps or loops turns the call into its trap or timeout and poisons the instance', async (t) => {
  const component = hostile({
    core: `(func (export "five") (result i32) i32.const 5)
      (func (export "post-trap") (param i32) unreachable)
      (func (export "post-spin") (param i32) (loop (br 0)))`,
    lifts: `(func (export "post-trap") (result u32) (canon lift (core func $i "five") (post-return (core func $i "post-trap"))))
      (func (export "post-spin") (result u32) (canon lift (core func $i "five") (post-return (core func $i "post-spin"))))`,
  })
  // The value was already lifted when post-return failed: the caller gets the failure, not 5.
  await rejects(t, component, 'post-trap', {
    Class: UnreachableError,
    code: 'ERR_WASM_TRAP_UNREACHABLE',
    trapCode: 'UnreachableCodeReached',
    reason: 'unreachable',
  })
  const timeout = {
    Class: TimeoutError,
    code: 'ERR_WASM_TIMEOUT',
    trapCode: 'Interrupt',
    reason: 'timeoutMs: 100',
  }
  await rejects(t, component, 'post-spin', timeout, [], { timeoutMs: 100 })
})

// --- Values the guest hands to the host ------------------------------------------------------

/**
 * A component importing `log: func(s: string)` and `name: func() -> string`, whose exports pass
 * `log` a string that is invalid UTF-8, past the end of memory or wrapping past 2^32, or ask for
 * `name` with a realloc of body `realloc`.
 */
function hostFacing(realloc: string): Component {
  return engine.compileComponentSync(`(component
    (import "log" (func $log (param "s" string)))
    (import "name" (func $name (result string)))
    (core module $memory
      (memory (export "mem") 1)
      (func (export "realloc") (param i32 i32 i32 i32) (result i32) ${realloc})
      (data (i32.const 16) "\\ff\\fe"))
    (core instance $mi (instantiate $memory))
    (core func $log (canon lower (func $log) (memory (core memory $mi "mem")) string-encoding=utf8))
    (core func $name (canon lower (func $name) (memory (core memory $mi "mem")) (realloc (core func $mi "realloc")) string-encoding=utf8))
    (core module $m
      (import "host" "log" (func $log (param i32 i32)))
      (import "host" "name" (func $name (param i32)))
      (import "host" "mem" (memory 1))
      (func (export "log-bad-utf8") (call $log (i32.const 16) (i32.const 2)))
      (func (export "log-past-end") (call $log (i32.const 65530) (i32.const 100)))
      (func (export "log-wraps") (call $log (i32.const -8) (i32.const 16)))
      (func (export "name-length") (result i32) (call $name (i32.const 0)) (i32.load (i32.const 4))))
    (core instance $i (instantiate $m (with "host" (instance
      (export "log" (func $log)) (export "name" (func $name)) (export "mem" (memory $mi "mem"))))))
    (func (export "log-bad-utf8") (canon lift (core func $i "log-bad-utf8")))
    (func (export "log-past-end") (canon lift (core func $i "log-past-end")))
    (func (export "log-wraps") (canon lift (core func $i "log-wraps")))
    (func (export "name-length") (result u32) (canon lift (core func $i "name-length"))))`)
}

test('a string the guest passes to a host import that is not UTF-8 or out of bounds is a GuestAbiError; the host is never called', async (t) => {
  const component = hostFacing('i32.const 1024')
  const cases: Array<[string, string]> = [
    ['log-bad-utf8', 'invalid utf-8 sequence'],
    ['log-past-end', 'string pointer/length out of bounds of memory'],
    ['log-wraps', 'string pointer/length out of bounds of memory'],
  ]
  for (const [name, reason] of cases) {
    for (const how of BOTH) {
      const logged: unknown[] = []
      const instance = component.instantiateSync({
        limits: LIMITS,
        imports: { log: (text: unknown) => void logged.push(text), name: () => 'a name' },
      })
      const error = await failure(t, instance, how, name)
      t.true(error instanceof GuestAbiError, `${how}('${name}'): ${String(error)}`)
      t.like(error, { code: 'ERR_WASM_GUEST_ABI', trapCode: 'CanonicalAbi' })
      t.true(error.message.includes(reason), error.message)
      t.deepEqual(logged, [], 'the host function never saw the value')
      t.true(instance.poisoned)
      await t.throwsAsync(instance.call('log-bad-utf8'), { instanceOf: InstancePoisonedError })
    }
  }
})

test('a realloc returning garbage, or trapping, while a host string result is lowered into the guest fails that call', async (t) => {
  const imports = () => ({ log: () => undefined, name: () => 'a name' })
  // The well-behaved realloc: the guest reads the length the host wrote.
  t.is(
    hostFacing('i32.const 1024')
      .instantiateSync({ limits: LIMITS, imports: imports() })
      .callSync('name-length'),
    6,
  )
  for (const how of BOTH) {
    const beyond = hostFacing('i32.const -16').instantiateSync({ limits: LIMITS, imports: imports() })
    const error = await failure(t, beyond, how, 'name-length')
    t.true(error instanceof GuestAbiError, String(error))
    t.like(error, { code: 'ERR_WASM_GUEST_ABI', trapCode: 'CanonicalAbi' })
    t.true(error.message.includes('realloc return: beyond end of memory'), error.message)
    t.true(beyond.poisoned)
    const trapping = hostFacing('unreachable').instantiateSync({ limits: LIMITS, imports: imports() })
    const trap = await failure(t, trapping, how, 'name-length')
    t.true(trap instanceof UnreachableError, String(trap))
    t.true(trapping.poisoned)
  }
})

// --- Start functions that never end ----------------------------------------------------------

test('a start function that loops forever stops at the instantiate timeoutMs, in a core module and in a component', async (t) => {
  const module = engine.compileModuleSync('(module (func $start (loop (br 0))) (start $start))')
  const component = engine.compileComponentSync(`(component
    (core module $m (func $start (loop (br 0))) (start $start))
    (core instance (instantiate $m)))`)
  for (const compiled of [module, component]) {
    const options = { limits: { memoryBytes: 0 }, timeoutMs: 100 }
    const sync = t.throws(() => compiled.instantiateSync(options), { instanceOf: TimeoutError })
    const async = await t.throwsAsync(compiled.instantiate(options), { instanceOf: TimeoutError })
    for (const error of [sync, async]) {
      t.like(error, { code: 'ERR_WASM_TIMEOUT', timeoutMs: 100 })
      t.true(error!.elapsedMs >= 100, String(error?.elapsedMs))
    }
  }
})

test("a component's start code that breaks the canonical ABI is a GuestAbiError, not a LinkError", async (t) => {
  // Any failure of instantiation that was not a trap was reported as the host's missing import:
  // a guest handing an import invalid UTF-8 from its start code read as a configuration error
  // (probe H20).
  const component = engine.compileComponentSync(`(component
    (import "log" (func $log (param "s" string)))
    ${BUMP_MEMORY_WAT}
    (core func $log_l (canon lower (func $log) (memory $memory) string-encoding=utf8))
    (core module $main
      (import "h" "log" (func $log (param i32 i32)))
      (import "m" "memory" (memory 1))
      (data (i32.const 0) "\\ff\\fe\\fd")
      (func $start (call $log (i32.const 0) (i32.const 3)))
      (start $start))
    (core instance $i (instantiate $main (with "m" (instance $m))
      (with "h" (instance (export "log" (func $log_l)))))))`)
  const options = { limits: { memoryBytes: 1 << 20 }, imports: { log: () => {} } }
  const sync = t.throws(() => component.instantiateSync(options), { instanceOf: GuestAbiError })
  const async = await t.throwsAsync(component.instantiate(options), { instanceOf: GuestAbiError })
  for (const error of [sync, async]) {
    t.like(error, { code: 'ERR_WASM_GUEST_ABI', trapCode: 'CanonicalAbi' })
    t.regex(error!.message, /invalid utf-8/)
  }
  // A missing import is still the host's LinkError.
  t.throws(() => component.instantiateSync({ limits: { memoryBytes: 1 << 20 } }), { instanceOf: LinkError })
})

// --- Host imports that call back into the instance calling them ------------------------------

const REENTRANT_COMPONENT = `(component
  (import "reenter" (func $reenter (result u32)))
  (core func $lowered (canon lower (func $reenter)))
  (core module $m
    (import "host" "reenter" (func $reenter (result i32)))
    (func (export "outer") (result i32) call $reenter i32.const 1 i32.add)
    (func (export "inner") (result i32) i32.const 41))
  (core instance $i (instantiate $m (with "host" (instance (export "reenter" (func $lowered))))))
  (func (export "outer") (result u32) (canon lift (core func $i "outer")))
  (func (export "inner") (result u32) (canon lift (core func $i "inner"))))`

const REENTRANT_MODULE = `(module
  (import "env" "reenter" (func $reenter (result i32)))
  (func (export "outer") (result i32) call $reenter i32.const 1 i32.add)
  (func (export "inner") (result i32) i32.const 41))`

const REENTRANT = [
  { kind: 'component', compiled: () => engine.compileComponentSync(REENTRANT_COMPONENT), label: '"reenter"' },
  { kind: 'module', compiled: () => engine.compileModuleSync(REENTRANT_MODULE), label: '"env.reenter"' },
] as const

/** An instance of the re-entrant guest whose host import `reenter` is `reenter(instance)`. */
function reentrant(
  kind: 'component' | 'module',
  // Component's instantiateSync is generic over its exports; Module's is not: both fit this.
  compiled: () => { instantiateSync: (options: Parameters<Component['instantiateSync']>[0]) => Instance },
  reenter: (instance: Instance) => unknown,
  timeoutMs?: number,
): Instance {
  let instance!: Instance
  const host = () => reenter(instance)
  instance = compiled().instantiateSync({
    limits: LIMITS,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    imports: kind === 'component' ? { reenter: host } : { env: { reenter: host } },
  })
  return instance
}

/**
 * A host import's body that awaits `call('inner')` on `target`, keeping what that throws in `seen`
 * (and answering 0 then).
 */
function awaitsInner(seen: unknown[]): (target: Instance) => Promise<unknown> {
  return async (target) => {
    try {
      return await target.call('inner')
    } catch (error) {
      seen.push(error)
      return 0
    }
  }
}

test('a host import that calls callSync on the instance calling it gets BusyError; the outer call completes', async (t) => {
  for (const { kind, compiled } of REENTRANT) {
    for (const how of BOTH) {
      const seen: unknown[] = []
      const instance = reentrant(kind, compiled, (self) => {
        try {
          return self.callSync('inner')
        } catch (error) {
          seen.push(error)
          return 0
        }
      })
      t.is(
        how === 'callSync' ? instance.callSync('outer') : await instance.call('outer'),
        1,
        `${kind} ${how}`,
      )
      t.is(seen.length, 1)
      t.true(seen[0] instanceof BusyError, String(seen[0]))
      // From call() the TS layer refuses first (the call is still in its queue), from callSync the addon.
      t.like(seen[0], { code: 'ERR_WASM_BUSY' })
      t.regex((seen[0] as Error).message, /^another call is running (or queued )?on this instance/)
      t.false(instance.poisoned)
      t.is(instance.callSync('inner'), 41)
    }
  }
})

test('a host import that lets the BusyError of a re-entrant callSync escape fails the outer call with HostError', async (t) => {
  for (const { kind, compiled, label } of REENTRANT) {
    for (const how of BOTH) {
      const instance = reentrant(kind, compiled, (self) => self.callSync('inner'))
      const error = (await failure(t, instance, how, 'outer')) as unknown as HostError
      t.true(error instanceof HostError, `${kind} ${how}: ${String(error)}`)
      t.is(error.code, 'ERR_WASM_HOST')
      t.true(error.message.startsWith(`host function ${label} threw: another call is running`), error.message)
      t.true(error.cause instanceof BusyError, String(error.cause))
      // A failed host call poisons a component instance; a core instance stays usable.
      t.is(instance.poisoned, kind === 'component')
      if (kind === 'module') t.is(instance.callSync('inner'), 41)
    }
  }
})

// Finding H1 (fixed): call() from a host import queued behind the very call that waits for the
// import, so an async host import that awaited it deadlocked until the outer call's deadline
// (forever without one). Bounded here by a 300 ms deadline on the outer call.
test('a host import that awaits call() on the instance calling it gets BusyError, not a deadlock', async (t) => {
  // A deadline of 5 s, as below: 300 ms failed a CI dry run on a loaded machine (a deadlock would
  // still end at the deadline, with TimeoutError instead of 1).
  for (const { kind, compiled } of REENTRANT) {
    const seen: unknown[] = []
    const instance = reentrant(kind, compiled, awaitsInner(seen), 5_000)
    t.is(await instance.call('outer'), 1, kind)
    t.true(seen[0] instanceof BusyError, `${kind}: ${String(seen[0])}`)
  }
})

test('a host import that awaits call() on an instance whose host import awaits the first gets BusyError, not a deadlock', async (t) => {
  // A's host import awaits B.call, whose host import awaits A.call: queued behind A's running call,
  // that waited on itself through B until the deadline (probe H15). A's call is one B's call serves.
  // Deadlines of 5 s: long enough for a loaded machine, short enough to fail a regression.
  for (const { kind, compiled } of REENTRANT) {
    const seen: unknown[] = []
    let b!: Instance
    const a = reentrant(kind, compiled, async () => await b.call('outer'), 5_000)
    b = reentrant(kind, compiled, () => awaitsInner(seen)(a), 5_000)
    t.is(await a.call('outer'), 2, kind)
    t.true(seen[0] instanceof BusyError, `${kind}: ${String(seen[0])}`)
    t.false(a.poisoned)
    t.is(await a.call('inner'), 41)
  }
})

test("a host import that awaits another instance's instantiation, whose start code calls back, gets BusyError there", async (t) => {
  const starting = engine.compileModuleSync(`(module
    (import "env" "back" (func $back (result i32)))
    (func $start (drop (call $back)))
    (start $start))`)
  const seen: unknown[] = []
  let a!: Instance
  const back = () => awaitsInner(seen)(a)
  a = reentrant(
    'module',
    () => engine.compileModuleSync(REENTRANT_MODULE),
    async () => {
      await starting.instantiate({ limits: LIMITS, timeoutMs: 5_000, imports: { env: { back } } })
      return 4
    },
    5_000,
  )
  t.is(await a.call('outer'), 5)
  t.true(seen[0] instanceof BusyError, String(seen[0]))
})

test('work a host import left behind may call() its instance once the call it served has ended', async (t) => {
  // The re-entry check took any work a host import started for its call, for good: a callback
  // that delivered an answer through an export later was a BusyError for the instance's life
  // (probe Z1).
  for (const { kind, compiled } of REENTRANT) {
    let outer!: Promise<unknown>
    let during!: Promise<unknown>
    let later!: Promise<unknown>
    const instance = reentrant(kind, compiled, (self) => {
      during = self.call('inner')
      during.catch(() => {})
      // Started here, so it runs in this host call's context, and called once that call ended.
      later = Promise.resolve()
        .then(() => outer)
        .then(() => self.call('inner'))
      return 1
    })
    outer = instance.call('outer')
    t.is(await outer, 2, kind)
    await t.throwsAsync(during, { instanceOf: BusyError }, `${kind}: while its call runs`)
    t.is(await later, 41, `${kind}: after it ended`)
  }
})

test("a guest's long function name reaches a trap's backtrace cut short, once per frame, and not its message", async (t) => {
  // Names come from the guest's name section: a 16 MiB name in each of a stack overflow's 32
  // frames cost the host 1.8 GB and 2.8 s; and messages that carried the backtrace's text would
  // have held it 32 times over.
  const name = 'a'.repeat(4 << 20)
  const component = await engine.compileComponent(`(component
    (core module $m
      (func $${name} (export "f") (call $${name})))
    (core instance $i (instantiate $m))
    (func (export "f") (canon lift (core func $i "f"))))`)
  const instance = await component.instantiate({ limits: { memoryBytes: 1 << 16 } })
  const error = await t.throwsAsync(instance.call('f', []), { instanceOf: TrapError })
  t.true(error!.wasmBacktrace.length > 1)
  for (const frame of error!.wasmBacktrace) {
    t.true(frame.funcName === undefined || frame.funcName.length <= 1025, `${frame.funcName?.length}`)
  }
  t.true(error!.wasmBacktrace[0]!.funcName!.startsWith('aaaa'))
  t.true(error!.wasmBacktrace[0]!.funcName!.endsWith('…'))
  t.true(error!.message.length < 1000)
})

// --- Values one nested component hands another ----------------------------------------------

/**
 * A component nesting a caller that passes the bytes `data` (escaped WAT) in `from` to a callee
 * that takes them in `to` and returns their length in its own code units (latin1+UTF-16 tags a
 * UTF-16 length with the top bit). wasmtime's adapter between them transcodes the string.
 */
function nestedPair(from: string, to: string, data: string, length: number): Component {
  return engine.compileComponentSync(`(component
    (component $callee
      (core module $m (memory (export "mem") 1)
        (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
        (func (export "take") (param i32 i32) (result i32) (local.get 1)))
      (core instance $i (instantiate $m))
      (func (export "take") (param "s" string) (result u32)
        (canon lift (core func $i "take") ${MEMORY.replace('utf8', to)})))
    (instance $callee (instantiate $callee))
    (component $caller
      (import "take" (func $take (param "s" string) (result u32)))
      (core module $memory (memory (export "mem") 1) (data (i32.const 16) "${data}"))
      (core instance $mi (instantiate $memory))
      (core func $take (canon lower (func $take) (memory (core memory $mi "mem")) string-encoding=${from}))
      (core module $m (import "host" "take" (func $take (param i32 i32) (result i32)))
        (func (export "run") (result i32) (call $take (i32.const 16) (i32.const ${length}))))
      (core instance $i (instantiate $m (with "host" (instance (export "take" (func $take))))))
      (func (export "run") (result u32) (canon lift (core func $i "run"))))
    (instance $caller (instantiate $caller (with "take" (func $callee "take"))))
    (export "run" (func $caller "run")))`)
}

test('a string one nested component passes another in a different encoding is transcoded, and one invalid in its encoding is a GuestAbiError', async (t) => {
  // "héllo": 6 bytes of UTF-8, 5 units of UTF-16, 5 bytes of latin1.
  const utf8 = 'h\\c3\\a9llo'
  const utf16 = 'h\\00\\e9\\00l\\00l\\00o\\00'
  const cases: Array<[string, string, string, number, number]> = [
    ['utf8', 'utf16', utf8, 6, 5],
    ['utf8', 'latin1+utf16', utf8, 6, 5],
    ['utf16', 'utf8', utf16, 5, 6],
    ['latin1+utf16', 'utf8', 'h\\e9llo', 5, 6],
    // A character past latin1 makes the callee's string UTF-16, its length tagged.
    ['utf8', 'latin1+utf16', 'h\\e2\\82\\acllo', 7, 0x8000_0005],
  ]
  for (const [from, to, data, length, taken] of cases) {
    const instance = nestedPair(from, to, data, length).instantiateSync({ limits: LIMITS })
    t.is(instance.callSync('run'), taken, `${from} -> ${to}`)
    t.is(await instance.call('run'), taken, `${from} -> ${to}, twice`)
  }
  const invalid: Array<[string, string, string, number, string]> = [
    ['utf8', 'utf16', '\\ff\\fe', 2, 'invalid utf8'],
    ['utf16', 'utf8', '\\00\\d8', 1, 'invalid utf16'],
  ]
  for (const [from, to, data, length, reason] of invalid) {
    for (const how of BOTH) {
      const instance = nestedPair(from, to, data, length).instantiateSync({ limits: LIMITS })
      const error = await failure(t, instance, how, 'run')
      t.true(error instanceof GuestAbiError, `${how} ${from} -> ${to}: ${String(error)}`)
      t.like(error, { code: 'ERR_WASM_GUEST_ABI', trapCode: 'CanonicalAbi' })
      t.true(error.message.includes(reason), error.message)
      t.true(instance.poisoned)
    }
  }
})
