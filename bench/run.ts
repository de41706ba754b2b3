/**
 * Runs the benchmark scenarios and writes their results.
 *
 *   node --import tsx bench/run.ts [--quick] [--out FILE] [SCENARIO...]
 *
 * With no scenario names, runs them all. A full run of all scenarios writes bench/results.json and
 * regenerates the table in BENCHMARKING.md; `--quick` (short sampling, for CI) writes
 * bench/results.quick.json; a full run of some scenarios writes only where `--out` says.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { call } from './call.js'
import { callAsync } from './call-async.js'
import { codegen } from './codegen.js'
import { compile } from './compile.js'
import { componentCall } from './component-call.js'
import { compute } from './compute.js'
import { engine } from './engine.js'
import { hostCall } from './host-call.js'
import { median, p99, rme, ratios, spread } from './format.js'
import { FULL, measureAll, QUICK, type Mode, type Scenario, type ScenarioResult } from './harness.js'
import { instantiate } from './instantiate.js'
import { largeModule } from './large-module.js'
import { liveInstances } from './live-instances.js'
import { limitsOverhead } from './limits-overhead.js'
import { programs } from './programs.js'
import { timeout } from './timeout.js'
import { updateReport } from './report.js'
import { wasiIo } from './wasi-io.js'
import { wasiOutput } from './wasi-output.js'

const SCENARIOS: Scenario[] = [
  engine,
  compile,
  largeModule,
  instantiate,
  liveInstances,
  call,
  callAsync,
  componentCall,
  compute,
  programs,
  codegen,
  limitsOverhead,
  hostCall,
  wasiOutput,
  wasiIo,
  timeout,
]

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
export const RESULTS = path.join(here, 'results.json')
const QUICK_RESULTS = path.join(here, 'results.quick.json')

/** What results.json records about the run, so that a number always comes with its conditions. */
export interface RunInfo {
  command: string
  date: string
  quick: boolean
  node: string
  v8: string
  cpus: number
  cpuModel: string
  memoryGiB: number
  os: string
  loadAverageAtStart: number[]
  /** Share of all cores' time used by other processes in the second before the run, in percent. */
  cpuBusyPercentAtStart: number
  airssysWasm: string
  wasmtime: string
  commit: string
  elapsedMs: number
}

export interface Results {
  run: RunInfo
  scenarios: ScenarioResult[]
}

const USAGE = `usage: node --import tsx bench/run.ts [--quick] [--out FILE] [SCENARIO...]
scenarios: ${SCENARIOS.map((scenario) => scenario.name).join(', ')}`

function parseArguments(argv: string[]): { mode: Mode; out?: string; selected: Scenario[] } {
  let mode = FULL
  let out: string | undefined
  const names: string[] = []
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]!
    if (argument === '--quick') mode = QUICK
    else if (argument === '--out') out = argv[++index]
    else if (argument === '--help' || argument === '-h') {
      console.log(USAGE)
      process.exit(0)
    } else if (argument.startsWith('-')) throw new UsageError(`unknown option ${argument}`)
    else names.push(argument)
  }
  if (argv.includes('--out') && !out) throw new UsageError('--out needs a file name')
  const selected = names.length === 0 ? SCENARIOS : names.map(findScenario)
  return { mode, out, selected }
}

class UsageError extends Error {}

function findScenario(name: string): Scenario {
  const scenario = SCENARIOS.find((candidate) => candidate.name === name)
  if (!scenario) throw new UsageError(`unknown scenario "${name}"`)
  return scenario
}

function versionIn(file: string, pattern: RegExp): string {
  try {
    return pattern.exec(readFileSync(path.join(root, file), 'utf8'))?.[1] ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
    }).trim()
    const dirty =
      execFileSync('git', ['status', '--porcelain'], { cwd: root, encoding: 'utf8' }).trim() !== ''
    return dirty ? `${commit} (with uncommitted changes)` : commit
  } catch {
    return 'unknown'
  }
}

function command(argv: string[]): string {
  const script = process.env.npm_lifecycle_event
  if (script === 'bench' || script === 'bench:quick') {
    return ['npm run', script, ...(argv.length > 0 ? ['--', ...argv] : [])].join(' ')
  }
  return ['node --import tsx bench/run.ts', ...argv].join(' ')
}

