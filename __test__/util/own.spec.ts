import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import test from 'ava'

import { bare, bareListing, NONE, ownField, ownOptions } from '../../lib/util/own.js'

/**
 * Runs one of this directory's pollution children (`file`, given `args`) and reads the JSON it
 * prints on its `RESULT ` line (in a child, since the pollution would reach every test here).
 */
async function pollutedChild(
  file: string,
  ...args: string[]
): Promise<{ status: unknown; stderr: string; results: Record<string, string> }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL(file, import.meta.url)), ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const status = await new Promise((resolve) => child.on('close', resolve))
  const line = stdout.split('\n').find((text) => text.startsWith('RESULT '))
  const results = (line === undefined ? {} : JSON.parse(line.slice('RESULT '.length))) as Record<
    string,
    string
  >
  return { status, stderr, results }
}

test('ownOptions copies own enumerable properties onto objects without a prototype, all the way down', (t) => {
  const signal = new AbortController().signal
  const stdin = new Uint8Array([1])
  const imports = { env: { f: () => 1 } }
  const copied = ownOptions({ wasi: { args: ['a'] }, signal, stdin, imports, n: 1 }, new Set(['imports']))
  t.is(Object.getPrototypeOf(copied), null)
  const wasi = copied.wasi as Record<string, unknown>
  t.is(Object.getPrototypeOf(wasi), null)
  t.false('toString' in wasi, 'nothing of Object.prototype is reachable')
  t.deepEqual(wasi.args, ['a'])
  t.is(copied.signal, signal, 'class instances are kept')
  t.is(copied.stdin, stdin)
  t.is(copied.imports, imports, 'host code is kept as given')
  t.is(ownOptions(undefined), undefined)
  const symbol = Symbol('ours')
  t.is(ownOptions({ [symbol]: stdin })[symbol], stdin, 'symbol keys are kept')
})

test('ownOptions makes arrays without holes, reads each getter once, and stops at cycles', (t) => {
  // eslint-disable-next-line no-sparse-arrays -- the hole is the point
  const sparse = ['a', , 'c']
  const copied = ownOptions({ args: sparse }).args
  t.true(Object.hasOwn(copied, 1), 'a hole would be read from Array.prototype')
  t.deepEqual(copied, ['a', undefined, 'c'])
  let reads = 0
  const getter = ownOptions({
    get timeoutMs() {
      reads++
      return reads * 100
    },
  })
  t.is(getter.timeoutMs, 100)
  t.is(getter.timeoutMs, 100)
  t.is(reads, 1)
  // Past any option's depth or length, values are kept for the option's own check to refuse.
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  let nested: Record<string, unknown> = ownOptions(cycle)
  for (let depth = 0; depth < 16; depth++) nested = nested.self as Record<string, unknown>
  t.is(nested, cycle)
  const long = new Array<string>(2 ** 31)
  t.is(ownOptions({ args: long }).args, long)
  t.is(Object.getPrototypeOf(bare({ a: 1 })), null)
  t.true(Object.isFrozen(NONE))
})

test('options leave out what Object.prototype holds: no grant, limit or import comes from it', async (t) => {
  // In a child: the pollution would reach every test of this process.
  const { status, stderr, results } = await pollutedChild('polluted-prototype-child.ts')
  t.is(status, 0, stderr)
  const denied = /cannot read \/h\/secret\.txt: No such file or directory/
  for (const kind of ['component', 'module']) {
    t.regex(results[`${kind}Cat`]!, denied, `${kind}: no preopen`)
    t.regex(
      results[`${kind}Write`]!,
      /cannot write \/h\/new\.txt: Operation not permitted/,
      `${kind}: read-only`,
    )
    t.is(
      results[`${kind}Echo`],
      'ran: args: \nenv count: 0 | env MESSAGE=<unset>',
      `${kind}: no args, no env`,
    )
    t.is(results[`${kind}Stdin`], 'ran: stdin: | ', `${kind}: empty stdin`)
  }
  t.is(results.noWasi, 'ran:  | ', 'no WASI option: the locked-down default, its output inherited')
  t.is(results.written, 'false')
  t.is(results.http, 'ran: error ErrorCode::HttpRequestDenied | ')
  t.is(results.spin, 'OutOfFuelError ERR_WASM_TRAP_OUT_OF_FUEL', "the instance's fuel holds")
  t.is(results.spinOptions, 'OutOfFuelError ERR_WASM_TRAP_OUT_OF_FUEL')
  t.is(results.spinSync, 'OutOfFuelError ERR_WASM_TRAP_OUT_OF_FUEL')
  t.is(results.memories, 'HostLimitError ERR_WASM_HOST_LIMIT', 'limits.memories stays 4')
  t.is(results.imports, 'LinkError ERR_WASM_LINK')
  t.is(results.flags, `ok ${JSON.stringify({ read: true, write: false, execNow: false })}`)
  t.is(results.engine, 'ok undefined')
  t.is(results.cacheDir, 'false', 'no cache directory is made')
  t.is(results.policy, 'ConfigError ERR_WASM_CONFIG', 'the default policy holds')
  t.is(
    results.sandboxPermissions,
    JSON.stringify({
      filesystem: { read: [], write: [] },
      network: { outbound: [] },
      time: { sleep: false },
    }),
  )
  t.is(results.permissions, JSON.stringify([[], null, [], false]))
  t.is(
    results.sandboxCall,
    'TypeError ERR_WASM_TYPE',
    'the export is unknown; no inherited signal stopped the call',
  )
})

test('bareListing copies a listing onto objects without a prototype, fields that do not print included', (t) => {
  const func = { params: [{ name: 'v', type: { kind: 'u8' } }] }
  const item = { name: 'f', kind: 'func', type: 'func(v: u8)' }
  Object.defineProperty(item, 'func', { value: func })
  const [copied] = bareListing([item]) as [Record<string, unknown>]
  t.is(Object.getPrototypeOf(copied), null)
  t.false('toString' in copied!)
  const copiedFunc = copied!.func as typeof func
  t.is(Object.getPrototypeOf(copiedFunc), null, 'the non-enumerable func is copied too')
  t.false('result' in copiedFunc)
  t.is(Object.getPrototypeOf(copiedFunc.params[0]!.type), null)
  t.is(copiedFunc.params[0]!.type.kind, 'u8')
  t.not(copiedFunc, func)
  t.is(ownField({ a: 1 } as { a: number; toString?: unknown }, 'toString'), undefined)
})

/** What the listing child prints, run as it is (`clean`) or with Object.prototype polluted. */
async function listingChild(mode: 'clean' | 'pollute'): Promise<Record<string, string>> {
  const { status, stderr, results } = await pollutedChild('polluted-listing-child.ts', mode)
  if (status !== 0) throw new Error(`the listing child exited with ${String(status)}: ${stderr}`)
  return results
}

test('listings, types, links and calls are the same whatever Object.prototype holds', async (t) => {
  const [clean, polluted] = await Promise.all([listingChild('clean'), listingChild('pollute')])
  t.regex(clean.typesDeclarations!, /^ok /)
  t.regex(clean.resources!, /^ok \[8,/)
  t.is(clean['roundtrip-result-unit'], 'ok [{"tag":"err"}]')
  for (const key of Object.keys(clean)) t.is(polluted[key], clean[key], key)
})
