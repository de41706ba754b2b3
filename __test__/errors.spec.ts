import test from 'ava'

import * as errors from '../lib/errors.js'
import { fromNative, WasmError, type WasmErrorCode } from '../lib/errors.js'
import * as native from '../lib/native.js'

/** Codes that only the TypeScript layer produces (the addon never does). */
const TS_ONLY_CODES = new Set([
  // The reference host interfaces (lib/capabilities/) deny requests in TypeScript.
  'ERR_WASM_CAPABILITY_DENIED',
])

/** Every code the addon can produce, as it lists them. */
function addonCodes(): string[] {
  const list = (native as unknown as { errorCodes?: () => string[] }).errorCodes
  if (typeof list !== 'function') throw new Error('the addon does not export errorCodes(): rebuild it')
  return list()
}

/** An error as the addon throws it: a plain Error with a `code`. */
function nativeError(code: string): Error {
  return Object.assign(new Error(`a native ${code}`), { code })
}

type ErrorClass = new (message: string) => Error & { code: string }

/** The error classes lib/errors.ts exports, by name; WasmError, the base, is checked on its own. */
const CLASSES = (Object.entries(errors) as [string, unknown][]).filter(
  (entry): entry is [string, ErrorClass] =>
    typeof entry[1] === 'function' &&
    entry[1] !== WasmError &&
    (entry[1].prototype instanceof WasmError || entry[1] === errors.WasmTypeError),
)

test('every code the addon can produce becomes a class of lib/errors.ts with that code', (t) => {
  const codes = addonCodes()
  t.true(codes.length > 0)
  t.is(new Set(codes).size, codes.length, 'no code is listed twice')
  for (const code of codes) {
    const error = fromNative(nativeError(code)) as Error & { code?: unknown }
    t.true(error instanceof WasmError, `${code} is a WasmError`)
    t.is(error.code, code, `${code} keeps its code`)
    t.is(error.message, `a native ${code}`)
    // The class it became is one lib/errors.ts exports (a trap code without a class of its own is a
    // TrapError by name).
    const all = errors as Record<string, unknown>
    const exported = all[error.constructor.name] ?? all[error.name]
    t.true(
      typeof exported === 'function' && error instanceof (exported as ErrorClass),
      `${code}: ${error.name}`,
    )
  }
})

test('every error class of lib/errors.ts has a code the addon produces, or one the TS layer alone does', (t) => {
  const codes = new Set(addonCodes())
  for (const code of TS_ONLY_CODES)
    t.false(codes.has(code), `${code} is listed as TS-only but the addon has it`)
  t.true(CLASSES.length > 20, 'the classes were found')
  for (const [name, Class] of CLASSES) {
    const { code } = new Class('x')
    t.true(codes.has(code) || TS_ONLY_CODES.has(code), `${name} has code ${code}, which nothing produces`)
  }
})

/**
 * Every `WasmErrorCode`, once: tsc fails when the type gains a code this lacks, or loses one it
 * has. The test below then holds the type to what the addon and the classes produce.
 */
const TYPED_CODES = {
  ERR_WASM: 'a WasmError constructed without a code',
  ERR_WASM_INTERNAL: 'addon',
  ERR_WASM_TYPE: 'addon',
  ERR_WASM_COMPILE: 'addon',
  ERR_WASM_CONFIG: 'addon',
  ERR_WASM_LINK: 'addon',
  ERR_WASM_TRAP: 'addon',
  ERR_WASM_TRAP_INDIRECT_CALL: 'addon',
  ERR_WASM_TRAP_TABLE_OUT_OF_BOUNDS: 'addon',
  ERR_WASM_TRAP_BAD_SIGNATURE: 'addon',
  ERR_WASM_MEMORY_LIMIT: 'addon',
  ERR_WASM_TRAP_OUT_OF_FUEL: 'addon',
  ERR_WASM_TIMEOUT: 'addon',
  ERR_WASM_GUEST_ABI: 'addon',
  ERR_WASM_TRAP_UNREACHABLE: 'addon',
  ERR_WASM_TRAP_MEMORY_OUT_OF_BOUNDS: 'addon',
  ERR_WASM_TRAP_DIVIDE_BY_ZERO: 'addon',
  ERR_WASM_TRAP_INTEGER_OVERFLOW: 'addon',
  ERR_WASM_TRAP_BAD_CONVERSION: 'addon',
  ERR_WASM_TRAP_STACK_OVERFLOW: 'addon',
  ERR_WASM_POOL_EXHAUSTED: 'addon',
  ERR_WASM_HOST_LIMIT: 'addon',
  ABORT_ERR: 'addon',
  ERR_WASM_HOST: 'addon',
  ERR_WASM_CAPABILITY_DENIED: 'TS layer',
  ERR_WASM_COMPONENT: 'addon',
  ERR_WASM_EXIT: 'addon',
  ERR_WASM_INSTANCE_POISONED: 'addon',
  ERR_WASM_DISPOSED: 'addon',
  ERR_WASM_BUSY: 'addon',
} satisfies Record<WasmErrorCode, string>

test('WasmErrorCode is exactly the codes the addon and the TS layer produce', (t) => {
  // A switch on `code` is exhaustive only if the type names every code an error can have.
  const produced = new Set([...addonCodes(), ...TS_ONLY_CODES, 'ERR_WASM'])
  for (const [, Class] of CLASSES) produced.add(new Class('x').code)
  t.deepEqual([...produced].sort(), Object.keys(TYPED_CODES).sort())
  const typed: readonly WasmErrorCode[] = [
    new WasmError('x').code,
    new errors.ArithmeticTrapError('x').code,
    new errors.TrapError('x').code,
  ]
  t.deepEqual(typed, ['ERR_WASM', 'ERR_WASM_TRAP_DIVIDE_BY_ZERO', 'ERR_WASM_TRAP'])
})

test('the table and indirect-call trap codes are TrapErrors themselves, keeping their codes', (t) => {
  // They were an unexported subclass named TrapError: `error.constructor === TrapError` failed (probe H17).
  for (const code of [
    'ERR_WASM_TRAP_INDIRECT_CALL',
    'ERR_WASM_TRAP_TABLE_OUT_OF_BOUNDS',
    'ERR_WASM_TRAP_BAD_SIGNATURE',
  ] as const) {
    const error = fromNative(nativeError(code)) as errors.TrapError
    t.is(error.constructor, errors.TrapError, code)
    t.is(error.code, code)
    t.is(error.name, 'TrapError')
  }
  t.is(
    new errors.TrapError('x', { code: 'ERR_WASM_TIMEOUT' }).code,
    'ERR_WASM_TRAP',
    "a subclass's code is not a TrapError's",
  )
})

test('the codes added for the sandbox escapes map to their classes', (t) => {
  const is = (code: string, Class: ErrorClass) => {
    const error = fromNative(nativeError(code))
    t.true(error instanceof Class, `${code} is a ${Class.name}`)
    t.is((error as { code?: unknown }).code, code)
  }
  is('ERR_WASM_GUEST_ABI', errors.GuestAbiError)
  t.true(new errors.GuestAbiError('x') instanceof errors.TrapError, 'a broken ABI is a trap of the guest')
  is('ERR_WASM_HOST_LIMIT', errors.HostLimitError)
  is('ERR_WASM_POOL_EXHAUSTED', errors.PoolExhaustedError)
  const internal = fromNative(nativeError('ERR_WASM_INTERNAL')) as WasmError
  t.is(internal.constructor, WasmError, 'an internal failure is a plain WasmError')
  t.is(internal.code, 'ERR_WASM_INTERNAL')
  t.is(internal.name, 'WasmError')
})
