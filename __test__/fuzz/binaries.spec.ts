import test from 'ava'

import { seeds } from '../../fuzz/binaries.js'
import type { FuzzReport } from '../../fuzz/child.js'
import { runChild } from '../../fuzz/spawn.js'
import { CompileError, Engine } from '../../lib/index.js'
import { SEED } from './helpers.js'

test('every fixture the mutations start from compiles unmutated', (t) => {
  const engine = new Engine()
  const all = seeds()
  // add.wasm plus the built fixtures and examples.
  t.true(all.length >= 4, all.map((seed) => seed.name).join(', '))
  for (const seed of all) t.deepEqual(engine.validate(seed.bytes), { ok: true }, seed.name)
})

test('mutated modules and components are a CompileError or compile, in every entry point, never a crash', async (t) => {
  // A child process: a native crash there is a failed test with its seed and input, not a dead ava worker.
  const result = await runChild<FuzzReport>(['binaries', '--seed', String(SEED), '--runs', '40'], 240_000)
  if (result.kind === 'crash') {
    t.fail(
      `the child ${result.how} (seed ${SEED}); last input: ${result.last ? Buffer.from(result.last).toString('base64').slice(0, 200) : 'none'}\n${result.stderr.slice(-2000)}`,
    )
    return
  }
  const { report } = result
  t.false(report.failed, `seed ${report.seed}, path ${report.path}: ${report.error}`)
  t.is(report.executions, 40)
})

// Finding F8 (fixed): validate checked components with wasmparser alone, which accepted a
// component whose nested core module section claims more bytes than the file has.
test('validate refuses a component whose nested module section runs past the end', (t) => {
  const engine = new Engine()
  // Component header, then a core module section of 17,826 bytes holding only an empty module.
  const truncated = Buffer.from('0061736d0d00010001a28b010061736d01000000', 'hex')
  t.throws(() => engine.compileComponentSync(truncated), { instanceOf: CompileError })
  const result = engine.validate(truncated)
  t.false(result.ok)
})

// Finding F8, second half (fixed): components were validated with wasmparser's default features,
// not the engine's; now every core module inside is validated by the engine itself.
test('validate refuses components that use wasm features the engine does not enable', (t) => {
  const engine = new Engine()
  for (const wat of [
    '(component (core module (memory 1 1 shared)))',
    '(component (core module (type (struct))))',
  ]) {
    t.throws(() => engine.compileComponentSync(wat), { instanceOf: CompileError }, wat)
    t.false(engine.validate(wat).ok, wat)
  }
})
