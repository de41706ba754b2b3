/**
 * Runs one fuzz target in this process and prints one JSON line with the outcome: the runner
 * (fuzz/run.ts) and the specs start it as a child so that a native crash or a hang is a finding
 * reported with its seed and input, not the end of the test process.
 *
 *   node --import tsx fuzz/child.ts <target> --seed N (--runs N | --seconds S) [--last FILE]
 *   node --import tsx fuzz/child.ts <target> --replay FILE...
 *
 * With --last, each input is written to FILE before it runs: after a crash it holds the culprit.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

import fc from 'fast-check'

import { TARGETS } from './targets.js'

export interface FuzzReport {
  target: string
  seed: number
  executions: number
  seconds: number
  failed: boolean
  /** fast-check's replay path of the (shrunk) counterexample. */
  path?: string
  /** The failing input as the target encodes it for the corpus, base64. */
  input?: string
  error?: string
}

export interface ReplayReport {
  target: string
  results: Array<{ file: string; ok: boolean; error?: string }>
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    seed: { type: 'string' },
    runs: { type: 'string' },
    seconds: { type: 'string' },
    last: { type: 'string' },
    replay: { type: 'boolean' },
  },
})
const [name, ...files] = positionals
const make = name === undefined ? undefined : TARGETS[name]
if (name === undefined || make === undefined) {
  console.error(`usage: child.ts <${Object.keys(TARGETS).join('|')}> ...`)
  process.exit(2)
}
const target = make()

const message = (error: unknown) => (error instanceof Error ? error.message : String(error))

if (values.replay) {
  const results: ReplayReport['results'] = []
  for (const file of files) {
    const input = target.decode(readFileSync(file))
    if (values.last !== undefined) writeFileSync(values.last, file)
    try {
      await target.check(input)
      results.push({ file, ok: true })
    } catch (error) {
      results.push({ file, ok: false, error: message(error) })
    }
  }
  target.close?.()
  console.log(JSON.stringify({ target: name, results } satisfies ReplayReport))
} else {
  const seed = Number(values.seed ?? Date.now() % 2 ** 31)
  const seconds = values.seconds === undefined ? undefined : Number(values.seconds)
  const last = values.last
  const property = fc.asyncProperty(target.arbitrary, async (input) => {
    if (last !== undefined) writeFileSync(last, target.encode(input))
    await target.check(input)
  })
  const started = performance.now()
  const details = await fc.check(property, {
    seed,
    numRuns: values.runs === undefined ? Number.MAX_SAFE_INTEGER : Number(values.runs),
    ...(seconds === undefined
      ? {}
      : { interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false }),
  })
  const report: FuzzReport = {
    target: name,
    seed,
    executions: details.numRuns,
    seconds: (performance.now() - started) / 1000,
    failed: details.failed,
  }
  if (details.failed) {
    report.path = details.counterexamplePath ?? undefined
    report.error = message(details.errorInstance)
    const [input] = details.counterexample ?? []
    if (input !== undefined) report.input = Buffer.from(target.encode(input)).toString('base64')
  }
  target.close?.()
  console.log(JSON.stringify(report))
}
// Pool threads and tickers never keep Node alive, but a hostile value may have left a timer.
process.exit(0)
