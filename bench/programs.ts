/**
 * Real programs: the C and Rust sources in fixtures/programs/ (sorting, hashing, JSON, regex,
 * compression, a cipher, a hash map, f64 simulations, an interpreter), compiled to wasm by
 * fixtures/programs/build.mjs, each run on Node's WebAssembly and on airssys-wasm in the same run:
 * with a deadline compiled in (Cranelift), with fuel, and on the baseline compiler (Winch); and each
 * compiled cold by V8 (lazy and eager), Cranelift and Winch. The summary gives the geometric mean of
 * the ratios to V8 and the worst program.
 *
 * Every side of every program runs in a child process of its own (bench/programs-child.ts), so a
 * crash takes down only that side: a failed V8 run is retried, a failed one of ours is reported (and
 * the run's exit code says so). Timing happens in the children; their samples become sampled rows.
 */
import { fork, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { ConfigError, Engine } from '../lib/index.js'
import { amount, ratio } from './format.js'
import { MiB, type Row, type RowResult, type Scenario } from './harness.js'
import { FAR_DEADLINE_MS } from './kernel.js'
import type { ChildJob, ChildReport, Side } from './programs-child.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const PROGRAMS_DIR = path.join(root, 'fixtures', 'programs')
const BUILD_DIR = path.join(PROGRAMS_DIR, 'build')
const CHILD = path.join(here, 'programs-child.ts')

interface Program {
  name: string
  language: 'Rust' | 'C'
  /** The size argument: each program's call takes roughly 20–60 ms on V8 on the 2-core machine. */
  n: number
  what: string
}

const PROGRAMS: Program[] = [
  { name: 'sort', language: 'Rust', n: 500_000, what: '`sort_unstable` of n random u64s and n/4 words' },
  {
    name: 'sha256',
    language: 'Rust',
    n: 8192,
    what: 'SHA-256 (`sha2`) of n KiB, then 4n chained short digests',
  },
  {
    name: 'json',
    language: 'Rust',
    n: 4000,
    what: '`serde_json`: n orders to text, parsed into structs, to pretty text, parsed as `Value`',
  },
  {
    name: 'regex',
    language: 'Rust',
    n: 15_000,
    what: '`regex`: five patterns (captures, find-all, case-insensitive) over n log lines',
  },
  {
    name: 'deflate',
    language: 'Rust',
    n: 1024,
    what: '`miniz_oxide`: n KiB of text deflated (level 6) and inflated',
  },
  {
    name: 'chacha20',
    language: 'Rust',
    n: 8192,
    what: 'ChaCha20 (`chacha20`): n KiB encrypted and decrypted',
  },
  {
    name: 'wordcount',
    language: 'Rust',
    n: 400_000,
    what: 'n words of text counted in a std `HashMap`, the top 100 sorted out',
  },
  { name: 'nbody', language: 'Rust', n: 1_000_000, what: 'n steps of the 5-body simulation (f64, `sqrt`)' },
  { name: 'crc32', language: 'C', n: 16, what: 'table-driven CRC-32 over 1 MiB, n times' },
  {
    name: 'lz77',
    language: 'C',
    n: 1536,
    what: 'LZ77 with hash chains on n KiB of text, compressed and decompressed',
  },
  { name: 'matmul', language: 'C', n: 480, what: 'n × n f64 matrix multiply (i-k-j loops)' },
  {
    name: 'mandelbrot',
    language: 'C',
    n: 400,
    what: 'Mandelbrot set on an n × n grid, up to 256 iterations a point',
  },
  {
    name: 'quicksort',
    language: 'C',
    n: 500_000,
    what: 'quicksort of n ints (median of 3, insertion sort below 24)',
  },
  {
    name: 'vm',
    language: 'C',
    n: 200_000,
    what: 'a register-VM interpreter counting the primes below n by trial division',
  },
]

/**
 * The V8 side runs with every function compiled by TurboFan up front. V8 11.3 (Node 20) does not
 * inline wasm calls, so this is the code dynamic tier-up reaches once a program is hot (after 15
 * warm-up calls with default flags, regex, json, sort, matmul and wordcount ran within 5% of these
 * times), without the measurement depending on whether a warm-up was long enough for every function:
 * by default the regex program takes about 8 calls to tier up. A later V8 that inlines on feedback
 * collected by Liftoff would need this choice made again.
 */
const V8_FLAGS = ['--no-liftoff', '--no-wasm-lazy-compilation']
/** A budget no program exhausts (the largest uses a few billion units a call). */
const FUEL_PER_CALL = 1e15
const MEMORY_BYTES = 256 * MiB
/** A V8 run is tried once and retried up to 3 times (Node's own wasm has crashed here before). */
const V8_ATTEMPTS = 4
/** A child still running after this long is killed and counts as failed. */
const CHILD_TIMEOUT_MS = 300_000
const SAMPLING = {
  full: { warmupRuns: 3, warmupMs: 300, runs: 15, compiles: 5 },
  quick: { warmupRuns: 1, warmupMs: 0, runs: 5, compiles: 2 },
}

interface Manifest {
  rust: string
  clang: string | null
  skipped: string | null
  programs: { name: string; language: 'Rust' | 'C'; file: string; export: string; bytes: number }[]
}

type Outcome = { report: ChildReport } | { failure: string }

function build(): Manifest {
  const result = spawnSync(process.execPath, [path.join(PROGRAMS_DIR, 'build.mjs')], {
    cwd: root,
    stdio: 'inherit',
  })
  if (result.error) throw result.error
  if (result.status !== 0)
    throw new Error(`fixtures/programs/build.mjs failed (exit ${result.status ?? result.signal})`)
  return JSON.parse(readFileSync(path.join(BUILD_DIR, 'manifest.json'), 'utf8')) as Manifest
}

/** Runs one child to its end: its report, or why it has none (exit code or signal, last stderr). */
function runChild(job: ChildJob): Promise<Outcome> {
  const flags = job.side === 'v8' ? V8_FLAGS : []
  const child = fork(CHILD, [JSON.stringify(job)], {
    cwd: root,
    execArgv: ['--import', 'tsx', ...flags],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  let report: ChildReport | undefined
  child.on('message', (message) => {
    report = message as ChildReport
  })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, CHILD_TIMEOUT_MS)
  return new Promise((resolve) => {
    child.on('error', (error) => {
      clearTimeout(timer)
      resolve({ failure: error.message })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (report && (report.ok || !('error' in report))) return resolve({ report })
      const why = timedOut
        ? `still running after ${CHILD_TIMEOUT_MS / 1000} s`
        : signal
          ? `killed by ${signal}`
          : `exited with code ${code}`
      const detail = report?.error ?? stderr.trim().split('\n').slice(-3).join(' | ')
      resolve({ failure: `${why}${detail ? `: ${detail}` : ''}` })
    })
  })
}

type Succeeded = Extract<ChildReport, { ok: true }>

/** The samples each side of one program produced, and what went wrong where. */
interface Measured {
  program: Program
  file: string
  bytes: number
  sides: Partial<Record<Side, Succeeded>>
  checksum?: string
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

function geomean(values: number[]): number {
  return Math.exp(values.reduce((sum, value) => sum + Math.log(value), 0) / values.length)
}

/**
 * Runs one side of one program: up to `V8_ATTEMPTS` times for V8, once for ours (our crash is a bug,
 * not noise to retry past). Returns its samples, or nothing (with a notice or a failure recorded);
 * throws if its checksum differs from another side's.
 */
async function measureSide(
  where: string,
  job: ChildJob,
  notices: string[],
  failures: string[],
): Promise<Succeeded | undefined> {
  const attempts = job.side.startsWith('v8') ? V8_ATTEMPTS : 1
  const tried: string[] = []
  let report: ChildReport | undefined
  while (!report && tried.length < attempts) {
    const outcome = await runChild(job)
    if ('report' in outcome) report = outcome.report
    else tried.push(outcome.failure)
  }
  if (tried.length > 0 && report) {
    notices.push(`${where} failed ${tried.length}× and was retried: ${tried.join('; ')}.`)
    console.log(`  ${notices.at(-1)}`)
  }
  if (!report) {
    const message = `${where} failed${attempts > 1 ? ` ${attempts} times` : ''}: ${tried.join('; ')}`
    if (job.side.startsWith('v8')) notices.push(`${message}.`)
    else failures.push(message)
    console.log(`  ${message}`)
    return undefined
  }
  if (!report.ok && 'mismatch' in report) {
    const { expected, actual, at } = report.mismatch
    throw new Error(`${where}: checksum ${actual} at ${at}, expected ${expected} (the first side's)`)
  }
  if (!report.ok) {
    notices.push(`${where} left out: ${'unsupported' in report ? report.unsupported : report.error}.`)
    return undefined
  }
  if (job.side === 'v8' && !V8_FLAGS.every((flag) => report.execArgv.includes(flag))) {
    throw new Error(`the V8 child ran without ${V8_FLAGS.join(' ')}: ${report.execArgv.join(' ')}`)
  }
  return report
}

/** One line per program while the scenario runs: each side's median run time and its ratio to V8. */
function progress({ program, bytes, sides }: Measured): string {
  const v8 = sides.v8 ? median(sides.v8.runs) : undefined
  const times = (['v8', 'cranelift', 'fuel', 'winch'] as const)
    .filter((side) => sides[side])
    .map((side) => {
      const time = median(sides[side]!.runs)
      return `${side} ${amount(time, 'ns')}${v8 && side !== 'v8' ? ` (${ratio(time / v8)})` : ''}`
    })
  return `${program.name} (${program.language}, ${amount(bytes, 'bytes')}): ${times.join(' · ')}`
}

/** The rows: every program's run times, then every program's compile times. */
function rowsOf(measured: Measured[], manifest: Manifest): Row[] {
  const rows: Row[] = []
  const compileRows: Row[] = []
  const language = (program: Program) =>
    program.language === 'Rust'
      ? `Rust, ${manifest.rust.split(' ').slice(0, 2).join(' ')}`
      : `C, ${manifest.clang}`
  for (const { program, file, bytes, sides: done } of measured) {
    const id = (side: string) => `${program.name}-${side}`
    const size = `${file}, ${amount(bytes, 'bytes')}`
    const v8 = done.v8 ? [id('v8')] : []
    const timed = (side: Side) => () => done[side]!.runs
    if (done.v8) {
      rows.push({
        id: id('v8'),
        title: `${program.name}: V8`,
        note:
          `Baseline. ${program.what}; n = ${program.n.toLocaleString('en-US')} (${language(program)}; ${size}). ` +
          `Node's WebAssembly, TurboFan up front (${V8_FLAGS.join(' ')}).`,
        unit: 'ns',
        samples: timed('v8'),
      })
    }
    if (done.cranelift) {
      rows.push({
        id: id('cranelift'),
        title: `${program.name}: callSync, timeoutMs`,
        note: `Ours, Cranelift, a far deadline (timeoutMs: ${FAR_DEADLINE_MS}). Ratio: to V8.`,
        baselines: v8,
        unit: 'ns',
        samples: timed('cranelift'),
      })
    }
    if (done.fuel) {
      const consumed = done.fuel.fuelPerRun ?? 0
      rows.push({
        id: id('fuel'),
        title: `${program.name}: callSync, fuel`,
        note:
          `Ours with fuel (Engine({ fuel: true }), a budget of ${FUEL_PER_CALL.toExponential()} a call; ` +
          `one call consumes ${consumed.toLocaleString('en-US')}). ` +
          'Ratios: to V8 and to the deadline row.',
        baselines: [...v8, ...(done.cranelift ? [id('cranelift')] : [])],
        unit: 'ns',
        samples: timed('fuel'),
      })
    }
    if (done.winch) {
      rows.push({
        id: id('winch'),
        title: `${program.name}: callSync, timeoutMs, Winch`,
        note: 'Ours on the baseline compiler, the same deadline. Ratios: to V8 and to Cranelift.',
        baselines: [...v8, ...(done.cranelift ? [id('cranelift')] : [])],
        unit: 'ns',
        samples: timed('winch'),
      })
    }
    const compiled = (side: Side) => () => done[side]!.compiles
    const lazy = done['v8-lazy'] ? [id('compile-v8')] : []
    const eager = done.v8 ? [id('compile-v8-eager')] : []
    if (done['v8-lazy']) {
      compileRows.push({
        id: id('compile-v8'),
        title: `${program.name}: compile, V8 (lazy)`,
        note: `Baseline. \`new WebAssembly.Module\` of ${size}, cold (V8's default: validates now, compiles each function at its first call).`,
        unit: 'ns',
        samples: compiled('v8-lazy'),
      })
    }
    if (done.v8) {
      compileRows.push({
        id: id('compile-v8-eager'),
        title: `${program.name}: compile, V8 (eager TurboFan)`,
        note: `The same with ${V8_FLAGS.join(' ')}: every function through TurboFan now. Ratio: to lazy.`,
        baselines: lazy,
        unit: 'ns',
        samples: compiled('v8'),
      })
    }
    if (done.cranelift) {
      compileRows.push({
        id: id('compile-cranelift'),
        title: `${program.name}: compileModuleSync, Cranelift`,
        note: 'Ours, cold. Ratios: to V8 lazy and eager.',
        baselines: [...lazy, ...eager],
        unit: 'ns',
        samples: compiled('cranelift'),
      })
    }
    if (done.winch) {
      compileRows.push({
        id: id('compile-winch'),
        title: `${program.name}: compileModuleSync, Winch`,
        note: 'Ours on Winch, cold. Ratios: to V8 lazy and eager, and to Cranelift.',
        baselines: [...lazy, ...eager, ...(done.cranelift ? [id('compile-cranelift')] : [])],
        unit: 'ns',
        samples: compiled('winch'),
      })
    }
  }
  return [...rows, ...compileRows]
}

/**
 * Geometric means of the ratios per variant over the programs, with the worst and best program, then
 * what was left out or retried, and what failed.
 */
function summarize(
  results: RowResult[],
  measured: Measured[],
  notices: string[],
  failures: string[],
): string[] {
  const ratioOf = (row: string, baseline: string) =>
    results.find((result) => result.id === row)?.ratios.find((entry) => entry.baseline === baseline)?.ratio
  const line = (label: string, row: string, baseline: string) => {
    const pairs = measured
      .map(({ program }) => ({
        name: program.name,
        value: ratioOf(`${program.name}-${row}`, `${program.name}-${baseline}`),
      }))
      .filter((pair): pair is { name: string; value: number } => pair.value !== undefined)
    if (pairs.length === 0) return []
    const worst = pairs.reduce((a, b) => (b.value > a.value ? b : a))
    const best = pairs.reduce((a, b) => (b.value < a.value ? b : a))
    return [
      `${label}: geomean ${ratio(geomean(pairs.map((pair) => pair.value)))} over ${pairs.length} programs ` +
        `(worst ${worst.name} ${ratio(worst.value)}, best ${best.name} ${ratio(best.value)})`,
    ]
  }
  return [
    ...line('Run time, ours (Cranelift, deadline) / V8', 'cranelift', 'v8'),
    ...line('Run time, ours with fuel / V8', 'fuel', 'v8'),
    ...line('Run time, fuel / deadline', 'fuel', 'cranelift'),
    ...line('Run time, ours on Winch / V8', 'winch', 'v8'),
    ...line('Run time, Winch / Cranelift', 'winch', 'cranelift'),
    ...line('Cold compile, Cranelift / V8 eager TurboFan', 'compile-cranelift', 'compile-v8-eager'),
    ...line('Cold compile, Winch / V8 eager TurboFan', 'compile-winch', 'compile-v8-eager'),
    ...line('Cold compile, Winch / Cranelift', 'compile-winch', 'compile-cranelift'),
    ...line('Cold compile, Cranelift / V8 lazy', 'compile-cranelift', 'compile-v8'),
    ...notices,
    ...failures.map((failure) => `FAILED: ${failure}.`),
  ]
}

export const programs: Scenario = {
  name: 'programs',
  title: 'Real programs (C and Rust, fixtures/programs/): run time and cold compile, ours vs V8',
  async setup(mode) {
    const manifest = build()
    const sampling = mode.quick ? SAMPLING.quick : SAMPLING.full
    const notices: string[] = []
    const failures: string[] = []

    const available = PROGRAMS.filter((program) => {
      const built = manifest.programs.find((candidate) => candidate.name === program.name)
      if (built) return true
      if (program.language === 'C' && manifest.skipped) return false
      throw new Error(`fixtures/programs/build.mjs did not build ${program.name}`)
    })
    if (manifest.skipped) notices.push(`C programs left out: ${manifest.skipped}.`)

    let winch = true
    try {
      new Engine({ compiler: 'winch' }).close()
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      winch = false
      notices.push(`Winch rows left out: this build has no baseline compiler (${error.message}).`)
    }
    const sides: Side[] = ['v8', 'v8-lazy', 'cranelift', 'fuel', ...(winch ? (['winch'] as const) : [])]

    const measured: Measured[] = []
    for (const program of available) {
      const built = manifest.programs.find((candidate) => candidate.name === program.name)!
      const result: Measured = { program, file: built.file, bytes: built.bytes, sides: {} }
      for (const side of sides) {
        const job: ChildJob = {
          side,
          file: path.join(BUILD_DIR, built.file),
          exportName: built.export,
          n: program.n,
          expected: result.checksum,
          ...sampling,
          timeoutMs: FAR_DEADLINE_MS,
          fuel: FUEL_PER_CALL,
          memoryBytes: MEMORY_BYTES,
        }
        const report = await measureSide(`${program.name} on ${side}`, job, notices, failures)
        if (!report) continue
        if (side !== 'v8-lazy') result.checksum ??= report.checksum
        result.sides[side] = report
      }
      if (!result.sides.v8 && result.checksum) {
        notices.push(
          `${program.name}: our sides agree with each other, but V8 gave no checksum to check against.`,
        )
      }
      measured.push(result)
      console.log(`  ${progress(result)}`)
    }
    if (failures.length > 0) {
      // Our crash is a bug to fix, not noise: say so in the exit code, but keep every other number.
      process.exitCode = 1
      for (const failure of failures) console.error(`programs: ${failure}`)
    }

    return {
      rows: rowsOf(measured, manifest),
      summarize: (results) => summarize(results, measured, notices, failures),
    }
  },
}
