/**
 * `manifest`: random and mutated Component.toml documents through loadManifest. Each is either a
 * valid manifest (inside the policy's ranges, frozen) or a ConfigError whose every problem says
 * where (a field `path`, or the `line` and `column` of a syntax error); never another exception.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { inspect } from 'node:util'

import fc from 'fast-check'

import { root } from '../fixtures/index.js'
import { ConfigError, DEFAULT_POLICY, loadManifest, type Manifest } from '../lib/index.js'
import { expect, type Target } from './target.js'

/** The repo's own manifests: the seeds the mutations start from. */
const SEEDS = readdirSync(path.join(root, 'examples'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => {
    try {
      return readFileSync(path.join(root, 'examples', entry.name, 'Component.toml'), 'utf8')
    } catch {
      return undefined
    }
  })
  .filter((text): text is string => text !== undefined)

const KEYS = [
  'component',
  'name',
  'version',
  'wasm',
  'resources',
  'memory',
  'max_bytes',
  'max_table_elements',
  'cpu',
  'max_fuel',
  'timeout_seconds',
  'timeout_ms',
  'permissions',
  'filesystem',
  'read',
  'network',
  'outbound',
  'time',
  'sleep',
]

const key = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KEYS) },
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }).map((text) => JSON.stringify(text)),
  fc.stringMatching(/^[a-z_-]{1,10}$/),
)
const dotted = fc.array(key, { minLength: 1, maxLength: 3 }).map((keys) => keys.join('.'))

const scalar: fc.Arbitrary<string> = fc.oneof(
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.constantFrom(
    '0',
    '1',
    '512',
    '524288',
    '1048576',
    '4194304',
    '1000',
    '100000000',
    '300',
    '300000',
    '0x10',
    '1_000',
  ),
  fc
    .double()
    .map((n) =>
      Number.isFinite(n)
        ? String(n).includes('.') || String(n).includes('e')
          ? String(n)
          : `${n}.0`
        : n > 0
          ? 'inf'
          : n < 0
            ? '-inf'
            : 'nan',
    ),
  fc.boolean().map(String),
  fc.string({ unit: 'binary', maxLength: 16 }).map((text) => JSON.stringify(text)),
  fc.constantFrom(
    '"./data/**"',
    '"../**"',
    '"/etc/passwd"',
    '"127.0.0.1:8080"',
    '"*:*"',
    '"hello.wasm"',
    '"../x.wasm"',
    '"data"',
    '""',
  ),
  fc.constantFrom('1979-05-27T07:32:00Z', '1979-05-27', '07:32:00', "'literal'", '"""multi\nline"""'),
)
const value: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 5, arbitrary: scalar },
    fc.array(tie('value'), { maxLength: 3 }).map((items) => `[${items.join(', ')}]`),
    fc
      .array(fc.tuple(key, tie('value')), { maxLength: 3 })
      .map((pairs) => `{ ${pairs.map(([k, v]) => `${k} = ${v}`).join(', ')} }`),
  ),
})).value

const line = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(dotted, value).map(([k, v]) => `${k} = ${v}`) },
  dotted.map((k) => `[${k}]`),
  dotted.map((k) => `[[${k}]]`),
  fc.constantFrom('', '# comment', '[component]', '[resources.memory]', '[resources.cpu]', '[permissions]'),
)
const structured = fc.array(line, { maxLength: 20 }).map((lines) => lines.join('\n'))

type Edit =
  | { kind: 'delete-line'; at: number }
  | { kind: 'duplicate-line'; at: number }
  | { kind: 'insert-line'; at: number; text: string }
  | { kind: 'insert-text'; at: number; text: string }
  | { kind: 'delete-text'; at: number; length: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'replace-number'; nth: number; text: string }

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.nat().map((at) => ({ kind: 'delete-line' as const, at })),
  fc.nat().map((at) => ({ kind: 'duplicate-line' as const, at })),
  fc.tuple(fc.nat(), line).map(([at, text]) => ({ kind: 'insert-line' as const, at, text })),
  fc
    .tuple(
      fc.nat(),
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 4 }),
        fc.constantFrom('"', '[', ']', '=', '\n', '\r\n', '\uFEFF', '\u0000', '.', '#', "'"),
      ),
    )
    .map(([at, text]) => ({ kind: 'insert-text' as const, at, text })),
  fc
    .tuple(fc.nat(), fc.integer({ min: 1, max: 8 }))
    .map(([at, length]) => ({ kind: 'delete-text' as const, at, length })),
  fc.nat().map((at) => ({ kind: 'truncate' as const, at })),
  fc.tuple(fc.nat(), scalar).map(([nth, text]) => ({ kind: 'replace-number' as const, nth, text })),
)

