/**
 * `npm run fuzz -- --seconds N [--seed S] [--targets a,b]`: runs every fuzz target for its share of
 * N seconds (default 30), each in a child process with a fast-check seed, and prints executions
 * per target. A failure prints the seed and fast-check's replay path and saves the failing input
 * under fixtures/corpus/<target>/, which __test__/fuzz/corpus.spec.ts replays from then on; a
 * crash or a hang saves the input the child was running. Exits 1 when anything was found.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { root } from '../fixtures/index.js'
import type { FuzzReport } from './child.js'
import { runChild } from './spawn.js'
import { TARGETS } from './targets.js'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    seed: { type: 'string' },
    targets: { type: 'string' },
  },
})
const seconds = Number(values.seconds)
if (!(seconds > 0)) {
  console.error(`--seconds expects a positive number, got ${values.seconds}`)
  process.exit(2)
}
const names = values.targets?.split(',') ?? Object.keys(TARGETS)
for (const name of names) {
  if (!(name in TARGETS)) {
    console.error(`unknown target ${name}; known: ${Object.keys(TARGETS).join(', ')}`)
    process.exit(2)
  }
}
const baseSeed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)

/** Saves a failing input where the corpus spec finds it; returns the path. */
function save(target: string, input: Uint8Array, kind: string): string {
  const extension = target === 'manifest' ? '.toml' : target === 'binaries' ? '.bin' : '.json'
  const dir = path.join(root, 'fixtures', 'corpus', target)
  mkdirSync(dir, { recursive: true })
  const digest = createHash('sha256').update(input).digest('hex').slice(0, 12)
  const file = path.join(dir, `${kind}-${digest}${extension}`)
  writeFileSync(file, input)
  return path.relative(root, file)
}

// Child start-up (tsx, compiling the fixtures) is not fuzzing time: it comes out of each share.
const share = seconds / names.length
const rows: Array<{ target: string; seed: number; executions: number; seconds: number; findings: string }> =
  []
let found = 0
for (const [index, name] of names.entries()) {
  const seed = (baseSeed + index) % 2 ** 31
  const started = performance.now()
  const result = await runChild<FuzzReport>(
    [name, '--seed', String(seed), '--seconds', String(share)],
    share * 1000 + 60_000,
  )
  const elapsed = (performance.now() - started) / 1000
  if (result.kind === 'crash') {
    found += 1
    const saved =
      result.last === undefined ? 'no input recorded' : `input saved to ${save(name, result.last, 'crash')}`
    console.error(
      `\n${name}: the child ${result.how} (seed ${seed}); ${saved}\n${result.stderr.slice(-4000)}`,
    )
    rows.push({
      target: name,
      seed,
      executions: Number.NaN,
      seconds: elapsed,
      findings: `crash: ${result.how}`,
    })
    continue
  }
  const { report } = result
  if (report.failed) {
    found += 1
    const saved =
      report.input === undefined ? 'no input' : save(name, Buffer.from(report.input, 'base64'), 'failure')
    console.error(
      `\n${name}: property failed (seed ${seed}, path ${report.path}); input saved to ${saved}\n${report.error}`,
    )
    console.error(`replay: fc.assert(property, { seed: ${seed}, path: '${report.path}' })`)
  }
  rows.push({
    target: name,
    seed,
    executions: report.executions,
    seconds: report.seconds,
    findings: report.failed ? 'property failed' : 'none',
  })
}

console.log(`\nfuzz run: ${seconds} s over ${names.length} targets, base seed ${baseSeed}`)
console.log('| target | seed | executions | seconds | executions/s | findings |')
console.log('| --- | ---: | ---: | ---: | ---: | --- |')
for (const row of rows) {
  const rate = row.executions / row.seconds
  console.log(
    `| ${row.target} | ${row.seed} | ${row.executions} | ${row.seconds.toFixed(1)} | ${Number.isFinite(rate) ? rate.toFixed(0) : '-'} | ${row.findings} |`,
  )
}
process.exit(found > 0 ? 1 : 0)