/** How busy the machine is (this process sleeps meanwhile), in percent of all cores. */
async function cpuBusyPercent(ms: number): Promise<number> {
  const sum = () =>
    os.cpus().reduce(
      (total, { times }) => {
        const busy = times.user + times.nice + times.sys + times.irq
        return { busy: total.busy + busy, all: total.all + busy + times.idle }
      },
      { busy: 0, all: 0 },
    )
  const before = sum()
  await sleep(ms)
  const after = sum()
  return Math.round((100 * (after.busy - before.busy)) / Math.max(1, after.all - before.all))
}

async function runInfo(argv: string[], mode: Mode): Promise<RunInfo> {
  return {
    command: command(argv),
    date: new Date().toISOString(),
    quick: mode.quick,
    node: process.version,
    v8: process.versions.v8,
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((load) => Math.round(load * 100) / 100),
    cpuBusyPercentAtStart: await cpuBusyPercent(1000),
    airssysWasm: versionIn('package.json', /"version":\s*"([^"]+)"/),
    wasmtime: versionIn('Cargo.lock', /name = "wasmtime"\nversion = "([^"]+)"/),
    commit: gitCommit(),
    elapsedMs: 0,
  }
}

function printScenario(result: ScenarioResult): void {
  const header = ['', 'median', 'p10–p90', 'p99', 'rme', 'ratio']
  const lines = result.rows.map((row) => [
    row.title,
    median(row),
    spread(row),
    p99(row),
    rme(row),
    ratios(row),
  ])
  const widths = header.map((_, column) =>
    Math.max(...[header, ...lines].map((line) => line[column]!.length)),
  )
  const format = (line: string[]) =>
    line
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd()
  console.log(`\n${result.title} [${result.name}] (${(result.elapsedMs / 1000).toFixed(1)} s)`)
  console.log(`  ${format(header)}`)
  for (const line of lines) console.log(`  ${format(line)}`)
  for (const line of result.summary ?? []) console.log(`  ${line}`)
}

async function runScenario(scenario: Scenario, mode: Mode): Promise<ScenarioResult> {
  const started = performance.now()
  const prepared = await scenario.setup(mode)
  try {
    const rows = await measureAll(prepared, mode)
    const summary = prepared.summarize?.(rows)
    return {
      name: scenario.name,
      title: scenario.title,
      rows,
      ...(summary ? { summary } : {}),
      elapsedMs: performance.now() - started,
    }
  } finally {
    await prepared.teardown?.()
  }
}

async function main(argv: string[]): Promise<void> {
  const { mode, out, selected } = parseArguments(argv)
  const started = performance.now()
  const info = await runInfo(argv, mode)
  console.log(
    `airssys-wasm ${info.airssysWasm} (wasmtime ${info.wasmtime}) · Node ${info.node} · ` +
      `${info.cpus} × ${info.cpuModel} · CPU ${info.cpuBusyPercentAtStart}% busy at start` +
      (mode.quick ? ' · quick' : ''),
  )
  if (info.cpuBusyPercentAtStart >= 20) {
    console.log('warning: other processes are using the CPU: expect noisy numbers')
  }
  const scenarios: ScenarioResult[] = []
  for (const scenario of selected) {
    const result = await runScenario(scenario, mode)
    printScenario(result)
    scenarios.push(result)
  }
  info.elapsedMs = performance.now() - started
  const file = out
    ? path.resolve(out)
    : mode.quick
      ? QUICK_RESULTS
      : selected === SCENARIOS
        ? RESULTS
        : undefined
  console.log(`\n${(info.elapsedMs / 1000).toFixed(1)} s in all`)
  if (!file) {
    console.log('Not written: a full run of some scenarios writes only to --out FILE.')
    return
  }
  const results: Results = { run: info, scenarios }
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
  console.log(`Wrote ${path.relative(process.cwd(), file)}`)
  if (file === RESULTS) {
    await updateReport(RESULTS)
    console.log('Updated the table in BENCHMARKING.md')
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`${error.message}\n${USAGE}`)
    process.exit(2)
  }
  console.error(error)
  process.exit(1)
})