function apply(text: string, e: Edit): string {
  const lines = text.split('\n')
  const at = (n: number, size: number) => (size === 0 ? 0 : n % (size + 1))
  switch (e.kind) {
    case 'delete-line':
      lines.splice(at(e.at, lines.length - 1), 1)
      return lines.join('\n')
    case 'duplicate-line': {
      const index = at(e.at, lines.length - 1)
      lines.splice(index, 0, lines[index] ?? '')
      return lines.join('\n')
    }
    case 'insert-line':
      lines.splice(at(e.at, lines.length), 0, e.text)
      return lines.join('\n')
    case 'insert-text': {
      const index = at(e.at, text.length)
      return text.slice(0, index) + e.text + text.slice(index)
    }
    case 'delete-text': {
      const index = at(e.at, text.length)
      return text.slice(0, index) + text.slice(index + e.length)
    }
    case 'truncate':
      return text.slice(0, at(e.at, text.length))
    case 'replace-number': {
      const numbers = [...text.matchAll(/\b\d[\d_]*\b/g)]
      const match = numbers[numbers.length === 0 ? 0 : e.nth % numbers.length]
      if (match?.index === undefined) return text
      return text.slice(0, match.index) + e.text + text.slice(match.index + match[0].length)
    }
  }
}

const mutated = fc
  .tuple(fc.constantFrom(...SEEDS), fc.array(edit, { minLength: 1, maxLength: 4 }))
  .map(([seed, edits]) => edits.reduce(apply, seed))

const WASM_FILES = [
  'hello.wasm',
  'capabilities.wasm',
  'memory-hog.wasm',
  'runaway.wasm',
  'wasi-tool.wasm',
  'component.wasm',
]

const inRange = (n: number, range: { min: number; max: number }) =>
  Number.isInteger(n) && n >= range.min && n <= range.max

function checkValid(manifest: Manifest): void {
  const show = () => inspect(manifest, { depth: 4 })
  expect(Object.isFrozen(manifest) && Object.isFrozen(manifest.resources.cpu), () => `not frozen: ${show()}`)
  expect(
    typeof manifest.component.name === 'string' && manifest.component.name !== '',
    () => `no name: ${show()}`,
  )
  expect(
    inRange(manifest.resources.memory.maxBytes, DEFAULT_POLICY.memoryBytes),
    () => `max_bytes out of range: ${show()}`,
  )
  expect(
    inRange(manifest.resources.cpu.maxFuel, DEFAULT_POLICY.fuel),
    () => `max_fuel out of range: ${show()}`,
  )
  expect(
    inRange(manifest.resources.cpu.timeoutMs, DEFAULT_POLICY.timeoutMs),
    () => `timeout out of range: ${show()}`,
  )
  expect(
    inRange(manifest.resources.memory.maxTableElements, DEFAULT_POLICY.tableElements),
    () => `max_table_elements out of range: ${show()}`,
  )
  expect(manifest.wasmPath.startsWith(manifest.dir + path.sep), () => `wasm outside the directory: ${show()}`)
  for (const list of [manifest.permissions.filesystem.read, manifest.permissions.network.outbound]) {
    expect(
      Array.isArray(list) && list.every((item) => typeof item === 'string'),
      () => `bad permissions: ${show()}`,
    )
  }
  expect(typeof manifest.permissions.time.sleep === 'boolean', () => `bad time.sleep: ${show()}`)
}

export function manifestTarget(): Target<string> {
  let dir: string | undefined
  const workdir = () => {
    if (dir === undefined) {
      dir = mkdtempSync(path.join(tmpdir(), 'airssys-fuzz-manifest-'))
      for (const file of WASM_FILES) writeFileSync(path.join(dir, file), '')
      mkdirSync(path.join(dir, 'data'))
    }
    return dir
  }
  return {
    name: 'manifest',
    extension: '.toml',
    arbitrary: fc.oneof(
      { weight: 3, arbitrary: mutated },
      { weight: 2, arbitrary: structured },
      fc.string({ unit: 'binary', maxLength: 200 }),
    ),
    async check(text) {
      const here = workdir()
      writeFileSync(path.join(here, 'Component.toml'), text)
      let manifest: Manifest
      try {
        manifest = loadManifest(here)
      } catch (error) {
        expect(
          error instanceof ConfigError && error.code === 'ERR_WASM_CONFIG',
          () => `threw ${inspect(error)}`,
        )
        expect(error.problems.length > 0, () => `a ConfigError without problems: ${error.message}`)
        for (const problem of error.problems) {
          const located =
            (typeof problem.path === 'string' && problem.path !== '') ||
            (Number.isInteger(problem.line) && Number.isInteger(problem.column))
          expect(located, () => `a problem that does not say where: ${inspect(problem)}`)
        }
        return
      }
      checkValid(manifest)
    },
    encode: (text) => new TextEncoder().encode(text),
    decode: (bytes) => new TextDecoder().decode(bytes),
    close() {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
      dir = undefined
    },
  }
}
